/* SPDX-License-Identifier: MIT */
/*
 * Terminal stages: fd (short writes, EINTR, a full disk), the atomic file
 * (mode, replace, and nothing left behind after an abandoned write or an
 * injected failure).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "check.h"
#include "helpers.h"

static char dir[64];

/* Names in dir, space separated and sorted, for exact comparison. */
static const char *
listing(void)
{
    static char out[1024];
    char *names[32];
    size_t n = 0, used = 0;
    DIR *d = opendir(dir);
    struct dirent *de;

    out[0] = '\0';
    while (d && (de = readdir(d)) && n < 32)
        if (de->d_name[0] != '.' || (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")))
            names[n++] = xstrdup(de->d_name);
    if (d)
        closedir(d);
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            if (strcmp(names[j], names[i]) < 0) {
                char *t = names[i];

                names[i] = names[j];
                names[j] = t;
            }
    for (size_t i = 0; i < n; i++) {
        used += (size_t)snprintf(out + used, sizeof(out) - used, "%s%s", i ? " " : "", names[i]);
        free(names[i]);
    }
    return out;
}

static char *
path_of(const char *name)
{
    return xasprintf("%s/%s", dir, name);
}

static void
read_file(struct buf *out, const char *path)
{
    char block[4096];
    int fd = open(path, O_RDONLY);
    ssize_t n;

    buf_reset(out);
    if (fd < 0)
        return;
    while ((n = read(fd, block, sizeof(block))) > 0)
        buf_append(out, block, (size_t)n);
    close(fd);
}

static void
test_fd_sink_writes_all(void)
{
    char *p = path_of("fd");
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    struct sink *s = fd_sink_new(fd, p);
    struct buf got = BUF_INIT;
    struct err err;

    CHECK_OK(feed(s, "hello, world", 12, 1, 0, &err), &err);
    sink_free(s);
    close(fd);
    read_file(&got, p);
    CHECK_STR(buf_str(&got), "hello, world");
    unlink(p);
    free(p);
    buf_free(&got);
}

static void
test_fd_sink_full_disk(void)
{
    int fd = open("/dev/full", O_WRONLY | O_CLOEXEC);
    struct sink *s = fd_sink_new(fd, "/dev/full");
    struct err err;

    CHECK(fd >= 0);
    CHECK_FAIL(sink_write(s, "x", 1, &err), &err, ERR_NOSPACE,
               "could not write to \"/dev/full\": No space left on device");
    CHECK_INT(err.sys_errno, ENOSPC);
    CHECK_FAIL(sink_finish(s, &err), &err, ERR_NOSPACE,
               "could not write to \"/dev/full\": No space left on device");
    sink_free(s);
    close(fd);
}

static void
test_fd_sink_bad_fd(void)
{
    struct sink *s = fd_sink_new(-1, "stdout");
    struct err err;

    CHECK_FAIL(sink_write(s, "x", 1, &err), &err, ERR_IO,
               "could not write to \"stdout\": Bad file descriptor");
    sink_free(s);
}

static int pipe_rd;
static unsigned char *pipe_got;
static size_t pipe_total;

static void *
slow_reader(void *arg)
{
    size_t have = 0;

    while (have < pipe_total) {
        ssize_t n = read(pipe_rd, pipe_got + have, 7000);

        if (n <= 0)
            break;
        have += (size_t)n;
        usleep(200);
    }
    return NULL;
}

static volatile sig_atomic_t alarms;

static void
on_alarm(int sig)
{
    alarms++;
}

/* A signal without SA_RESTART interrupts writes into a slow pipe: EINTR and short writes. */
static void
test_fd_sink_short_writes_and_eintr(void)
{
    struct sigaction sa;
    struct itimerval tv = {{0, 2000}, {0, 2000}}, off = {{0, 0}, {0, 0}};
    unsigned char *data;
    pthread_t th;
    int fds[2];
    struct err err;
    struct sink *s;

    pipe_total = 4 << 20;
    data = xmalloc(pipe_total);
    pipe_got = xcalloc(1, pipe_total);
    fill_random(data, pipe_total);
    CHECK(pipe(fds) == 0);
    pipe_rd = fds[0];
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL); /* no SA_RESTART */
    {
        /* the reader thread starts with SIGALRM blocked: the writer gets every signal */
        sigset_t set;

        sigemptyset(&set);
        sigaddset(&set, SIGALRM);
        pthread_sigmask(SIG_BLOCK, &set, NULL);
        pthread_create(&th, NULL, slow_reader, NULL);
        pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    }
    setitimer(ITIMER_REAL, &tv, NULL);
    s = fd_sink_new(fds[1], "pipe");
    CHECK_OK(sink_write(s, data, pipe_total, &err), &err);
    CHECK_OK(sink_finish(s, &err), &err);
    setitimer(ITIMER_REAL, &off, NULL);
    sink_free(s);
    close(fds[1]);
    pthread_join(th, NULL);
    close(fds[0]);
    CHECK(memcmp(pipe_got, data, pipe_total) == 0);
    /* the writes were interrupted many times (each one a short write or EINTR) */
    printf("# %d signals during the write\n", (int)alarms);
    CHECK(alarms > 5);
    signal(SIGALRM, SIG_DFL);
    free(data);
    free(pipe_got);
}

static void
test_atomic_file_writes_and_replaces(void)
{
    char *p = path_of("target");
    struct buf got = BUF_INIT;
    struct stat st;
    struct err err;
    struct sink *s;
    mode_t old = umask(077);

    s = atomic_file_sink_new(p, 0640);
    CHECK_OK(feed(s, "first version", 13, 0, 4, &err), &err);
    sink_free(s);
    read_file(&got, p);
    CHECK_STR(buf_str(&got), "first version");
    CHECK(stat(p, &st) == 0 && (st.st_mode & 07777) == 0640);
    CHECK_STR(listing(), "target");

    s = atomic_file_sink_new(p, 0600);
    CHECK_OK(sink_write(s, "second", 6, &err), &err);
    /* until finish, the old file is intact and the new one is a temporary beside it */
    read_file(&got, p);
    CHECK_STR(buf_str(&got), "first version");
    CHECK(strncmp(listing(), ".target.tmp.", 12) == 0);
    CHECK_OK(sink_finish(s, &err), &err);
    sink_free(s);
    read_file(&got, p);
    CHECK_STR(buf_str(&got), "second");
    CHECK(stat(p, &st) == 0 && (st.st_mode & 07777) == 0600);
    CHECK_STR(listing(), "target");

    /* finish without writes: an empty file */
    s = atomic_file_sink_new(p, 0600);
    CHECK_OK(sink_finish(s, &err), &err);
    sink_free(s);
    CHECK(stat(p, &st) == 0 && st.st_size == 0);
    unlink(p);
    umask(old);
    free(p);
    buf_free(&got);
}

static void
test_atomic_file_abandoned(void)
{
    char *p = path_of("abandoned");
    struct err err;
    struct sink *s = atomic_file_sink_new(p, 0600);

    CHECK_OK(sink_write(s, "partial", 7, &err), &err);
    CHECK(strncmp(listing(), ".abandoned.tmp.", 15) == 0);
    sink_free(s);
    CHECK_STR(listing(), "");
    /* freed before any write: nothing was ever created */
    s = atomic_file_sink_new(p, 0600);
    sink_free(s);
    CHECK_STR(listing(), "");
    free(p);
}

/* A write fails half way (RLIMIT_FSIZE makes write() fail with EFBIG). */
static void
test_atomic_file_write_failure(void)
{
    char *p = path_of("big");
    struct rlimit saved, small;
    unsigned char *data = xcalloc(1, 1 << 20);
    struct err err;
    struct sink *s = atomic_file_sink_new(p, 0600);
    char want[256];

    signal(SIGXFSZ, SIG_IGN);
    getrlimit(RLIMIT_FSIZE, &saved);
    small = saved;
    small.rlim_cur = 100000;
    setrlimit(RLIMIT_FSIZE, &small);
    snprintf(want, sizeof(want), "could not write to \"%s\": File too large", p);
    CHECK_FAIL(sink_write(s, data, 1 << 20, &err), &err, ERR_IO, want);
    setrlimit(RLIMIT_FSIZE, &saved);
    signal(SIGXFSZ, SIG_DFL);
    /* the temporary file is gone at once, not only when freed */
    CHECK_STR(listing(), "");
    CHECK_FAIL(sink_finish(s, &err), &err, ERR_IO, want);
    sink_free(s);
    CHECK_STR(listing(), "");
    free(data);
    free(p);
}

/* The rename fails (the target is a directory): no temporary file left, the target untouched. */
static void
test_atomic_file_rename_failure(void)
{
    char *p = path_of("isdir");
    char want[256];
    struct err err;
    struct sink *s;

    CHECK(mkdir(p, 0700) == 0);
    s = atomic_file_sink_new(p, 0600);
    CHECK_OK(sink_write(s, "data", 4, &err), &err);
    CHECK_FAIL(sink_finish(s, &err), &err, ERR_IO, NULL);
    snprintf(want, sizeof(want), "could not rename \"%s/.isdir.tmp.", dir);
    CHECK(strncmp(err.msg, want, strlen(want)) == 0);
    CHECK(strstr(err.msg, "\": Is a directory") != NULL);
    CHECK_STR(listing(), "isdir");
    sink_free(s);
    CHECK_STR(listing(), "isdir");
    rmdir(p);
    free(p);
}

static void
test_atomic_file_missing_directory(void)
{
    char *p = path_of("nodir/file");
    char want[256];
    struct err err;
    struct sink *s = atomic_file_sink_new(p, 0600);

    snprintf(want, sizeof(want),
             "could not create a temporary file for \"%s\": No such file or directory", p);
    CHECK_FAIL(sink_write(s, "x", 1, &err), &err, ERR_IO, want);
    sink_free(s);
    CHECK_STR(listing(), "");
    free(p);
}

/* A whole object chain into an atomic file, abandoned half way: nothing left. */
static void
test_atomic_file_under_object_chain(void)
{
    char *p = path_of("obj");
    unsigned char data[300000];
    struct object_opts o = {OBJECT_COMPRESS_ZSTD, 0, NULL};
    struct err err;
    struct sink *s = object_encode_sink_new(atomic_file_sink_new(p, 0600), &o, NULL);

    fill_random(data, sizeof(data));
    CHECK_OK(sink_write(s, data, sizeof(data), &err), &err);
    sink_free(s);
    CHECK_STR(listing(), "");
    free(p);
}

int
main(void)
{
    snprintf(dir, sizeof(dir), "/tmp/ferry-test-file-XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    RUN(test_fd_sink_writes_all);
    RUN(test_fd_sink_full_disk);
    RUN(test_fd_sink_bad_fd);
    RUN(test_fd_sink_short_writes_and_eintr);
    RUN(test_atomic_file_writes_and_replaces);
    RUN(test_atomic_file_abandoned);
    RUN(test_atomic_file_write_failure);
    RUN(test_atomic_file_rename_failure);
    RUN(test_atomic_file_missing_directory);
    RUN(test_atomic_file_under_object_chain);
    rmdir(dir);
    return check_done();
}
