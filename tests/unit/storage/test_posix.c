/* SPDX-License-Identifier: MIT */
/* Unit tests for the file:// backend (storage/posix) through the repository front (repo.c). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/xmalloc.h"
#include "check.h"
#include "storage/posix/posix.h"
#include "base/options.h"
#include "storage/repo.h"
#include "storage/repo_config.h"
#include "stream/object_config.h"
#include "stream/stages.h"

static char root[64];

static struct repo *
open_repo(void)
{
    struct repo *r = NULL;
    struct err err;
    char *url = xasprintf("file://%s", root);

    err_clear(&err);
    CHECK_OK(repo_open(&r, url, NULL, &err), &err);
    free(url);
    return r;
}

/* Count the regular files below dir (recursively), and those that are temporary files. */
static int
count_files(const char *dir, int *tmp)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;

    if (!d)
        return 0;
    while ((de = readdir(d))) {
        char *p;
        struct stat st;

        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        p = xasprintf("%s/%s", dir, de->d_name);
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
            n += count_files(p, tmp);
        } else {
            n++;
            if (tmp && strncmp(de->d_name, POSIX_TMP_PREFIX, strlen(POSIX_TMP_PREFIX)) == 0)
                (*tmp)++;
        }
        free(p);
    }
    closedir(d);
    return n;
}

static void
wipe_root(void)
{
    char *cmd = xasprintf("rm -rf %s/* %s/.[!.]*", root, root);

    if (system(cmd) != 0)
        printf("# could not clean %s\n", root);
    free(cmd);
}

struct collected {
    struct buf keys; /* "key,key/,..." with '/' suffix kept; prefixes marked with a '+' */
    int stop_after;
    int n;
};

static int
collect_cb(const struct repo_entry *e, void *arg)
{
    struct collected *c = arg;

    buf_printf(&c->keys, "%s%s%s", c->keys.len ? "," : "", e->is_prefix ? "+" : "", e->key);
    c->n++;
    return c->stop_after && c->n >= c->stop_after;
}

static char *
list(struct repo *r, const char *prefix, const char *delim, int stop_after)
{
    struct collected c = {BUF_INIT, stop_after, 0};
    struct err err;

    err_clear(&err);
    CHECK_OK(repo_list(r, prefix, delim, collect_cb, &c, &err), &err);
    return buf_detach(&c.keys);
}

static void
test_posix_round_trip(void)
{
    struct repo *r = open_repo();
    struct err err;
    char *data = NULL;
    size_t len = 0;
    struct repo_stat st;
    struct stat fst;
    char *path;
    static char big[3 * 256 * 1024 + 17];

    if (!r)
        return;
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)(i * 7 + (i >> 9));
    err_clear(&err);
    CHECK_OK(repo_put_buf(r, "a/b/c", big, sizeof(big), 0, &err), &err);
    CHECK_OK(repo_get_buf(r, "a/b/c", sizeof(big), &data, &len, &err), &err);
    CHECK_INT(len, sizeof(big));
    CHECK(data && memcmp(data, big, sizeof(big)) == 0);
    free(data);
    CHECK_OK(repo_stat(r, "a/b/c", &st, &err), &err);
    CHECK_INT(st.size, sizeof(big));
    CHECK(st.mtime > 1700000000);
    CHECK_STR(st.etag, "");
    path = xasprintf("%s/a/b/c", root);
    CHECK(stat(path, &fst) == 0 && (fst.st_mode & 0777) == 0640);
    free(path);
    path = xasprintf("%s/a/b", root);
    CHECK(stat(path, &fst) == 0 && (fst.st_mode & 0777) == 0750);
    free(path);

    /* an empty object */
    CHECK_OK(repo_put_buf(r, "empty", "", 0, REPO_PUT_IF_ABSENT, &err), &err);
    CHECK_OK(repo_get_buf(r, "empty", 10, &data, &len, &err), &err);
    CHECK_INT(len, 0);
    free(data);

    /* too big for the caller's limit */
    CHECK_FAIL(repo_get_buf(r, "a/b/c", 1000, &data, &len, &err), &err, ERR_CORRUPT,
               "object \"a/b/c\" is larger than 1000 bytes");
    CHECK(data == NULL);

    /* overwrite without REPO_PUT_IF_ABSENT */
    CHECK_OK(repo_put_buf(r, "a/b/c", "new", 3, 0, &err), &err);
    CHECK_OK(repo_get_buf(r, "a/b/c", 10, &data, &len, &err), &err);
    CHECK(len == 3 && data && memcmp(data, "new", 3) == 0);
    free(data);

    CHECK_FAIL(repo_get_buf(r, "a/b/none", 10, &data, &len, &err), &err, ERR_NOT_FOUND,
               "object \"a/b/none\" not found");
    CHECK_FAIL(repo_stat(r, "a/b", &st, &err), &err, ERR_NOT_FOUND, "object \"a/b\" not found");
    CHECK_FAIL(repo_stat(r, "a/b/c/d", &st, &err), &err, ERR_NOT_FOUND,
               "object \"a/b/c/d\" not found");
    repo_close(r);
    wipe_root();
}

