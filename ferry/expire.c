/* SPDX-License-Identifier: MIT */
/*
 * `ferry expire`: delete the backups a retention policy no longer keeps,
 * the WAL no kept backup needs, incomplete backups past a grace period and
 * orphaned objects. One listing of pg/ and the catalogue decide everything
 * (expire_plan_make, pure); deletion then goes in batches in an order that
 * is safe to interrupt: catalogue entries first (the backup stops being
 * complete, so nothing restores from it), then its parts, then incomplete
 * backups and orphans, then WAL and history files. A rerun plans again from
 * what is left and finishes the job.
 */
#include "expire.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "archive/archive.h"
#include "base/buf.h"
#include "base/log.h"
#include "base/xmalloc.h"
#include "cli/cli.h"
#include "format/walname.h"
#include "info.h"
#include "stream/stages.h"

/* keys per repo_delete_many call: S3 DeleteObjects takes at most 1000 */
#define EXPIRE_BATCH 1000

/* ---- retention choice (pure) -------------------------------------------------------------- */

static const struct catalog_entry *order_list;

static int
cmp_order(const void *x, const void *y)
{
    const struct catalog_entry *a = &order_list[*(const size_t *)x];
    const struct catalog_entry *b = &order_list[*(const size_t *)y];

    if (a->stop_time != b->stop_time)
        return a->stop_time < b->stop_time ? -1 : 1;
    if (a->stop_lsn != b->stop_lsn)
        return a->stop_lsn < b->stop_lsn ? -1 : 1;
    if (a->start_lsn != b->start_lsn)
        return a->start_lsn < b->start_lsn ? -1 : 1;
    return strcmp(a->id, b->id);
}

void
expire_order(size_t *order, const struct catalog_entry *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    /* qsort has no context argument in C11; this runs single-threaded */
    order_list = list;
    qsort(order, n, sizeof(*order), cmp_order);
    order_list = NULL;
}

size_t
expire_choose(bool *keep, const struct catalog_entry *list, size_t n, const struct expire_policy *p,
              time_t now)
{
    size_t *order;
    size_t keep_len = 0;

    if (n == 0)
        return 0;
    order = xcalloc(n, sizeof(*order));
    expire_order(order, list, n);
    if (p->retain_full > 0)
        keep_len = (size_t)p->retain_full < n ? (size_t)p->retain_full : n;
    if (p->has_days) {
        double cutoff = (double)now - p->retain_days * 86400.0;
        size_t anchor = n; /* the newest backup that surely ended before the cutoff */

        /* the catalogue keeps whole seconds: as ferry-restore does, a backup is known to have
         * ended by T only if stop time + 1 s <= T */
        for (size_t i = 0; i < n; i++)
            if ((double)list[order[i]].stop_time + 1.0 <= cutoff)
                anchor = i;
        if (anchor == n) /* every backup ended inside the window */
            keep_len = n;
        else if (n - anchor > keep_len)
            keep_len = n - anchor;
    }
    if (p->retain_min > 0 && keep_len < (size_t)p->retain_min)
        keep_len = (size_t)p->retain_min < n ? (size_t)p->retain_min : n;
    for (size_t i = 0; i < n; i++)
        keep[order[i]] = i >= n - keep_len;
    free(order);
    return keep_len;
}

/* ---- the plan (pure) ---------------------------------------------------------------------- */

const char *
expire_kind_name(enum expire_kind k)
{
    static const char *const names[EXPIRE_N_KINDS] = {
        "catalogue entry", "backup part", "incomplete backup", "orphan", "WAL", "history file",
    };

    return k < EXPIRE_N_KINDS ? names[k] : "?";
}

enum obj_class {
    C_KEEP = -1, /* cluster record, kept backup's entry or part, unknown catalogue JSON */
    C_SKIP = -2, /* under pg/locks/: neither kept nor deleted, not counted */
};

struct group {
    const char *id; /* points into a key; idlen bytes */
    size_t idlen;
    int64_t newest;
};

static const struct catalog_entry *
find_entry(const struct catalog_entry *list, size_t n, const char *id, size_t idlen, size_t *idx)
{
    for (size_t i = 0; i < n; i++) {
        if (strlen(list[i].id) == idlen && memcmp(list[i].id, id, idlen) == 0) {
            *idx = i;
            return &list[i];
        }
    }
    return NULL;
}

static bool
is_part(const struct catalog_entry *e, const char *key)
{
    for (size_t i = 0; i < e->n_parts; i++)
        if (strcmp(e->parts[i].key, key) == 0)
            return true;
    return false;
}

/* A WAL file stored under its own key: 0 and *w, or -1 (then it is an orphan). */
static int
wal_of_key(struct walname *w, const char *key)
{
    const char *base = strrchr(key, '/');
    struct buf b = BUF_INIT;
    struct err lerr;
    int rc = -1;

    if (!base || walname_parse(w, base + 1, &lerr) < 0)
        return -1;
    archive_wal_key(&b, w);
    if (b.len == strlen(key) && memcmp(b.data, key, b.len) == 0)
        rc = 0;
    buf_free(&b);
    return rc;
}

