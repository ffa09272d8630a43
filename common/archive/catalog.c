/* SPDX-License-Identifier: MIT */
/* The backup catalogue: see catalog.h. */
#include "archive/catalog.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "base/xmalloc.h"
#include "stream/stages.h"

#define CATALOG_FORMAT 1
#define CATALOG_MAX_BYTES (4 << 20)

void
catalog_id(char out[CATALOG_ID_LEN + 1], time_t t)
{
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(out, CATALOG_ID_LEN + 1, "%Y%m%dT%H%M%SZ", &tm);
}

static void
iso_time(char out[32], time_t t)
{
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int
parse_iso_time(const char *s, time_t *out)
{
    struct tm tm;
    const char *end;

    memset(&tm, 0, sizeof(tm));
    end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (!end || *end)
        return -1;
    *out = timegm(&tm);
    return 0;
}

struct catalog_part *
catalog_add_part(struct catalog_entry *e, const char *name, uint32_t tablespace,
                 const char *location)
{
    struct catalog_part *p;

    e->parts = xrealloc(e->parts, (e->n_parts + 1) * sizeof(*e->parts));
    p = &e->parts[e->n_parts++];
    memset(p, 0, sizeof(*p));
    p->name = xstrdup(name);
    p->key = xasprintf("%s%s/%s", BACKUP_PREFIX, e->id, name);
    p->tablespace = tablespace;
    p->location = location ? xstrdup(location) : NULL;
    return p;
}

char *
catalog_to_json(const struct catalog_entry *e)
{
    char start_lsn[18], stop_lsn[18], start_time[32], stop_time[32], sysid[24];
    json_t *root, *parts = json_array();
    char *text;
    uint64_t size = 0, stored = 0;

    walname_lsn_format(start_lsn, e->start_lsn);
    walname_lsn_format(stop_lsn, e->stop_lsn);
    iso_time(start_time, e->start_time);
    iso_time(stop_time, e->stop_time);
    snprintf(sysid, sizeof(sysid), "%" PRIu64, e->sysid);
    for (size_t i = 0; i < e->n_parts; i++) {
        const struct catalog_part *p = &e->parts[i];
        json_t *jp = json_pack("{s:s, s:s, s:I, s:I, s:s}", "name", p->name, "key", p->key, "size",
                               (json_int_t)p->size, "stored_size", (json_int_t)p->stored_size,
                               "sha256", p->sha256);

        if (p->tablespace) {
            json_object_set_new(jp, "tablespace", json_integer(p->tablespace));
            json_object_set_new(jp, "location", json_string(p->location ? p->location : ""));
        }
        json_array_append_new(parts, jp);
        size += p->size;
        stored += p->stored_size;
    }
    root = json_pack("{s:i, s:s, s:s, s:s, s:i, s:i, s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:I, "
                     "s:I, s:o}",
                     "format", CATALOG_FORMAT, "id", e->id, "label", e->label ? e->label : "",
                     "system_identifier", sysid, "pg_version_num", e->pg_version_num, "timeline",
                     (int)e->timeline, "wal_segment_size", (json_int_t)e->seg_size, "start_lsn",
                     start_lsn, "stop_lsn", stop_lsn, "start_wal", e->start_wal, "stop_wal",
                     e->stop_wal, "start_time", start_time, "stop_time", stop_time, "size",
                     (json_int_t)size, "stored_size", (json_int_t)stored, "parts", parts);
    text = json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!text)
        abort(); /* jansson fails only when out of memory */
    return text;
}

