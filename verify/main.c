/* SPDX-License-Identifier: MIT */
/*
 * ferry-verify: prove that what the repository holds can restore the
 * cluster, without a running cluster. First the listings: the catalogue,
 * the backups' folders (a folder without a catalogue entry is an incomplete
 * backup), the WAL archive (walscan: the WAL each backup needs, the chain
 * from the oldest backup to the newest segment along every timeline's
 * history). Then every object is read, in parallel (each thread its own
 * repository handle, bounded memory, check.c): decoded and checked against
 * its own checksum and the catalogue, each file inside the tar parts
 * against the backup manifest, each WAL segment's first page against its
 * name. Every problem is reported, not only the first.
 *
 * Exit status: 0 all intact, 1 usage or configuration error, 2 damaged or
 * missing (problems found), 3 could not check (storage unreachable,
 * credentials, no repository, objects that could not be read). If you
 * change it, update the usage text and docs/verify.md.
 */
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "archive/archive.h"
#include "archive/catalog.h"
#include "archive/walscan.h"
#include "base/log.h"
#include "base/xmalloc.h"
#include "check.h"
#include "cli/cli.h"

enum {
    EXIT_INTACT = 0,
    EXIT_USAGE = 1,
    EXIT_DAMAGED = 2,
    EXIT_UNCHECKED = 3,
};

static const char usage[] =
    "usage: ferry-verify [OPTIONS]\n"
    "\n"
    "Prove that the repository can restore the cluster, without a running cluster:\n"
    "  - every backup in the catalogue: each object decodes and matches its own checksum\n"
    "    and the catalogue's size and sha256; every file inside its tar parts matches\n"
    "    backup_manifest (size and checksum, read while streaming, nothing unpacked);\n"
    "    the manifest's own checksum;\n"
    "  - the WAL each backup needs (start to stop LSN on its timeline) is archived;\n"
    "  - the WAL chain from the oldest backup to the newest segment has no gap on any\n"
    "    timeline (timeline history files followed), and every history file is there;\n"
    "  - every archived WAL file decodes and matches its checksum; a segment's page\n"
    "    header agrees with its name and the cluster;\n"
    "  - folders under pg/backups/ without a catalogue entry (incomplete backups).\n"
    "Every problem is printed, one line each (KIND OBJECT: DETAIL), then a summary;\n"
    "--json prints one JSON document instead. Kinds: missing_wal, gap, missing_history,\n"
    "corrupt_object, missing_object, manifest_mismatch, incomplete_backup,\n"
    "corrupt_catalog, missing_backup, wrong_cluster, unchecked.\n"
    "\n"
    "--backup ID checks one backup, the WAL it needs and the chain from it onwards.\n"
    "--wal-only skips the backups' objects. --since TIME|LSN reads only the backups\n"
    "that ended and the WAL archived at or after TIME ('2026-11-25', '2026-11-25\n"
    "14:30:00Z', UTC), or the backups ending and the WAL segments ending after LSN\n"
    "(0/3000028); the listing checks always cover everything.\n"
    "\n"
    "Exit status: 0 all intact; 1 usage or configuration error; 2 damaged or missing\n"
    "(problems found); 3 could not check (storage unreachable, credentials, no\n"
    "repository, objects that could not be read). Damage wins over 3.";

static const struct opt_def verify_opts[] = {
    {"backup", 0, OPT_STRING, OPT_NO_FILE | OPT_NO_ENV, "ID", "check only this backup"},
    {"wal-only", 0, OPT_BOOL, OPT_NO_FILE | OPT_NO_ENV, NULL,
     "check only the WAL archive (no backup object is read)"},
    {"since", 0, OPT_STRING, OPT_NO_FILE | OPT_NO_ENV, "TIME|LSN",
     "read only what was stored at or after TIME, or lies after LSN"},
    {"parallel", 0, OPT_INT, 0, "N", "objects read at once, 1 to 64 (default 4)"},
    {"json", 0, OPT_BOOL, OPT_NO_FILE | OPT_NO_ENV, NULL, "print the report as JSON"},
    OPT_END,
};

