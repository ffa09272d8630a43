/* SPDX-License-Identifier: MIT */
/* restore/dwrite.c: files written through staging buffers and writer threads, direct or not. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "dwrite.h"

static char dir[] = "/tmp/ferry-dwrite-XXXXXX";
static atomic_bool refused;

/* A deterministic byte pattern, different at every offset of a file. */
static unsigned char
pat(uint64_t i, unsigned seed)
{
    uint64_t x = (i + 1) * 0x9E3779B97F4A7C15ull ^ seed;

    return (unsigned char)(x >> 29);
}

/* The file at path holds exactly size pattern bytes. */
static int
file_ok(const char *path, uint64_t size, unsigned seed)
{
    int fd = open(path, O_RDONLY);
    unsigned char buf[65536];
    uint64_t off = 0;
    struct stat st;
    int ok = 1;

    if (fd < 0 || fstat(fd, &st) < 0 || (uint64_t)st.st_size != size) {
        printf("# %s: size %lld, want %llu\n", path, fd < 0 ? -1LL : (long long)st.st_size,
               (unsigned long long)size);
        if (fd >= 0)
            close(fd);
        return 0;
    }
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));

        if (n <= 0)
            break;
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] != pat(off + (uint64_t)i, seed)) {
                printf("# %s: byte %llu differs\n", path, (unsigned long long)(off + i));
                ok = 0;
                break;
            }
        if (!ok)
            break;
        off += (uint64_t)n;
    }
    close(fd);
    return ok && off == size;
}

/*
 * Write size bytes in pieces of the given lengths (cycled), each from a
 * source offset that is deliberately not aligned (as tar data is), then
 * check the file.
 */
static void
write_one(struct dwriter *w, const char *name, uint64_t size, bool direct, const size_t *pieces,
          size_t n_pieces, unsigned seed)
{
    char path[256];
    unsigned char *src = malloc(size + 4096 + 1);
    unsigned char *p = src + 512 + 1; /* odd: never aligned */
    struct dfile f;
    struct err err;
    uint64_t done = 0;
    size_t k = 0;
    int fd;

    err_clear(&err);
    for (uint64_t i = 0; i < size; i++)
        p[i] = pat(i, seed);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    CHECK(fd >= 0);
    dfile_begin(w, &f, fd, size, direct, path);
    while (done < size) {
        size_t n = pieces[k++ % n_pieces];

        if (n > size - done)
            n = (size_t)(size - done);
        CHECK_OK(dfile_write(&f, p + done, n, &err), &err);
        done += n;
    }
    CHECK_OK(dfile_end(&f, &err), &err);
    CHECK_INT(f.off, size);
    CHECK(close(fd) == 0);
    CHECK(file_ok(path, size, seed));
    free(src);
}

static const size_t odd_pieces[] = {1, 511, 512, 4096, 100000, 524288, 3, 2097152, 4097};
static const size_t big_pieces[] = {524288 - 1536, 524288, 524288, 1536};

static void
test_direct_sizes(void)
{
    struct dwriter *w = dwriter_new(&refused);
    static const uint64_t sizes[] = {
        0, 1, 4095, 4096, 4097, 262144, 2097152, 2097152 + 513, 5 * 1048576 + 4095, 9 * 1048576};
    char name[64];

    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        snprintf(name, sizeof(name), "direct-%zu", i);
        write_one(w, name, sizes[i], true, odd_pieces, 9, (unsigned)i);
        snprintf(name, sizeof(name), "direct-big-%zu", i);
        write_one(w, name, sizes[i], true, big_pieces, 4, (unsigned)i + 100);
    }
    dwriter_free(w);
}

static void
test_buffered(void)
{
    struct dwriter *w = dwriter_new(&refused);

    /* not direct: written as it comes, with or without a dwriter */
    write_one(w, "buffered-1", 3 * 1048576 + 7, false, odd_pieces, 9, 7);
    write_one(NULL, "buffered-2", 3 * 1048576 + 7, false, odd_pieces, 9, 8);
    write_one(NULL, "buffered-3", 0, false, odd_pieces, 9, 9);
    dwriter_free(w);
}

/* A writer's failure reaches the caller, naming the file; the dwriter is usable afterwards. */
static void
test_write_error(void)
{
    struct dwriter *w = dwriter_new(&refused);
    char path[256];
    unsigned char *buf = calloc(1, 8 << 20);
    struct dfile f;
    struct err err;
    int fd, rc = 0;

    snprintf(path, sizeof(path), "%s/readonly", dir);
    fd = open(path, O_RDONLY | O_CREAT | O_EXCL, 0600); /* pwrite fails: EBADF */
    CHECK(fd >= 0);
    err_clear(&err);
    dfile_begin(w, &f, fd, 8 << 20, true, path);
    if (f.direct) {
        for (int i = 0; i < 4 && rc == 0; i++)
            rc = dfile_write(&f, buf, 2 << 20, &err);
        if (rc == 0)
            rc = dfile_end(&f, &err);
        CHECK(rc < 0);
        CHECK(err.kind == ERR_IO);
        CHECK(strstr(err.msg, "could not write \"") != NULL);
        CHECK(strstr(err.msg, "readonly\"") != NULL);
        dfile_abandon(&f);
    } else {
        printf("# this filesystem refuses O_DIRECT: the writer threads are not exercised\n");
        CHECK(dfile_write(&f, buf, 2 << 20, &err) < 0);
    }
    close(fd);
    free(buf);
    dwriter_free(w);
}

/* Giving up halfway: nothing is in flight once dfile_abandon returns. */
static void
test_abandon(void)
{
    struct dwriter *w = dwriter_new(&refused);
    char path[256];
    unsigned char *buf = malloc(5 << 20);
    struct dfile f;
    struct err err;
    struct stat st;
    int fd;

    memset(buf, 'a', 5 << 20);
    snprintf(path, sizeof(path), "%s/abandoned", dir);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    CHECK(fd >= 0);
    err_clear(&err);
    dfile_begin(w, &f, fd, 16 << 20, true, path);
    CHECK_OK(dfile_write(&f, buf, 5 << 20, &err), &err);
    dfile_abandon(&f);
    CHECK(close(fd) == 0);
    CHECK(stat(path, &st) == 0);
    free(buf);
    /* the same dwriter goes on with the next file */
    write_one(w, "after-abandon", 3 << 20, true, odd_pieces, 9, 11);
    dwriter_free(w);
}

static void
cleanup(void)
{
    char cmd[300];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        printf("# could not remove %s\n", dir);
}

int
main(void)
{
    if (!mkdtemp(dir)) {
        printf("Bail out! mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    atomic_init(&refused, false);
    RUN(test_direct_sizes);
    RUN(test_buffered);
    RUN(test_write_error);
    RUN(test_abandon);
    cleanup();
    return check_done();
}
