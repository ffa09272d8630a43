/* SPDX-License-Identifier: MIT */
/*
 * `ferry info`: what the repository holds, from listings, the catalogue and
 * the small history files only (no backup or WAL object is read): the
 * cluster record, every backup (complete ones from the catalogue, incomplete
 * ones from objects under pg/backups/<ID>/ without an entry), the WAL
 * archive per timeline with its gaps (archive/walscan.h) and the recovery
 * point age: how long ago the newest backup ended (catalogue stop time) and
 * the newest WAL segment was stored (object mtime). --prometheus writes the
 * ages and sizes as a node_exporter textfile, atomically.
 */
#include "info.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "archive/archive.h"
#include "archive/catalog.h"
#include "archive/walscan.h"
#include "base/buf.h"
#include "base/log.h"
#include "base/xmalloc.h"
#include "cli/cli.h"
#include "expire.h"
#include "stream/stages.h"

#define CMD_ONLY (OPT_NO_ENV | OPT_NO_FILE)

static const struct opt_def info_opts[] = {
    {"json", 0, OPT_BOOL, CMD_ONLY, NULL, "print JSON instead of tables"},
    {"prometheus", 0, OPT_STRING, 0, "FILE",
     "also write ages and sizes to FILE in the Prometheus textfile format (atomically)"},
    OPT_END,
};

static const char usage[] =
    "usage: ferry info [--json] [--prometheus FILE] [OPTIONS]\n"
    "\n"
    "Show the PostgreSQL repository at a glance: the cluster it belongs to, every backup\n"
    "(complete: from the catalogue; incomplete: objects under pg/backups/<ID>/ without a\n"
    "catalogue entry), the WAL archive per timeline (first and last segment, count, gaps,\n"
    "stored size) and the recovery point age: how long ago the newest backup ended and the\n"
    "newest WAL segment was archived. Only listings, the catalogue and history files are\n"
    "read. --prometheus FILE writes the ages, counts and sizes for node_exporter's textfile\n"
    "collector (a temporary file beside FILE, renamed over it).\n"
    "\n"
    "Exit status: 0 ok, 1 error, 2 usage or configuration error.";

void
info_fmt_bytes(char out[32], uint64_t n)
{
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
    double v = (double)n;
    int u = -1;

    if (n < 1024) {
        snprintf(out, 32, "%" PRIu64 " B", n);
        return;
    }
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    snprintf(out, 32, "%.1f %s", v, units[u]);
}

void
info_fmt_age(char out[32], int64_t s)
{
    if (s < 0)
        s = 0;
    if (s < 60)
        snprintf(out, 32, "%" PRId64 " s", s);
    else if (s < 3600)
        snprintf(out, 32, "%" PRId64 " min", s / 60);
    else if (s < 86400)
        snprintf(out, 32, "%" PRId64 " h %" PRId64 " min", s / 3600, s % 3600 / 60);
    else
        snprintf(out, 32, "%" PRId64 " d %" PRId64 " h", s / 86400, s % 86400 / 3600);
}

static void
fmt_time(char out[32], int64_t t, bool iso)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (!gmtime_r(&tt, &tm) ||
        strftime(out, 32, iso ? "%Y-%m-%dT%H:%M:%SZ" : "%Y-%m-%d %H:%M:%S", &tm) == 0)
        snprintf(out, 32, "%" PRId64, t);
}

/* ---- gathering -------------------------------------------------------------------------- */

struct incomplete {
    char *id;
    size_t objects;
    uint64_t stored;
    int64_t newest;
};

struct info {
    const char *url;
    int64_t now;
    bool has_cluster;
    struct cluster_info cluster;
    struct catalog_entry *list;
    size_t n;
    size_t *order; /* expire_order: oldest first */
    struct incomplete *inc;
    size_t n_inc;
    bool has_wal;
    struct walscan wal;
    /* the whole of pg/ */
    size_t n_objects;
    uint64_t stored, stored_backups, stored_wal, stored_catalog;
    /* derived */
    const struct catalog_entry *last_backup;
    const struct walscan_file *last_wal;
    uint64_t backups_size, backups_stored;
};

