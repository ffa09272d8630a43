/* SPDX-License-Identifier: MIT */
/*
 * The WAL archive in a repository: key names, the cluster record, and the
 * push and fetch of one WAL file (see archive.h).
 */
#include "archive/archive.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/xmalloc.h"
#include "stream/stages.h"

void
archive_wal_key(struct buf *out, const struct walname *w)
{
    char name[WALNAME_MAX];

    walname_format(name, w);
    if (w->kind == WALNAME_HISTORY)
        buf_printf(out, "%s%s", ARCHIVE_HISTORY_PREFIX, name);
    else
        buf_printf(out, "%s%08X%08X/%s", ARCHIVE_WAL_PREFIX, w->tli, w->log, name);
}

/* Read a whole small ferry object and decode it into out. */
static int
get_small_object(struct archive *a, const char *key, size_t max, struct buf *out, struct err *err)
{
    struct sink *chain = object_decode_sink_new(buf_sink_new(out, max), a->key, NULL);
    int rc = -1;

    if (repo_get(a->repo, key, 0, 0, chain, err) < 0)
        goto out;
    if (sink_finish(chain, err) < 0) {
        err_prefix(err, "could not read \"%s\"", key);
        goto out;
    }
    rc = 0;
out:
    sink_free(chain);
    return rc;
}

/* Encode and store a small buffer as a ferry object. */
static int
put_small_object(struct archive *a, const char *key, const char *data, size_t len, unsigned flags,
                 struct err *err)
{
    struct sink *chain =
        object_encode_sink_new(repo_put_sink_new(a->repo, key, flags), &a->oopts, NULL);
    int rc = -1;

    if (sink_write(chain, data, len, err) < 0 || sink_finish(chain, err) < 0)
        goto out;
    rc = 0;
out:
    sink_free(chain);
    return rc;
}

static int
cluster_parse(struct cluster_info *out, const char *text, struct err *err)
{
    json_error_t jerr;
    json_t *root = json_loads(text, 0, &jerr);
    const char *sysid;
    json_int_t ver, seg, blk;
    int rc = -1;

    if (!root) {
        err_set(err, ERR_CORRUPT, "\"%s\" is not valid JSON: %s (line %d)", ARCHIVE_CLUSTER_KEY,
                jerr.text, jerr.line);
        goto out;
    }
    if (json_unpack_ex(root, &jerr, 0, "{s:s, s:I, s:I, s:I}", "system_identifier", &sysid,
                       "pg_version", &ver, "wal_segment_size", &seg, "wal_block_size", &blk) < 0) {
        err_set(err, ERR_CORRUPT, "\"%s\" lacks a field: %s", ARCHIVE_CLUSTER_KEY, jerr.text);
        goto out;
    }
    char *end;
    errno = 0;
    out->sysid = strtoull(sysid, &end, 10);
    if (errno || *end || !*sysid) {
        err_set(err, ERR_CORRUPT, "\"%s\": bad system identifier \"%s\"", ARCHIVE_CLUSTER_KEY,
                sysid);
        goto out;
    }
    out->pg_version = (int)ver;
    out->seg_size = (uint32_t)seg;
    out->blcksz = (uint32_t)blk;
    rc = 0;
out:
    json_decref(root);
    return rc;
}

int
archive_cluster_get(struct archive *a, struct cluster_info *out, bool *found, struct err *err)
{
    struct buf b = BUF_INIT;
    int rc = -1;

    *found = false;
    if (get_small_object(a, ARCHIVE_CLUSTER_KEY, 64 * 1024, &b, err) < 0) {
        if (err->kind == ERR_NOT_FOUND)
            rc = 0;
        goto out;
    }
    if (cluster_parse(out, buf_str(&b), err) < 0)
        goto out;
    *found = true;
    rc = 0;
out:
    buf_free(&b);
    return rc;
}

static bool
cluster_same(const struct cluster_info *x, const struct cluster_info *y)
{
    return x->sysid == y->sysid && x->pg_version == y->pg_version && x->seg_size == y->seg_size;
}

int
archive_cluster_check(struct archive *a, const struct cluster_info *local, const char *what,
                      struct err *err)
{
    struct cluster_info repo_ci;
    bool found;
    int attempt;

