/* SPDX-License-Identifier: MIT */
/*
 * wal-floor: the per-byte work of one WAL push and of one prefetched fetch,
 * done by ferry's own stream stages in one thread, with no process to start,
 * no network and no storage server. It is the floor under what
 * ferry-wal-push and ferry-wal-fetch can cost per segment on this machine;
 * bench/wal_bench.py reports it beside the CPU each goal leaves.
 *
 *   push:  read the segment (256 KiB at a time, as sink_pump_fd does), encode
 *          it as an object with the default options (SHA-256 of the
 *          plaintext, zstd at the default level with its content checksum);
 *          the object goes to memory.
 *   fetch: decode that object as ferry-wal-fetch does (zstd with its content
 *          checksum checked, archive_fetch_file's codec_checked decoder) into
 *          a temporary file in DIR, not synced, like a spool file. Removing it
 *          afterwards is not counted.
 *
 * usage: wal-floor [--rounds N] DIR SEGMENT...
 * Prints "push MS fetch MS": the median over the rounds of the thread's CPU
 * milliseconds per segment (user and system time).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/err.h"
#include "base/xmalloc.h"
#include "stream/object.h"
#include "stream/sink.h"
#include "stream/stages.h"

static double
thread_cpu_ms(void)
{
    struct timespec t;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static double
median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void
die(const char *what, const struct err *err)
{
    fprintf(stderr, "wal-floor: %s: %s\n", what, err->msg);
    exit(1);
}

/* Encode the segment at path into *out (emptied first). */
static void
push_one(const char *path, struct buf *out, const struct object_opts *o)
{
    struct err err;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        err_sys(&err, ERR_IO, "could not open \"%s\"", path);
        die(path, &err);
    }
    buf_reset(out);
    struct sink *chain = object_encode_sink_new(buf_sink_new(out, 0), o, NULL);
    if (sink_pump_fd(chain, fd, path, &err) < 0 || sink_finish(chain, &err) < 0)
        die(path, &err);
    sink_free(chain);
    close(fd);
}

/* Decode an object into dest, not synced. */
static void
fetch_one(const struct buf *obj, const char *dest)
{
    struct err err;
    struct object_info info;
    struct sink *chain =
        object_decode_sink_new_codec_checked(atomic_file_sink_nosync_new(dest, 0600), NULL, &info);

    if (sink_write(chain, obj->data, obj->len, &err) < 0 || sink_finish(chain, &err) < 0)
        die(dest, &err);
    sink_free(chain);
}

int
main(int argc, char **argv)
{
    long rounds = 3;
    int first = 1;
    char *end = NULL;

    if (argc > 2 && strcmp(argv[1], "--rounds") == 0) {
        rounds = strtol(argv[2], &end, 10);
        first = 3;
    }
    if ((end && *end) || rounds < 1 || rounds > 1000 || argc - first < 2) {
        fprintf(stderr, "usage: wal-floor [--rounds N] DIR SEGMENT...\n");
        return 2;
    }
    const char *dir = argv[first];
    char **segs = argv + first + 1;
    int n = argc - first - 1;
    struct object_opts o = {OBJECT_COMPRESS_ZSTD, 0, NULL};
    struct buf *objs = xcalloc((size_t)n, sizeof(*objs));
    double *push_ms = xcalloc((size_t)rounds, sizeof(double));
    double *fetch_ms = xcalloc((size_t)rounds, sizeof(double));
    char *dest = xasprintf("%s/wal-floor.%ld", dir, (long)getpid());

    for (int i = 0; i < n; i++) /* warm the page cache and the allocator */
        push_one(segs[i], &objs[i], &o);
    for (int r = 0; r < rounds; r++) {
        double t0 = thread_cpu_ms();

        for (int i = 0; i < n; i++)
            push_one(segs[i], &objs[i], &o);
        push_ms[r] = (thread_cpu_ms() - t0) / n;
        double spent = 0;
        for (int i = 0; i < n; i++) {
            double t1 = thread_cpu_ms();

            fetch_one(&objs[i], dest);
            spent += thread_cpu_ms() - t1;
            unlink(dest);
        }
        fetch_ms[r] = spent / n;
    }
    printf("push %.2f fetch %.2f\n", median(push_ms, (int)rounds), median(fetch_ms, (int)rounds));
    for (int i = 0; i < n; i++)
        buf_free(&objs[i]);
    free(objs);
    free(push_ms);
    free(fetch_ms);
    free(dest);
    return 0;
}
