/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for archive/: pushing and fetching WAL files through a file://
 * repository, with segments built from a real PostgreSQL 15 first page
 * (tests/unit/format/data/pg15-1m-000000010000000000000006.head).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive/archive.h"
#include "check.h"
#include "stream/stages.h"

static char dir[256];
static struct repo *repo;
static struct archive ar;

#define SEG_NAME "000000010000000000000006"
#define SEG_SIZE (1u << 20)

/* A 1 MiB segment: the real first page, then a pattern (fill changes the bytes after the header).
 */
static void
make_segment(const char *path, unsigned char fill)
{
    static unsigned char seg[SEG_SIZE];
    char src[1024];
    FILE *f;

    snprintf(src, sizeof(src), "%s/tests/unit/format/data/pg15-1m-%s.head",
             getenv("FERRY_SOURCE_ROOT"), SEG_NAME);
    f = fopen(src, "rb");
    if (!f || fread(seg, 1, 8192, f) != 8192)
        abort();
    fclose(f);
    for (size_t i = 8192; i < SEG_SIZE; i++)
        seg[i] = (unsigned char)(fill + i % 251);
    f = fopen(path, "wb");
    if (!f || fwrite(seg, 1, SEG_SIZE, f) != SEG_SIZE)
        abort();
    fclose(f);
}

static void
setup(void)
{
    struct repo_opts o;
    struct err err;
    char url[300];

    snprintf(dir, sizeof(dir), "/tmp/ferry-test-archive-XXXXXX");
    if (!mkdtemp(dir))
        abort();
    snprintf(url, sizeof(url), "%s/repo", dir);
    mkdir(url, 0700);
    snprintf(url, sizeof(url), "file://%s/repo", dir);
    repo_opts_init(&o);
    if (repo_open(&repo, url, &o, &err) < 0) {
        printf("# %s\n", err.msg);
        abort();
    }
    memset(&ar, 0, sizeof(ar));
    ar.repo = repo;
    ar.oopts.compress = OBJECT_COMPRESS_ZSTD;
}

static char *
path_of(const char *name)
{
    static char p[512];

    snprintf(p, sizeof(p), "%s/%s", dir, name);
    return p;
}

static void
test_push_check_and_fetch(void)
{
    struct walname w;
    struct walheader h;
    bool has_header;
    struct err err;
    enum archive_push_result res;
    char fetched[512];
    char cmd[1200];

    make_segment(path_of(SEG_NAME), 1);
    CHECK_OK(archive_check_local(path_of(SEG_NAME), &w, &h, &has_header, &err), &err);
    CHECK(has_header);
    CHECK_INT(h.seg_size, SEG_SIZE);
    struct cluster_info ci = {h.sysid, h.pg_version, h.seg_size, h.blcksz};
    CHECK_OK(archive_cluster_check(&ar, &ci, "WAL file \"x\"", &err), &err);
    CHECK_OK(archive_push_file(&ar, path_of(SEG_NAME), &w, &res, NULL, &err), &err);
    CHECK_INT(res, ARCHIVE_PUSH_STORED);
    /* same bytes again: fine */
    CHECK_OK(archive_push_file(&ar, path_of(SEG_NAME), &w, &res, NULL, &err), &err);
    CHECK_INT(res, ARCHIVE_PUSH_IDENTICAL);
    /* stored under the documented key */
    struct repo_stat st;
    CHECK_OK(repo_stat(repo, "pg/wal/0000000100000000/" SEG_NAME, &st, &err), &err);
    /* fetched back byte for byte */
    snprintf(fetched, sizeof(fetched), "%s/fetched", dir);
    CHECK_OK(archive_fetch_file(&ar, &w, &ci, fetched, 0, NULL, &err), &err);
    snprintf(cmd, sizeof(cmd), "cmp -s %s %s", path_of(SEG_NAME), fetched);
    CHECK_INT(system(cmd), 0);
}

static void
test_push_different_bytes_refused(void)
{
    struct walname w;
    struct walheader h;
    bool has_header;
    struct err err;
    enum archive_push_result res;
    char other[512];

    snprintf(other, sizeof(other), "%s/other/" SEG_NAME, dir);
    mkdir(path_of("other"), 0700);
    make_segment(other, 2);
    CHECK_OK(archive_check_local(other, &w, &h, &has_header, &err), &err);
    CHECK_FAIL(archive_push_file(&ar, other, &w, &res, NULL, &err), &err, ERR_EXISTS, NULL);
    CHECK(strstr(err.msg, "\"" SEG_NAME "\" is already archived with different contents: "
                          "archived sha256 ") == err.msg);
    CHECK(strstr(err.msg, "local sha256 ") != NULL);
}