int
catalog_parse(struct catalog_entry *out, const char *text, size_t len, struct err *err)
{
    json_error_t jerr;
    json_t *root = json_loadb(text, len, 0, &jerr), *parts = NULL;
    const char *id, *label, *sysid, *start_lsn, *stop_lsn, *start_wal, *stop_wal, *start_time,
        *stop_time;
    int format, ver, tli;
    json_int_t seg;
    struct catalog_entry e;
    struct err lerr;
    char *end;

    memset(&e, 0, sizeof(e));
    if (!root)
        return err_set(err, ERR_CORRUPT, "catalogue entry is not valid JSON: %s (line %d)",
                       jerr.text, jerr.line);
    if (json_unpack_ex(root, &jerr, 0,
                       "{s:i, s:s, s:s, s:s, s:i, s:i, s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:o}",
                       "format", &format, "id", &id, "label", &label, "system_identifier", &sysid,
                       "pg_version_num", &ver, "timeline", &tli, "wal_segment_size", &seg,
                       "start_lsn", &start_lsn, "stop_lsn", &stop_lsn, "start_wal", &start_wal,
                       "stop_wal", &stop_wal, "start_time", &start_time, "stop_time", &stop_time,
                       "parts", &parts) < 0) {
        err_set(err, ERR_CORRUPT, "catalogue entry: %s", jerr.text);
        goto fail;
    }
    if (format != CATALOG_FORMAT) {
        err_set(err, ERR_CORRUPT, "catalogue entry \"%s\" has format %d, this ferry reads %d", id,
                format, CATALOG_FORMAT);
        goto fail;
    }
    if (strlen(id) != CATALOG_ID_LEN || strspn(id, "0123456789TZ") != CATALOG_ID_LEN) {
        err_set(err, ERR_CORRUPT, "catalogue entry has a bad id \"%.40s\"", id);
        goto fail;
    }
    memcpy(e.id, id, CATALOG_ID_LEN + 1);
    e.label = xstrdup(label);
    errno = 0;
    e.sysid = strtoull(sysid, &end, 10);
    if (errno || *end || !*sysid || walname_lsn_parse(&e.start_lsn, start_lsn, &lerr) < 0 ||
        walname_lsn_parse(&e.stop_lsn, stop_lsn, &lerr) < 0 || e.stop_lsn < e.start_lsn ||
        parse_iso_time(start_time, &e.start_time) < 0 ||
        parse_iso_time(stop_time, &e.stop_time) < 0 || tli <= 0 ||
        !walname_seg_size_valid((uint32_t)seg) || strlen(start_wal) >= WALNAME_MAX ||
        strlen(stop_wal) >= WALNAME_MAX) {
        err_set(err, ERR_CORRUPT, "catalogue entry \"%s\" has a bad value", e.id);
        goto fail;
    }
    e.pg_version_num = ver;
    e.timeline = (uint32_t)tli;
    e.seg_size = (uint32_t)seg;
    memcpy(e.start_wal, start_wal, strlen(start_wal) + 1);
    memcpy(e.stop_wal, stop_wal, strlen(stop_wal) + 1);
    if (!json_is_array(parts)) {
        err_set(err, ERR_CORRUPT, "catalogue entry \"%s\": parts is not a list", e.id);
        goto fail;
    }
    for (size_t i = 0; i < json_array_size(parts); i++) {
        const char *name, *key, *sha, *location = NULL;
        json_int_t size, stored, ts = 0;

        if (json_unpack_ex(json_array_get(parts, i), &jerr, 0,
                           "{s:s, s:s, s:I, s:I, s:s, s?I, s?s}", "name", &name, "key", &key,
                           "size", &size, "stored_size", &stored, "sha256", &sha, "tablespace", &ts,
                           "location", &location) < 0 ||
            strlen(sha) != 64 || size < 0 || stored < 0 || ts < 0 || ts > UINT32_MAX ||
            strchr(name, '/') || strcmp(name, "..") == 0 || strcmp(name, ".") == 0) {
            err_set(err, ERR_CORRUPT, "catalogue entry \"%s\": part %zu is malformed", e.id, i);
            goto fail;
        }
        struct catalog_part *p = catalog_add_part(&e, name, (uint32_t)ts, location);
        if (strcmp(p->key, key) != 0) {
            err_set(err, ERR_CORRUPT, "catalogue entry \"%s\": part \"%s\" has key \"%.200s\"",
                    e.id, name, key);
            goto fail;
        }
        p->size = (uint64_t)size;
        p->stored_size = (uint64_t)stored;
        memcpy(p->sha256, sha, 65);
    }
    json_decref(root);
    *out = e;
    return 0;
fail:
    json_decref(root);
    catalog_entry_free(&e);
    return -1;
}

