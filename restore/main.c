/* SPDX-License-Identifier: MIT */
/*
 * ferry-restore: point-in-time restore of a PostgreSQL base backup. Picks
 * the newest complete backup (by the catalogue's LSNs and times) that ends
 * before the recovery target on the right timeline, downloads and unpacks
 * its tar parts in parallel into an empty data directory (extract.c),
 * verifies every file against the backup manifest, and writes the recovery
 * settings (restore_command = ferry-wal-fetch with the same repository
 * options). global/pg_control is written last, after everything else is
 * verified and synced: a directory without it is never taken for a
 * restored cluster, and on failure everything restored is removed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "archive/archive.h"
#include "archive/catalog.h"
#include "base/log.h"
#include "base/xmalloc.h"
#include "cli/cli.h"
#include "extract.h"
#include "format/history.h"
#include "format/manifest.h"
#include "stream/stages.h"

static const char usage[] =
    "usage: ferry-restore -D DIR [OPTIONS]\n"
    "\n"
    "Restore a PostgreSQL base backup from the repository into DIR and set up archive\n"
    "recovery to a target: the newest complete backup that ends before the target on\n"
    "the target timeline is chosen (by the catalogue's LSNs and times), or --backup ID.\n"
    "Its parts are downloaded in parallel, verified (object checksums, the catalogue's\n"
    "sha256, every file's size and checksum against backup_manifest) and unpacked into\n"
    "DIR, which must be empty (--force replaces its contents). Tablespaces go to their\n"
    "original locations or --tablespace OID=DIR, which must be empty even with --force\n"
    "(it may belong to a live cluster on this host). global/pg_control is written last;\n"
    "on failure everything restored is removed.\n"
    "\n"
    "Recovery settings are appended to DIR/postgresql.auto.conf: restore_command runs\n"
    "ferry-wal-fetch with the repository options given here (--repo, --config, --s3-*;\n"
    "never a secret: give secrets to the server through a config file or its\n"
    "environment), the recovery_target_* settings, and recovery.signal (standby.signal\n"
    "with --standby) is created. Start the server to recover.\n"
    "\n"
    "Targets (at most one; default latest = the end of the archive):\n"
    "  --target-time '2026-11-25 14:30:00+00'  (a time zone is required)\n"
    "  --target-lsn 0/3000028, --target-xid 1234, --target-name RESTORE_POINT,\n"
    "  --target immediate (stop as soon as the backup is consistent) or latest\n"
    "\n"
    "Exit status: 0 restored (or plan printed), 1 failure (one line on stderr).";

static const struct opt_def restore_opts[] = {
    {"pgdata", 'D', OPT_STRING, OPT_NO_FILE, "DIR",
     "data directory to restore into (required; created if missing, must be empty)"},
    {"target-time", 0, OPT_STRING, OPT_NO_FILE | OPT_NO_ENV, "TIME",
     "recover up to this time (with a time zone: +00, Z, +02:00)"},
    {"target-lsn", 0, OPT_STRING, OPT_NO_FILE | OPT_NO_ENV, "LSN", "recover up to this LSN"},
    {"target-xid", 0, OPT_STRING, OPT_NO_FILE | OPT_NO_ENV, "XID",
     "recover up to the commit of this transaction"},
    {"target-name", 0, OPT_STRING, OPT_NO_FILE | OPT_NO_ENV, "NAME",
     "recover up to this restore point (pg_create_restore_point)"},
    {"target", 0, OPT_STRING, OPT_NO_FILE | OPT_NO_ENV, "WHICH",
     "immediate (end at consistency) or latest (default: the end of the archive)"},
    {"target-timeline", 0, OPT_STRING, OPT_NO_FILE | OPT_NO_ENV, "TLI",
     "timeline to recover along: a number, current or latest (default latest)"},
    {"target-action", 0, OPT_STRING, OPT_NO_FILE | OPT_NO_ENV, "ACTION",
     "at the target: promote, pause or shutdown (default: PostgreSQL's, pause)"},
    {"target-exclusive", 0, OPT_BOOL, OPT_NO_FILE | OPT_NO_ENV, NULL,
     "stop just before the target (time, lsn, xid) instead of just after it"},
    {"backup", 0, OPT_STRING, OPT_NO_FILE | OPT_NO_ENV, "ID",
     "restore this backup (its ID, e.g. 20261125T143000Z) instead of choosing one"},
    {"force", 0, OPT_BOOL, OPT_NO_FILE | OPT_NO_ENV, NULL,
     "allow a non-empty DIR: its contents are removed first (never a tablespace's)"},
    {"tablespace", 0, OPT_STRING, OPT_NO_FILE | OPT_NO_ENV | OPT_REPEAT, "OID=DIR",
     "restore tablespace OID into DIR (repeatable, or comma-separated)"},
    {"standby", 0, OPT_BOOL, OPT_NO_FILE | OPT_NO_ENV, NULL,
     "create standby.signal instead of recovery.signal"},
    {"archive-mode", 0, OPT_STRING, OPT_NO_FILE | OPT_NO_ENV, "MODE",
     "preserve (default: keep the backup's archive_mode) or off (the copy never archives)"},
    {"dry-run", 0, OPT_BOOL, OPT_NO_FILE | OPT_NO_ENV, NULL,
     "print the plan (backup and why, WAL range, bytes to fetch) and change nothing"},
    {"json", 0, OPT_BOOL, OPT_NO_FILE | OPT_NO_ENV, NULL, "print the plan or the result as JSON"},
    {"wal-fetch", 0, OPT_STRING, 0, "FILE",
     "ferry-wal-fetch for restore_command (default: the one beside ferry-restore)"},
    {"direct-io", 0, OPT_STRING, 0, "MODE",
     "auto (default: write large files with O_DIRECT where the filesystem takes it, "
     "bypassing the page cache) or off"},
    OPT_END,
};

enum target_kind { T_LATEST, T_IMMEDIATE, T_TIME, T_LSN, T_XID, T_NAME };
enum tl_kind { TL_LATEST, TL_CURRENT, TL_NUMBER };

struct tspace {
    uint32_t oid;
    char *from; /* location in the catalogue */
    char *dir;  /* where it goes */
    int fd;
    bool created;
};

struct restore {
    struct cli *cli;
    struct archive arc;
    const char *pgdata;
    enum target_kind tkind;
    const char *tvalue; /* as given, for postgresql.auto.conf */
    double ttime;
    uint64_t tlsn;
    enum tl_kind tlkind;
    uint32_t tli; /* TL_NUMBER, or the newest for TL_LATEST */
    const char *action;
    bool exclusive, force, standby, dry_run, json, archive_off;
    /* the choice */
    struct catalog_entry *list;
    size_t n_list;
    struct catalog_entry chosen;
    bool has_chosen;
    char why[512];
    struct history hist;
    bool has_hist;
    struct tspace *ts;
    size_t n_ts;
    /* the data directory */
    int dir_fd;
    bool dir_created;
    bool dir_nonempty;
    uid_t uid;
    gid_t gid;
    bool do_chown;
    bool direct_io;
    bool touched; /* something was written: clean up on failure */
};