static struct group *
group_for(struct group **groups, size_t *n, const char *id, size_t idlen)
{
    for (size_t i = 0; i < *n; i++)
        if ((*groups)[i].idlen == idlen && memcmp((*groups)[i].id, id, idlen) == 0)
            return &(*groups)[i];
    *groups = xrealloc(*groups, (*n + 1) * sizeof(**groups));
    (*groups)[*n] = (struct group){id, idlen, INT64_MIN};
    return &(*groups)[(*n)++];
}

static int
cmp_items(const void *x, const void *y)
{
    const struct expire_item *a = x, *b = y;

    if (a->kind != b->kind)
        return a->kind < b->kind ? -1 : 1;
    return strcmp(a->key, b->key);
}

int
expire_plan_make(struct expire_plan *out, const struct catalog_entry *list, size_t n,
                 const bool *keep, const struct expire_obj *objs, size_t n_objs, uint32_t seg_size,
                 int64_t now, int64_t grace_s, struct err *err)
{
    static const char bp[] = BACKUP_PREFIX, cp[] = CATALOG_PREFIX, hp[] = ARCHIVE_HISTORY_PREFIX,
                      wp[] = ARCHIVE_WAL_PREFIX;
    int *cls = xcalloc(n_objs ? n_objs : 1, sizeof(*cls));
    struct walname *wn = xcalloc(n_objs ? n_objs : 1, sizeof(*wn));
    struct group *groups = NULL;
    size_t n_groups = 0;
    uint32_t *wal_tlis = NULL; /* timelines with WAL left after expiry */
    size_t n_wal_tlis = 0;
    int rc = -1;

    memset(out, 0, sizeof(*out));
    /* the WAL floor: the lowest start segment of a kept backup, on any timeline */
    for (size_t i = 0; i < n; i++) {
        uint64_t segno;

        if (!keep[i])
            continue;
        if (!walname_seg_size_valid(seg_size)) {
            err_set(err, ERR_CORRUPT, "invalid WAL segment size %" PRIu32, seg_size);
            goto out;
        }
        segno = list[i].start_lsn / seg_size;
        if (!out->has_wal_floor || segno < out->wal_floor)
            out->wal_floor = segno;
        if (!out->has_wal_floor || list[i].timeline < out->min_tli)
            out->min_tli = list[i].timeline;
        out->has_wal_floor = true;
    }

    /* first pass: classify; incomplete backups are grouped by ID */
    for (size_t i = 0; i < n_objs; i++) {
        const char *key = objs[i].key;
        size_t idx;

        cls[i] = EXPIRE_ORPHAN;
        if (strcmp(key, ARCHIVE_CLUSTER_KEY) == 0) {
            cls[i] = C_KEEP;
        } else if (strncmp(key, EXPIRE_LOCKS_PREFIX, sizeof(EXPIRE_LOCKS_PREFIX) - 1) == 0) {
            cls[i] = C_SKIP; /* a lock (ours while we run): never an orphan */
        } else if (strncmp(key, cp, sizeof(cp) - 1) == 0) {
            const char *name = key + sizeof(cp) - 1;
            size_t len = strlen(name);

            if (len > 5 && strcmp(name + len - 5, ".json") == 0 && !strchr(name, '/')) {
                /* catalog_list read every such entry; one named otherwise than its ID is kept */
                if (find_entry(list, n, name, len - 5, &idx) && !keep[idx])
                    cls[i] = EXPIRE_CATALOG;
                else
                    cls[i] = C_KEEP;
            }
        } else if (strncmp(key, bp, sizeof(bp) - 1) == 0) {
            const char *id = key + sizeof(bp) - 1;
            const char *slash = strchr(id, '/');
            const struct catalog_entry *e;

            if (slash && slash > id && slash[1]) {
                e = find_entry(list, n, id, (size_t)(slash - id), &idx);
                if (!e) {
                    struct group *g = group_for(&groups, &n_groups, id, (size_t)(slash - id));

                    cls[i] = EXPIRE_INCOMPLETE;
                    if (objs[i].mtime > g->newest)
                        g->newest = objs[i].mtime;
                } else if (is_part(e, key)) {
                    cls[i] = keep[idx] ? C_KEEP : EXPIRE_PART;
                }
            }
        } else if (strncmp(key, hp, sizeof(hp) - 1) == 0) {
            if (wal_of_key(&wn[i], key) == 0)
                cls[i] = EXPIRE_HISTORY;
        } else if (strncmp(key, wp, sizeof(wp) - 1) == 0) {
            if (wal_of_key(&wn[i], key) == 0)
                cls[i] = EXPIRE_WAL;
        }
    }

    /* second pass: WAL below the floor goes; the rest keeps its timeline alive */
    for (size_t i = 0; i < n_objs; i++) {
        uint64_t segno;
        bool goes = false;

        if (cls[i] != EXPIRE_WAL)
            continue;
        if (out->has_wal_floor && walname_segno(&segno, &wn[i], seg_size) == 0)
            goes = segno < out->wal_floor;
        if (!goes) {
            cls[i] = C_KEEP;
            wal_tlis = xrealloc(wal_tlis, (n_wal_tlis + 1) * sizeof(*wal_tlis));
            wal_tlis[n_wal_tlis++] = wn[i].tli;
        }
    }

    /* third pass: incomplete backups in grace, history files still reachable */
    for (size_t i = 0; i < n_objs; i++) {
        if (cls[i] == EXPIRE_INCOMPLETE) {
            const char *id = objs[i].key + sizeof(bp) - 1;
            struct group *g = group_for(&groups, &n_groups, id, (size_t)(strchr(id, '/') - id));

            if (g->newest > now - grace_s)
                cls[i] = C_KEEP;
        } else if (cls[i] == EXPIRE_HISTORY) {
            bool reachable = !out->has_wal_floor || wn[i].tli >= out->min_tli;

            for (size_t t = 0; t < n_wal_tlis && !reachable; t++)
                reachable = wal_tlis[t] == wn[i].tli;
            if (reachable)
                cls[i] = C_KEEP;
        }
    }
    for (size_t g = 0; g < n_groups; g++)
        if (groups[g].newest > now - grace_s)
            out->n_incomplete_kept++;

    out->items = xcalloc(n_objs ? n_objs : 1, sizeof(*out->items));
    for (size_t i = 0; i < n_objs; i++) {
        if (cls[i] == C_SKIP)
            continue;
        if (cls[i] == C_KEEP) {
            out->n_kept_objects++;
            out->kept_bytes += objs[i].size;
            continue;
        }
        out->items[out->n_items++] = (struct expire_item){objs[i].key, cls[i], objs[i].size};
        out->count[cls[i]]++;
        out->bytes[cls[i]] += objs[i].size;
    }
    qsort(out->items, out->n_items, sizeof(*out->items), cmp_items);
    rc = 0;
out:
    if (rc < 0)
        expire_plan_free(out);
    free(cls);
    free(wn);
    free(groups);
    free(wal_tlis);
    return rc;
}