struct verify {
    struct cli *cli;
    struct archive arc;
    struct cluster_info cluster;
    const char *only_backup;
    bool wal_only, json;
    bool since_is_lsn, has_since;
    uint64_t since_lsn;
    time_t since_time;
    long parallel;
    struct report rep;
    /* listings */
    struct vbackup *bks;
    size_t n_bks;
    struct walscan scan;
    bool has_scan;
    int timelines;
    /* jobs */
    struct vjob *jobs;
    size_t n_jobs;
    atomic_size_t next;
};

/* ---- options ----------------------------------------------------------------------------- */

/* "2026-11-25", "2026-11-25 14:30[:00]", "2026-11-25T14:30:00Z", optional Z, +00, +00:00, UTC. */
static int
parse_time(const char *s, time_t *out, struct err *err)
{
    struct tm tm;
    const char *rest;

    memset(&tm, 0, sizeof(tm));
    rest = strptime(s, "%Y-%m-%d", &tm);
    if (rest && (*rest == 'T' || *rest == ' ')) {
        const char *r2 = strptime(rest + 1, "%H:%M:%S", &tm);

        if (!r2)
            r2 = strptime(rest + 1, "%H:%M", &tm);
        rest = r2;
    }
    if (rest && (strcmp(rest, "") == 0 || strcmp(rest, "Z") == 0 || strcmp(rest, "+00") == 0 ||
                 strcmp(rest, "+00:00") == 0 || strcmp(rest, " UTC") == 0)) {
        *out = timegm(&tm);
        return 0;
    }
    return err_set(err, ERR_USAGE,
                   "invalid --since \"%s\": use a UTC time like 2026-11-25T14:30:00Z or an LSN "
                   "like 0/3000028",
                   s);
}

static int
read_options(struct verify *v, struct err *err)
{
    const struct opts *o = v->cli->opts;
    const char *since = opts_get(o, "since");

    if (v->cli->n_args > 0)
        return err_set(err, ERR_USAGE, "unexpected argument \"%s\"", v->cli->args[0]);
    v->only_backup = opts_get(o, "backup");
    v->wal_only = opts_get_bool(o, "wal-only", false);
    v->json = opts_get_bool(o, "json", false);
    if (opts_get_int(o, "parallel", 4, 1, 64, &v->parallel, err) < 0)
        return -1;
    if (since) {
        v->has_since = true;
        if (strchr(since, '/')) {
            v->since_is_lsn = true;
            if (walname_lsn_parse(&v->since_lsn, since, err) < 0) {
                err_set(err, ERR_USAGE, "invalid --since \"%s\": not an LSN", since);
                return -1;
            }
        } else if (parse_time(since, &v->since_time, err) < 0) {
            return -1;
        }
    }
    return 0;
}

/* ---- the listings ------------------------------------------------------------------------ */

struct keylist {
    char **keys;
    uint64_t *sizes;
    size_t n, cap;
};

static int
keylist_cb(const struct repo_entry *e, void *arg)
{
    struct keylist *k = arg;

    if (e->is_prefix)
        return 0;
    if (k->n == k->cap) {
        k->cap = k->cap ? k->cap * 2 : 64;
        k->keys = xrealloc(k->keys, k->cap * sizeof(*k->keys));
        k->sizes = xrealloc(k->sizes, k->cap * sizeof(*k->sizes));
    }
    k->keys[k->n] = xstrdup(e->key);
    k->sizes[k->n] = e->size;
    k->n++;
    return 0;
}

static void
keylist_free(struct keylist *k)
{
    for (size_t i = 0; i < k->n; i++)
        free(k->keys[i]);
    free(k->keys);
    free(k->sizes);
}