/* ---- small helpers ------------------------------------------------------------------------ */

static void
fmt_time(char out[40], time_t t)
{
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(out, 40, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

static void
fmt_ftime(char out[48], double t)
{
    time_t s = (time_t)t;
    long us = (long)((t - (double)s) * 1e6 + 0.5);
    struct tm tm;
    char base[24];

    if (us >= 1000000) {
        s++;
        us -= 1000000;
    }
    gmtime_r(&s, &tm);
    strftime(base, sizeof(base), "%Y-%m-%d %H:%M:%S", &tm);
    us %= 1000000;
    if (us)
        snprintf(out, 48, "%s.%06ld UTC", base, us);
    else
        snprintf(out, 48, "%s UTC", base);
}

static int
digits(const char **p, int n, int *out)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if ((*p)[i] < '0' || (*p)[i] > '9')
            return -1;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

/*
 * "YYYY-MM-DD HH:MM[:SS[.frac]]" (or T between) and a zone: Z, UTC, GMT,
 * +HH, +HHMM, +HH:MM (or -). PostgreSQL would read a time without a zone in
 * the restored server's time zone, which ferry cannot know: refused.
 */
static int
parse_time(const char *s, double *out, struct err *err)
{
    const char *p = s;
    struct tm tm;
    int y, mo, d, h, mi, sec = 0, zh = 0, zm = 0, sign = 1;
    double frac = 0, scale = 0.1;
    time_t t;

    memset(&tm, 0, sizeof(tm));
    if (digits(&p, 4, &y) < 0 || *p++ != '-' || digits(&p, 2, &mo) < 0 || *p++ != '-' ||
        digits(&p, 2, &d) < 0 || (*p != ' ' && *p != 'T') || (p++, digits(&p, 2, &h) < 0) ||
        *p++ != ':' || digits(&p, 2, &mi) < 0)
        goto bad;
    if (*p == ':') {
        p++;
        if (digits(&p, 2, &sec) < 0)
            goto bad;
        if (*p == '.') {
            p++;
            if (*p < '0' || *p > '9')
                goto bad;
            while (*p >= '0' && *p <= '9') {
                frac += (*p - '0') * scale;
                scale /= 10;
                p++;
            }
        }
    }
    while (*p == ' ')
        p++;
    if (strcmp(p, "Z") == 0 || strcmp(p, "UTC") == 0 || strcmp(p, "GMT") == 0) {
        p += strlen(p);
    } else if (*p == '+' || *p == '-') {
        sign = *p == '-' ? -1 : 1;
        p++;
        if (digits(&p, 2, &zh) < 0)
            goto bad;
        if (*p == ':')
            p++;
        if (*p && digits(&p, 2, &zm) < 0)
            goto bad;
    } else if (!*p) {
        return err_set(err, ERR_USAGE,
                       "--target-time \"%s\" has no time zone: add one (+00, Z, +02:00) so that "
                       "ferry and PostgreSQL read it alike",
                       s);
    }
    if (*p || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 || zh > 15 ||
        zm > 59)
        goto bad;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    t = timegm(&tm);
    *out = (double)t - sign * (zh * 3600 + zm * 60) + frac;
    return 0;
bad:
    return err_set(err, ERR_USAGE,
                   "invalid --target-time \"%s\": use YYYY-MM-DD HH:MM:SS[.ffffff]+ZZ", s);
}

static int
parse_u32(const char *s, uint32_t *out)
{
    char *end;
    unsigned long v;

    if (!*s || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno || *end || v == 0 || v > UINT32_MAX)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

/* ---- options ------------------------------------------------------------------------------ */

static int
read_options(struct restore *r, struct err *err)
{
    const struct opts *o = r->cli->opts;
    static const char *const tnames[] = {"target-time", "target-lsn", "target-xid", "target-name",
                                         "target"};
    const char *given = NULL;
    const char *s;

    r->pgdata = opts_get(o, "pgdata");
    if (!r->pgdata || !*r->pgdata)
        return err_set(err, ERR_USAGE, "no data directory given: use -D DIR");
    if (r->cli->n_args > 0)
        return err_set(err, ERR_USAGE, "unexpected argument \"%s\"", r->cli->args[0]);
    for (size_t i = 0; i < 5; i++) {
        if (!opts_get(o, tnames[i]))
            continue;
        if (given)
            return err_set(err, ERR_USAGE, "--%s and --%s: give at most one recovery target", given,
                           tnames[i]);
        given = tnames[i];
    }
    r->tkind = T_LATEST;
    if ((s = opts_get(o, "target-time"))) {
        r->tkind = T_TIME;
        if (parse_time(s, &r->ttime, err) < 0)
            return -1;
    } else if ((s = opts_get(o, "target-lsn"))) {
        r->tkind = T_LSN;
        if (walname_lsn_parse(&r->tlsn, s, err) < 0)
            return err_set(err, ERR_USAGE, "invalid --target-lsn \"%s\": use X/X in hex", s);
    } else if ((s = opts_get(o, "target-xid"))) {
        uint32_t x;

        r->tkind = T_XID;
        if (parse_u32(s, &x) < 0)
            return err_set(err, ERR_USAGE, "invalid --target-xid \"%s\": use a transaction id", s);
    } else if ((s = opts_get(o, "target-name"))) {
        r->tkind = T_NAME;
        if (!*s || strlen(s) >= 64)
            return err_set(err, ERR_USAGE, "invalid --target-name: 1 to 63 bytes");
    } else if ((s = opts_get(o, "target"))) {
        if (strcmp(s, "immediate") == 0)
            r->tkind = T_IMMEDIATE;
        else if (strcmp(s, "latest") != 0)
            return err_set(err, ERR_USAGE, "invalid --target \"%s\": use immediate or latest", s);
    }
    r->tvalue = s;
    r->tlkind = TL_LATEST;
    if ((s = opts_get(o, "target-timeline"))) {
        if (strcmp(s, "current") == 0)
            r->tlkind = TL_CURRENT;
        else if (strcmp(s, "latest") == 0)
            r->tlkind = TL_LATEST;
        else if (parse_u32(s, &r->tli) == 0)
            r->tlkind = TL_NUMBER;
        else
            return err_set(err, ERR_USAGE,
                           "invalid --target-timeline \"%s\": use a number, current or latest", s);
    }
    r->action = opts_get(o, "target-action");
    if (r->action && strcmp(r->action, "promote") != 0 && strcmp(r->action, "pause") != 0 &&
        strcmp(r->action, "shutdown") != 0)
        return err_set(err, ERR_USAGE,
                       "invalid --target-action \"%s\": use promote, pause or shutdown", r->action);
    if (r->action && (r->tkind == T_LATEST))
        return err_set(err, ERR_USAGE, "--target-action needs a recovery target");
    r->exclusive = opts_get_bool(o, "target-exclusive", false);
    if (r->exclusive && (r->tkind == T_LATEST || r->tkind == T_IMMEDIATE || r->tkind == T_NAME))
        return err_set(err, ERR_USAGE,
                       "--target-exclusive needs --target-time, --target-lsn or --target-xid");
    r->force = opts_get_bool(o, "force", false);
    r->standby = opts_get_bool(o, "standby", false);
    r->dry_run = opts_get_bool(o, "dry-run", false);
    r->json = opts_get_bool(o, "json", false);
    s = opts_get(o, "archive-mode");
    if (s && strcmp(s, "off") != 0 && strcmp(s, "preserve") != 0)
        return err_set(err, ERR_USAGE, "invalid --archive-mode \"%s\": use off or preserve", s);
    r->archive_off = s && strcmp(s, "off") == 0;
    s = opts_get(o, "direct-io");
    if (s && strcmp(s, "off") != 0 && strcmp(s, "auto") != 0)
        return err_set(err, ERR_USAGE, "invalid --direct-io \"%s\": use auto or off", s);
    r->direct_io = !(s && strcmp(s, "off") == 0);
    return 0;
}

/* ---- choosing the backup ------------------------------------------------------------------ */

struct tli_scan {
    uint32_t max;
};

static int
history_cb(const struct repo_entry *e, void *arg)
{
    struct tli_scan *s = arg;
    const char *name = strrchr(e->key, '/');
    uint32_t tli = 0;

    name = name ? name + 1 : e->key;
    if (strlen(name) == 16 && strcmp(name + 8, ".history") == 0 &&
        strspn(name, "0123456789ABCDEF") == 8) {
        for (int i = 0; i < 8; i++)
            tli = tli * 16 + (uint32_t)(name[i] <= '9' ? name[i] - '0' : name[i] - 'A' + 10);
        if (tli > s->max)
            s->max = tli;
    }
    return 0;
}

static int
load_history(struct restore *r, uint32_t tli, struct err *err)
{
    char key[64];
    char *text = NULL;
    size_t len = 0;
    struct buf b = BUF_INIT;
    struct sink *chain;
    int rc = -1;

    if (tli <= 1)
        return 0;
    snprintf(key, sizeof(key), "%s%08X.history", ARCHIVE_HISTORY_PREFIX, tli);
    chain = object_decode_sink_new(buf_sink_new(&b, 16u << 20), r->cli->key, NULL);
    if (repo_get(r->cli->repo, key, 0, 0, chain, err) < 0 || sink_finish(chain, err) < 0) {
        if (err->kind == ERR_NOT_FOUND)
            err_set(err, ERR_NOT_FOUND, "timeline %u has no history file \"%s\" in the repository",
                    tli, key);
        else
            err_prefix(err, "could not read \"%s\"", key);
        goto out;
    }
    text = b.data;
    len = b.len;
    if (history_parse(&r->hist, tli, text ? text : "", len, err) < 0) {
        err_prefix(err, "\"%s\"", key);
        goto out;
    }
    r->has_hist = true;
    rc = 0;
out:
    sink_free(chain);
    buf_free(&b);
    return rc;
}

/* The backup can start a recovery that follows the target timeline. */
static bool
on_timeline(const struct restore *r, const struct catalog_entry *e)
{
    if (r->tlkind == TL_CURRENT)
        return true;
    if (e->timeline == r->tli)
        return true;
    if (!r->has_hist)
        return false;
    for (size_t i = 0; i < r->hist.n; i++) {
        const struct history_entry *h = &r->hist.entries[i];

        /* an ancestor that the target timeline left after the backup's end */
        if (h->tli == e->timeline && h->tli != r->tli && e->stop_lsn <= h->end)
            return true;
    }
    return false;
}

/* The backup ends before the target: recovery from it can reach the target. */
static bool
before_target(const struct restore *r, const struct catalog_entry *e)
{
    switch (r->tkind) {
    case T_TIME:
        /* the catalogue has whole seconds: the real stop may lie up to 1 s later */
        return (double)e->stop_time + 1.0 <= r->ttime;
    case T_LSN:
        return e->stop_lsn <= r->tlsn;
    default:
        return true;
    }
}

static const char *
target_desc(const struct restore *r, char *buf, size_t size)
{
    char t[48], l[20];

    switch (r->tkind) {
    case T_LATEST:
        snprintf(buf, size, "the end of the archive (latest)");
        break;
    case T_IMMEDIATE:
        snprintf(buf, size, "the end of the backup (immediate)");
        break;
    case T_TIME:
        fmt_ftime(t, r->ttime);
        snprintf(buf, size, "the target time %s", t);
        break;
    case T_LSN:
        walname_lsn_format(l, r->tlsn);
        snprintf(buf, size, "the target LSN %s", l);
        break;
    case T_XID:
        snprintf(buf, size, "the target transaction %s", r->tvalue);
        break;
    case T_NAME:
        snprintf(buf, size, "the restore point \"%s\"", r->tvalue);
        break;
    }
    return buf;
}

static void
copy_entry(struct catalog_entry *dst, const struct catalog_entry *src)
{
    char *json = catalog_to_json(src);
    struct err e;

    /* a deep copy through the one serialiser that knows every field */
    if (catalog_parse(dst, json, strlen(json), &e) < 0)
        abort(); /* catalog_to_json always gives what catalog_parse reads */
    free(json);
}

static int
choose(struct restore *r, struct err *err)
{
    const char *id = opts_get(r->cli->opts, "backup");
    struct tli_scan scan = {0};
    char tdesc[160], when[48], tl[48];
    const struct catalog_entry *best = NULL, *oldest_on_tl = NULL;
    size_t n_on_tl = 0, n_ok = 0;

    if (repo_list(r->cli->repo, ARCHIVE_HISTORY_PREFIX, NULL, history_cb, &scan, err) < 0)
        return -1;
    if (catalog_list(&r->arc, &r->list, &r->n_list, err) < 0)
        return -1;
    if (id) {
        if (catalog_read(&r->arc, id, &r->chosen, err) < 0)
            return -1;
        r->has_chosen = true;
    } else if (r->n_list == 0) {
        return err_set(err, ERR_NOT_FOUND, "no backup in the repository \"%s\"",
                       repo_url(r->cli->repo));
    }
    if (r->tlkind == TL_LATEST) {
        r->tli = scan.max ? scan.max : 1;
        for (size_t i = 0; i < r->n_list; i++)
            if (r->list[i].timeline > r->tli)
                r->tli = r->list[i].timeline;
    }
    if (r->tlkind != TL_CURRENT && load_history(r, r->tli, err) < 0)
        return -1;
    if (r->tlkind == TL_CURRENT)
        snprintf(tl, sizeof(tl), "the backup's own timeline");
    else
        snprintf(tl, sizeof(tl), "timeline %u", r->tli);
    target_desc(r, tdesc, sizeof(tdesc));
    if (r->has_chosen) {
        const struct catalog_entry *e = &r->chosen;

        if (!on_timeline(r, e))
            return err_set(err, ERR_USAGE,
                           "backup \"%s\" is on timeline %u, which %s does not descend from "
                           "after the backup",
                           e->id, e->timeline, tl);
        if (!before_target(r, e)) {
            fmt_time(when, e->stop_time);
            return err_set(err, ERR_USAGE, "backup \"%s\" ends at %s, after %s", e->id, when,
                           tdesc);
        }
        snprintf(r->why, sizeof(r->why), "chosen with --backup");
        return 0;
    }
    for (size_t i = 0; i < r->n_list; i++) {
        const struct catalog_entry *e = &r->list[i];

        if (!on_timeline(r, e))
            continue;
        n_on_tl++;
        if (!oldest_on_tl || e->stop_lsn < oldest_on_tl->stop_lsn)
            oldest_on_tl = e;
        if (!before_target(r, e))
            continue;
        n_ok++;
        if (!best || e->stop_lsn > best->stop_lsn ||
            (e->stop_lsn == best->stop_lsn && e->stop_time > best->stop_time))
            best = e;
    }
    if (n_on_tl == 0)
        return err_set(err, ERR_NOT_FOUND,
                       "none of the %zu backups in the repository is on %s or an ancestor of it "
                       "before the switch",
                       r->n_list, tl);
    if (!best) {
        char l[20];

        if (r->tkind == T_LSN) {
            walname_lsn_format(l, oldest_on_tl->stop_lsn);
            return err_set(err, ERR_NOT_FOUND,
                           "no backup ends before the target: the oldest backup \"%s\" ends at "
                           "LSN %s, after %s",
                           oldest_on_tl->id, l, tdesc);
        }
        fmt_time(when, oldest_on_tl->stop_time);
        return err_set(err, ERR_NOT_FOUND,
                       "no backup ends before the target: the oldest backup \"%s\" ends at %s, "
                       "after %s",
                       oldest_on_tl->id, when, tdesc);
    }
    copy_entry(&r->chosen, best);
    r->has_chosen = true;
    if (r->tkind == T_TIME || r->tkind == T_LSN)
        snprintf(r->why, sizeof(r->why),
                 "the newest of %zu backups on %s that end before %s (%zu in the repository)", n_ok,
                 tl, tdesc, r->n_list);
    else
        snprintf(r->why, sizeof(r->why), "the newest of %zu backups on %s (%zu in the repository)",
                 n_on_tl, tl, r->n_list);
    return 0;
}

/* ---- tablespaces and directories ----------------------------------------------------------- */

static int
plan_tablespaces(struct restore *r, struct err *err)
{
    const char *map = opts_get(r->cli->opts, "tablespace");
    const struct catalog_entry *e = &r->chosen;
    char *copy, *save = NULL, *tok;

    for (size_t i = 0; i < e->n_parts; i++) {
        const struct catalog_part *p = &e->parts[i];

        if (!p->tablespace)
            continue;
        r->ts = xrealloc(r->ts, (r->n_ts + 1) * sizeof(*r->ts));
        r->ts[r->n_ts].oid = p->tablespace;
        r->ts[r->n_ts].from = xstrdup(p->location ? p->location : "");
        r->ts[r->n_ts].dir = xstrdup(p->location ? p->location : "");
        r->ts[r->n_ts].fd = -1;
        r->ts[r->n_ts].created = false;
        r->n_ts++;
    }
    if (map) {
        copy = xstrdup(map);
        for (tok = copy; tok; tok = save) {
            char *eq;

            save = strchr(tok, ',');
            if (save)
                *save++ = '\0';
            eq = strchr(tok, '=');
            uint32_t oid;
            bool found = false;

            if (!eq)
                goto bad;
            *eq = '\0';
            if (parse_u32(tok, &oid) < 0 || eq[1] != '/')
                goto bad;
            for (size_t i = 0; i < r->n_ts; i++) {
                if (r->ts[i].oid == oid) {
                    free(r->ts[i].dir);
                    r->ts[i].dir = xstrdup(eq + 1);
                    found = true;
                }
            }
            if (!found) {
                err_set(err, ERR_USAGE, "--tablespace %u: backup \"%s\" has no tablespace %u", oid,
                        e->id, oid);
                free(copy);
                return -1;
            }
            continue;
        bad:
            err_set(err, ERR_USAGE, "invalid --tablespace \"%s\": use OID=/absolute/dir", map);
            free(copy);
            return -1;
        }
        free(copy);
    }
    for (size_t i = 0; i < r->n_ts; i++) {
        size_t l = strlen(r->ts[i].dir);

        if (r->ts[i].dir[0] != '/')
            return err_set(err, ERR_USAGE,
                           "tablespace %u has no absolute location: use --tablespace %u=DIR",
                           r->ts[i].oid, r->ts[i].oid);
        while (l > 1 && r->ts[i].dir[l - 1] == '/')
            r->ts[i].dir[--l] = '\0';
        if (strchr(r->ts[i].dir, '\n') || strchr(r->ts[i].dir, '\r'))
            return err_set(err, ERR_USAGE, "tablespace %u: a directory name with a line break",
                           r->ts[i].oid);
        for (size_t k = 0; k < i; k++)
            if (strcmp(r->ts[k].dir, r->ts[i].dir) == 0)
                return err_set(err, ERR_USAGE, "tablespaces %u and %u would both go to \"%s\"",
                               r->ts[k].oid, r->ts[i].oid, r->ts[i].dir);
    }
    return 0;
}

static int
dir_is_empty(int fd, bool *empty, const char *path, struct err *err)
{
    int d = dup(fd);
    DIR *dir;
    struct dirent *de;

    *empty = true;
    if (d < 0 || !(dir = fdopendir(d))) {
        if (d >= 0)
            close(d);
        return err_sys(err, ERR_IO, "could not read \"%s\"", path);
    }
    rewinddir(dir);
    while ((de = readdir(dir)) != NULL) {
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
            *empty = false;
            break;
        }
    }
    closedir(dir);
    return 0;
}

/*
 * Check (dry run) or prepare a target directory: it exists (or is created,
 * 0700), is a directory, holds no postmaster.pid, and is empty (unless
 * --force and allow_force). Sets *fd (not in a dry run when it does not
 * exist).
 */
static int
check_dir(struct restore *r, const char *path, const char *what, bool allow_force, int *fd,
          bool *created, bool *nonempty, struct err *err)
{
    struct stat st;
    bool empty;

    *fd = -1;
    *created = false;
    *nonempty = false;
    if (stat(path, &st) < 0) {
        if (errno != ENOENT)
            return err_sys(err, ERR_IO, "could not stat %s \"%s\"", what, path);
        if (r->dry_run)
            return 0;
        if (mkdir(path, 0700) < 0)
            return err_sys(err, ERR_IO, "could not create %s \"%s\"", what, path);
        *created = true;
    } else if (!S_ISDIR(st.st_mode)) {
        return err_set(err, ERR_USAGE, "%s \"%s\" is not a directory", what, path);
    }
    *fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (*fd < 0)
        return err_sys(err, ERR_IO, "could not open %s \"%s\"", what, path);
    if (faccessat(*fd, "postmaster.pid", F_OK, AT_SYMLINK_NOFOLLOW) == 0)
        return err_set(err, ERR_USAGE,
                       "%s \"%s\" holds postmaster.pid: stop the server there first (or remove "
                       "the file if no server runs)",
                       what, path);
    if (dir_is_empty(*fd, &empty, path, err) < 0)
        return -1;
    /* a tablespace directory may belong to a live cluster on this host: never emptied */
    if (!empty && !allow_force)
        return err_set(err, ERR_USAGE, "%s \"%s\" is not empty: use --tablespace OID=DIR", what,
                       path);
    if (!empty && !r->force)
        return err_set(err, ERR_USAGE,
                       "%s \"%s\" is not empty: use --force to replace its contents", what, path);
    *nonempty = !empty;
    return 0;
}

static int
check_dirs(struct restore *r, struct err *err)
{
    struct stat st;

    if (check_dir(r, r->pgdata, "data directory", true, &r->dir_fd, &r->dir_created,
                  &r->dir_nonempty, err) < 0)
        return -1;
    for (size_t i = 0; i < r->n_ts; i++) {
        bool nonempty;

        if (check_dir(r, r->ts[i].dir, "tablespace directory", false, &r->ts[i].fd,
                      &r->ts[i].created, &nonempty, err) < 0)
            return -1;
    }
    r->do_chown = false;
    if (r->dir_fd >= 0 && geteuid() == 0 && fstat(r->dir_fd, &st) == 0 && st.st_uid != 0) {
        /* run as root for a directory the operator made for the postgres user */
        r->do_chown = true;
        r->uid = st.st_uid;
        r->gid = st.st_gid;
    }
    return 0;
}

/* ---- the plan ----------------------------------------------------------------------------- */

static uint64_t
stored_bytes(const struct catalog_entry *e, uint64_t *plain)
{
    uint64_t s = 0;

    *plain = 0;
    for (size_t i = 0; i < e->n_parts; i++) {
        s += e->parts[i].stored_size;
        *plain += e->parts[i].size;
    }
    return s;
}

static const char *
wal_end_desc(const struct restore *r, char *buf, size_t size)
{
    char l[20];

    switch (r->tkind) {
    case T_IMMEDIATE:
        snprintf(buf, size, "%s", r->chosen.stop_wal);
        break;
    case T_LSN:
        walname_lsn_format(l, r->tlsn);
        snprintf(buf, size, "the segment holding %s", l);
        break;
    case T_LATEST:
        snprintf(buf, size, "the end of the archive");
        break;
    default:
        snprintf(buf, size, "the target");
        break;
    }
    return buf;
}

static void
print_plan(struct restore *r)
{
    const struct catalog_entry *e = &r->chosen;
    char sl[20], el[20], st[40], et[40], tdesc[160], wend[80];
    uint64_t plain, stored = stored_bytes(e, &plain);

    walname_lsn_format(sl, e->start_lsn);
    walname_lsn_format(el, e->stop_lsn);
    fmt_time(st, e->start_time);
    fmt_time(et, e->stop_time);
    target_desc(r, tdesc, sizeof(tdesc));
    wal_end_desc(r, wend, sizeof(wend));
    if (r->json) {
        json_t *ts = json_array(), *root;
        char *text;

        for (size_t i = 0; i < r->n_ts; i++)
            json_array_append_new(ts,
                                  json_pack("{s:i, s:s, s:s}", "oid", (int)r->ts[i].oid, "location",
                                            r->ts[i].from, "restore_to", r->ts[i].dir));
        root = json_pack(
            "{s:s, s:s, s:s, s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:i, s:s, "
            "s:o, s:b, s:b}",
            "backup", e->id, "label", e->label ? e->label : "", "why", r->why, "timeline",
            (int)e->timeline, "start_lsn", sl, "stop_lsn", el, "start_time", st, "stop_time", et,
            "target", tdesc, "wal_from", e->start_wal, "wal_consistent_at", e->stop_wal, "wal_to",
            wend, "bytes_to_fetch", (json_int_t)stored, "bytes_restored", (json_int_t)plain,
            "objects", (int)e->n_parts, "pgdata", r->pgdata, "tablespaces", ts, "force_removes",
            r->dir_nonempty, "dry_run", r->dry_run);
        text = json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
        printf("%s\n", text);
        free(text);
        json_decref(root);
        return;
    }
    printf("backup:      %s%s%s%s\n", e->id, e->label && *e->label ? " (label \"" : "",
           e->label && *e->label ? e->label : "", e->label && *e->label ? "\")" : "");
    printf("why:         %s\n", r->why);
    printf("timeline:    %u, start %s at %s, stop %s at %s\n", e->timeline, sl, st, el, et);
    printf("target:      %s\n", tdesc);
    printf("WAL needed:  from %s (consistent after %s) to %s\n", e->start_wal, e->stop_wal, wend);
    printf("to fetch:    %zu objects, %" PRIu64 " bytes stored (%" PRIu64 " bytes restored)\n",
           e->n_parts, stored, plain);
    printf("data dir:    %s%s\n", r->pgdata,
           r->dir_nonempty ? " (not empty: --force removes its contents)" : "");
    for (size_t i = 0; i < r->n_ts; i++)
        printf("tablespace:  %u from %s to %s\n", r->ts[i].oid, r->ts[i].from, r->ts[i].dir);
}

/* ---- recovery settings -------------------------------------------------------------------- */

/* Quote for postgresql.conf: backslash and single quote escaped. */
static void
guc_quote(struct buf *b, const char *s)
{
    buf_putc(b, '\'');
    for (; *s; s++) {
        if (*s == '\'' || *s == '\\')
            buf_putc(b, *s);
        buf_putc(b, *s);
    }
    buf_putc(b, '\'');
}

/* One word of restore_command: shell-quoted when needed, '%' doubled (PostgreSQL's escapes). */
static void
cmd_word(struct buf *b, const char *s)
{
    bool plain = *s != '\0';

    for (const char *p = s; *p; p++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./:=@+,-", *p))
            plain = false;
    if (b->len)
        buf_putc(b, ' ');
    if (!plain)
        buf_putc(b, '\'');
    for (; *s; s++) {
        if (*s == '%')
            buf_puts(b, "%%");
        else if (*s == '\'')
            buf_puts(b, "'\\''");
        else
            buf_putc(b, *s);
    }
    if (!plain)
        buf_putc(b, '\'');
}

static char *
abs_path(const char *p)
{
    char *r = realpath(p, NULL);

    return r ? r : xstrdup(p);
}

static int
find_wal_fetch(struct restore *r, char **out, struct err *err)
{
    const char *given = opts_get(r->cli->opts, "wal-fetch");
    char self[PATH_MAX];
    ssize_t n;
    char *slash, *cand;

    if (given) {
        if (access(given, X_OK) < 0)
            return err_sys(err, ERR_USAGE, "--wal-fetch \"%s\" is not executable", given);
        *out = abs_path(given);
        return 0;
    }
    n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n > 0) {
        self[n] = '\0';
        slash = strrchr(self, '/');
        if (slash) {
            *slash = '\0';
            /* installed side by side, or in the build tree */
            cand = xasprintf("%s/ferry-wal-fetch", self);
            if (access(cand, X_OK) == 0) {
                *out = cand;
                return 0;
            }
            free(cand);
            cand = xasprintf("%s/../wal-fetch/ferry-wal-fetch", self);
            if (access(cand, X_OK) == 0) {
                *out = abs_path(cand);
                free(cand);
                return 0;
            }
            free(cand);
        }
    }
    return err_set(err, ERR_USAGE,
                   "ferry-wal-fetch not found beside ferry-restore: use --wal-fetch FILE");
}

/* Repository options that ferry-wal-fetch needs, as given to us. */
static const char *const passed_opts[] = {
    "s3-endpoint",
    "s3-region",
    "s3-uri-style",
    "s3-ca-file",
    "s3-ca-path",
    "s3-no-verify-tls",
    "s3-access-key-id",
    "s3-profile",
    "s3-sse-customer-key-file",
    "s3-retries",
    "s3-timeout",
    "s3-connect-timeout",
    "s3-no-imds",
    "s3-imds-endpoint",
    "encryption-key-file",
    NULL,
};

static bool
is_path_opt(const char *name)
{
    return strcmp(name, "s3-ca-file") == 0 || strcmp(name, "s3-ca-path") == 0 ||
           strcmp(name, "s3-sse-customer-key-file") == 0 ||
           strcmp(name, "encryption-key-file") == 0;
}

static int
restore_command(struct restore *r, struct buf *cmd, struct err *err)
{
    const struct opts *o = r->cli->opts;
    char *wf = NULL;
    const char *cfg = opts_get(o, "config");
    static const char *const secrets[] = {"s3-secret-access-key", "s3-session-token",
                                          "encryption-passphrase", NULL};

    if (find_wal_fetch(r, &wf, err) < 0)
        return -1;
    cmd_word(cmd, wf);
    free(wf);
    if (!cfg && getenv("FERRY_CONFIG") && *getenv("FERRY_CONFIG"))
        cfg = getenv("FERRY_CONFIG");
    if (cfg) {
        char *a = abs_path(cfg);
        char *w = xasprintf("--config=%s", a);

        cmd_word(cmd, w);
        free(w);
        free(a);
    }
    if (strncmp(opts_source(o, "repo"), "config file", 11) != 0) {
        char *w = xasprintf("--repo=%s", opts_get(o, "repo"));

        cmd_word(cmd, w);
        free(w);
    }
    for (size_t i = 0; passed_opts[i]; i++) {
        const char *name = passed_opts[i];
        const char *v = opts_get(o, name);
        char *w;

        if (!v || strncmp(opts_source(o, name), "config file", 11) == 0)
            continue;
        if (strcmp(name, "s3-no-verify-tls") == 0 || strcmp(name, "s3-no-imds") == 0) {
            if (opts_get_bool(o, name, false))
                cmd_word(cmd, (w = xasprintf("--%s", name)));
            else
                continue;
        } else if (is_path_opt(name)) {
            char *a = abs_path(v);

            cmd_word(cmd, (w = xasprintf("--%s=%s", name, a)));
            free(a);
        } else {
            cmd_word(cmd, (w = xasprintf("--%s=%s", name, v)));
        }
        free(w);
    }
    /* endpoint and region from AWS_* variables: the server may not have them */
    if (!opts_get(o, "s3-endpoint") && r->cli->ropts.s3_endpoint) {
        char *w = xasprintf("--s3-endpoint=%s", r->cli->ropts.s3_endpoint);

        cmd_word(cmd, w);
        free(w);
    }
    for (size_t i = 0; secrets[i]; i++) {
        if (opts_get(o, secrets[i]) && strncmp(opts_source(o, secrets[i]), "config file", 11) != 0)
            log_warning("--%s is not written into postgresql.auto.conf: give it to the server's "
                        "ferry-wal-fetch through a config file (--config) or its environment",
                        secrets[i]);
    }
    buf_puts(cmd, " %f %p"); /* PostgreSQL's placeholders, not escaped */
    return 0;
}

static int
write_at(int dfd, const char *name, const char *path, const void *data, size_t len, int flags,
         struct restore *r, struct err *err)
{
    int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC | flags, 0600);
    const char *p = data;

    if (fd < 0)
        return err_sys(err, ERR_IO, "could not open \"%s\"", path);
    while (len) {
        ssize_t n = write(fd, p, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            err_sys(err, ERR_IO, "could not write \"%s\"", path);
            close(fd);
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    if ((r->do_chown && fchown(fd, r->uid, r->gid) < 0) || fsync(fd) < 0) {
        err_sys(err, ERR_IO, "could not finish \"%s\"", path);
        close(fd);
        return -1;
    }
    if (close(fd) < 0)
        return err_sys(err, ERR_IO, "could not write \"%s\"", path);
    return 0;
}

static int
write_settings(struct restore *r, struct err *err)
{
    struct buf s = BUF_INIT, cmd = BUF_INIT;
    char now[40];
    const char *signal_file = r->standby ? "standby.signal" : "recovery.signal";
    int rc = -1;

    if (restore_command(r, &cmd, err) < 0)
        goto out;
    fmt_time(now, time(NULL));
    buf_printf(&s, "\n# recovery settings written by ferry-restore at %s (backup %s)\n", now,
               r->chosen.id);
    buf_puts(&s, "restore_command = ");
    guc_quote(&s, buf_str(&cmd));
    buf_putc(&s, '\n');
    switch (r->tkind) {
    case T_LATEST:
        break;
    case T_IMMEDIATE:
        buf_puts(&s, "recovery_target = 'immediate'\n");
        break;
    case T_TIME:
        buf_puts(&s, "recovery_target_time = ");
        guc_quote(&s, r->tvalue);
        buf_putc(&s, '\n');
        break;
    case T_LSN:
        buf_puts(&s, "recovery_target_lsn = ");
        guc_quote(&s, r->tvalue);
        buf_putc(&s, '\n');
        break;
    case T_XID:
        buf_puts(&s, "recovery_target_xid = ");
        guc_quote(&s, r->tvalue);
        buf_putc(&s, '\n');
        break;
    case T_NAME:
        buf_puts(&s, "recovery_target_name = ");
        guc_quote(&s, r->tvalue);
        buf_putc(&s, '\n');
        break;
    }
    if (r->exclusive)
        buf_puts(&s, "recovery_target_inclusive = false\n");
    if (r->tlkind == TL_LATEST)
        buf_puts(&s, "recovery_target_timeline = 'latest'\n");
    else if (r->tlkind == TL_CURRENT)
        buf_puts(&s, "recovery_target_timeline = 'current'\n");
    else
        buf_printf(&s, "recovery_target_timeline = '%u'\n", r->tli);
    if (r->action)
        buf_printf(&s, "recovery_target_action = '%s'\n", r->action);
    if (r->archive_off)
        buf_puts(&s, "archive_mode = 'off'\n");
    if (write_at(r->dir_fd, "postgresql.auto.conf", "postgresql.auto.conf", s.data, s.len, O_APPEND,
                 r, err) < 0 ||
        write_at(r->dir_fd, signal_file, signal_file, "", 0, O_TRUNC, r, err) < 0)
        goto out;
    rc = 0;
out:
    buf_free(&s);
    buf_free(&cmd);
    return rc;
}

/* ---- after the extraction ----------------------------------------------------------------- */

/* tablespace_map: "OID PATH" lines; PATH has \ before \, \n and \r. */
static int
rewrite_tablespace_map(struct restore *r, const struct extract_held *h, struct err *err)
{
    struct buf out = BUF_INIT;
    const char *p = h->tablespace_map.data ? h->tablespace_map.data : "";
    const char *end = p + h->tablespace_map.len;
    size_t listed = 0;
    int rc = -1;

    if (!h->has_tablespace_map) {
        if (r->n_ts)
            return err_set(err, ERR_CORRUPT, "the backup has tablespaces but no tablespace_map");
        return 0;
    }
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        uint32_t oid = 0;
        bool found = false;
        const char *q = p;

        /* an escaped newline inside a path does not end the line */
        while (nl && nl > p && nl[-1] == '\\') {
            nl = memchr(nl + 1, '\n', (size_t)(end - nl - 1));
            le = nl ? nl : end;
        }
        if (le == p) {
            p = le + 1;
            continue;
        }
        while (q < le && *q >= '0' && *q <= '9' && oid < 400000000u)
            oid = oid * 10 + (uint32_t)(*q++ - '0');
        if (q == p || q >= le || *q != ' ') {
            err_set(err, ERR_CORRUPT, "tablespace_map has a malformed line");
            goto out;
        }
        for (size_t i = 0; i < r->n_ts; i++) {
            if (r->ts[i].oid != oid)
                continue;
            found = true;
            buf_printf(&out, "%u ", oid);
            for (const char *c = r->ts[i].dir; *c; c++) {
                if (*c == '\\')
                    buf_putc(&out, '\\');
                buf_putc(&out, *c);
            }
            buf_putc(&out, '\n');
        }
        if (!found) {
            err_set(err, ERR_CORRUPT, "tablespace_map lists tablespace %u, which the backup lacks",
                    oid);
            goto out;
        }
        listed++;
        p = le + (le < end ? 1 : 0);
    }
    if (listed != r->n_ts) {
        err_set(err, ERR_CORRUPT, "tablespace_map lists %zu tablespaces, the backup has %zu",
                listed, r->n_ts);
        goto out;
    }
    if (write_at(r->dir_fd, "tablespace_map", "tablespace_map", out.data ? out.data : "", out.len,
                 O_EXCL, r, err) < 0)
        goto out;
    rc = 0;
out:
    buf_free(&out);
    return rc;
}

/* pg_tblspc/<oid> -> directory, as PostgreSQL will make them from tablespace_map. */
static int
link_tablespaces(struct restore *r, struct err *err)
{
    int d;

    if (!r->n_ts)
        return 0;
    d = openat(r->dir_fd, "pg_tblspc", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (d < 0 && errno == ENOENT) {
        if (mkdirat(r->dir_fd, "pg_tblspc", 0700) < 0)
            return err_sys(err, ERR_IO, "could not create \"pg_tblspc\"");
        d = openat(r->dir_fd, "pg_tblspc", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
    if (d < 0)
        return err_sys(err, ERR_IO, "could not open \"pg_tblspc\"");
    for (size_t i = 0; i < r->n_ts; i++) {
        char name[16];

        snprintf(name, sizeof(name), "%u", r->ts[i].oid);
        if (symlinkat(r->ts[i].dir, d, name) < 0 ||
            (r->do_chown && fchownat(d, name, r->uid, r->gid, AT_SYMLINK_NOFOLLOW) < 0)) {
            err_sys(err, ERR_IO, "could not create symlink \"pg_tblspc/%s\"", name);
            close(d);
            return -1;
        }
    }
    close(d);
    return 0;
}

static int
write_pg_control(struct restore *r, const struct extract_held *h, struct err *err)
{
    int g = openat(r->dir_fd, "global", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int rc = -1;

    if (g < 0)
        return err_sys(err, ERR_IO, "could not open \"global\"");
    unlinkat(g, "pg_control.ferry-tmp", 0);
    if (write_at(g, "pg_control.ferry-tmp", "global/pg_control", h->pg_control.data,
                 h->pg_control.len, O_EXCL, r, err) < 0)
        goto out;
    if (renameat(g, "pg_control.ferry-tmp", g, "pg_control") < 0) {
        err_sys(err, ERR_IO, "could not rename \"global/pg_control\"");
        goto out;
    }
    if (fsync(g) < 0 || fsync(r->dir_fd) < 0) {
        err_sys(err, ERR_IO, "could not sync \"global\"");
        goto out;
    }
    rc = 0;
out:
    close(g);
    return rc;
}

static int
fetch_manifest(struct restore *r, struct manifest *m, struct err *err)
{
    const struct catalog_part *mp = NULL;
    struct buf b = BUF_INIT;
    struct object_info info;
    struct sink *chain;
    char got[65];
    int rc = -1;

    for (size_t i = 0; i < r->chosen.n_parts; i++)
        if (strcmp(r->chosen.parts[i].name, "backup_manifest") == 0)
            mp = &r->chosen.parts[i];
    if (!mp)
        return err_set(err, ERR_CORRUPT, "backup \"%s\" has no backup_manifest", r->chosen.id);
    chain = object_decode_sink_new(buf_sink_new(&b, MANIFEST_MAX_BYTES), r->cli->key, &info);
    if (repo_get(r->cli->repo, mp->key, 0, 0, chain, err) < 0 || sink_finish(chain, err) < 0) {
        err_prefix(err, "could not read \"%s\"", mp->key);
        goto out;
    }
    archive_sha256_hex(got, info.sha256);
    if (info.plain_size != mp->size || strcmp(got, mp->sha256) != 0) {
        err_set(err, ERR_CORRUPT,
                "\"%s\" does not match the catalogue: sha256 %s, the catalogue says %s", mp->key,
                got, mp->sha256);
        goto out;
    }
    if (manifest_parse(m, b.data ? b.data : "", b.len, err) < 0) {
        err_prefix(err, "\"%s\"", mp->key);
        goto out;
    }
    if (m->has_sysid && m->sysid != r->chosen.sysid) {
        err_set(err, ERR_CORRUPT,
                "backup manifest has system identifier %" PRIu64 ", the catalogue %" PRIu64,
                m->sysid, r->chosen.sysid);
        manifest_free(m);
        goto out;
    }
    /* kept in the data directory, as pg_basebackup does, for pg_verifybackup */
    if (!r->dry_run && write_at(r->dir_fd, "backup_manifest", "backup_manifest", b.data, b.len,
                                O_EXCL, r, err) < 0) {
        manifest_free(m);
        goto out;
    }
    rc = 0;
out:
    sink_free(chain);
    buf_free(&b);
    return rc;
}

static void
cleanup(struct restore *r)
{
    struct err e;

    if (r->dir_fd >= 0) {
        if (extract_clear_dir(r->dir_fd, r->pgdata, &e) < 0)
            log_warning("%s", e.msg);
    }
    for (size_t i = 0; i < r->n_ts; i++) {
        if (r->ts[i].fd >= 0 && extract_clear_dir(r->ts[i].fd, r->ts[i].dir, &e) < 0)
            log_warning("%s", e.msg);
        if (r->ts[i].created)
            rmdir(r->ts[i].dir);
    }
    if (r->dir_created)
        rmdir(r->pgdata);
}

static int
do_restore(struct restore *r, struct err *err)
{
    struct manifest m;
    struct extract_part *parts = NULL;
    struct extract_opts eo;
    struct extract_held held = {BUF_INIT, false, BUF_INIT, false};
    size_t n = 0;
    int rc = -1;
    struct timespec t0, t1;
    uint64_t files = 0, bytes = 0, stored = 0;

    memset(&m, 0, sizeof(m));
    clock_gettime(CLOCK_MONOTONIC, &t0);
    /* --force: the old contents go now, after the plan and the checks */
    r->touched = true;
    if (r->dir_nonempty && extract_clear_dir(r->dir_fd, r->pgdata, err) < 0)
        goto out;
    for (size_t i = 0; i < r->n_ts; i++)
        if (extract_clear_dir(r->ts[i].fd, r->ts[i].dir, err) < 0)
            goto out;
    if (fchmod(r->dir_fd, 0700) < 0) {
        err_sys(err, ERR_IO, "could not set the mode of \"%s\"", r->pgdata);
        goto out;
    }
    for (size_t i = 0; i < r->n_ts; i++) {
        if (fchmod(r->ts[i].fd, 0700) < 0 ||
            (r->do_chown && fchown(r->ts[i].fd, r->uid, r->gid) < 0)) {
            err_sys(err, ERR_IO, "could not set the owner and mode of \"%s\"", r->ts[i].dir);
            goto out;
        }
    }
    if (fetch_manifest(r, &m, err) < 0)
        goto out;
    parts = xcalloc(r->chosen.n_parts, sizeof(*parts));
    for (size_t i = 0; i < r->chosen.n_parts; i++) {
        const struct catalog_part *cp = &r->chosen.parts[i];
        struct extract_part *p = &parts[n];

        if (strcmp(cp->name, "backup_manifest") == 0)
            continue;
        p->name = cp->name;
        p->key = cp->key;
        p->size = cp->size;
        p->sha256 = cp->sha256;
        p->oid = cp->tablespace;
        p->dir_fd = r->dir_fd;
        for (size_t k = 0; k < r->n_ts; k++)
            if (r->ts[k].oid == cp->tablespace)
                p->dir_fd = r->ts[k].fd;
        n++;
        if (repo_open(&p->repo, opts_get(r->cli->opts, "repo"), &r->cli->ropts, err) < 0)
            goto out;
    }
    eo.key = r->cli->key;
    eo.manifest = &m;
    eo.do_chown = r->do_chown;
    eo.direct_io = r->direct_io;
    eo.uid = r->uid;
    eo.gid = r->gid;
    if (extract_run(parts, n, &eo, &held, err) < 0)
        goto out;
    for (size_t i = 0; i < m.n_files; i++) {
        if (!m.files[i].seen) {
            err_set(err, ERR_CORRUPT, "file \"%s\" of the manifest is missing from the backup",
                    m.files[i].path);
            goto out;
        }
    }
    if (!held.has_pg_control) {
        err_set(err, ERR_CORRUPT, "the backup has no global/pg_control");
        goto out;
    }
    if (rewrite_tablespace_map(r, &held, err) < 0 || link_tablespaces(r, err) < 0 ||
        write_settings(r, err) < 0)
        goto out;
    if (syncfs(r->dir_fd) < 0) {
        err_sys(err, ERR_IO, "could not sync \"%s\"", r->pgdata);
        goto out;
    }
    for (size_t i = 0; i < r->n_ts; i++) {
        if (syncfs(r->ts[i].fd) < 0) {
            err_sys(err, ERR_IO, "could not sync \"%s\"", r->ts[i].dir);
            goto out;
        }
    }
    /* the last write: only now is this a data directory PostgreSQL will start */
    if (write_pg_control(r, &held, err) < 0)
        goto out;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    for (size_t i = 0; i < n; i++) {
        files += parts[i].files;
        bytes += parts[i].bytes;
        stored += parts[i].stored;
    }
    if (r->json) {
        json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:I, s:f, s:s}", "backup", r->chosen.id,
                              "pgdata", r->pgdata, "files", (json_int_t)files, "bytes",
                              (json_int_t)bytes, "bytes_fetched", (json_int_t)stored, "seconds",
                              (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9,
                              "signal", r->standby ? "standby.signal" : "recovery.signal");
        char *text = json_dumps(o, JSON_INDENT(1) | JSON_PRESERVE_ORDER);

        printf("%s\n", text);
        free(text);
        json_decref(o);
    } else {
        printf("restored backup %s into %s: %" PRIu64 " files, %" PRIu64 " bytes (%" PRIu64
               " fetched) in %.1f s; start the server to recover\n",
               r->chosen.id, r->pgdata, files, bytes, stored,
               (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
    }
    rc = 0;
out:
    for (size_t i = 0; parts && i < n; i++)
        repo_close(parts[i].repo);
    free(parts);
    manifest_free(&m);
    buf_free(&held.pg_control);
    buf_free(&held.tablespace_map);
    return rc;
}

static int
run(struct restore *r, struct err *err)
{
    if (read_options(r, err) < 0)
        return -1;
    if (cli_open_repo(r->cli, err) < 0)
        return -1;
    r->arc.repo = r->cli->repo;
    r->arc.oopts = r->cli->oopts;
    r->arc.key = r->cli->key;
    if (choose(r, err) < 0 || plan_tablespaces(r, err) < 0 || check_dirs(r, err) < 0)
        return -1;
    if (r->dry_run) {
        print_plan(r);
        return 0;
    }
    if (!r->json)
        print_plan(r);
    fflush(stdout);
    if (do_restore(r, err) < 0) {
        if (r->touched) {
            char *msg;

            cleanup(r);
            msg = xasprintf("%s (everything restored was removed again)", err->msg);
            snprintf(err->msg, sizeof(err->msg), "%s", msg);
            free(msg);
        }
        return -1;
    }
    return 0;
}

int
main(int argc, char **argv)
{
    struct cli cli;
    struct restore r;
    struct err err;
    int rc;

    err_clear(&err);
    signal(SIGPIPE, SIG_IGN);
    umask(077);
    memset(&r, 0, sizeof(r));
    r.dir_fd = -1;
    rc = cli_init(&cli, "ferry-restore", usage, restore_opts, argc, argv, &err);
    if (rc == 0 && !cli.done) {
        r.cli = &cli;
        rc = run(&r, &err);
    }
    if (rc < 0)
        log_err(&err);
    if (r.dir_fd >= 0)
        close(r.dir_fd);
    for (size_t i = 0; i < r.n_ts; i++) {
        if (r.ts[i].fd >= 0)
            close(r.ts[i].fd);
        free(r.ts[i].from);
        free(r.ts[i].dir);
    }
    free(r.ts);
    if (r.has_chosen)
        catalog_entry_free(&r.chosen);
    catalog_list_free(r.list, r.n_list);
    if (r.has_hist)
        history_free(&r.hist);
    cli_free(&cli);
    return rc < 0 ? 1 : 0;
}