void
expire_plan_free(struct expire_plan *p)
{
    free(p->items);
    memset(p, 0, sizeof(*p));
}

/* ---- the lock ------------------------------------------------------------------------------ */

static void
fmt_utc(char out[32], int64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (!gmtime_r(&tt, &tm) || strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, 32, "@%lld", (long long)t);
}

void
expire_lock_format(struct buf *out, const struct expire_lock *l)
{
    char when[32];
    json_t *o;
    char *text;

    fmt_utc(when, l->started);
    o = json_pack("{s:s, s:s, s:I, s:I, s:s, s:s}", "program", "ferry expire", "host", l->host,
                  "pid", (json_int_t)l->pid, "started", (json_int_t)l->started, "start_time", when,
                  "token", l->token);
    if (!o)
        abort(); /* only allocation fails: host is printable ASCII (lock_fill) */
    text = json_dumps(o, JSON_PRESERVE_ORDER | JSON_COMPACT);
    if (!text)
        abort();
    buf_printf(out, "%s\n", text);
    free(text);
    json_decref(o);
}

int
expire_lock_parse(struct expire_lock *out, const char *text, struct err *err)
{
    json_error_t jerr;
    json_t *root = json_loads(text, 0, &jerr);
    const char *host, *token;
    json_int_t pid, started;
    int rc = -1;

    memset(out, 0, sizeof(*out));
    if (!root)
        return err_set(err, ERR_CORRUPT, "lock \"%s\" is not valid JSON: %s (line %d)",
                       EXPIRE_LOCK_KEY, jerr.text, jerr.line);
    if (json_unpack_ex(root, &jerr, 0, "{s:s, s:I, s:I, s:s}", "host", &host, "pid", &pid,
                       "started", &started, "token", &token) < 0) {
        err_set(err, ERR_CORRUPT, "lock \"%s\" lacks a field: %s", EXPIRE_LOCK_KEY, jerr.text);
        goto out;
    }
    if (strlen(host) >= sizeof(out->host) || strlen(token) >= sizeof(out->token) || pid < 0) {
        err_set(err, ERR_CORRUPT, "lock \"%s\" has an invalid field", EXPIRE_LOCK_KEY);
        goto out;
    }
    snprintf(out->host, sizeof(out->host), "%s", host);
    snprintf(out->token, sizeof(out->token), "%s", token);
    out->pid = (long)pid;
    out->started = (int64_t)started;
    rc = 0;
out:
    json_decref(root);
    return rc;
}