static void
test_posix_unfinished_put_is_invisible(void)
{
    struct repo *r = open_repo();
    struct err err;
    struct repo_stat st;
    struct sink *s;
    char *keys;
    int tmp = 0;

    if (!r)
        return;
    err_clear(&err);
    CHECK_OK(repo_put_buf(r, "d/other", "x", 1, 0, &err), &err);
    s = repo_put_sink_new(r, "d/k", REPO_PUT_IF_ABSENT);
    CHECK_OK(sink_write(s, "partial", 7, &err), &err);
    /* the bytes are on disk in a temporary file, but not under the key */
    CHECK_INT(count_files(root, &tmp), 2);
    CHECK_INT(tmp, 1);
    keys = list(r, "", NULL, 0);
    CHECK_STR(keys, "d/other");
    free(keys);
    keys = list(r, "d/", "/", 0);
    CHECK_STR(keys, "d/other");
    free(keys);
    CHECK_FAIL(repo_stat(r, "d/k", &st, &err), &err, ERR_NOT_FOUND, "object \"d/k\" not found");
    CHECK_OK(sink_write(s, " more", 5, &err), &err);
    CHECK_OK(sink_finish(s, &err), &err);
    sink_free(s);
    CHECK_OK(repo_stat(r, "d/k", &st, &err), &err);
    CHECK_INT(st.size, 12);
    tmp = 0;
    CHECK_INT(count_files(root, &tmp), 2);
    CHECK_INT(tmp, 0);

    /* abandoned: freed without finish */
    s = repo_put_sink_new(r, "d/abandoned", 0);
    CHECK_OK(sink_write(s, "bytes", 5, &err), &err);
    sink_free(s);
    tmp = 0;
    CHECK_INT(count_files(root, &tmp), 2);
    CHECK_INT(tmp, 0);
    CHECK_FAIL(repo_stat(r, "d/abandoned", &st, &err), &err, ERR_NOT_FOUND,
               "object \"d/abandoned\" not found");
    /* freed before any write: nothing was ever created */
    s = repo_put_sink_new(r, "e/never", 0);
    sink_free(s);
    CHECK_INT(count_files(root, NULL), 2);
    repo_close(r);
    wipe_root();
}

struct incomplete_seen {
    struct buf keys; /* "key@mtime,..." */
    char first[256];
};

static int
incomplete_cb(const struct repo_incomplete *w, void *arg)
{
    struct incomplete_seen *c = arg;

    CHECK(w->upload_id == NULL);
    if (!c->keys.len)
        snprintf(c->first, sizeof(c->first), "%s", w->key);
    buf_printf(&c->keys, "%s%s@%lld", c->keys.len ? "," : "", w->key, (long long)w->started);
    return 0;
}

