/* SPDX-License-Identifier: MIT */
/*
 * `ferry expire`: retention of PostgreSQL base backups and WAL. The choice
 * of what stays (expire_order, expire_choose) and of which objects go
 * (expire_plan_make) are pure functions over the catalogue and one listing
 * of pg/, so they are unit-tested without a repository; expire_main lists,
 * plans, prints and deletes. docs/expire.md describes the rules.
 */
#ifndef FERRY_EXPIRE_H
#define FERRY_EXPIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "archive/catalog.h"
#include "base/buf.h"
#include "base/err.h"

/* argv[0] is "expire"; returns the exit status (0 ok, 1 error, 2 usage). */
int expire_main(int argc, char **argv);

/*
 * The order of backups for retention and display, oldest first: by stop
 * time, then stop LSN, start LSN, ID (the catalogue's times and LSNs; the ID
 * only breaks exact ties). Fills order[0..n) with indices into list.
 */
void expire_order(size_t *order, const struct catalog_entry *list, size_t n);

struct expire_policy {
    long retain_full;   /* keep the newest N; 0 = not given */
    bool has_days;      /* --retain-days given */
    double retain_days; /* every point of the last D days stays recoverable */
    long retain_min;    /* never fewer than this many backups (default 1) */
};

/*
 * Which backups stay: keep[i] for list[i]. The kept backups are always the
 * newest ones in expire_order: by count the newest retain_full; by window
 * every backup that ended inside [now - retain_days, now] and the newest that
 * ended before it (stop time + 1 s <= the cutoff: the catalogue keeps whole
 * seconds), where recovery of the window's first moment starts; with both,
 * the larger set; never fewer than retain_min.
 * Returns the number kept.
 */
size_t expire_choose(bool *keep, const struct catalog_entry *list, size_t n,
                     const struct expire_policy *p, time_t now);

/* One object of the listing of pg/. */
struct expire_obj {
    const char *key;
    uint64_t size;
    int64_t mtime;
};

/* What an object is, and why it goes; in the order they are deleted. */
enum expire_kind {
    EXPIRE_CATALOG = 0, /* catalogue entry of an expired backup: deleted first */
    EXPIRE_PART,        /* part of an expired backup */
    EXPIRE_INCOMPLETE,  /* pg/backups/<ID>/... without a catalogue entry, past the grace period */
    EXPIRE_ORPHAN,      /* under pg/ and none of the known kinds */
    EXPIRE_WAL,         /* segment, .partial or .backup before the oldest kept backup's start */
    EXPIRE_HISTORY,     /* history file of a timeline no kept backup can reach */
    EXPIRE_N_KINDS
};

struct expire_item {
    const char *key; /* points into the objects given to expire_plan_make */
    enum expire_kind kind;
    uint64_t size;
};

struct expire_plan {
    struct expire_item *items; /* sorted by kind, then key: the deletion order */
    size_t n_items;
    size_t count[EXPIRE_N_KINDS];
    uint64_t bytes[EXPIRE_N_KINDS];
    size_t n_kept_objects;
    uint64_t kept_bytes;
    bool has_wal_floor;       /* WAL is expired (there is a kept backup) */
    uint64_t wal_floor;       /* segments below this segment number go, on every timeline */
    uint32_t min_tli;         /* lowest timeline of a kept backup */
    size_t n_incomplete_kept; /* incomplete backups still in their grace period */
};

/*
 * Decide every object's fate. list/keep: the catalogue and expire_choose's
 * answer; objs: every object under pg/; seg_size: the cluster's WAL segment
 * size (needed only when a backup is kept); an incomplete backup goes when
 * its newest object is older than now - grace_s. Never fails on odd keys
 * (they are orphans); ERR_CORRUPT if a kept backup's start cannot be placed.
 */
int expire_plan_make(struct expire_plan *out, const struct catalog_entry *list, size_t n,
                     const bool *keep, const struct expire_obj *objs, size_t n_objs,
                     uint32_t seg_size, int64_t now, int64_t grace_s, struct err *err);
void expire_plan_free(struct expire_plan *p);

/* "catalogue entry", "backup part", ... for messages. */
const char *expire_kind_name(enum expire_kind k);

/*
 * The lock one `ferry expire` holds while it deletes (docs/expire.md):
 * created with REPO_PUT_IF_ABSENT, so of two runs only one gets it, in the
 * ferry object format like every object; removed at the end. Everything
 * under EXPIRE_LOCKS_PREFIX is left alone by the plan (never an orphan).
 */
#define EXPIRE_LOCKS_PREFIX "pg/locks/"
#define EXPIRE_LOCK_KEY "pg/locks/expire"

struct expire_lock {
    char host[256];
    long pid;
    int64_t started; /* seconds since the epoch, the holder's clock */
    char token[33];  /* random hex: tells this run's lock from a later one */
};

/* The lock's text: one JSON object (appended to out). */
void expire_lock_format(struct buf *out, const struct expire_lock *l);
/* Parse expire_lock_format's text; ERR_CORRUPT naming the lock if it is not that. */
int expire_lock_parse(struct expire_lock *out, const char *text, struct err *err);
/* "host \"db1\", pid 4242, since 2026-11-25T18:00:00Z (12 min ago)" for messages. */
void expire_lock_describe(char *out, size_t cap, const struct expire_lock *l, int64_t now);

#endif