    for (attempt = 0; attempt < 2; attempt++) {
        if (archive_cluster_get(a, &repo_ci, &found, err) < 0)
            return -1;
        if (found)
            break;
        /* first writer records the cluster; a concurrent first writer may win */
        char *text =
            xasprintf("{\"system_identifier\": \"%" PRIu64 "\", \"pg_version\": %d, "
                      "\"wal_segment_size\": %" PRIu32 ", \"wal_block_size\": %" PRIu32 "}\n",
                      local->sysid, local->pg_version, local->seg_size, local->blcksz);
        int prc =
            put_small_object(a, ARCHIVE_CLUSTER_KEY, text, strlen(text), REPO_PUT_IF_ABSENT, err);
        free(text);
        if (prc == 0)
            return 0;
        if (err->kind != ERR_EXISTS)
            return -1;
    }
    if (!found)
        return err_set(err, ERR_REMOTE, "could not read or record the cluster in \"%s\"",
                       ARCHIVE_CLUSTER_KEY);
    if (!cluster_same(&repo_ci, local))
        return err_set(err, ERR_USAGE,
                       "%s is from cluster %" PRIu64 " (PostgreSQL %d, %" PRIu32
                       "-byte segments), but the repository belongs to cluster %" PRIu64
                       " (PostgreSQL %d, %" PRIu32 "-byte segments)",
                       what, local->sysid, local->pg_version, local->seg_size, repo_ci.sysid,
                       repo_ci.pg_version, repo_ci.seg_size);
    return 0;
}

int
archive_file_sha256(const char *path, unsigned char out[32], uint64_t *size, struct err *err)
{
    uint64_t n = 0;
    struct sink *chain = count_sink_new(hash_sink_new(null_sink_new(), out), &n);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int rc = -1;

    if (fd < 0) {
        err_sys(err, ERR_IO, "could not open \"%s\"", path);
        goto out;
    }
    if (sink_pump_fd(chain, fd, path, err) < 0 || sink_finish(chain, err) < 0)
        goto out;
    if (size)
        *size = n;
    rc = 0;
out:
    sink_free(chain);
    if (fd >= 0)
        close(fd);
    return rc;
}

/* What the stored object says about its plaintext: size and SHA-256. */
static int
stored_info(struct archive *a, const char *key, struct object_info *info, struct err *err)
{
    struct repo_stat st;
    struct buf head = BUF_INIT, tail = BUF_INIT;
    struct sink *s = NULL;
    int rc = -1;

    if (repo_stat(a->repo, key, &st, err) < 0)
        goto out;
    if (st.size >= OBJECT_TAIL_SIZE) {
        s = buf_sink_new(&head, OBJECT_HEAD_MAX);
        if (repo_get(a->repo, key, 0, st.size < OBJECT_HEAD_MAX ? st.size : OBJECT_HEAD_MAX, s,
                     err) < 0)
            goto out;
        sink_free(s);
        s = buf_sink_new(&tail, OBJECT_TAIL_SIZE);
        if (repo_get(a->repo, key, st.size - OBJECT_TAIL_SIZE, OBJECT_TAIL_SIZE, s, err) < 0)
            goto out;
        sink_free(s);
        s = NULL;
        if (object_inspect(info, head.data, head.len, tail.data, tail.len, st.size, err) == 0 &&
            !info->encrypted) {
            rc = 0;
            goto out;
        }
    }
    /* encrypted (the checksum is authenticated inside) or unreadable: decode it all */
    s = object_decode_sink_new(null_sink_new(), a->key, info);
    if (repo_get(a->repo, key, 0, 0, s, err) < 0 || sink_finish(s, err) < 0)
        goto out;
    rc = 0;
out:
    sink_free(s);
    buf_free(&head);
    buf_free(&tail);
    return rc;
}

int
archive_push_file(struct archive *a, const char *path, const struct walname *w,
                  enum archive_push_result *res, struct object_info *info_out, struct err *err)
{
    struct buf key = BUF_INIT;
    struct object_info info, stored;
    struct sink *chain = NULL;
    char name[WALNAME_MAX];
    int fd = -1, rc = -1;

    walname_format(name, w);
    archive_wal_key(&key, w);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        err_sys(err, ERR_IO, "could not open \"%s\"", path);
        goto out;
    }
    memset(&info, 0, sizeof(info));
    chain = object_encode_sink_new(repo_put_sink_new(a->repo, buf_str(&key), REPO_PUT_IF_ABSENT),
                                   &a->oopts, &info);
    if (sink_pump_fd(chain, fd, path, err) < 0)
        goto out;
    if (sink_finish(chain, err) == 0) {
        *res = ARCHIVE_PUSH_STORED;
        if (info_out)
            *info_out = info;
        rc = 0;
        goto out;
    }
    if (err->kind != ERR_EXISTS)
        goto out;
    /* already there: the same bytes are fine, other bytes are an error */
    if (stored_info(a, buf_str(&key), &stored, err) < 0) {
        err_prefix(err, "\"%s\" is already archived but could not be compared", name);
        goto out;
    }
    if (stored.plain_size == info.plain_size && memcmp(stored.sha256, info.sha256, 32) == 0) {
        *res = ARCHIVE_PUSH_IDENTICAL;
        if (info_out)
            *info_out = info;
        rc = 0;
        goto out;
    }
    char local_hex[65], stored_hex[65];
    archive_sha256_hex(local_hex, info.sha256);
    archive_sha256_hex(stored_hex, stored.sha256);
    err_set(err, ERR_EXISTS,
            "\"%s\" is already archived with different contents: archived sha256 %s (%" PRIu64
            " bytes), local sha256 %s (%" PRIu64 " bytes)",
            name, stored_hex, stored.plain_size, local_hex, info.plain_size);