static void
test_other_cluster_refused(void)
{
    struct err err;
    struct cluster_info other = {42, 15, SEG_SIZE, 8192};
    struct cluster_info ci;
    bool found;
    char want[512];

    CHECK_OK(archive_cluster_get(&ar, &ci, &found, &err), &err);
    CHECK(found);
    snprintf(want, sizeof(want),
             "WAL file \"y\" is from cluster 42 (PostgreSQL 15, 1048576-byte segments), but the "
             "repository belongs to cluster %llu (PostgreSQL 15, 1048576-byte segments)",
             (unsigned long long)ci.sysid);
    CHECK_FAIL(archive_cluster_check(&ar, &other, "WAL file \"y\"", &err), &err, ERR_USAGE, want);
}

static void
test_local_checks(void)
{
    struct walname w;
    struct walheader h;
    bool has_header;
    struct err err;
    char p[512];

    /* a segment under the wrong name */
    snprintf(p, sizeof(p), "%s/000000010000000000000007", dir);
    make_segment(p, 1);
    CHECK_FAIL(archive_check_local(p, &w, &h, &has_header, &err), &err, ERR_CORRUPT, NULL);
    CHECK(strstr(err.msg, "holds the segment starting at 0/600000") != NULL);
    /* truncated */
    make_segment(path_of(SEG_NAME), 1);
    CHECK_INT(truncate(path_of(SEG_NAME), 4096), 0);
    char want[700];
    snprintf(want, sizeof(want),
             "refusing \"%s\": 4096 bytes, but its header says segments are 1048576 bytes",
             path_of(SEG_NAME));
    CHECK_FAIL(archive_check_local(path_of(SEG_NAME), &w, &h, &has_header, &err), &err, ERR_CORRUPT,
               want);
    /* not WAL at all */
    snprintf(p, sizeof(p), "%s/postgresql.conf", dir);
    FILE *f = fopen(p, "w");
    fputs("x\n", f);
    fclose(f);
    CHECK_FAIL(archive_check_local(p, &w, &h, &has_header, &err), &err, ERR_USAGE,
               "\"postgresql.conf\" is not a WAL file name");
    /* a history file has no header and is fine */
    snprintf(p, sizeof(p), "%s/00000002.history", dir);
    f = fopen(p, "w");
    fputs("1\t0/3000158\tno recovery target specified\n", f);
    fclose(f);
    CHECK_OK(archive_check_local(p, &w, &h, &has_header, &err), &err);
    CHECK(!has_header);
    enum archive_push_result res;
    CHECK_OK(archive_push_file(&ar, p, &w, &res, NULL, &err), &err);
    struct repo_stat st;
    CHECK_OK(repo_stat(repo, "pg/wal/history/00000002.history", &st, &err), &err);
}

static void
test_fetch_missing_and_damaged(void)
{
    struct walname w;
    struct err err;
    char dest[512], obj[512];

    snprintf(dest, sizeof(dest), "%s/dest", dir);
    CHECK_OK(walname_parse(&w, "000000010000000000000009", &err), &err);
    CHECK_FAIL(archive_fetch_file(&ar, &w, NULL, dest, 0, NULL, &err), &err, ERR_NOT_FOUND,
               "\"000000010000000000000009\" is not in the archive");
    CHECK(access(dest, F_OK) != 0);
    /* flip one byte in the middle of the stored object */
    snprintf(obj, sizeof(obj), "%s/repo/pg/wal/0000000100000000/" SEG_NAME, dir);
    int fd = open(obj, O_RDWR);
    struct stat st;
    fstat(fd, &st);
    unsigned char c;
    pread(fd, &c, 1, st.st_size / 2);
    c ^= 0x40;
    pwrite(fd, &c, 1, st.st_size / 2);
    close(fd);
    CHECK_OK(walname_parse(&w, SEG_NAME, &err), &err);
    CHECK_FAIL(archive_fetch_file(&ar, &w, NULL, dest, 0, NULL, &err), &err, ERR_CORRUPT, NULL);
    CHECK(strstr(err.msg, "archived \"" SEG_NAME "\" is damaged: ") == err.msg);
    CHECK(access(dest, F_OK) != 0);
    /* truncated */
    CHECK_INT(truncate(obj, st.st_size - 100), 0);
    CHECK_FAIL(archive_fetch_file(&ar, &w, NULL, dest, 0, NULL, &err), &err, ERR_CORRUPT, NULL);
    CHECK(access(dest, F_OK) != 0);
}

int
main(void)
{
    char cmd[300];

    setup();
    RUN(test_push_check_and_fetch);
    RUN(test_push_different_bytes_refused);
    RUN(test_other_cluster_refused);
    RUN(test_local_checks);
    RUN(test_fetch_missing_and_damaged);
    repo_close(repo);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        return 1;
    return check_done();
}