/* "2026-11-25T18:00:00Z (12 min ago)" */
static void
fmt_since(char *out, size_t cap, int64_t t, int64_t now)
{
    char when[32], ago[48];
    int64_t age = now - t;

    fmt_utc(when, t);
    if (age < 0)
        age = 0; /* the other clock runs ahead of ours */
    if (age < 120)
        snprintf(ago, sizeof(ago), "%lld s ago", (long long)age);
    else if (age < 120 * 60)
        snprintf(ago, sizeof(ago), "%lld min ago", (long long)(age / 60));
    else
        snprintf(ago, sizeof(ago), "%.1f hours ago", (double)age / 3600.0);
    snprintf(out, cap, "%s (%s)", when, ago);
}

void
expire_lock_describe(char *out, size_t cap, const struct expire_lock *l, int64_t now)
{
    char since[96];

    fmt_since(since, sizeof(since), l->started, now);
    snprintf(out, cap, "host \"%s\", pid %ld, since %s", l->host, l->pid, since);
}

/* This run's lock: host (printable ASCII), pid, start time and a random token. */
static int
lock_fill(struct expire_lock *l, struct err *err)
{
    unsigned char rnd[16];

    memset(l, 0, sizeof(*l));
    if (gethostname(l->host, sizeof(l->host) - 1) < 0 || !l->host[0])
        snprintf(l->host, sizeof(l->host), "?");
    for (char *p = l->host; *p; p++)
        if (*p < 0x21 || *p > 0x7e || *p == '"' || *p == '\\')
            *p = '?';
    l->pid = (long)getpid();
    l->started = (int64_t)time(NULL);
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
        return err_sys(err, ERR_INTERNAL, "could not get random bytes");
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(l->token + 2 * i, 3, "%02x", rnd[i]);
    return 0;
}

/*
 * Read the lock: 0 with *readable and out filled; 0 with !*readable and
 * *mtime when it exists but cannot be decoded or parsed (why in *why);
 * -1 with ERR_NOT_FOUND when there is none, or another error.
 */
static int
lock_read(struct cli *c, struct expire_lock *out, bool *readable, int64_t *mtime, char *why,
          size_t why_cap, struct err *err)
{
    struct buf b = BUF_INIT;
    struct sink *chain = object_decode_sink_new(buf_sink_new(&b, 64 * 1024), c->key, NULL);
    struct repo_stat st;
    struct err e2;
    int rc = -1;

    *readable = false;
    *mtime = 0;
    why[0] = '\0';
    if (repo_get(c->repo, EXPIRE_LOCK_KEY, 0, 0, chain, &e2) == 0 && sink_finish(chain, &e2) == 0 &&
        expire_lock_parse(out, buf_str(&b), &e2) == 0) {
        *readable = true;
        rc = 0;
        goto out;
    }
    if (e2.kind == ERR_NOT_FOUND || (e2.kind != ERR_CORRUPT && e2.kind != ERR_KEY)) {
        *err = e2; /* gone, or the repository failed: not a verdict on the lock */
        goto out;
    }
    snprintf(why, why_cap, "%s", e2.msg);
    if (repo_stat(c->repo, EXPIRE_LOCK_KEY, &st, err) < 0)
        goto out;
    *mtime = st.mtime;
    rc = 0;
out:
    sink_free(chain);
    buf_free(&b);
    return rc;
}

static int
lock_put(struct cli *c, const struct expire_lock *mine, struct err *err)
{
    struct buf text = BUF_INIT;
    struct sink *chain = object_encode_sink_new(
        repo_put_sink_new(c->repo, EXPIRE_LOCK_KEY, REPO_PUT_IF_ABSENT), &c->oopts, NULL);
    int rc = -1;

    expire_lock_format(&text, mine);
    if (sink_write(chain, text.data, text.len, err) < 0 || sink_finish(chain, err) < 0)
        goto out;
    rc = 0;
out:
    sink_free(chain);
    buf_free(&text);
    return rc;
}

/*
 * Take the lock (conditional create). Held by another run: ERR_EXISTS naming
 * the holder, unless it is older than timeout_s: then it is deleted with a
 * warning and taken.
 */
static int
lock_acquire(struct cli *c, const struct expire_lock *mine, int64_t timeout_s, struct err *err)
{
    for (int attempt = 0; attempt < 3; attempt++) {
        struct expire_lock other;
        bool readable;
        int64_t mtime, age, now;
        char why[512], who[720];

        if (lock_put(c, mine, err) == 0)
            return 0;
        if (err->kind != ERR_EXISTS) {
            err_prefix(err, "could not take the lock \"%s\"", EXPIRE_LOCK_KEY);
            return -1;
        }
        if (lock_read(c, &other, &readable, &mtime, why, sizeof(why), err) < 0) {
            if (err->kind == ERR_NOT_FOUND)
                continue; /* released meanwhile */
            err_prefix(err, "could not read the lock \"%s\"", EXPIRE_LOCK_KEY);
            return -1;
        }
        now = (int64_t)time(NULL);
        if (readable) {
            expire_lock_describe(who, sizeof(who), &other, now);
            age = now - other.started;
        } else {
            char since[96];

            fmt_since(since, sizeof(since), mtime, now);
            snprintf(who, sizeof(who), "holder unknown (%s), written %s", why, since);
            age = now - mtime;
        }
        if (age < 0)
            age = 0; /* the holder's clock runs ahead of ours */
        if (age < timeout_s) {
            return err_set(err, ERR_EXISTS,
                           "another ferry expire holds the lock \"%s\": %s; it is taken over "
                           "once older than --lock-timeout (%.4g hours)",
                           EXPIRE_LOCK_KEY, who, (double)timeout_s / 3600.0);
        }
        log_warning("taking over the lock \"%s\", older than --lock-timeout (%.4g hours): %s",
                    EXPIRE_LOCK_KEY, (double)timeout_s / 3600.0, who);
        if (repo_delete(c->repo, EXPIRE_LOCK_KEY, err) < 0) {
            err_prefix(err, "could not take over the lock \"%s\"", EXPIRE_LOCK_KEY);
            return -1;
        }
    }
    return err_set(err, ERR_EXISTS, "could not take the lock \"%s\": other runs keep taking it",
                   EXPIRE_LOCK_KEY);
}