static bool
keylist_has(const struct keylist *k, const char *key)
{
    size_t lo = 0, hi = k->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(k->keys[mid], key);

        if (c == 0)
            return true;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

static int
cmp_str(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

static int
list_sorted(struct verify *v, const char *prefix, struct keylist *out, struct err *err)
{
    if (repo_list(v->arc.repo, prefix, NULL, keylist_cb, out, err) < 0) {
        err_prefix(err, "could not list \"%s\"", prefix);
        return -1;
    }
    /* listings come sorted; the binary searches below rely on it, so make sure */
    for (size_t i = 1; i < out->n; i++) {
        if (strcmp(out->keys[i - 1], out->keys[i]) > 0) {
            qsort(out->keys, out->n, sizeof(*out->keys), cmp_str);
            break;
        }
    }
    return 0;
}

static bool
is_selected_id(const struct verify *v, const char *id)
{
    return !v->only_backup || strcmp(v->only_backup, id) == 0;
}

static int
cmp_bks(const void *x, const void *y)
{
    const struct vbackup *a = x, *b = y;

    if (a->e.start_lsn != b->e.start_lsn)
        return a->e.start_lsn < b->e.start_lsn ? -1 : 1;
    return strcmp(a->e.id, b->e.id);
}

/*
 * The catalogue (each entry read on its own, so one damaged entry is a
 * problem, not the end) and the backups' folders. Only listing failures are
 * fatal.
 */
static int
scan_backups(struct verify *v, struct err *err)
{
    struct keylist cat = {0}, objs = {0};
    char **ids = NULL; /* every ID that has a catalogue object, readable or not */
    size_t n_ids = 0;
    int rc = -1;
    bool found_only = false;

    if (list_sorted(v, CATALOG_PREFIX, &cat, err) < 0 ||
        list_sorted(v, BACKUP_PREFIX, &objs, err) < 0)
        goto out;
    ids = xcalloc(cat.n ? cat.n : 1, sizeof(*ids));
    v->bks = xcalloc(cat.n ? cat.n : 1, sizeof(*v->bks));
    for (size_t i = 0; i < cat.n; i++) {
        const char *name = cat.keys[i] + strlen(CATALOG_PREFIX);
        size_t len = strlen(name);
        struct vbackup *bk = &v->bks[v->n_bks];
        struct err lerr;
        char *id;

        if (len <= 5 || strcmp(name + len - 5, ".json") != 0 || strchr(name, '/'))
            continue;
        id = xstrndup(name, len - 5);
        ids[n_ids++] = id;
        if (!is_selected_id(v, id))
            continue;
        found_only = true;
        err_clear(&lerr);
        if (catalog_read(&v->arc, id, &bk->e, &lerr) < 0) {
            memset(&bk->e, 0, sizeof(bk->e));
            if (lerr.kind == ERR_CORRUPT)
                report_add(&v->rep, PK_CORRUPT_CATALOG, cat.keys[i], "%s", lerr.msg);
            else
                report_err(&v->rep, cat.keys[i], &lerr);
            continue;
        }
        if (bk->e.sysid != v->cluster.sysid || bk->e.seg_size != v->cluster.seg_size) {
            report_add(&v->rep, PK_WRONG_CLUSTER, cat.keys[i],
                       "backup of cluster %" PRIu64 " (segment size %u), the repository belongs "
                       "to %" PRIu64 " (segment size %u)",
                       bk->e.sysid, bk->e.seg_size, v->cluster.sysid, v->cluster.seg_size);
            catalog_entry_free(&bk->e);
            continue;
        }
        pthread_mutex_init(&bk->lock, NULL);
        v->n_bks++;
    }
    qsort(ids, n_ids, sizeof(*ids), cmp_str);
    if (v->n_bks > 1)
        qsort(v->bks, v->n_bks, sizeof(*v->bks), cmp_bks);

    /* folders without a catalogue entry */
    if (!v->wal_only) {
        for (size_t i = 0; i < objs.n;) {
            const char *rest = objs.keys[i] + strlen(BACKUP_PREFIX);
            const char *slash = strchr(rest, '/');
            size_t idlen = slash ? (size_t)(slash - rest) : strlen(rest);
            char *id = xstrndup(rest, idlen);
            size_t j = i, n = 0;
            uint64_t bytes = 0;

            while (j < objs.n && strncmp(objs.keys[j] + strlen(BACKUP_PREFIX), id, idlen) == 0 &&
                   (objs.keys[j][strlen(BACKUP_PREFIX) + idlen] == '/' ||
                    objs.keys[j][strlen(BACKUP_PREFIX) + idlen] == '\0')) {
                bytes += objs.sizes[j];
                n++;
                j++;
            }
            if (j == i) /* cannot happen; never loop forever */
                j = i + 1;
            if ((n_ids == 0 || !bsearch(&id, ids, n_ids, sizeof(*ids), cmp_str)) &&
                is_selected_id(v, id)) {
                char *folder = xasprintf("%s%s/", BACKUP_PREFIX, id);

                found_only = true;
                report_add(&v->rep, PK_INCOMPLETE_BACKUP, folder,
                           "%zu object%s (%" PRIu64 " bytes) without a catalogue entry "
                           "(%s%s.json): an interrupted or running backup",
                           n, n == 1 ? "" : "s", bytes, CATALOG_PREFIX, id);
                free(folder);
            }
            free(id);
            i = j;
        }
    }
    if (v->only_backup && !found_only)
        report_add(&v->rep, PK_MISSING_BACKUP, v->only_backup, "no backup \"%s\" in the repository",
                   v->only_backup);

    /* every part of every complete backup is there; a missing one is not queued (size marker) */
    if (!v->wal_only) {
        for (size_t b = 0; b < v->n_bks; b++) {
            for (size_t i = 0; i < v->bks[b].e.n_parts; i++) {
                struct catalog_part *p = &v->bks[b].e.parts[i];

                if (keylist_has(&objs, p->key))
                    continue;
                report_add(&v->rep, PK_MISSING_OBJECT, p->key,
                           "part \"%s\" of backup %s is not in the repository", p->name,
                           v->bks[b].e.id);
                v->bks[b].tar_incomplete = true;
                p->size = PART_MISSING;
            }
        }
    }
    rc = 0;
out:
    for (size_t i = 0; i < n_ids; i++)
        free(ids[i]);
    free(ids);
    keylist_free(&cat);
    keylist_free(&objs);
    return rc;
}

/* ---- WAL: the listing checks ------------------------------------------------------------- */

struct seg {
    uint32_t tli;
    uint64_t segno;
};

struct segset {
    struct seg *v;
    size_t n, cap;
};

static void
segset_add_gaps(struct segset *s, const struct walscan_gap *g, size_t n, uint64_t min_segno)
{
    for (size_t i = 0; i < n; i++) {
        for (uint64_t x = g[i].first_missing; x <= g[i].last_missing; x++) {
            if (x < min_segno)
                continue;
            if (s->n == s->cap) {
                s->cap = s->cap ? s->cap * 2 : 64;
                s->v = xrealloc(s->v, s->cap * sizeof(*s->v));
            }
            s->v[s->n].tli = g[i].tli;
            s->v[s->n].segno = x;
            s->n++;
        }
    }
}

static int
cmp_seg(const void *x, const void *y)
{
    const struct seg *a = x, *b = y;

    if (a->tli != b->tli)
        return a->tli < b->tli ? -1 : 1;
    return a->segno < b->segno ? -1 : a->segno > b->segno;
}

static void
segset_sort_unique(struct segset *s)
{
    size_t w = 0;

    if (s->n > 1)
        qsort(s->v, s->n, sizeof(*s->v), cmp_seg);
    for (size_t i = 0; i < s->n; i++)
        if (w == 0 || cmp_seg(&s->v[w - 1], &s->v[i]) != 0)
            s->v[w++] = s->v[i];
    s->n = w;
}

static bool
segset_has(const struct segset *s, uint32_t tli, uint64_t segno)
{
    struct seg k = {tli, segno};

    return s->n > 0 && bsearch(&k, s->v, s->n, sizeof(*s->v), cmp_seg) != NULL;
}

static void
seg_key(struct buf *out, uint32_t tli, uint64_t segno, uint32_t seg_size)
{
    struct walname w;

    walname_from_segno(&w, tli, segno, seg_size);
    buf_reset(out);
    archive_wal_key(out, &w);
}

static void
seg_name(char out[WALNAME_MAX], uint32_t tli, uint64_t segno, uint32_t seg_size)
{
    struct walname w;

    walname_from_segno(&w, tli, segno, seg_size);
    walname_format(out, &w);
}

/* One problem per run of missing segments: the first one's key, the range in the detail. */
static void
report_runs(struct verify *v, const char *kind, const struct seg *segs, size_t n, const char *what)
{
    uint32_t ss = v->cluster.seg_size;
    struct buf key = BUF_INIT;

    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        char first[WALNAME_MAX], last[WALNAME_MAX];

        while (j < n && segs[j].tli == segs[i].tli && segs[j].segno == segs[j - 1].segno + 1)
            j++;
        seg_key(&key, segs[i].tli, segs[i].segno, ss);
        seg_name(first, segs[i].tli, segs[i].segno, ss);
        seg_name(last, segs[j - 1].tli, segs[j - 1].segno, ss);
        if (j - i == 1)
            report_add(&v->rep, kind, buf_str(&key), "segment %s is not archived%s", first, what);
        else
            report_add(&v->rep, kind, buf_str(&key), "%zu segments %s to %s are not archived%s",
                       j - i, first, last, what);
        i = j;
    }
    buf_free(&key);
}

static void
check_wal_listing(struct verify *v)
{
    const struct walscan *s = &v->scan;
    uint32_t ss = v->cluster.seg_size;
    struct segset needed = {0}, chain = {0};
    uint64_t min_segno = UINT64_MAX;
    char lsn1[32], lsn2[32];

    /* timelines without their history file */
    for (size_t i = 0; i < s->n_timelines; i++) {
        if (s->timelines[i].tli > 1 && !s->timelines[i].has_history) {
            char *key = xasprintf("%s%08X.history", ARCHIVE_HISTORY_PREFIX, s->timelines[i].tli);

            report_add(&v->rep, PK_MISSING_HISTORY, key,
                       "timeline %u has WAL but no history file: recovery cannot follow it",
                       s->timelines[i].tli);
            free(key);
        }
    }
    /* the WAL each backup needs */
    for (size_t b = 0; b < v->n_bks; b++) {
        const struct catalog_entry *e = &v->bks[b].e;
        struct walscan_gap *gaps = NULL;
        size_t n = 0;
        struct segset one = {0};
        char *what;

        if (e->start_lsn / ss < min_segno)
            min_segno = e->start_lsn / ss;
        if (walscan_missing(s, e->timeline, e->start_lsn, e->stop_lsn, &gaps, &n) == 0) {
            free(gaps);
            continue;
        }
        walname_lsn_format(lsn1, e->start_lsn);
        walname_lsn_format(lsn2, e->stop_lsn);
        segset_add_gaps(&one, gaps, n, 0);
        segset_add_gaps(&needed, gaps, n, 0);
        what = xasprintf(": backup %s needs it (timeline %u, %s to %s)", e->id, e->timeline, lsn1,
                         lsn2);
        report_runs(v, PK_MISSING_WAL, one.v, one.n, what);
        free(what);
        free(one.v);
        free(gaps);
    }
    segset_sort_unique(&needed);

    /* the chain: from the oldest backup on each timeline's path to its newest segment */
    for (size_t i = 0; i < s->n_timelines; i++) {
        const struct walscan_timeline *t = &s->timelines[i];
        uint64_t start = UINT64_MAX;
        struct walscan_gap *gaps = NULL;
        size_t n = 0;

        if (t->n_segments == 0)
            continue;
        for (size_t b = 0; b < v->n_bks; b++) {
            const struct catalog_entry *e = &v->bks[b].e;

            if (history_tli_for_segno(&t->history, e->start_lsn / ss, ss) == e->timeline &&
                e->start_lsn < start)
                start = e->start_lsn;
        }
        if (start == UINT64_MAX)
            continue; /* no backup leads here: only the timeline's own holes (below) */
        walscan_missing(s, t->tli, start, (t->last_segno + 1) * (uint64_t)ss, &gaps, &n);
        segset_add_gaps(&chain, gaps, n, 0);
        free(gaps);
    }
    /* holes inside each timeline's range (not before the oldest backup checked) */
    segset_add_gaps(&chain, s->gaps, s->n_gaps, v->n_bks > 0 ? min_segno : 0);
    segset_sort_unique(&chain);
    {
        size_t w = 0;

        for (size_t i = 0; i < chain.n; i++)
            if (!segset_has(&needed, chain.v[i].tli, chain.v[i].segno))
                chain.v[w++] = chain.v[i];
        chain.n = w;
    }
    report_runs(v, PK_GAP, chain.v, chain.n, ": the WAL chain is broken there");
    free(needed.v);
    free(chain.v);
}

/* ---- jobs -------------------------------------------------------------------------------- */

static void
add_job(struct verify *v, size_t *cap, struct vjob j)
{
    if (v->n_jobs == *cap) {
        *cap = *cap ? *cap * 2 : 256;
        v->jobs = xrealloc(v->jobs, *cap * sizeof(*v->jobs));
    }
    v->jobs[v->n_jobs++] = j;
}

static bool
backup_since(const struct verify *v, const struct catalog_entry *e)
{
    if (!v->has_since)
        return true;
    if (v->since_is_lsn)
        return e->stop_lsn >= v->since_lsn;
    return e->stop_time >= v->since_time;
}

static bool
wal_since(const struct verify *v, const struct walscan_file *f)
{
    uint32_t ss = v->cluster.seg_size;

    if (!v->has_since)
        return true;
    if (v->since_is_lsn)
        return f->name.kind == WALNAME_HISTORY || (f->segno + 1) * (uint64_t)ss > v->since_lsn;
    return f->mtime >= (int64_t)v->since_time;
}

static void
plan_jobs(struct verify *v)
{
    size_t cap = 0;
    uint32_t ss = v->cluster.seg_size;

    if (!v->wal_only) {
        for (size_t b = 0; b < v->n_bks; b++) {
            struct vbackup *bk = &v->bks[b];

            if (!backup_since(v, &bk->e))
                continue;
            v->rep.backups++;
            for (size_t i = 0; i < bk->e.n_parts; i++) {
                if (bk->e.parts[i].size == PART_MISSING)
                    continue;
                add_job(v, &cap, (struct vjob){VJOB_PART, bk, &bk->e.parts[i], NULL});
                bk->remaining++;
            }
        }
    }
    if (!v->has_scan)
        return;
    if (v->only_backup) {
        /* only the WAL the backup needs, along its timeline's history */
        for (size_t b = 0; b < v->n_bks; b++) {
            const struct catalog_entry *e = &v->bks[b].e;
            const struct walscan_timeline *t = NULL;
            uint64_t last = e->stop_lsn > e->start_lsn ? (e->stop_lsn - 1) / ss : e->start_lsn / ss;

            for (size_t i = 0; i < v->scan.n_timelines; i++)
                if (v->scan.timelines[i].tli == e->timeline)
                    t = &v->scan.timelines[i];
            for (uint64_t segno = e->start_lsn / ss; segno <= last; segno++) {
                uint32_t tli = t ? history_tli_for_segno(&t->history, segno, ss) : e->timeline;
                const struct walscan_file *f = walscan_find_segment(&v->scan, tli, segno);

                if (f && wal_since(v, f))
                    add_job(v, &cap, (struct vjob){VJOB_WAL, NULL, NULL, f});
            }
        }
        return;
    }
    for (size_t i = 0; i < v->scan.n_files; i++) {
        if (wal_since(v, &v->scan.files[i]))
            add_job(v, &cap, (struct vjob){VJOB_WAL, NULL, NULL, &v->scan.files[i]});
    }
}

struct worker {
    struct verify *v;
    struct vctx ctx;
    pthread_t th;
};

static void *
worker_main(void *arg)
{
    struct worker *w = arg;
    struct verify *v = w->v;
    struct repo *r = NULL;
    struct err err;

    err_clear(&err);
    if (repo_open(&r, opts_get(v->cli->opts, "repo"), &v->cli->ropts, &err) < 0) {
        report_err(&v->rep, repo_url(v->arc.repo), &err);
        atomic_store(&v->rep.stop, 1);
    }
    for (;;) {
        size_t i = atomic_fetch_add(&v->next, 1);

        if (i >= v->n_jobs)
            break;
        if (!r) {
            atomic_store(&v->rep.stop, 1);
            check_job(&w->ctx, NULL, &v->jobs[i]); /* counted as skipped */
            continue;
        }
        check_job(&w->ctx, r, &v->jobs[i]);
    }
    repo_close(r);
    return NULL;
}

static int
run_jobs(struct verify *v, struct err *err)
{
    size_t n = (size_t)v->parallel < v->n_jobs ? (size_t)v->parallel : v->n_jobs;
    struct worker *w = xcalloc(n ? n : 1, sizeof(*w));
    size_t started = 0;
    int rc = 0;

    atomic_init(&v->next, 0);
    for (size_t i = 0; i < n; i++) {
        w[i].v = v;
        w[i].ctx.rep = &v->rep;
        w[i].ctx.key = v->cli->key;
        w[i].ctx.cluster = &v->cluster;
        if (pthread_create(&w[i].th, NULL, worker_main, &w[i]) != 0) {
            rc = err_set(err, ERR_INTERNAL, "could not start a thread");
            break;
        }
        started++;
    }
    if (started == 0 && n > 0) {
        free(w);
        return -1;
    }
    for (size_t i = 0; i < started; i++)
        pthread_join(w[i].th, NULL);
    free(w);
    return started == n ? 0 : rc;
}

/* ---- output ------------------------------------------------------------------------------ */

static int
cmp_problems(const void *x, const void *y)
{
    const struct problem *a = x, *b = y;
    int c = strcmp(a->object, b->object);

    if (c)
        return c;
    c = strcmp(a->kind, b->kind);
    return c ? c : strcmp(a->detail, b->detail);
}

static int
status_of(const struct report *r)
{
    bool unchecked = r->skipped > 0;

    for (size_t i = 0; i < r->n; i++) {
        if (strcmp(r->v[i].kind, PK_UNCHECKED) != 0)
            return EXIT_DAMAGED;
        unchecked = true;
    }
    return unchecked ? EXIT_UNCHECKED : EXIT_INTACT;
}

static const char *
status_word(int st)
{
    return st == EXIT_INTACT ? "intact" : st == EXIT_DAMAGED ? "damaged" : "unchecked";
}

static double
elapsed(const struct timespec *t0)
{
    struct timespec t1;

    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

static void
print_json(const struct verify *v, int st, const char *error, double secs)
{
    const struct report *r = &v->rep;
    json_t *root = json_object(), *probs = json_array(), *checked;
    char *text;

    json_object_set_new(root, "status", json_string(status_word(st)));
    json_object_set_new(root, "repo", json_string(v->arc.repo ? repo_url(v->arc.repo) : ""));
    if (error)
        json_object_set_new(root, "error", json_string(error));
    for (size_t i = 0; i < r->n; i++)
        json_array_append_new(probs, json_pack("{s:s, s:s, s:s}", "kind", r->v[i].kind, "object",
                                               r->v[i].object, "detail", r->v[i].detail));
    json_object_set_new(root, "problems", probs);
    checked = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:i, s:I, s:f}", "backups",
                        (json_int_t)r->backups, "backup_objects", (json_int_t)r->backup_objects,
                        "backup_bytes", (json_int_t)r->backup_bytes, "manifest_files",
                        (json_int_t)r->manifest_files, "wal_files", (json_int_t)r->wal_files,
                        "wal_bytes", (json_int_t)r->wal_bytes, "timelines", v->timelines, "skipped",
                        (json_int_t)r->skipped, "seconds", secs);
    json_object_set_new(root, "checked", checked);
    text = json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    printf("%s\n", text);
    free(text);
    json_decref(root);
}