static int
list_cb(const struct repo_entry *e, void *arg)
{
    struct info *in = arg;
    static const char bp[] = BACKUP_PREFIX;

    if (e->is_prefix)
        return 0;
    in->n_objects++;
    in->stored += e->size;
    if (strncmp(e->key, ARCHIVE_WAL_PREFIX, strlen(ARCHIVE_WAL_PREFIX)) == 0)
        in->stored_wal += e->size;
    else if (strncmp(e->key, CATALOG_PREFIX, strlen(CATALOG_PREFIX)) == 0)
        in->stored_catalog += e->size;
    if (strncmp(e->key, bp, sizeof(bp) - 1) == 0) {
        const char *id = e->key + sizeof(bp) - 1;
        const char *slash = strchr(id, '/');
        size_t len = slash ? (size_t)(slash - id) : 0;
        struct incomplete *g = NULL;
        bool catalogued = false;

        in->stored_backups += e->size;
        if (!slash || len == 0)
            return 0;
        for (size_t i = 0; i < in->n && !catalogued; i++)
            catalogued = strlen(in->list[i].id) == len && memcmp(in->list[i].id, id, len) == 0;
        if (catalogued)
            return 0;
        for (size_t i = 0; i < in->n_inc && !g; i++)
            if (strlen(in->inc[i].id) == len && memcmp(in->inc[i].id, id, len) == 0)
                g = &in->inc[i];
        if (!g) {
            in->inc = xrealloc(in->inc, (in->n_inc + 1) * sizeof(*in->inc));
            g = &in->inc[in->n_inc++];
            *g = (struct incomplete){xstrndup(id, len), 0, 0, INT64_MIN};
        }
        g->objects++;
        g->stored += e->size;
        if (e->mtime > g->newest)
            g->newest = e->mtime;
    }
    return 0;
}

static int
gather(struct info *in, struct cli *c, struct err *err)
{
    struct archive a = {c->repo, c->oopts, c->key};
    uint32_t seg_size;

    in->url = repo_url(c->repo);
    in->now = (int64_t)time(NULL);
    if (archive_cluster_get(&a, &in->cluster, &in->has_cluster, err) < 0)
        return -1;
    if (catalog_list(&a, &in->list, &in->n, err) < 0)
        return -1;
    in->order = xcalloc(in->n ? in->n : 1, sizeof(*in->order));
    expire_order(in->order, in->list, in->n);
    if (repo_list(c->repo, "pg/", NULL, list_cb, in, err) < 0)
        return -1;
    seg_size = in->has_cluster ? in->cluster.seg_size : in->n ? in->list[0].seg_size : 0;
    if (seg_size) {
        if (walscan_run(&in->wal, &a, seg_size, err) < 0)
            return -1;
        in->has_wal = true;
    }
    if (in->n)
        in->last_backup = &in->list[in->order[in->n - 1]];
    for (size_t i = 0; i < in->n; i++) {
        for (size_t p = 0; p < in->list[i].n_parts; p++) {
            in->backups_size += in->list[i].parts[p].size;
            in->backups_stored += in->list[i].parts[p].stored_size;
        }
    }
    for (size_t i = 0; in->has_wal && i < in->wal.n_files; i++) {
        const struct walscan_file *f = &in->wal.files[i];

        if (f->name.kind != WALNAME_SEGMENT && f->name.kind != WALNAME_PARTIAL)
            continue;
        if (!in->last_wal || f->mtime > in->last_wal->mtime ||
            (f->mtime == in->last_wal->mtime &&
             (f->name.tli > in->last_wal->name.tli ||
              (f->name.tli == in->last_wal->name.tli && f->segno > in->last_wal->segno))))
            in->last_wal = f;
    }
    return 0;
}

static void
info_free(struct info *in)
{
    catalog_list_free(in->list, in->n);
    free(in->order);
    for (size_t i = 0; i < in->n_inc; i++)
        free(in->inc[i].id);
    free(in->inc);
    if (in->has_wal)
        walscan_free(&in->wal);
}