/* Before deleting: the lock must still be ours (a run that took it over goes on instead). */
static int
lock_check(struct cli *c, const struct expire_lock *mine, struct err *err)
{
    struct expire_lock other;
    bool readable;
    int64_t mtime;
    char why[512], who[720];

    if (lock_read(c, &other, &readable, &mtime, why, sizeof(why), err) < 0) {
        if (err->kind == ERR_NOT_FOUND)
            return err_set(err, ERR_EXISTS, "the lock \"%s\" was removed meanwhile: stopping",
                           EXPIRE_LOCK_KEY);
        err_prefix(err, "could not read the lock \"%s\"", EXPIRE_LOCK_KEY);
        return -1;
    }
    if (readable && strcmp(other.token, mine->token) == 0)
        return 0;
    if (readable)
        expire_lock_describe(who, sizeof(who), &other, (int64_t)time(NULL));
    else
        snprintf(who, sizeof(who), "an unknown holder (%s)", why);
    return err_set(err, ERR_EXISTS, "the lock \"%s\" was taken over by %s meanwhile: stopping",
                   EXPIRE_LOCK_KEY, who);
}

/* Remove the lock if it is still ours. */
static int
lock_release(struct cli *c, const struct expire_lock *mine, struct err *err)
{
    struct expire_lock other;
    bool readable;
    int64_t mtime;
    char why[512];

    if (lock_read(c, &other, &readable, &mtime, why, sizeof(why), err) < 0) {
        if (err->kind == ERR_NOT_FOUND)
            return 0;
        err_prefix(err, "could not release the lock \"%s\"", EXPIRE_LOCK_KEY);
        return -1;
    }
    if (!readable || strcmp(other.token, mine->token) != 0)
        return 0; /* another run's now */
    if (repo_delete(c->repo, EXPIRE_LOCK_KEY, err) < 0) {
        err_prefix(err, "could not release the lock \"%s\"", EXPIRE_LOCK_KEY);
        return -1;
    }
    return 0;
}

/* ---- signals: SIGINT, SIGTERM and SIGHUP stop the run between two steps ------------------- */

static volatile sig_atomic_t got_signal;

static void
on_signal(int sig)
{
    got_signal = sig;
}

/* The first signal asks the run to stop (the lock is released); a second one kills. SIGPIPE is
 * ignored. */
static void
signals_catch(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    /* SA_RESTART: reads and writes go on; the run stops at the next step (poll and sleeps do
     * return early) */
    sa.sa_flags = SA_RESETHAND | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    /* a closed stdout (`ferry expire | head`) is a write error, which releases the lock, not a
     * death that leaves it */
    sa.sa_handler = SIG_IGN;
    sa.sa_flags = 0;
    sigaction(SIGPIPE, &sa, NULL);
}

static int
interrupted(struct err *err)
{
    int sig = got_signal;

    if (!sig)
        return 0;
    return err_set(err, ERR_IO, "interrupted by %s: stopped before the next step",
                   sig == SIGINT    ? "SIGINT"
                   : sig == SIGTERM ? "SIGTERM"
                                    : "SIGHUP");
}

/* ---- the command ---------------------------------------------------------------------------- */

#define CMD_ONLY (OPT_NO_ENV | OPT_NO_FILE)

static const struct opt_def expire_opts[] = {
    {"retain-full", 0, OPT_INT, 0, "N", "keep the newest N complete backups"},
    {"retain-days", 0, OPT_STRING, 0, "D",
     "keep every point of the last D days recoverable (fractions allowed: 0.5 = 12 hours)"},
    {"retain-min", 0, OPT_INT, 0, "N", "never keep fewer than N backups (default 1)"},
    {"incomplete-grace", 0, OPT_STRING, 0, "HOURS",
     "delete incomplete backups whose newest object is older than HOURS, and incomplete writes "
     "(temporary files, unfinished uploads) older than HOURS (default 24)"},
    {"lock-timeout", 0, OPT_STRING, 0, "HOURS",
     "take over the lock of another run older than HOURS (default 6)"},
    {"dry-run", 'n', OPT_BOOL, CMD_ONLY, NULL, "print what would be deleted; delete nothing"},
    OPT_END,
};