/* The temporary files a killed put leaves: listed (sorted, with their mtime), removed. */
static void
test_posix_incomplete_writes(void)
{
    struct repo *r = open_repo();
    struct incomplete_seen c = {BUF_INIT, ""};
    struct repo_incomplete w;
    struct err err;
    struct sink *s;
    struct stat st;
    struct repo_stat rst;
    char *p, *want, *keys, *busy;
    const struct timespec old[2] = {{1000000000, 0}, {1000000000, 0}};

    if (!r)
        return;
    err_clear(&err);
    CHECK_OK(repo_put_buf(r, "pg/a/done", "x", 1, 0, &err), &err);
    /* two puts in progress (their sinks are never finished: "killed") */
    s = repo_put_sink_new(r, "pg/b/c/k", 0);
    CHECK_OK(sink_write(s, "partial", 7, &err), &err);
    /* a leftover whose writer is long gone, in a directory of its own */
    p = xasprintf("%s/pg/z", root);
    CHECK(mkdir(p, 0750) == 0);
    free(p);
    p = xasprintf("%s/pg/z/%s0123456789abcdef", root, POSIX_TMP_PREFIX);
    CHECK(close(open(p, O_WRONLY | O_CREAT | O_EXCL, 0640)) == 0);
    CHECK(utimensat(AT_FDCWD, p, old, 0) == 0);
    free(p);
    /* outside the prefix */
    p = xasprintf("%s/%s0000000000000000", root, POSIX_TMP_PREFIX);
    CHECK(close(open(p, O_WRONLY | O_CREAT | O_EXCL, 0640)) == 0);
    free(p);

    CHECK_OK(repo_list_incomplete(r, "pg/", incomplete_cb, &c, &err), &err);
    CHECK(strncmp(c.first, "pg/b/c/" POSIX_TMP_PREFIX, strlen("pg/b/c/" POSIX_TMP_PREFIX)) == 0);
    p = xasprintf("%s/%s", root, c.first);
    CHECK(stat(p, &st) == 0);
    free(p);
    busy = xstrdup(c.first);
    want = xasprintf("%s@%lld,pg/z/%s0123456789abcdef@1000000000", c.first, (long long)st.st_mtime,
                     POSIX_TMP_PREFIX);
    CHECK_STR(buf_str(&c.keys), want);
    free(want);
    /* repo_list still shows none of them */
    keys = list(r, "", NULL, 0);
    CHECK_STR(keys, "pg/a/done");
    free(keys);

    /* a prefix inside a directory name, and one matching nothing */
    buf_reset(&c.keys);
    CHECK_OK(repo_list_incomplete(r, "pg/z", incomplete_cb, &c, &err), &err);
    want = xasprintf("pg/z/%s0123456789abcdef@1000000000", POSIX_TMP_PREFIX);
    CHECK_STR(buf_str(&c.keys), want);
    free(want);
    buf_reset(&c.keys);
    CHECK_OK(repo_list_incomplete(r, "nothing/", incomplete_cb, &c, &err), &err);
    CHECK_STR(buf_str(&c.keys), "");

    /* removal: the old one goes with its emptied directory; a real object is refused */
    w = (struct repo_incomplete){NULL, NULL, 0};
    p = xasprintf("pg/z/%s0123456789abcdef", POSIX_TMP_PREFIX);
    w.key = p;
    CHECK_OK(repo_abort_incomplete(r, &w, &err), &err);
    CHECK_OK(repo_abort_incomplete(r, &w, &err), &err); /* already gone */
    free(p);
    p = xasprintf("%s/pg/z", root);
    CHECK(access(p, F_OK) < 0 && errno == ENOENT);
    free(p);
    w.key = "pg/a/done";
    CHECK_FAIL(repo_abort_incomplete(r, &w, &err), &err, ERR_USAGE,
               "\"pg/a/done\" is not a temporary file of an incomplete write");
    w.key = "pg/../" POSIX_TMP_PREFIX "0000000000000000";
    CHECK_FAIL(repo_abort_incomplete(r, &w, &err), &err, ERR_USAGE,
               "\"pg/../" POSIX_TMP_PREFIX
               "0000000000000000\" is not a temporary file of an incomplete write");
    CHECK_INT(count_files(root, NULL), 3);

    /* the writer in progress, once removed, fails at finish: never a half object */
    w.key = busy;
    CHECK_OK(repo_abort_incomplete(r, &w, &err), &err);
    free(busy);
    CHECK(sink_finish(s, &err) < 0);
    sink_free(s);
    CHECK_FAIL(repo_stat(r, "pg/b/c/k", &rst, &err), &err, ERR_NOT_FOUND,
               "object \"pg/b/c/k\" not found");
    buf_free(&c.keys);
    repo_close(r);
    wipe_root();
}

static void
test_posix_if_absent_two_sinks(void)
{
    struct repo *r = open_repo();
    struct err err;
    struct sink *s1, *s2;
    char *data = NULL;
    size_t len = 0;
    int tmp = 0;

    if (!r)
        return;
    err_clear(&err);
    s1 = repo_put_sink_new(r, "wal/seg", REPO_PUT_IF_ABSENT);
    s2 = repo_put_sink_new(r, "wal/seg", REPO_PUT_IF_ABSENT);
    CHECK_OK(sink_write(s1, "first", 5, &err), &err);
    CHECK_OK(sink_write(s2, "second", 6, &err), &err);
    CHECK_OK(sink_finish(s2, &err), &err);
    CHECK_FAIL(sink_finish(s1, &err), &err, ERR_EXISTS, "object \"wal/seg\" already exists");
    sink_free(s1);
    sink_free(s2);
    CHECK_OK(repo_get_buf(r, "wal/seg", 100, &data, &len, &err), &err);
    CHECK(len == 6 && data && memcmp(data, "second", 6) == 0);
    free(data);
    CHECK_INT(count_files(root, &tmp), 1);
    CHECK_INT(tmp, 0);
    CHECK_FAIL(repo_put_buf(r, "wal/seg", "x", 1, REPO_PUT_IF_ABSENT, &err), &err, ERR_EXISTS,
               "object \"wal/seg\" already exists");
    posix_test_force_link = true;
    CHECK_FAIL(repo_put_buf(r, "wal/seg", "x", 1, REPO_PUT_IF_ABSENT, &err), &err, ERR_EXISTS,
               "object \"wal/seg\" already exists");
    CHECK_OK(repo_put_buf(r, "wal/seg2", "y", 1, REPO_PUT_IF_ABSENT, &err), &err);
    posix_test_force_link = false;
    tmp = 0;
    CHECK_INT(count_files(root, &tmp), 2);
    CHECK_INT(tmp, 0);
    repo_close(r);
    wipe_root();
}

#define RACERS 8

struct racer {
    struct repo *r;
    pthread_barrier_t *barrier;
    int id;
    int rc;
    struct err err;
};

static void *
race(void *arg)
{
    struct racer *x = arg;
    char body[64];
    int n = snprintf(body, sizeof(body), "writer %d", x->id);

    err_clear(&x->err);
    pthread_barrier_wait(x->barrier);
    x->rc = repo_put_buf(x->r, "race/key", body, (size_t)n, REPO_PUT_IF_ABSENT, &x->err);
    return NULL;
}

