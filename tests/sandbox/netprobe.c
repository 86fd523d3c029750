/* What a RUN step can do with the network, tried from inside the step; each prints one line.
 *   netprobe bind PORT             bind 0.0.0.0:PORT ("bind: ok" | "bind: in use" | "bind: <error>")
 *   netprobe connect IP PORT       TCP connect ("connect: ok" | "connect: <error>")
 *   netprobe sniff MARKER SECONDS  a raw AF_PACKET socket on every interface: "sniff: saw MARKER"
 *                                  once a packet holds it, else "sniff: nothing" after SECONDS
 *                                  (or "sniff: no socket: <error>").
 * The sniff deadline bounds the negative case only: a positive answer comes as soon as the
 * packet does. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int probe_bind(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_ANY)};
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        printf("bind: %s\n", errno == EADDRINUSE ? "in use" : strerror(errno));
        return 1;
    }
    listen(fd, 1);
    printf("bind: ok\n");
    return 0;
}

static int probe_connect(const char *ip, int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, ip, &addr.sin_addr);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        printf("connect: %s\n", strerror(errno));
        return 1;
    }
    printf("connect: ok\n");
    return 0;
}

static int probe_sniff(const char *marker, int seconds) {
    int fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
    if (fd < 0) {
        printf("sniff: no socket: %s\n", strerror(errno));
        return 1;
    }
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    static char buf[70000];
    size_t len = strlen(marker);
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        long left = seconds * 1000L - ((now.tv_sec - start.tv_sec) * 1000L + (now.tv_nsec - start.tv_nsec) / 1000000L);
        if (left <= 0) break;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, (int)left) <= 0) continue;
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n > 0 && memmem(buf, (size_t)n, marker, len) != NULL) {
            printf("sniff: saw %s\n", marker);
            return 0;
        }
    }
    printf("sniff: nothing\n");
    return 1;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc == 3 && strcmp(argv[1], "bind") == 0) return probe_bind(atoi(argv[2]));
    if (argc == 4 && strcmp(argv[1], "connect") == 0) return probe_connect(argv[2], atoi(argv[3]));
    if (argc == 4 && strcmp(argv[1], "sniff") == 0) return probe_sniff(argv[2], atoi(argv[3]));
    fprintf(stderr, "usage: netprobe bind PORT | connect IP PORT | sniff MARKER SECONDS\n");
    return 2;
}
