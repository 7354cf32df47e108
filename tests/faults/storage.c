/*
 * Storage faults for tests/faults.rs, loaded into arid with LD_PRELOAD.
 *
 * Wraps the C library's write, pwrite, pwrite64, fsync and fdatasync. A call on a file whose
 * path starts with $ARI_FAULT_FILES (the state database and its -wal and -shm files) fails
 * with EIO with the probability the control file $ARI_FAULT_CONTROL gives, as
 * "write=PERMILLE fsync=PERMILLE"; no control file, no faults. Every fault injected is
 * appended as one line ("write" or "fsync") to $ARI_FAULT_LOG so the test can count them.
 * Everything else goes straight to the C library: the daemon and SQLite are unmodified and see
 * real failing system calls.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

static char files[1024];
static char control[1024];
static char faults_log[1024];

__attribute__((constructor)) static void setup(void) {
    const char *v;
    if ((v = getenv("ARI_FAULT_FILES")))
        snprintf(files, sizeof files, "%s", v);
    if ((v = getenv("ARI_FAULT_CONTROL")))
        snprintf(control, sizeof control, "%s", v);
    if ((v = getenv("ARI_FAULT_LOG")))
        snprintf(faults_log, sizeof faults_log, "%s", v);
}

static int targeted(int fd) {
    if (!files[0])
        return 0;
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0)
        return 0;
    path[n] = 0;
    return strncmp(path, files, strlen(files)) == 0;
}

/* The per-mille rate for `kind` in the control file, 0 when there is none. */
static unsigned rate(const char *kind) {
    if (!control[0])
        return 0;
    int fd = open(control, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    char text[256];
    ssize_t n = syscall(SYS_read, fd, text, sizeof text - 1);
    close(fd);
    if (n <= 0)
        return 0;
    text[n] = 0;
    char key[32];
    snprintf(key, sizeof key, "%s=", kind);
    const char *at = strstr(text, key);
    return at ? (unsigned)strtoul(at + strlen(key), NULL, 10) : 0;
}

static __thread unsigned long long seed;

static unsigned roll(void) {
    if (!seed) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        seed = (unsigned long long)ts.tv_nsec ^ ((unsigned long long)syscall(SYS_gettid) << 32) ^ 0x9e3779b97f4a7c15ULL;
    }
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    return (unsigned)(seed % 1000);
}

/* Whether this call on `fd` fails; logs it if so. */
static int fault(int fd, const char *kind) {
    if (!targeted(fd))
        return 0;
    unsigned r = rate(kind);
    if (!r || roll() >= r)
        return 0;
    if (faults_log[0]) {
        int lfd = open(faults_log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        if (lfd >= 0) {
            char line[16];
            int len = snprintf(line, sizeof line, "%s\n", kind);
            syscall(SYS_write, lfd, line, (size_t)len);
            close(lfd);
        }
    }
    errno = EIO;
    return 1;
}

typedef ssize_t (*write_fn)(int, const void *, size_t);
typedef ssize_t (*pwrite_fn)(int, const void *, size_t, off_t);
typedef ssize_t (*pwrite64_fn)(int, const void *, size_t, off64_t);
typedef int (*sync_fn)(int);

/* The C library's own `name`, looked up once. */
#define REAL(name, type) \
    static type real_##name; \
    if (!real_##name) real_##name = (type)dlsym(RTLD_NEXT, #name)

ssize_t write(int fd, const void *buf, size_t n) {
    REAL(write, write_fn);
    return fault(fd, "write") ? -1 : real_write(fd, buf, n);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t at) {
    REAL(pwrite, pwrite_fn);
    return fault(fd, "write") ? -1 : real_pwrite(fd, buf, n, at);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t at) {
    REAL(pwrite64, pwrite64_fn);
    return fault(fd, "write") ? -1 : real_pwrite64(fd, buf, n, at);
}

int fsync(int fd) {
    REAL(fsync, sync_fn);
    return fault(fd, "fsync") ? -1 : real_fsync(fd);
}

int fdatasync(int fd) {
    REAL(fdatasync, sync_fn);
    return fault(fd, "fsync") ? -1 : real_fdatasync(fd);
}