static uint64_t
entry_size(const struct catalog_entry *e, bool stored)
{
    uint64_t s = 0;

    for (size_t i = 0; i < e->n_parts; i++)
        s += stored ? e->parts[i].stored_size : e->parts[i].size;
    return s;
}

static void
seg_name(char out[WALNAME_MAX], uint32_t tli, uint64_t segno, uint32_t seg_size)
{
    struct walname w;

    walname_from_segno(&w, tli, segno, seg_size);
    walname_format(out, &w);
}

/* ---- text ---------------------------------------------------------------------------------- */

static void
print_text(const struct info *in)
{
    char b1[32], b2[32], b3[32], t1[32], t2[32], l1[18], l2[18], age[32], name[WALNAME_MAX];

    printf("repository  %s\n", in->url);
    if (in->has_cluster) {
        info_fmt_bytes(b1, in->cluster.seg_size);
        printf("cluster     system identifier %" PRIu64 ", PostgreSQL %d, WAL segments of %s\n",
               in->cluster.sysid, in->cluster.pg_version, b1);
    } else {
        printf("cluster     none recorded yet (no WAL archived)\n");
    }
    info_fmt_bytes(b1, in->stored);
    info_fmt_bytes(b2, in->stored_backups);
    info_fmt_bytes(b3, in->stored_wal);
    printf("stored      %s in %zu objects (backups %s, WAL %s)\n", b1, in->n_objects, b2, b3);

    printf("\nbackups: %zu complete, %zu incomplete (oldest first)\n", in->n, in->n_inc);
    if (in->n || in->n_inc) {
        printf("%-16s  %-10s  %3s  %-19s  %-19s  %-12s  %-12s  %10s  %10s  %s\n", "ID", "STATUS",
               "TL", "START (UTC)", "STOP (UTC)", "START LSN", "STOP LSN", "SIZE", "STORED",
               "LABEL");
        for (size_t k = 0; k < in->n; k++) {
            const struct catalog_entry *e = &in->list[in->order[k]];

            fmt_time(t1, e->start_time, false);
            fmt_time(t2, e->stop_time, false);
            walname_lsn_format(l1, e->start_lsn);
            walname_lsn_format(l2, e->stop_lsn);
            info_fmt_bytes(b1, entry_size(e, false));
            info_fmt_bytes(b2, entry_size(e, true));
            printf("%-16s  %-10s  %3" PRIu32 "  %-19s  %-19s  %-12s  %-12s  %10s  %10s  %s\n",
                   e->id, "complete", e->timeline, t1, t2, l1, l2, b1, b2,
                   e->label && *e->label ? e->label : "-");
        }
        for (size_t k = 0; k < in->n_inc; k++) {
            const struct incomplete *g = &in->inc[k];

            info_fmt_bytes(b2, g->stored);
            fmt_time(t2, g->newest, false);
            printf("%-16s  %-10s  %3s  %-19s  %-19s  %-12s  %-12s  %10s  %10s  %zu object%s, "
                   "newest %s UTC\n",
                   g->id, "incomplete", "-", "-", "-", "-", "-", "-", b2, g->objects,
                   g->objects == 1 ? "" : "s", t2);
        }
    }

    printf("\nWAL archive:");
    if (!in->has_wal || in->wal.n_timelines == 0) {
        printf(" empty\n");
    } else {
        info_fmt_bytes(b1, in->wal.stored_bytes);
        printf(" %zu files, %s, %zu gap%s\n", in->wal.n_files, b1, in->wal.n_gaps,
               in->wal.n_gaps == 1 ? "" : "s");
        printf("%3s  %-24s  %-24s  %8s  %4s  %10s  %s\n", "TL", "FIRST", "LAST", "SEGMENTS", "GAPS",
               "STORED", "HISTORY");
        for (size_t i = 0; i < in->wal.n_timelines; i++) {
            const struct walscan_timeline *t = &in->wal.timelines[i];
            char first[WALNAME_MAX] = "-", last[WALNAME_MAX] = "-";
            size_t gaps = 0;

            for (size_t g = 0; g < in->wal.n_gaps; g++)
                gaps += in->wal.gaps[g].tli == t->tli;
            if (t->n_segments) {
                seg_name(first, t->tli, t->first_segno, in->wal.seg_size);
                seg_name(last, t->tli, t->last_segno, in->wal.seg_size);
            }
            info_fmt_bytes(b1, t->stored_bytes);
            printf("%3" PRIu32 "  %-24s  %-24s  %8zu  %4zu  %10s  %s\n", t->tli, first, last,
                   t->n_segments, gaps, b1,
                   t->has_history ? "yes"
                   : t->tli == 1  ? "-"
                                  : "missing");
        }
        for (size_t g = 0; g < in->wal.n_gaps; g++) {
            const struct walscan_gap *gp = &in->wal.gaps[g];
            char first[WALNAME_MAX], last[WALNAME_MAX];

            seg_name(first, gp->tli, gp->first_missing, in->wal.seg_size);
            seg_name(last, gp->tli, gp->last_missing, in->wal.seg_size);
            printf("gap: timeline %" PRIu32 " misses %s to %s (%" PRIu64 " segment%s)\n", gp->tli,
                   first, last, gp->last_missing - gp->first_missing + 1,
                   gp->last_missing == gp->first_missing ? "" : "s");
        }
    }

    printf("\nrecovery point:\n");
    if (in->last_backup) {
        fmt_time(t1, in->last_backup->stop_time, false);
        info_fmt_age(age, in->now - in->last_backup->stop_time);
        printf("  newest backup  %s, ended %s UTC (%s ago)\n", in->last_backup->id, t1, age);
    } else {
        printf("  newest backup  none\n");
    }
    if (in->last_wal) {
        walname_format(name, &in->last_wal->name);
        fmt_time(t1, in->last_wal->mtime, false);
        info_fmt_age(age, in->now - in->last_wal->mtime);
        printf("  newest WAL     %s, archived %s UTC (%s ago)\n", name, t1, age);
    } else {
        printf("  newest WAL     none\n");
    }
}