static void
test_posix_if_absent_race(void)
{
    struct repo *r = open_repo();
    pthread_t th[RACERS];
    struct racer x[RACERS];
    pthread_barrier_t barrier;
    int winners = 0, winner = -1, tmp = 0;
    struct err err;
    char *data = NULL;
    size_t len = 0;

    if (!r)
        return;
    for (int round = 0; round < 40; round++) {
        /* half the rounds through the link(2) fallback */
        posix_test_force_link = round % 2 == 1;
        pthread_barrier_init(&barrier, NULL, RACERS);
        for (int i = 0; i < RACERS; i++) {
            x[i].r = r;
            x[i].barrier = &barrier;
            x[i].id = i;
            pthread_create(&th[i], NULL, race, &x[i]);
        }
        winners = 0;
        for (int i = 0; i < RACERS; i++) {
            pthread_join(th[i], NULL);
            if (x[i].rc == 0) {
                winners++;
                winner = i;
            } else if (x[i].err.kind != ERR_EXISTS ||
                       strcmp(x[i].err.msg, "object \"race/key\" already exists") != 0) {
                printf("# loser %d: %s\n", i, x[i].err.msg);
                check_cur_failed = 1;
            }
        }
        pthread_barrier_destroy(&barrier);
        CHECK_INT(winners, 1);
        err_clear(&err);
        CHECK_OK(repo_get_buf(r, "race/key", 100, &data, &len, &err), &err);
        if (data) {
            char want[64];

            snprintf(want, sizeof(want), "writer %d", winner);
            CHECK_STR(data, want);
        }
        free(data);
        data = NULL;
        CHECK_OK(repo_delete(r, "race/key", &err), &err);
    }
    posix_test_force_link = false;
    CHECK_INT(count_files(root, &tmp), 0);
    repo_close(r);
    wipe_root();
}

static void
test_posix_list_order_and_delimiter(void)
{
    static const char *const keys[] = {"b", "a/c/e", "ab", "a/b", "a-c", "a/c/d", "a/.dot"};
    struct repo *r = open_repo();
    struct err err;
    char *got;

    if (!r)
        return;
    err_clear(&err);
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        CHECK_OK(repo_put_buf(r, keys[i], keys[i], strlen(keys[i]), 0, &err), &err);
    {
        /* an empty directory holds no key */
        char *p = xasprintf("%s/emptydir/deeper", root);
        char *q = xasprintf("%s/emptydir", root);

        mkdir(q, 0750);
        mkdir(p, 0750);
        free(p);
        free(q);
    }
    /* byte order of whole keys, not directory by directory: '-' < '.' < '/' < 'b' */
    got = list(r, "", NULL, 0);
    CHECK_STR(got, "a-c,a/.dot,a/b,a/c/d,a/c/e,ab,b");
    free(got);
    got = list(r, "", "/", 0);
    CHECK_STR(got, "a-c,+a/,ab,b");
    free(got);
    got = list(r, "a/", "/", 0);
    CHECK_STR(got, "a/.dot,a/b,+a/c/");
    free(got);
    got = list(r, "a", NULL, 0);
    CHECK_STR(got, "a-c,a/.dot,a/b,a/c/d,a/c/e,ab");
    free(got);
    got = list(r, "a/c", NULL, 0);
    CHECK_STR(got, "a/c/d,a/c/e");
    free(got);
    got = list(r, "a/c/", "/", 0);
    CHECK_STR(got, "a/c/d,a/c/e");
    free(got);
    got = list(r, "a/c/e", NULL, 0);
    CHECK_STR(got, "a/c/e");
    free(got);
    got = list(r, "zzz/", NULL, 0);
    CHECK_STR(got, "");
    free(got);
    got = list(r, "emptydir/", "/", 0);
    CHECK_STR(got, "");
    free(got);
    got = list(r, "", "c/", 0); /* any delimiter, not only "/" */
    CHECK_STR(got, "a-c,a/.dot,a/b,+a/c/,ab,b");
    free(got);
    got = list(r, "", NULL, 3); /* the callback stops early */
    CHECK_STR(got, "a-c,a/.dot,a/b");
    free(got);
    {
        struct collected c = {BUF_INIT, 0, 0};

        CHECK_FAIL(repo_list(r, "../", NULL, collect_cb, &c, &err), &err, ERR_USAGE,
                   "invalid prefix \"../\": empty, \".\" and \"..\" path segments are not "
                   "allowed");
        CHECK_FAIL(repo_list(r, "/etc", NULL, collect_cb, &c, &err), &err, ERR_USAGE,
                   "invalid prefix \"/etc\": it must not start with \"/\"");
        CHECK_INT(c.n, 0);
        buf_free(&c.keys);
    }
    repo_close(r);
    wipe_root();
}