static void
print_text(const struct verify *v, int st, double secs)
{
    const struct report *r = &v->rep;
    struct buf kinds = BUF_INIT;
    static const char *const order[] = {PK_MISSING_WAL,       PK_GAP,
                                        PK_MISSING_HISTORY,   PK_CORRUPT_OBJECT,
                                        PK_MISSING_OBJECT,    PK_MANIFEST_MISMATCH,
                                        PK_INCOMPLETE_BACKUP, PK_CORRUPT_CATALOG,
                                        PK_MISSING_BACKUP,    PK_WRONG_CLUSTER,
                                        PK_UNCHECKED};

    for (size_t i = 0; i < r->n; i++)
        printf("%s %s: %s\n", r->v[i].kind, r->v[i].object, r->v[i].detail);
    for (size_t k = 0; k < sizeof(order) / sizeof(order[0]); k++) {
        size_t n = 0;

        for (size_t i = 0; i < r->n; i++)
            n += strcmp(r->v[i].kind, order[k]) == 0;
        if (n)
            buf_printf(&kinds, "%s%zu %s", kinds.len ? ", " : "", n, order[k]);
    }
    printf("%s: ", status_word(st));
    if (r->n)
        printf("%zu problem%s (%s); ", r->n, r->n == 1 ? "" : "s", buf_str(&kinds));
    printf("checked %" PRIu64 " backup%s (%" PRIu64 " objects, %" PRIu64 " bytes stored, %" PRIu64
           " files against their manifests), %" PRIu64 " WAL files (%" PRIu64
           " bytes stored) on %d timeline%s",
           r->backups, r->backups == 1 ? "" : "s", r->backup_objects, r->backup_bytes,
           r->manifest_files, r->wal_files, r->wal_bytes, v->timelines,
           v->timelines == 1 ? "" : "s");
    if (r->skipped)
        printf("; %" PRIu64 " objects not read (storage failing)", r->skipped);
    printf(" in %.1f s\n", secs);
    buf_free(&kinds);
}