/* ---- JSON ---------------------------------------------------------------------------------- */

static json_t *
jtime(int64_t t)
{
    char s[32];

    fmt_time(s, t, true);
    return json_string(s);
}

static json_t *
jlsn(uint64_t lsn)
{
    char s[18];

    walname_lsn_format(s, lsn);
    return json_string(s);
}

/* A string that may not be UTF-8 (a label): other bytes become '?'. */
static json_t *
jstr(const char *s)
{
    json_t *j = json_string(s);
    char *copy;

    if (j)
        return j;
    copy = xstrdup(s);
    for (char *p = copy; *p; p++)
        if ((unsigned char)*p >= 0x80)
            *p = '?';
    j = json_string(copy);
    free(copy);
    return j;
}

static json_t *
to_json(const struct info *in)
{
    json_t *root = json_object(), *backups = json_array(), *tls = json_array(), *gaps,
           *rp = json_object(), *wal = json_object(), *st = json_object();
    char sysid[24], name[WALNAME_MAX];

    json_object_set_new(root, "repository", jstr(in->url));
    json_object_set_new(root, "time", jtime(in->now));
    if (in->has_cluster) {
        snprintf(sysid, sizeof(sysid), "%" PRIu64, in->cluster.sysid);
        json_object_set_new(root, "cluster",
                            json_pack("{s:s, s:i, s:I}", "system_identifier", sysid, "pg_version",
                                      in->cluster.pg_version, "wal_segment_size",
                                      (json_int_t)in->cluster.seg_size));
    } else {
        json_object_set_new(root, "cluster", json_null());
    }
    json_object_set_new(st, "objects", json_integer((json_int_t)in->n_objects));
    json_object_set_new(st, "total", json_integer((json_int_t)in->stored));
    json_object_set_new(st, "backups", json_integer((json_int_t)in->stored_backups));
    json_object_set_new(st, "wal", json_integer((json_int_t)in->stored_wal));
    json_object_set_new(st, "catalog", json_integer((json_int_t)in->stored_catalog));
    json_object_set_new(root, "stored", st);

    for (size_t k = 0; k < in->n; k++) {
        const struct catalog_entry *e = &in->list[in->order[k]];
        json_t *b = json_object();

        json_object_set_new(b, "id", json_string(e->id));
        json_object_set_new(b, "status", json_string("complete"));
        json_object_set_new(b, "label", jstr(e->label ? e->label : ""));
        json_object_set_new(b, "timeline", json_integer(e->timeline));
        json_object_set_new(b, "start_time", jtime(e->start_time));
        json_object_set_new(b, "stop_time", jtime(e->stop_time));
        json_object_set_new(b, "start_lsn", jlsn(e->start_lsn));
        json_object_set_new(b, "stop_lsn", jlsn(e->stop_lsn));
        json_object_set_new(b, "start_wal", json_string(e->start_wal));
        json_object_set_new(b, "stop_wal", json_string(e->stop_wal));
        json_object_set_new(b, "pg_version_num", json_integer(e->pg_version_num));
        json_object_set_new(b, "size", json_integer((json_int_t)entry_size(e, false)));
        json_object_set_new(b, "stored_size", json_integer((json_int_t)entry_size(e, true)));
        json_object_set_new(b, "parts", json_integer((json_int_t)e->n_parts));
        json_array_append_new(backups, b);
    }
    for (size_t k = 0; k < in->n_inc; k++) {
        const struct incomplete *g = &in->inc[k];
        json_t *b = json_object();

        json_object_set_new(b, "id", jstr(g->id));
        json_object_set_new(b, "status", json_string("incomplete"));
        json_object_set_new(b, "objects", json_integer((json_int_t)g->objects));
        json_object_set_new(b, "stored_size", json_integer((json_int_t)g->stored));
        json_object_set_new(b, "last_modified", jtime(g->newest));
        json_array_append_new(backups, b);
    }
    json_object_set_new(root, "backups", backups);

    for (size_t i = 0; in->has_wal && i < in->wal.n_timelines; i++) {
        const struct walscan_timeline *t = &in->wal.timelines[i];
        json_t *jt = json_object();

        gaps = json_array();
        json_object_set_new(jt, "timeline", json_integer(t->tli));
        if (t->n_segments) {
            seg_name(name, t->tli, t->first_segno, in->wal.seg_size);
            json_object_set_new(jt, "first", json_string(name));
            seg_name(name, t->tli, t->last_segno, in->wal.seg_size);
            json_object_set_new(jt, "last", json_string(name));
        } else {
            json_object_set_new(jt, "first", json_null());
            json_object_set_new(jt, "last", json_null());
        }
        json_object_set_new(jt, "segments", json_integer((json_int_t)t->n_segments));
        json_object_set_new(jt, "stored_size", json_integer((json_int_t)t->stored_bytes));
        json_object_set_new(jt, "history", json_boolean(t->has_history));
        for (size_t g = 0; g < in->wal.n_gaps; g++) {
            const struct walscan_gap *gp = &in->wal.gaps[g];
            json_t *jg = json_object();

            if (gp->tli != t->tli) {
                json_decref(jg);
                continue;
            }
            seg_name(name, gp->tli, gp->first_missing, in->wal.seg_size);
            json_object_set_new(jg, "first_missing", json_string(name));
            seg_name(name, gp->tli, gp->last_missing, in->wal.seg_size);
            json_object_set_new(jg, "last_missing", json_string(name));
            json_object_set_new(
                jg, "segments",
                json_integer((json_int_t)(gp->last_missing - gp->first_missing + 1)));
            json_array_append_new(gaps, jg);
        }
        json_object_set_new(jt, "gaps", gaps);
        json_array_append_new(tls, jt);
    }
    json_object_set_new(wal, "files", json_integer(in->has_wal ? (json_int_t)in->wal.n_files : 0));
    json_object_set_new(wal, "stored_size",
                        json_integer(in->has_wal ? (json_int_t)in->wal.stored_bytes : 0));
    json_object_set_new(wal, "gaps", json_integer(in->has_wal ? (json_int_t)in->wal.n_gaps : 0));
    json_object_set_new(wal, "timelines", tls);
    json_object_set_new(root, "wal", wal);

    if (in->last_backup) {
        json_object_set_new(rp, "backup_last_id", json_string(in->last_backup->id));
        json_object_set_new(rp, "backup_last_stop_time", jtime(in->last_backup->stop_time));
        json_object_set_new(rp, "backup_last_age_seconds",
                            json_integer((json_int_t)(in->now - in->last_backup->stop_time)));
    } else {
        json_object_set_new(rp, "backup_last_id", json_null());
        json_object_set_new(rp, "backup_last_stop_time", json_null());
        json_object_set_new(rp, "backup_last_age_seconds", json_null());
    }
    if (in->last_wal) {
        walname_format(name, &in->last_wal->name);
        json_object_set_new(rp, "wal_last", json_string(name));
        json_object_set_new(rp, "wal_last_time", jtime(in->last_wal->mtime));
        json_object_set_new(rp, "wal_last_age_seconds",
                            json_integer((json_int_t)(in->now - in->last_wal->mtime)));
    } else {
        json_object_set_new(rp, "wal_last", json_null());
        json_object_set_new(rp, "wal_last_time", json_null());
        json_object_set_new(rp, "wal_last_age_seconds", json_null());
    }
    json_object_set_new(root, "recovery_point", rp);
    return root;
}