static void
test_posix_get_ranges(void)
{
    struct repo *r = open_repo();
    struct err err;
    char body[1000];
    struct buf out = BUF_INIT;
    struct sink *s;

    if (!r)
        return;
    for (int i = 0; i < 1000; i++)
        body[i] = (char)('a' + i % 26);
    err_clear(&err);
    CHECK_OK(repo_put_buf(r, "obj", body, sizeof(body), 0, &err), &err);
    static const struct {
        uint64_t off, len;
        size_t want_len;
    } cases[] = {{0, 0, 1000}, {10, 20, 20}, {990, 0, 10}, {990, 100, 10}, {1000, 0, 0}, {0, 1, 1}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        s = buf_sink_new(&out, 0);
        buf_reset(&out);
        CHECK_OK(repo_get(r, "obj", cases[i].off, cases[i].len, s, &err), &err);
        CHECK_OK(sink_finish(s, &err), &err);
        CHECK_INT(out.len, cases[i].want_len);
        CHECK(out.len == 0 || memcmp(out.data, body + cases[i].off, out.len) == 0);
        sink_free(s);
    }
    s = buf_sink_new(&out, 0);
    CHECK_FAIL(repo_get(r, "obj", 1001, 0, s, &err), &err, ERR_USAGE,
               "range starts at byte 1001, beyond the end of \"obj\" (1000 bytes)");
    CHECK_FAIL(repo_get(r, "nope", 0, 0, s, &err), &err, ERR_NOT_FOUND,
               "object \"nope\" not found");
    sink_free(s);
    buf_free(&out);
    repo_close(r);
    wipe_root();
}

static void
test_posix_delete(void)
{
    struct repo *r = open_repo();
    struct err err;
    struct repo_stat st;
    struct stat fst;
    char *dir;
    const char *const many[] = {"m/1", "m/2", "m/absent", "m/3"};
    char *got;

    if (!r)
        return;
    err_clear(&err);
    CHECK_OK(repo_put_buf(r, "x/y/z", "1", 1, 0, &err), &err);
    CHECK_OK(repo_put_buf(r, "x/keep", "1", 1, 0, &err), &err);
    CHECK_OK(repo_delete(r, "x/y/z", &err), &err);
    CHECK_FAIL(repo_stat(r, "x/y/z", &st, &err), &err, ERR_NOT_FOUND, "object \"x/y/z\" not found");
    /* the emptied directory went, the one still holding a key stayed, and so did the root */
    dir = xasprintf("%s/x/y", root);
    CHECK(stat(dir, &fst) < 0);
    free(dir);
    dir = xasprintf("%s/x", root);
    CHECK(stat(dir, &fst) == 0);
    free(dir);
    CHECK_OK(repo_delete(r, "x/y/z", &err), &err); /* absent: fine */
    CHECK_OK(repo_delete(r, "never/was", &err), &err);
    CHECK_OK(repo_delete(r, "x/keep", &err), &err);
    CHECK(stat(root, &fst) == 0);
    CHECK_INT(count_files(root, NULL), 0);

    for (int i = 1; i <= 3; i++) {
        char k[8];

        snprintf(k, sizeof(k), "m/%d", i);
        CHECK_OK(repo_put_buf(r, k, "v", 1, 0, &err), &err);
    }
    CHECK_OK(repo_put_buf(r, "m/4", "v", 1, 0, &err), &err);
    CHECK_OK(repo_delete_many(r, many, 4, &err), &err);
    got = list(r, "", NULL, 0);
    CHECK_STR(got, "m/4");
    free(got);
    {
        const char *const bad[] = {"m/4", "../x"};

        CHECK_FAIL(repo_delete_many(r, bad, 2, &err), &err, ERR_USAGE,
                   "invalid key \"../x\": empty, \".\" and \"..\" path segments are not allowed");
        got = list(r, "", NULL, 0);
        CHECK_STR(got, "m/4"); /* keys are checked before anything is deleted */
        free(got);
    }
    repo_close(r);
    wipe_root();
}

static void
full_hook(int fd)
{
    int full = open("/dev/full", O_WRONLY);

    if (full >= 0) {
        dup2(full, fd);
        close(full);
    }
}

static void
test_posix_disk_full(void)
{
    struct repo *r = open_repo();
    struct err err;
    struct sink *s;
    char *msg;
    static char block[64 * 1024];
    int tmp = 0;

    if (!r)
        return;
    posix_test_tmp_fd_hook = full_hook;
    msg = xasprintf("could not write \"%s/full/x\": No space left on device", root);
    CHECK_FAIL(repo_put_buf(r, "full/x", block, sizeof(block), 0, &err), &err, ERR_NOSPACE, msg);
    CHECK_INT(err.sys_errno, ENOSPC);
    CHECK_INT(count_files(root, &tmp), 0);
    /* a streaming put fails at the first write and stays failed */
    s = repo_put_sink_new(r, "full/x", REPO_PUT_IF_ABSENT);
    CHECK_FAIL(sink_write(s, block, 10, &err), &err, ERR_NOSPACE, msg);
    CHECK_FAIL(sink_finish(s, &err), &err, ERR_NOSPACE, msg);
    sink_free(s);
    CHECK_INT(count_files(root, &tmp), 0);
    posix_test_tmp_fd_hook = NULL;
    free(msg);
    err_clear(&err);
    CHECK_OK(repo_put_buf(r, "full/x", block, sizeof(block), 0, &err), &err);
    repo_close(r);
    wipe_root();
}