out:
    sink_free(chain);
    if (fd >= 0)
        close(fd);
    buf_free(&key);
    return rc;
}

/*
 * A pass-through stage that checks the first page of a fetched segment
 * against its name (and the cluster) before anything reaches the file.
 */
struct walcheck_sink {
    struct sink base;
    struct walname w;
    const struct cluster_info *cluster;
    unsigned char page[WALHEADER_SIZE];
    size_t have;
    bool checked;
};

static int
walcheck_verify(struct walcheck_sink *s, struct err *err)
{
    struct walheader h;

    if (walheader_parse(&h, s->page, s->have, err) < 0 ||
        walheader_check_name(&h, &s->w, err) < 0) {
        err_prefix(err, "wrong contents");
        err->kind = ERR_CORRUPT;
        return -1;
    }
    if (s->cluster && (h.sysid != s->cluster->sysid || h.seg_size != s->cluster->seg_size))
        return err_set(err, ERR_CORRUPT, "it is from cluster %" PRIu64 ", not %" PRIu64, h.sysid,
                       s->cluster->sysid);
    s->checked = true;
    return 0;
}

static int
walcheck_write(struct sink *base, const void *buf, size_t len, struct err *err)
{
    struct walcheck_sink *s = (struct walcheck_sink *)base;

    if (!s->checked && s->have < WALHEADER_SIZE) {
        size_t take = WALHEADER_SIZE - s->have < len ? WALHEADER_SIZE - s->have : len;

        memcpy(s->page + s->have, buf, take);
        s->have += take;
        if (s->have == WALHEADER_SIZE && walcheck_verify(s, err) < 0)
            return -1;
    }
    return sink_next_write(base, buf, len, err);
}

static int
walcheck_finish(struct sink *base, struct err *err)
{
    struct walcheck_sink *s = (struct walcheck_sink *)base;

    if (!s->checked && walcheck_verify(s, err) < 0)
        return -1;
    return sink_next_finish(base, err);
}

static void
walcheck_free(struct sink *base)
{
    free(base);
}

static const struct sink_ops walcheck_ops = {"walcheck", walcheck_write, walcheck_finish,
                                             walcheck_free};

static struct sink *
walcheck_sink_new(struct sink *next, const struct walname *w, const struct cluster_info *cluster)
{
    struct walcheck_sink *s = xcalloc(1, sizeof(*s));

    sink_init(&s->base, &walcheck_ops, next);
    s->w = *w;
    s->cluster = cluster;
    return &s->base;
}

int
archive_fetch_file(struct archive *a, const struct walname *w, const struct cluster_info *cluster,
                   const char *dest, unsigned flags, struct object_info *info, struct err *err)
{
    struct buf key = BUF_INIT;
    struct sink *chain;
    char name[WALNAME_MAX];
    int rc = -1;

    walname_format(name, w);
    archive_wal_key(&key, w);
    chain = (flags & ARCHIVE_FETCH_NOSYNC) ? atomic_file_sink_nosync_new(dest, 0600)
                                           : atomic_file_sink_new(dest, 0600);
    if (w->kind == WALNAME_SEGMENT || w->kind == WALNAME_PARTIAL)
        chain = walcheck_sink_new(chain, w, cluster);
    chain = object_decode_sink_new_codec_checked(chain, a->key, info);
    if (repo_get(a->repo, buf_str(&key), 0, 0, chain, err) < 0 || sink_finish(chain, err) < 0) {
        if (err->kind == ERR_NOT_FOUND)
            err_set(err, ERR_NOT_FOUND, "\"%s\" is not in the archive", name);
        else if (err->kind == ERR_CORRUPT)
            err_prefix(err, "archived \"%s\" is damaged", name);
        else if (err->kind == ERR_KEY)
            err_prefix(err, "could not decode archived \"%s\"", name);
        goto out;
    }
    rc = 0;
out:
    sink_free(chain);
    buf_free(&key);
    return rc;
}