/* ---- Prometheus textfile ------------------------------------------------------------------ */

/* A label value: backslash, double quote and newline escaped. */
static void
prom_label(struct buf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            buf_append(b, "\\\\", 2);
        else if (*s == '"')
            buf_append(b, "\\\"", 2);
        else if (*s == '\n')
            buf_append(b, "\\n", 2);
        else
            buf_append(b, s, 1);
    }
}

static void
prom_metric(struct buf *b, const char *lbl, const char *name, const char *help, int64_t v)
{
    buf_printf(b, "# HELP %s %s\n# TYPE %s gauge\n%s{%s} %" PRId64 "\n", name, help, name, name,
               lbl, v);
}

static int
write_prometheus(const struct info *in, const char *path, struct err *err)
{
    struct buf lbl = BUF_INIT, b = BUF_INIT;
    struct sink *s = atomic_file_sink_new(path, 0644);
    size_t n_seg = 0;
    int rc = -1;

    buf_append(&lbl, "repo=\"", 6);
    prom_label(&lbl, in->url);
    buf_append(&lbl, "\"", 1);
    for (size_t i = 0; in->has_wal && i < in->wal.n_timelines; i++)
        n_seg += in->wal.timelines[i].n_segments;
    if (in->last_backup) {
        prom_metric(&b, buf_str(&lbl), "ferry_backup_last_age_seconds",
                    "Seconds since the newest complete backup ended (catalogue stop time).",
                    in->now - in->last_backup->stop_time);
        prom_metric(&b, buf_str(&lbl), "ferry_backup_last_timestamp_seconds",
                    "Stop time of the newest complete backup, seconds since the epoch.",
                    in->last_backup->stop_time);
        prom_metric(&b, buf_str(&lbl), "ferry_backup_last_duration_seconds",
                    "Duration of the newest complete backup.",
                    in->last_backup->stop_time - in->last_backup->start_time);
        prom_metric(&b, buf_str(&lbl), "ferry_backup_last_size_bytes",
                    "Original size of the newest complete backup.",
                    (int64_t)entry_size(in->last_backup, false));
        prom_metric(&b, buf_str(&lbl), "ferry_backup_last_stored_bytes",
                    "Stored size of the newest complete backup.",
                    (int64_t)entry_size(in->last_backup, true));
    }
    if (in->last_wal) {
        prom_metric(&b, buf_str(&lbl), "ferry_wal_last_age_seconds",
                    "Seconds since the newest WAL segment was archived (object mtime).",
                    in->now - in->last_wal->mtime);
        prom_metric(&b, buf_str(&lbl), "ferry_wal_last_timestamp_seconds",
                    "Archive time of the newest WAL segment, seconds since the epoch.",
                    in->last_wal->mtime);
    }
    prom_metric(&b, buf_str(&lbl), "ferry_backup_count", "Complete backups in the catalogue.",
                (int64_t)in->n);
    prom_metric(&b, buf_str(&lbl), "ferry_backup_incomplete_count",
                "Backups with objects but no catalogue entry.", (int64_t)in->n_inc);
    prom_metric(&b, buf_str(&lbl), "ferry_backup_stored_bytes",
                "Stored bytes of the complete backups (catalogue).", (int64_t)in->backups_stored);
    prom_metric(&b, buf_str(&lbl), "ferry_wal_segment_count", "WAL segments in the archive.",
                (int64_t)n_seg);
    prom_metric(&b, buf_str(&lbl), "ferry_wal_gap_count", "Gaps in the WAL archive.",
                in->has_wal ? (int64_t)in->wal.n_gaps : 0);
    prom_metric(&b, buf_str(&lbl), "ferry_wal_stored_bytes", "Stored bytes of the WAL archive.",
                in->has_wal ? (int64_t)in->wal.stored_bytes : 0);
    prom_metric(&b, buf_str(&lbl), "ferry_repo_stored_bytes",
                "Stored bytes of every object under pg/.", (int64_t)in->stored);
    prom_metric(&b, buf_str(&lbl), "ferry_repo_object_count", "Objects under pg/.",
                (int64_t)in->n_objects);
    prom_metric(&b, buf_str(&lbl), "ferry_info_timestamp_seconds",
                "When ferry info wrote this file, seconds since the epoch.", in->now);
    if (sink_write(s, b.data, b.len, err) < 0 || sink_finish(s, err) < 0) {
        err_prefix(err, "could not write \"%s\"", path);
        goto out;
    }
    rc = 0;
out:
    sink_free(s);
    buf_free(&lbl);
    buf_free(&b);
    return rc;
}