static void
test_repo_open_and_keys(void)
{
    struct repo *r = NULL;
    struct err err;
    char *url, *msg;
    struct repo_stat st;

    url = xasprintf("file://%s/", root);
    err_clear(&err);
    CHECK_OK(repo_open(&r, url, NULL, &err), &err);
    free(url);
    if (r) {
        url = xasprintf("file://%s", root);
        CHECK_STR(repo_url(r), url);
        free(url);
        repo_close(r);
    }
    r = NULL;
    CHECK_OK(repo_open(&r, root, NULL, &err), &err); /* a bare absolute path */
    repo_close(r);
    r = (struct repo *)1;
    url = xasprintf("file://%s/missing", root);
    msg = xasprintf("repository directory \"%s/missing\" does not exist", root);
    CHECK_FAIL(repo_open(&r, url, NULL, &err), &err, ERR_NOT_FOUND, msg);
    CHECK(r == NULL);
    free(url);
    free(msg);
    CHECK_FAIL(repo_open(&r, "ftp://x/y", NULL, &err), &err, ERR_USAGE,
               "unknown repository URL scheme in \"ftp://x/y\": use s3://bucket/prefix or "
               "file:///path");
    CHECK_FAIL(repo_open(&r, "relative/dir", NULL, &err), &err, ERR_USAGE,
               "unknown repository URL scheme in \"relative/dir\": use s3://bucket/prefix or "
               "file:///path");
    CHECK_FAIL(repo_open(&r, "file://host/dir", NULL, &err), &err, ERR_USAGE,
               "invalid repository URL \"file://host/dir\": use file:///absolute/path");
    CHECK_FAIL(repo_open(&r, "", NULL, &err), &err, ERR_USAGE,
               "no repository given: use --repo URL or FERRY_REPO");
    CHECK_FAIL(repo_open(&r, "s3:///prefix", NULL, &err), &err, ERR_USAGE,
               "missing bucket in repository URL \"s3:///prefix\"");

    CHECK_OK(repo_key_check("a/b.c/..d/x..", &err), &err);
    CHECK_FAIL(repo_key_check("", &err), &err, ERR_USAGE, "invalid key \"\": it is empty");
    CHECK_FAIL(repo_key_check("/abs", &err), &err, ERR_USAGE,
               "invalid key \"/abs\": it must not start with \"/\"");
    CHECK_FAIL(repo_key_check("a//b", &err), &err, ERR_USAGE,
               "invalid key \"a//b\": empty, \".\" and \"..\" path segments are not allowed");
    CHECK_FAIL(repo_key_check("a/./b", &err), &err, ERR_USAGE,
               "invalid key \"a/./b\": empty, \".\" and \"..\" path segments are not allowed");
    CHECK_FAIL(repo_key_check("a/..", &err), &err, ERR_USAGE,
               "invalid key \"a/..\": empty, \".\" and \"..\" path segments are not allowed");
    CHECK_FAIL(repo_key_check("dir/", &err), &err, ERR_USAGE,
               "invalid key \"dir/\": empty, \".\" and \"..\" path segments are not allowed");
    CHECK_FAIL(repo_key_check("a\nb", &err), &err, ERR_USAGE,
               "invalid key: it contains control characters");
    {
        char long_key[1100];

        memset(long_key, 'k', sizeof(long_key) - 1);
        long_key[sizeof(long_key) - 1] = '\0';
        CHECK_FAIL(repo_key_check(long_key, &err), &err, ERR_USAGE,
                   "invalid key \"kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk...\": longer than "
                   "1024 bytes");
    }
    r = open_repo();
    if (r) {
        CHECK_FAIL(repo_put_buf(r, "../escape", "x", 1, 0, &err), &err, ERR_USAGE,
                   "invalid key \"../escape\": empty, \".\" and \"..\" path segments are not "
                   "allowed");
        CHECK_FAIL(repo_put_buf(r, "d/.ferry-tmp-abc", "x", 1, 0, &err), &err, ERR_USAGE,
                   "invalid key \"d/.ferry-tmp-abc\": path segments starting with "
                   "\".ferry-tmp-\" are reserved");
        CHECK_FAIL(repo_stat(r, "../etc/passwd", &st, &err), &err, ERR_USAGE,
                   "invalid key \"../etc/passwd\": empty, \".\" and \"..\" path segments are not "
                   "allowed");
        CHECK_INT(count_files(root, NULL), 0);
        repo_close(r);
    }
}

static const struct opt_def *const common_tables[] = {opts_common, NULL};

/* Parse argv (NULL-terminated, copied: parsing may scrub it) with the common options. */
static struct opts *
parse_common(const char *const *argv_in)
{
    char *argv[32];
    int argc = 0;
    struct opts *o = NULL;
    struct err err;

    while (argv_in[argc] && argc < 31) {
        argv[argc] = xstrdup(argv_in[argc]);
        argc++;
    }
    argv[argc] = NULL;
    err_clear(&err);
    CHECK_OK(opts_parse(&o, common_tables, argc, argv, &err), &err);
    for (int i = 0; i < argc; i++)
        free(argv[i]);
    return o;
}