int
catalog_write(struct archive *a, const struct catalog_entry *e, struct err *err)
{
    char *text = catalog_to_json(e);
    char *key = xasprintf("%s%s.json", CATALOG_PREFIX, e->id);
    struct sink *chain = object_encode_sink_new(repo_put_sink_new(a->repo, key, REPO_PUT_IF_ABSENT),
                                                &a->oopts, NULL);
    int rc = -1;

    if (sink_write(chain, text, strlen(text), err) < 0 || sink_finish(chain, err) < 0) {
        err_prefix(err, "could not write the catalogue entry \"%s\"", key);
        goto out;
    }
    rc = 0;
out:
    sink_free(chain);
    free(key);
    free(text);
    return rc;
}

static int
read_key(struct archive *a, const char *key, struct catalog_entry *out, struct err *err)
{
    struct buf b = BUF_INIT;
    struct sink *chain = object_decode_sink_new(buf_sink_new(&b, CATALOG_MAX_BYTES), a->key, NULL);
    int rc = -1;

    if (repo_get(a->repo, key, 0, 0, chain, err) < 0 || sink_finish(chain, err) < 0 ||
        catalog_parse(out, buf_str(&b), b.len, err) < 0) {
        if (err->kind != ERR_NOT_FOUND)
            err_prefix(err, "could not read \"%s\"", key);
        goto out;
    }
    rc = 0;
out:
    sink_free(chain);
    buf_free(&b);
    return rc;
}

int
catalog_read(struct archive *a, const char *id, struct catalog_entry *out, struct err *err)
{
    char *key = xasprintf("%s%s.json", CATALOG_PREFIX, id);
    int rc = read_key(a, key, out, err);

    if (rc < 0 && err->kind == ERR_NOT_FOUND)
        err_set(err, ERR_NOT_FOUND, "no complete backup \"%s\" in the repository", id);
    free(key);
    return rc;
}

struct keys {
    char **v;
    size_t n;
};

static int
collect_cb(const struct repo_entry *e, void *arg)
{
    struct keys *k = arg;
    size_t len = strlen(e->key);

    if (e->is_prefix || len < 5 || strcmp(e->key + len - 5, ".json") != 0)
        return 0;
    k->v = xrealloc(k->v, (k->n + 1) * sizeof(*k->v));
    k->v[k->n++] = xstrdup(e->key);
    return 0;
}

static int
cmp_entries(const void *x, const void *y)
{
    const struct catalog_entry *a = x, *b = y;

    if (a->start_lsn != b->start_lsn)
        return a->start_lsn < b->start_lsn ? -1 : 1;
    if (a->start_time != b->start_time)
        return a->start_time < b->start_time ? -1 : 1;
    return strcmp(a->id, b->id);
}

int
catalog_list(struct archive *a, struct catalog_entry **out, size_t *n, struct err *err)
{
    struct keys k = {NULL, 0};
    struct catalog_entry *list = NULL;
    size_t got = 0;
    int rc = -1;

    if (repo_list(a->repo, CATALOG_PREFIX, NULL, collect_cb, &k, err) < 0)
        goto out;
    list = xcalloc(k.n ? k.n : 1, sizeof(*list));
    for (size_t i = 0; i < k.n; i++) {
        if (read_key(a, k.v[i], &list[got], err) < 0)
            goto out;
        got++;
    }
    qsort(list, got, sizeof(*list), cmp_entries);
    *out = list;
    *n = got;
    list = NULL;
    rc = 0;
out:
    if (list)
        catalog_list_free(list, got);
    for (size_t i = 0; i < k.n; i++)
        free(k.v[i]);
    free(k.v);
    return rc;
}

void
catalog_entry_free(struct catalog_entry *e)
{
    for (size_t i = 0; i < e->n_parts; i++) {
        free(e->parts[i].name);
        free(e->parts[i].key);
        free(e->parts[i].location);
    }
    free(e->parts);
    free(e->label);
    memset(e, 0, sizeof(*e));
}

void
catalog_list_free(struct catalog_entry *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        catalog_entry_free(&list[i]);
    free(list);
}
