/* Kernel surface probes for tests/security/test_kernel_surface.py: each argument names a syscall to try
 * with harmless arguments; prints "NAME: ok" or "NAME: ERRNO-NAME". Built static, copied into the image. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/bpf.h>
#include <linux/io_uring.h>
#include <linux/keyctl.h>
#include <linux/perf_event.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *err_name(int err) {
    switch (err) {
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case ENOSYS: return "ENOSYS";
    case EINVAL: return "EINVAL";
    case ENOKEY: return "ENOKEY";
    case EKEYREVOKED: return "EKEYREVOKED";
    default: return strerror(err);
    }
}

static long probe(const char *name, const char *arg) {
    char buf[256];
    if (!strcmp(name, "keyctl-read")) return syscall(SYS_keyctl, KEYCTL_READ, atol(arg), buf, sizeof buf);
    if (!strcmp(name, "keyctl-search"))
        return syscall(SYS_keyctl, KEYCTL_SEARCH, KEY_SPEC_SESSION_KEYRING, "user", arg, 0);
    if (!strcmp(name, "add_key"))
        return syscall(SYS_add_key, "user", "probe", "x", 1, KEY_SPEC_SESSION_KEYRING);
    if (!strcmp(name, "io_uring_setup")) {
        struct io_uring_params params;
        memset(&params, 0, sizeof params);
        return syscall(SYS_io_uring_setup, 1, &params);
    }
    if (!strcmp(name, "bpf")) {
        union bpf_attr attr;
        memset(&attr, 0, sizeof attr);
        attr.map_type = BPF_MAP_TYPE_ARRAY;
        attr.key_size = 4;
        attr.value_size = 4;
        attr.max_entries = 1;
        return syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof attr);
    }
    if (!strcmp(name, "perf_event_open")) {
        struct perf_event_attr attr;
        memset(&attr, 0, sizeof attr);
        attr.size = sizeof attr;
        attr.type = PERF_TYPE_SOFTWARE;
        attr.config = PERF_COUNT_SW_CPU_CLOCK;
        return syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0);
    }
    if (!strcmp(name, "unshare-user")) return unshare(CLONE_NEWUSER);
    if (!strcmp(name, "clone-newuser")) {
        long pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
        if (pid == 0) _exit(0);
        if (pid > 0) waitpid(pid, 0, 0);
        return pid;
    }
    if (!strcmp(name, "mount")) return mount("none", "/tmp", "tmpfs", 0, 0);
    if (!strcmp(name, "fork")) {
        pid_t pid = fork();
        if (pid == 0) _exit(0);
        if (pid > 0) waitpid(pid, 0, 0);
        return pid;
    }
    fprintf(stderr, "unknown probe %s\n", name);
    exit(2);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        char *name = argv[i], *arg = strchr(name, '=');
        if (arg) *arg++ = 0;
        errno = 0;
        long result = probe(name, arg ? arg : "");
        printf("%s: %s\n", name, result >= 0 ? "ok" : err_name(errno));
    }
    return 0;
}