static const char usage[] =
    "usage: ferry expire --retain-full N | --retain-days D [OPTIONS]\n"
    "\n"
    "Delete what the retention policy no longer keeps: complete backups beyond it (the\n"
    "newest N, or every point of the last D days recoverable: the backups that ended in\n"
    "the window and the newest one before it; with both, whichever keeps more; never fewer\n"
    "than --retain-min), WAL below the lowest start segment of the kept backups (on every\n"
    "timeline), history files of timelines no kept backup reaches, incomplete backups (no "
    "catalogue\n"
    "entry) older than --incomplete-grace, orphaned objects under pg/, and what killed\n"
    "writers left under pg/ (temporary files, unfinished multipart uploads) older than\n"
    "--incomplete-grace. Backups are ordered by the catalogue's stop times and LSNs, never\n"
    "by object names or dates.\n"
    "\n"
    "Each deleted key is printed on stdout, one a line, in deletion order: catalogue\n"
    "entries first (the backup is no longer complete), then their parts, incomplete\n"
    "backups, orphans, WAL, history files, incomplete writes (an unfinished upload as\n"
    "KEY?uploadId=ID); a summary goes to stderr. With --dry-run the same list is printed\n"
    "and nothing is deleted. Interrupted, a rerun finishes the job.\n"
    "\n"
    "One run at a time: a run holds the lock pg/locks/expire (conditional create) and\n"
    "removes it at the end, also after an error or SIGINT/SIGTERM; a second run fails\n"
    "naming the holder, unless the lock is older than --lock-timeout (then it is taken\n"
    "over with a warning). --dry-run takes no lock.\n"
    "\n"
    "Exit status: 0 done, 1 error (also: the lock is held), 2 usage or configuration error.";

/* A non-negative decimal number ("7", "0.5"); ERR_USAGE naming the option. */
static int
parse_decimal(double *out, const struct opts *o, const char *name, double dflt, struct err *err)
{
    const char *s = opts_get(o, name);
    char *end;
    double v;

    *out = dflt;
    if (!s)
        return 0;
    errno = 0;
    v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < 0 || v > 1e6 ||
        strspn(s, "0123456789.") != strlen(s))
        return err_set(err, ERR_USAGE, "invalid --%s \"%s\": use a non-negative number", name, s);
    *out = v;
    return 0;
}

struct collect {
    struct expire_obj *v;
    size_t n, cap;
};

static int
collect_cb(const struct repo_entry *e, void *arg)
{
    struct collect *c = arg;

    if (e->is_prefix)
        return 0;
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 256;
        c->v = xrealloc(c->v, c->cap * sizeof(*c->v));
    }
    c->v[c->n++] = (struct expire_obj){xstrdup(e->key), e->size, e->mtime};
    return 0;
}

/* Incomplete writes under pg/: those started at or before cutoff go, the others are counted. */
struct writes {
    struct repo_incomplete *v; /* key and upload_id owned */
    size_t n, cap;
    size_t n_young;
    int64_t cutoff;
    bool listed; /* false: the repository cannot list them (warned) */
};

static int
writes_cb(const struct repo_incomplete *w, void *arg)
{
    struct writes *c = arg;

    if (w->started > c->cutoff) {
        c->n_young++; /* in progress, or not old enough to tell */
        return 0;
    }
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16;
        c->v = xrealloc(c->v, c->cap * sizeof(*c->v));
    }
    c->v[c->n++] = (struct repo_incomplete){
        xstrdup(w->key), w->upload_id ? xstrdup(w->upload_id) : NULL, w->started};
    return 0;
}

static void
writes_free(struct writes *w)
{
    for (size_t i = 0; i < w->n; i++) {
        free((char *)w->v[i].key);
        free((char *)w->v[i].upload_id);
    }
    free(w->v);
}

static void
print_write(const struct repo_incomplete *w)
{
    if (w->upload_id)
        printf("%s?uploadId=%s\n", w->key, w->upload_id);
    else
        printf("%s\n", w->key);
}