static char *
write_key_file(const char *name, int mode, const void *data, size_t len)
{
    char *path = xasprintf("%s/%s", root, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

    if (fd < 0 || write(fd, data, len) != (ssize_t)len)
        printf("# could not write %s\n", path);
    if (fd >= 0) {
        fchmod(fd, (mode_t)mode);
        close(fd);
    }
    return path;
}

static void
test_repo_opts_load(void)
{
    struct repo_opts ro;
    struct err err;
    struct opts *o;
    unsigned char key[32];
    char *raw, *b64, *b64open, *shortk, *msg;

    unsetenv("AWS_ENDPOINT_URL");
    unsetenv("AWS_EC2_METADATA_DISABLED");
    setenv("FERRY_CONFIG", "/dev/null", 1);
    for (int i = 0; i < 32; i++)
        key[i] = (unsigned char)(i * 8 + 1);
    raw = write_key_file("raw.key", 0600, key, 32);
    /* base64 of bytes 1, 9, 17, ... 249 */
    {
        const char *text = "\n  AQkRGSEpMTlBSVFZYWlxeYGJkZmhqbG5wcnR2eHp8fk=\n";

        b64 = write_key_file("b64.key", 0400, text, strlen(text));
    }
    b64open = write_key_file("open.key", 0644, key, 32);
    shortk = write_key_file("short.key", 0600, "tooshort", 8);

    {
        const char *a[] = {"p",
                           "--s3-endpoint=http://127.0.0.1:9000",
                           "--s3-uri-style",
                           "path",
                           "--s3-part-size",
                           "8M",
                           "--s3-parallel",
                           "8",
                           "--s3-retries=0",
                           "--s3-timeout",
                           "5",
                           "--s3-sse-customer-key-file",
                           raw,
                           "--s3-no-imds",
                           NULL};

        o = parse_common(a);
        err_clear(&err);
        if (o) {
            CHECK_OK(repo_opts_load(&ro, o, &err), &err);
            CHECK_STR(ro.s3_endpoint, "http://127.0.0.1:9000");
            CHECK(ro.s3_uri_style_set && ro.s3_uri_style == REPO_URI_PATH);
            CHECK_INT(ro.s3_part_size, 8 << 20);
            CHECK_INT(ro.parallel, 8);
            CHECK_INT(ro.retries, 0);
            CHECK_INT(ro.timeout_ms, 5000);
            CHECK_INT(ro.connect_timeout_ms, 0);
            CHECK(ro.imds_disabled);
            CHECK(ro.s3_sse_customer_key_set);
            CHECK(memcmp(ro.s3_sse_customer_key, key, 32) == 0);
            CHECK(ro.s3_sse == NULL && ro.s3_region == NULL);
        }
        opts_free(o);
    }
    {
        const char *a[] = {"p", "--s3-sse-customer-key-file", b64, NULL};

        setenv("AWS_ENDPOINT_URL", "https://s3.example:8443", 1);
        o = parse_common(a);
        if (o) {
            CHECK_OK(repo_opts_load(&ro, o, &err), &err);
            CHECK(memcmp(ro.s3_sse_customer_key, key, 32) == 0);
            CHECK_STR(ro.s3_endpoint, "https://s3.example:8443");
            CHECK_INT(ro.retries, -1); /* unset */
            CHECK(!ro.s3_uri_style_set);
        }
        opts_free(o);
        unsetenv("AWS_ENDPOINT_URL");
    }
    {
        const char *a[] = {"p", "--s3-sse-customer-key-file", b64open, NULL};

        o = parse_common(a);
        msg = xasprintf("SSE-C key file \"%s\" holds secrets and must not be accessible by group "
                        "or others (mode 0644): run chmod 600 \"%s\"",
                        b64open, b64open);
        if (o)
            CHECK_FAIL(repo_opts_load(&ro, o, &err), &err, ERR_CONFIG, msg);
        free(msg);
        opts_free(o);
    }
    {
        const char *a[] = {"p", "--s3-sse-customer-key-file", shortk, NULL};

        o = parse_common(a);
        msg = xasprintf("SSE-C key file \"%s\" must hold a 32-byte key, raw or base64", shortk);
        if (o)
            CHECK_FAIL(repo_opts_load(&ro, o, &err), &err, ERR_CONFIG, msg);
        free(msg);
        opts_free(o);
    }
    {
        static const struct {
            const char *a1, *a2, *msg;
        } bad[] = {
            {"--s3-uri-style", "virtual",
             "invalid value \"virtual\" for --s3-uri-style: expected "
             "path or host"},
            {"--s3-part-size", "1M",
             "invalid value \"1M\" for --s3-part-size: must be between 5M "
             "and 5G"},
            {"--s3-parallel", "0",
             "invalid value \"0\" for \"--s3-parallel\": must be between 1 "
             "and 64"},
            {"--s3-sse", "aes", "invalid value \"aes\" for --s3-sse: expected AES256 or aws:kms"},
            {"--s3-sse-kms-key-id", "k1", "--s3-sse-kms-key-id needs --s3-sse aws:kms"},
            {"--s3-endpoint", "minio:9000",
             "invalid S3 endpoint \"minio:9000\": use "
             "http://host[:port] or https://host[:port]"},
        };

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            const char *a[] = {"p", bad[i].a1, bad[i].a2, NULL};

            o = parse_common(a);
            if (o)
                CHECK_FAIL(repo_opts_load(&ro, o, &err), &err, ERR_USAGE, bad[i].msg);
            opts_free(o);
        }
    }
    {
        const char *a[] = {"p", "--s3-sse", "AES256", "--s3-sse-customer-key-file", raw, NULL};

        o = parse_common(a);
        if (o)
            CHECK_FAIL(repo_opts_load(&ro, o, &err), &err, ERR_USAGE,
                       "--s3-sse and --s3-sse-customer-key-file cannot be used together");
        opts_free(o);
    }
    unlink(raw);
    unlink(b64);
    unlink(b64open);
    unlink(shortk);
    free(raw);
    free(b64);
    free(b64open);
    free(shortk);
    unsetenv("FERRY_CONFIG");
}