/* ---- main -------------------------------------------------------------------------------- */

/* 0, or -1 with err for "could not check at all" (exit 3) or a usage error (exit 1). */
static int
run(struct verify *v, struct err *err)
{
    bool found;

    if (read_options(v, err) < 0)
        return -1;
    if (cli_open_repo(v->cli, err) < 0)
        return -1;
    v->arc.repo = v->cli->repo;
    v->arc.oopts = v->cli->oopts;
    v->arc.key = v->cli->key;
    if (archive_cluster_get(&v->arc, &v->cluster, &found, err) < 0) {
        err_prefix(err, "could not read \"%s\"", ARCHIVE_CLUSTER_KEY);
        return -1;
    }
    if (!found)
        return err_set(err, ERR_NOT_FOUND, "\"%s\" is not a ferry repository: it has no \"%s\"",
                       repo_url(v->arc.repo), ARCHIVE_CLUSTER_KEY);
    if (scan_backups(v, err) < 0)
        return -1;
    if (walscan_run(&v->scan, &v->arc, v->cluster.seg_size, err) < 0) {
        if (err->kind != ERR_CORRUPT)
            return -1;
        /* a damaged history file (its key is quoted in the message): the WAL checks cannot be
         * done, the rest can */
        char object[256] = ARCHIVE_HISTORY_PREFIX;
        const char *k = strstr(err->msg, "\"" ARCHIVE_HISTORY_PREFIX);
        const char *end = k ? strchr(k + 1, '"') : NULL;

        if (end && (size_t)(end - k - 1) < sizeof(object))
            snprintf(object, sizeof(object), "%.*s", (int)(end - k - 1), k + 1);
        report_add(&v->rep, PK_CORRUPT_OBJECT, object, "%s; the WAL archive was not checked",
                   err->msg);
        err_clear(err);
    } else {
        v->has_scan = true;
        v->timelines = (int)v->scan.n_timelines;
        check_wal_listing(v);
    }
    plan_jobs(v);
    return run_jobs(v, err);
}