static void
summary(const struct expire_plan *pl, const struct catalog_entry *list, size_t n, const bool *keep,
        size_t n_kept, uint32_t seg_size, bool dry_run, size_t n_done, const struct writes *wr,
        size_t n_writes_done)
{
    char b1[32], b2[32], wal[WALNAME_MAX];
    uint64_t total = 0;
    size_t n_exp = n - n_kept;
    size_t *order = xcalloc(n ? n : 1, sizeof(*order));
    const char *first_kept = NULL, *last_kept = NULL;

    for (int k = 0; k < EXPIRE_N_KINDS; k++)
        total += pl->bytes[k];
    expire_order(order, list, n);
    for (size_t i = 0; i < n; i++) {
        if (!keep[order[i]])
            continue;
        if (!first_kept)
            first_kept = list[order[i]].id;
        last_kept = list[order[i]].id;
    }
    info_fmt_bytes(b1, total);
    info_fmt_bytes(b2, pl->kept_bytes);
    fprintf(stderr,
            "%s %zu of %zu objects (%s): %zu expired backup%s (%zu catalogue entr%s, %zu "
            "parts), %zu objects of incomplete backups, %zu orphans, %zu WAL files, %zu history "
            "files",
            dry_run ? "would delete" : "deleted", dry_run ? pl->n_items : n_done, pl->n_items, b1,
            n_exp, n_exp == 1 ? "" : "s", pl->count[EXPIRE_CATALOG],
            pl->count[EXPIRE_CATALOG] == 1 ? "y" : "ies", pl->count[EXPIRE_PART],
            pl->count[EXPIRE_INCOMPLETE], pl->count[EXPIRE_ORPHAN], pl->count[EXPIRE_WAL],
            pl->count[EXPIRE_HISTORY]);
    if (wr->listed)
        fprintf(stderr, "; %s %zu of %zu incomplete write%s\n",
                dry_run ? "would remove" : "removed", dry_run ? wr->n : n_writes_done, wr->n,
                wr->n == 1 ? "" : "s");
    else
        fprintf(stderr, "; incomplete writes not looked for\n");
    if (n_kept)
        fprintf(stderr, "keeping %zu backup%s (%s to %s)", n_kept, n_kept == 1 ? "" : "s",
                first_kept, last_kept);
    else
        fprintf(stderr, "keeping no backup (the catalogue is empty)");
    if (pl->has_wal_floor) {
        struct walname w;

        walname_from_segno(&w, pl->min_tli, pl->wal_floor, seg_size);
        walname_format(wal, &w);
        fprintf(stderr, ", WAL from segment %s on (on every timeline)", wal);
    } else {
        fprintf(stderr, ", all WAL");
    }
    fprintf(stderr, ", %zu incomplete backup%s in the grace period", pl->n_incomplete_kept,
            pl->n_incomplete_kept == 1 ? "" : "s");
    if (wr->listed)
        fprintf(stderr, ", %zu incomplete write%s in the grace period", wr->n_young,
                wr->n_young == 1 ? "" : "s");
    fprintf(stderr, "; %zu objects (%s) stay\n", pl->n_kept_objects, b2);
    free(order);
}