static void
test_object_opts_load(void)
{
    struct object_opts oo;
    struct crypt_key *k = NULL;
    struct err err;
    struct opts *o;
    char *kf = write_key_file("enc.key", 0600, "0123456789abcdef0123456789abcdef", 32);

    setenv("FERRY_CONFIG", "/dev/null", 1);
    unsetenv("FERRY_ENCRYPTION_PASSPHRASE");
    {
        const char *a[] = {"p", NULL};

        o = parse_common(a);
        err_clear(&err);
        if (o) {
            CHECK_OK(object_opts_load(&oo, &k, o, &err), &err);
            CHECK_INT(oo.compress, OBJECT_COMPRESS_ZSTD);
            CHECK_INT(oo.level, 0);
            CHECK(oo.key == NULL && k == NULL);
        }
        opts_free(o);
    }
    {
        const char *a[] = {"p", "--compress", "gzip", "--compress-level=9", NULL};

        setenv("FERRY_ENCRYPTION_PASSPHRASE", "pass phrase", 1);
        o = parse_common(a);
        if (o) {
            CHECK_OK(object_opts_load(&oo, &k, o, &err), &err);
            CHECK_INT(oo.compress, OBJECT_COMPRESS_GZIP);
            CHECK_INT(oo.level, 9);
            CHECK(oo.key != NULL && oo.key == k);
            crypt_key_free(k);
            k = NULL;
        }
        opts_free(o);
        unsetenv("FERRY_ENCRYPTION_PASSPHRASE");
    }
    {
        const char *a[] = {"p", "--compress", "gzip", "--compress-level=10", NULL};

        o = parse_common(a);
        if (o)
            CHECK_FAIL(object_opts_load(&oo, &k, o, &err), &err, ERR_USAGE,
                       "invalid value \"10\" for \"--compress-level\": must be between 0 and 9");
        opts_free(o);
    }
    {
        const char *a[] = {"p", "--compress", "lzma", NULL};

        o = parse_common(a);
        if (o)
            CHECK_FAIL(object_opts_load(&oo, &k, o, &err), &err, ERR_USAGE,
                       "unknown compression \"lzma\" (use zstd, gzip or none)");
        opts_free(o);
    }
    {
        const char *a[] = {"p", "--encryption-key-file", kf, NULL};

        setenv("FERRY_ENCRYPTION_PASSPHRASE", "pw", 1);
        o = parse_common(a);
        if (o)
            CHECK_FAIL(object_opts_load(&oo, &k, o, &err), &err, ERR_USAGE,
                       "--encryption-key-file and --encryption-passphrase cannot be used "
                       "together (from command line and environment "
                       "(FERRY_ENCRYPTION_PASSPHRASE))");
        CHECK(k == NULL);
        opts_free(o);
        unsetenv("FERRY_ENCRYPTION_PASSPHRASE");
        o = parse_common(a);
        if (o) {
            CHECK_OK(object_opts_load(&oo, &k, o, &err), &err);
            CHECK(oo.key != NULL && oo.key == k);
            crypt_key_free(k);
            k = NULL;
        }
        opts_free(o);
    }
    unlink(kf);
    free(kf);
    unsetenv("FERRY_CONFIG");
}

int
main(void)
{
    umask(022);
    snprintf(root, sizeof(root), "/tmp/ferry-test-posix-XXXXXX");
    if (!mkdtemp(root))
        return 1;
    RUN(test_posix_round_trip);
    RUN(test_posix_unfinished_put_is_invisible);
    RUN(test_posix_incomplete_writes);
    RUN(test_posix_if_absent_two_sinks);
    RUN(test_posix_if_absent_race);
    RUN(test_posix_list_order_and_delimiter);
    RUN(test_posix_get_ranges);
    RUN(test_posix_delete);
    RUN(test_posix_disk_full);
    RUN(test_repo_open_and_keys);
    RUN(test_repo_opts_load);
    RUN(test_object_opts_load);
    rmdir(root);
    return check_done();
}
