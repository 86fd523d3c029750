/* Classic ways out of a chroot, tried from inside a RUN step: each prints what it did.
 * Every attempt tries to create MARKER (argv[1]), an absolute host path; the test then
 * checks that the host has no such file. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <errno.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

static void try_write(const char *how, const char *path) {
    int fd = open(path, O_CREAT | O_WRONLY, 0644);
    if (fd < 0) { printf("%s: open %s: %s\n", how, path, strerror(errno)); return; }
    write(fd, how, strlen(how));
    close(fd);
    printf("%s: wrote %s\n", how, path);
}

int main(int argc, char **argv) {
    const char *marker = argv[1];
    char path[4096];
    /* 1. chroot into a subdirectory without chdir, climb with "..", chroot(".") */
    int outside = open("/", O_RDONLY | O_DIRECTORY);
    mkdir("/jail", 0755);
    if (chroot("/jail") != 0) printf("chroot: %s\n", strerror(errno));
    if (fchdir(outside) != 0) printf("fchdir: %s\n", strerror(errno));
    for (int i = 0; i < 256; i++) chdir("..");
    if (chroot(".") != 0) printf("chroot .: %s\n", strerror(errno));
    try_write("chroot-escape", marker);
    /* 2. through the root of pid 1 and of ourselves */
    snprintf(path, sizeof path, "/proc/1/root%s", marker);
    try_write("proc-1-root", path);
    snprintf(path, sizeof path, "/proc/self/root/../../..%s", marker);
    try_write("proc-self-root", path);
    /* 3. mounting anything at all */
    mkdir("/mnt-escape", 0755);
    if (mount("none", "/mnt-escape", "tmpfs", 0, NULL) != 0) printf("mount tmpfs: %s\n", strerror(errno));
    else printf("mount tmpfs: MOUNTED\n");
    if (mount("/", "/mnt-escape", NULL, MS_BIND, NULL) != 0) printf("mount bind: %s\n", strerror(errno));
    else printf("mount bind: MOUNTED\n");
    if (mount("sysfs", "/mnt-escape", "sysfs", 0, NULL) != 0) printf("mount sysfs: %s\n", strerror(errno));
    else printf("mount sysfs: MOUNTED\n");
    return 0;
}