/* ---- main ---------------------------------------------------------------------------------- */

int
info_main(int argc, char **argv)
{
    struct cli c;
    struct err err;
    struct info in;
    const char *prom;
    int rc = 1;

    memset(&in, 0, sizeof(in));
    err_clear(&err);
    if (cli_init(&c, "ferry-info", usage, info_opts, argc, argv, &err) < 0) {
        log_init("ferry info");
        goto out;
    }
    log_init("ferry info");
    if (c.done) {
        rc = 0;
        goto out;
    }
    if (c.n_args > 0) {
        err_set(&err, ERR_USAGE, "unexpected argument \"%s\" (see --help)", c.args[0]);
        goto out;
    }
    prom = opts_get(c.opts, "prometheus");
    if (prom && !*prom) {
        err_set(&err, ERR_USAGE, "--prometheus needs a file name");
        goto out;
    }
    if (cli_open_repo(&c, &err) < 0 || gather(&in, &c, &err) < 0)
        goto out;
    if (prom && write_prometheus(&in, prom, &err) < 0)
        goto out;
    if (opts_get_bool(c.opts, "json", false)) {
        json_t *j = to_json(&in);
        char *s = json_dumps(j, JSON_INDENT(1) | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);

        json_decref(j);
        if (!s) {
            err_set(&err, ERR_INTERNAL, "could not format JSON");
            goto out;
        }
        puts(s);
        free(s);
    } else {
        print_text(&in);
    }
    if (fflush(stdout) != 0) {
        err_sys(&err, ERR_IO, "could not write to stdout");
        goto out;
    }
    rc = 0;
out:
    if (rc != 0) {
        log_err(&err);
        if (err.kind == ERR_USAGE || err.kind == ERR_CONFIG)
            rc = 2;
    }
    info_free(&in);
    cli_free(&c);
    return rc;
}