int
main(int argc, char **argv)
{
    struct cli cli;
    struct verify v;
    struct err err;
    struct timespec t0;
    int rc, st;

    err_clear(&err);
    signal(SIGPIPE, SIG_IGN);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    memset(&v, 0, sizeof(v));
    report_init(&v.rep);
    rc = cli_init(&cli, "ferry-verify", usage, verify_opts, argc, argv, &err);
    if (rc == 0 && !cli.done) {
        v.cli = &cli;
        rc = run(&v, &err);
    }
    if (rc < 0) {
        st = (err.kind == ERR_USAGE || err.kind == ERR_CONFIG) ? EXIT_USAGE : EXIT_UNCHECKED;
        log_err(&err);
        if (v.json && st == EXIT_UNCHECKED)
            print_json(&v, st, err.msg, elapsed(&t0));
    } else if (cli.done) {
        st = EXIT_INTACT;
    } else {
        if (v.rep.n > 1)
            qsort(v.rep.v, v.rep.n, sizeof(*v.rep.v), cmp_problems);
        st = status_of(&v.rep);
        if (v.json)
            print_json(&v, st, NULL, elapsed(&t0));
        else
            print_text(&v, st, elapsed(&t0));
    }
    for (size_t i = 0; i < v.n_bks; i++) {
        catalog_entry_free(&v.bks[i].e);
        manifest_free(&v.bks[i].m);
        pthread_mutex_destroy(&v.bks[i].lock);
    }
    free(v.bks);
    free(v.jobs);
    walscan_free(&v.scan);
    report_free(&v.rep);
    cli_free(&cli);
    return st;
}