int
expire_main(int argc, char **argv)
{
    struct cli c;
    struct err err;
    struct archive a;
    struct expire_policy pol = {0, false, 0, 1};
    struct catalog_entry *list = NULL;
    size_t n = 0, n_kept = 0, n_done = 0, n_writes_done = 0;
    bool *keep = NULL, dry_run, found = false, locked = false;
    struct collect col = {NULL, 0, 0};
    struct writes wr;
    struct expire_plan plan;
    struct cluster_info ci;
    struct expire_lock mine;
    double grace_h = 24, lock_h = 6;
    uint32_t seg_size = 0;
    int64_t now;
    long v;
    int rc = 1;

    memset(&plan, 0, sizeof(plan));
    memset(&wr, 0, sizeof(wr));
    err_clear(&err);
    if (cli_init(&c, "ferry-expire", usage, expire_opts, argc, argv, &err) < 0) {
        log_init("ferry expire");
        goto out;
    }
    log_init("ferry expire");
    if (c.done) {
        rc = 0;
        goto out;
    }
    dry_run = opts_get_bool(c.opts, "dry-run", false);
    if (c.n_args > 0) {
        err_set(&err, ERR_USAGE, "unexpected argument \"%s\" (see --help)", c.args[0]);
        goto out;
    }
    if (opts_get_int(c.opts, "retain-full", 0, 1, 1000000, &v, &err) < 0)
        goto out;
    pol.retain_full = v;
    if (opts_get_int(c.opts, "retain-min", 1, 0, 1000000, &v, &err) < 0)
        goto out;
    pol.retain_min = v;
    pol.has_days = opts_get(c.opts, "retain-days") != NULL;
    if (parse_decimal(&pol.retain_days, c.opts, "retain-days", 0, &err) < 0 ||
        parse_decimal(&grace_h, c.opts, "incomplete-grace", 24, &err) < 0 ||
        parse_decimal(&lock_h, c.opts, "lock-timeout", 6, &err) < 0)
        goto out;
    if (!pol.retain_full && !pol.has_days) {
        err_set(&err, ERR_USAGE,
                "no retention policy given: use --retain-full N and/or --retain-days D");
        goto out;
    }
    if (cli_open_repo(&c, &err) < 0)
        goto out;
    a = (struct archive){c.repo, c.oopts, c.key};

    /* one run at a time: the lock first, so that everything below is planned under it */
    if (!dry_run) {
        signals_catch();
        if (lock_fill(&mine, &err) < 0 ||
            lock_acquire(&c, &mine, (int64_t)(lock_h * 3600.0), &err) < 0)
            goto out;
        locked = true;
        if (interrupted(&err) < 0)
            goto out;
    }

    if (catalog_list(&a, &list, &n, &err) < 0)
        goto out;
    if (archive_cluster_get(&a, &ci, &found, &err) < 0)
        goto out;
    seg_size = found ? ci.seg_size : n ? list[0].seg_size : 0;
    for (size_t i = 0; i < n; i++) {
        if (list[i].seg_size != seg_size) {
            err_set(&err, ERR_CORRUPT,
                    "backup \"%s\" has WAL segments of %" PRIu32 " bytes, the repository %" PRIu32,
                    list[i].id, list[i].seg_size, seg_size);
            goto out;
        }
    }
    /* one LIST of pg/, after the catalogue: a backup completing meanwhile is "incomplete" here,
     * and in its grace period */
    if (repo_list(c.repo, "pg/", NULL, collect_cb, &col, &err) < 0)
        goto out;
    now = (int64_t)time(NULL);
    /* what killed writers left (temporary files, unfinished uploads); a write in progress is
     * younger than the grace period */
    wr.cutoff = now - (int64_t)(grace_h * 3600.0);
    wr.listed = true;
    if (repo_list_incomplete(c.repo, "pg/", writes_cb, &wr, &err) < 0) {
        /* an optional step: a server without it, or a policy without
         * s3:ListBucketMultipartUploads (the rest worked with these credentials), warns */
        if (!repo_err_not_implemented(&err) && err.kind != ERR_AUTH)
            goto out;
        log_warning("%s, so none are removed", err.msg);
        err_clear(&err);
        writes_free(&wr);
        memset(&wr, 0, sizeof(wr));
    }
    if (interrupted(&err) < 0)
        goto out;
    keep = xcalloc(n ? n : 1, sizeof(*keep));
    n_kept = expire_choose(keep, list, n, &pol, (time_t)now);
    if (expire_plan_make(&plan, list, n, keep, col.v, col.n, seg_size, now,
                         (int64_t)(grace_h * 3600.0), &err) < 0)
        goto out;

    if (dry_run) {
        for (size_t i = 0; i < plan.n_items; i++)
            printf("%s\n", plan.items[i].key);
        for (size_t i = 0; i < wr.n; i++)
            print_write(&wr.v[i]);
    } else {
        /* kind by kind, batch by batch; a failed batch stops everything after it */
        for (size_t i = 0; i < plan.n_items;) {
            size_t j = i;
            const char **keys;

            if (interrupted(&err) < 0 || lock_check(&c, &mine, &err) < 0)
                goto out;
            while (j < plan.n_items && j - i < EXPIRE_BATCH &&
                   plan.items[j].kind == plan.items[i].kind)
                j++;
            keys = xcalloc(j - i, sizeof(*keys));
            for (size_t k = i; k < j; k++)
                keys[k - i] = plan.items[k].key;
            if (repo_delete_many(c.repo, keys, j - i, &err) < 0) {
                free(keys);
                err_prefix(&err, "could not delete %s objects",
                           expire_kind_name(plan.items[i].kind));
                goto out;
            }
            free(keys);
            for (size_t k = i; k < j; k++)
                printf("%s\n", plan.items[k].key);
            if (fflush(stdout) != 0) {
                err_sys(&err, ERR_IO, "could not write to stdout");
                goto out;
            }
            n_done = j;
            i = j;
        }
        if (wr.n > 0 && (interrupted(&err) < 0 || lock_check(&c, &mine, &err) < 0))
            goto out;
        for (size_t i = 0; i < wr.n; i++) {
            if (interrupted(&err) < 0)
                goto out;
            if (repo_abort_incomplete(c.repo, &wr.v[i], &err) < 0) {
                err_prefix(&err, "could not remove an incomplete write");
                goto out;
            }
            print_write(&wr.v[i]);
            if (fflush(stdout) != 0) {
                err_sys(&err, ERR_IO, "could not write to stdout");
                goto out;
            }
            n_writes_done = i + 1;
        }
    }
    if (fflush(stdout) != 0) {
        err_sys(&err, ERR_IO, "could not write to stdout");
        goto out;
    }
    if (locked) {
        locked = false;
        if (lock_release(&c, &mine, &err) < 0)
            goto out;
    }
    summary(&plan, list, n, keep, n_kept, seg_size, dry_run, n_done, &wr, n_writes_done);
    rc = 0;
out:
    if (locked) {
        struct err lerr;

        /* after an error or a signal: the lock goes too (the first error is the one shown) */
        err_clear(&lerr);
        if (lock_release(&c, &mine, &lerr) < 0)
            log_warning("%s", lerr.msg);
    }
    if (rc != 0 && err.kind != ERR_NONE) {
        log_err(&err);
        if (err.kind == ERR_USAGE || err.kind == ERR_CONFIG)
            rc = 2;
    }
    expire_plan_free(&plan);
    writes_free(&wr);
    for (size_t i = 0; i < col.n; i++)
        free((char *)col.v[i].key);
    free(col.v);
    free(keep);
    catalog_list_free(list, n);
    cli_free(&c);
    return rc;
}
