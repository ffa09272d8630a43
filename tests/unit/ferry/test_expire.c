/* SPDX-License-Identifier: MIT */
/*
 * `ferry expire`'s pure parts: the order of backups, the retention choice
 * (count, window, minimum, both, ties, timelines whose LSNs run behind
 * time) and the plan of what goes (backups' entries and parts, incomplete
 * backups by grace, orphans, WAL below the oldest kept start on every
 * timeline, history files of timelines no kept backup reaches).
 */
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/xmalloc.h"
#include "check.h"
#include "expire.h"
#include "info.h"

#define SEG (16u << 20)
#define DAY 86400
#define NOW ((time_t)1764000000) /* 2025-11-24T16:00:00Z */

/* an entry with base.tar and backup_manifest; start segment = start_lsn >> 24 */
static void
mk(struct catalog_entry *e, const char *id, uint32_t tli, uint64_t start_lsn, uint64_t stop_lsn,
   time_t start, time_t stop)
{
    memset(e, 0, sizeof(*e));
    memcpy(e->id, id, CATALOG_ID_LEN + 1);
    e->label = xstrdup("");
    e->timeline = tli;
    e->seg_size = SEG;
    e->start_lsn = start_lsn;
    e->stop_lsn = stop_lsn;
    e->start_time = start;
    e->stop_time = stop;
    catalog_add_part(e, "base.tar", 0, NULL);
    catalog_add_part(e, "backup_manifest", 0, NULL);
}

static void
free_list(struct catalog_entry *l, size_t n)
{
    for (size_t i = 0; i < n; i++)
        catalog_entry_free(&l[i]);
}

/* the IDs kept, space-separated, in list order */
static const char *
kept_ids(const bool *keep, const struct catalog_entry *l, size_t n)
{
    static char out[512];
    struct buf b = BUF_INIT;

    for (size_t i = 0; i < n; i++)
        if (keep[i])
            buf_printf(&b, "%s%s", b.len ? " " : "", l[i].id);
    snprintf(out, sizeof(out), "%s", buf_str(&b));
    buf_free(&b);
    return out;
}

/* five daily backups on timeline 1, ended 10, 8, 6, 3 and 1 days ago, listed newest first */
static size_t
five(struct catalog_entry *l)
{
    mk(&l[0], "20251123T150000Z", 1, 0x50000028, 0x51000100, NOW - 1 * DAY - 60, NOW - 1 * DAY);
    mk(&l[1], "20251121T150000Z", 1, 0x40000028, 0x41000100, NOW - 3 * DAY - 60, NOW - 3 * DAY);
    mk(&l[2], "20251118T150000Z", 1, 0x30000028, 0x31000100, NOW - 6 * DAY - 60, NOW - 6 * DAY);
    mk(&l[3], "20251116T150000Z", 1, 0x20000028, 0x21000100, NOW - 8 * DAY - 60, NOW - 8 * DAY);
    mk(&l[4], "20251114T150000Z", 1, 0x10000028, 0x11000100, NOW - 10 * DAY - 60, NOW - 10 * DAY);
    return 5;
}

static void
test_order_by_stop_time_then_lsn(void)
{
    struct catalog_entry l[4];
    size_t order[4];

    /* IDs deliberately out of time order: the order must come from times and LSNs */
    mk(&l[0], "20991231T000000Z", 1, 0x3000028, 0x3000100, NOW - 50, NOW - 40);
    mk(&l[1], "20000101T000000Z", 1, 0x5000028, 0x5000100, NOW - 30, NOW - 20);
    mk(&l[2], "20500101T000000Z", 1, 0x4000028, 0x4000200, NOW - 30, NOW - 20); /* same time */
    mk(&l[3], "20100101T000000Z", 1, 0x1000028, 0x1000100, NOW - 90, NOW - 80);
    expire_order(order, l, 4);
    CHECK_INT(order[0], 3);
    CHECK_INT(order[1], 0);
    CHECK_INT(order[2], 2); /* same stop time: lower stop LSN first */
    CHECK_INT(order[3], 1);
    free_list(l, 4);
}

static void
test_count(void)
{
    struct catalog_entry l[5];
    size_t n = five(l);
    bool keep[5];
    struct expire_policy p = {2, false, 0, 1};

    CHECK_INT(expire_choose(keep, l, n, &p, NOW), 2);
    CHECK_STR(kept_ids(keep, l, n), "20251123T150000Z 20251121T150000Z");
    p.retain_full = 5;
    CHECK_INT(expire_choose(keep, l, n, &p, NOW), 5);
    p.retain_full = 99;
    CHECK_INT(expire_choose(keep, l, n, &p, NOW), 5);
    p.retain_full = 1;
    CHECK_INT(expire_choose(keep, l, n, &p, NOW), 1);
    CHECK_STR(kept_ids(keep, l, n), "20251123T150000Z");
    CHECK_INT(expire_choose(keep, l, 0, &p, NOW), 0);
    free_list(l, n);
}

static void
test_window(void)
{
    struct catalog_entry l[5];
    size_t n = five(l);
    bool keep[5];
    struct expire_policy p = {0, true, 7, 1};

    /* 7 days: the three that ended inside, and the one that ended 8 days ago (the window's
     * first moment is recovered from it); the 10-day-old one goes */
    CHECK_INT(expire_choose(keep, l, n, &p, NOW), 4);
    CHECK_STR(kept_ids(keep, l, n),
              "20251123T150000Z 20251121T150000Z 20251118T150000Z 20251116T150000Z");
    /* 2 days: the 1-day-old one, and the 3-day-old one before the window */
    p.retain_days = 2;
    CHECK_INT(expire_choose(keep, l, n, &p, NOW), 2);
    CHECK_STR(kept_ids(keep, l, n), "20251123T150000Z 20251121T150000Z");
    /* half a day: every backup ended before the window: only the newest */
    p.retain_days = 0.5;
    CHECK_INT(expire_choose(keep, l, n, &p, NOW), 1);
    CHECK_STR(kept_ids(keep, l, n), "20251123T150000Z");
    /* 30 days: every backup ended inside */
    p.retain_days = 30;
    CHECK_INT(expire_choose(keep, l, n, &p, NOW), 5);
    /* the edge: the catalogue keeps whole seconds, so a backup that ended in the cutoff's
     * second may have ended after it: it counts as inside, the one before it also stays */
    p.retain_days = 6;
    CHECK_INT(expire_choose(keep, l, n, &p, NOW), 4);
    p.retain_days = 6 - 1.5 / DAY; /* 1.5 s less: it surely ended before the window */
    CHECK_INT(expire_choose(keep, l, n, &p, NOW), 3);
    CHECK_STR(kept_ids(keep, l, n), "20251123T150000Z 20251121T150000Z 20251118T150000Z");
    free_list(l, n);
}

static void
test_minimum_and_both(void)
{
    struct catalog_entry l[5];
    size_t n = five(l);
    bool keep[5];
    struct expire_policy p = {1, false, 0, 3};

    CHECK_INT(expire_choose(keep, l, n, &p, NOW), 3);
    CHECK_STR(kept_ids(keep, l, n), "20251123T150000Z 20251121T150000Z 20251118T150000Z");
    p.retain_min = 0; /* no minimum: the count alone */
    CHECK_INT(expire_choose(keep, l, n, &p, NOW), 1);
    p.retain_min = 9; /* more than there are: all */
    CHECK_INT(expire_choose(keep, l, n, &p, NOW), 5);
    /* window with minimum 0: the backup before the window is still kept */
    p = (struct expire_policy){0, true, 0.5, 0};
    CHECK_INT(expire_choose(keep, l, n, &p, NOW), 1);
    /* both: whichever keeps more */
    p = (struct expire_policy){3, true, 2, 1};
    CHECK_INT(expire_choose(keep, l, n, &p, NOW), 3);
    p = (struct expire_policy){1, true, 7, 1};
    CHECK_INT(expire_choose(keep, l, n, &p, NOW), 4);
    free_list(l, n);
}

static void
test_ties(void)
{
    struct catalog_entry l[3];
    bool keep[3];
    struct expire_policy p = {1, false, 0, 1};

    /* same stop time: the higher stop LSN is the newer */
    mk(&l[0], "20251124T100000Z", 1, 0x7000028, 0x7000200, NOW - 100, NOW - 50);
    mk(&l[1], "20251124T100001Z", 1, 0x6000028, 0x6000100, NOW - 100, NOW - 50);
    mk(&l[2], "20251124T090000Z", 1, 0x5000028, 0x5000100, NOW - 200, NOW - 150);
    CHECK_INT(expire_choose(keep, l, 3, &p, NOW), 1);
    CHECK_STR(kept_ids(keep, l, 3), "20251124T100000Z");
    /* same stop time and LSN: start LSN, then ID */
    l[1].stop_lsn = l[0].stop_lsn;
    CHECK_INT(expire_choose(keep, l, 3, &p, NOW), 1);
    CHECK_STR(kept_ids(keep, l, 3), "20251124T100000Z");
    l[1].start_lsn = l[0].start_lsn;
    CHECK_INT(expire_choose(keep, l, 3, &p, NOW), 1);
    CHECK_STR(kept_ids(keep, l, 3), "20251124T100001Z");
    /* a window edge on a tie: both ended before the cutoff, the higher LSN is kept */
    p = (struct expire_policy){0, true, 48.5 / DAY, 0};
    l[1].start_lsn = 0x6000028;
    l[1].stop_lsn = 0x6000100;
    CHECK_INT(expire_choose(keep, l, 3, &p, NOW), 1);
    CHECK_STR(kept_ids(keep, l, 3), "20251124T100000Z");
    free_list(l, 3);
}

static void
test_timeline_behind_in_lsn(void)
{
    struct catalog_entry l[3];
    bool keep[3];
    struct expire_policy p = {1, false, 0, 1};

    /* an old backup restored and promoted: timeline 2 forks at a lower LSN than timeline 1's
     * newest backup, but its backup is the newest in time and is the one kept */
    mk(&l[0], "20251124T080000Z", 1, 0x2000028, 0x2000100, NOW - 5000, NOW - 4900);
    mk(&l[1], "20251124T090000Z", 1, 0x9000028, 0x9000100, NOW - 4000, NOW - 3900);
    mk(&l[2], "20251124T100000Z", 2, 0x4000028, 0x4000100, NOW - 1000, NOW - 900);
    CHECK_INT(expire_choose(keep, l, 3, &p, NOW), 1);
    CHECK_STR(kept_ids(keep, l, 3), "20251124T100000Z");
    free_list(l, 3);
}

/* the plan's items as "kind key" lines */
static char *
plan_text(const struct expire_plan *pl)
{
    struct buf b = BUF_INIT;

    for (size_t i = 0; i < pl->n_items; i++)
        buf_printf(&b, "%d %s\n", (int)pl->items[i].kind, pl->items[i].key);
    return buf_detach(&b);
}

static void
test_plan(void)
{
    struct catalog_entry l[3];
    bool keep[3] = {false, true, true};
    struct expire_plan pl;
    struct err err;
    char *got;
    /* B1 (expired) starts in segment 2 on timeline 1, B2 in segment 6 on timeline 1, B3 in
     * segment 9 on timeline 3 (timeline 2 forked at segment 4 from B1, timeline 3 at 8) */
    static const struct expire_obj objs[] = {
        {"pg/backups/20251124T010000Z/backup_manifest", 10, NOW - 9000},
        {"pg/backups/20251124T010000Z/base.tar", 100, NOW - 9000},
        {"pg/backups/20251124T020000Z/backup_manifest", 10, NOW - 8000},
        {"pg/backups/20251124T020000Z/base.tar", 100, NOW - 8000},
        {"pg/backups/20251124T020000Z/stray.tmp", 3, NOW - 8000},
        {"pg/backups/20251124T030000Z/backup_manifest", 10, NOW - 100},
        {"pg/backups/20251124T030000Z/base.tar", 100, NOW - 100},
        {"pg/backups/20251124T040000Z/base.tar", 50, NOW - 30 * 3600}, /* incomplete, old */
        {"pg/backups/20251124T040000Z/16385.tar", 50, NOW - 25 * 3600},
        {"pg/backups/20251124T050000Z/base.tar", 50, NOW - 30 * 3600}, /* incomplete, but */
        {"pg/backups/20251124T050000Z/16385.tar", 50, NOW - 3600},     /* one object is new */
        {"pg/backups/loose", 1, NOW - 9000},
        {"pg/catalog/20251124T010000Z.json", 5, NOW - 9000},
        {"pg/catalog/20251124T020000Z.json", 5, NOW - 8000},
        {"pg/catalog/20251124T030000Z.json", 5, NOW - 100},
        {"pg/catalog/README", 5, NOW - 100},
        {"pg/cluster.json", 5, NOW - 99999},
        {"pg/other/thing", 7, NOW - 99999},
        {"pg/wal/0000000100000000/000000010000000000000001", 16, NOW - 9999},
        {"pg/wal/0000000100000000/000000010000000000000002", 16, NOW - 9999},
        {"pg/wal/0000000100000000/000000010000000000000002.00000028.backup", 1, NOW - 9999},
        {"pg/wal/0000000100000000/000000010000000000000005", 16, NOW - 9999},
        {"pg/wal/0000000100000000/000000010000000000000006", 16, NOW - 9999},
        {"pg/wal/0000000100000000/000000010000000000000006.00000028.backup", 1, NOW - 9999},
        {"pg/wal/0000000100000000/000000010000000000000007", 16, NOW - 9999},
        {"pg/wal/0000000100000000/000000010000000000000008.partial", 16, NOW - 9999},
        {"pg/wal/0000000100000000/garbage", 1, NOW - 9999},
        {"pg/wal/0000000100000000/00000001000000000000000a", 16, NOW - 9999}, /* lower case */
        {"pg/wal/0000000200000000/000000010000000000000003", 16, NOW - 9999}, /* misplaced */
        {"pg/wal/0000000200000000/000000020000000000000004", 16, NOW - 9999},
        {"pg/wal/0000000200000000/000000020000000000000005", 16, NOW - 9999},
        {"pg/wal/0000000300000000/000000030000000000000008", 16, NOW - 9999},
        {"pg/wal/0000000300000000/000000030000000000000009", 16, NOW - 9999},
        {"pg/wal/0000000300000000/000000030000000000000009.00000028.backup", 1, NOW - 9999},
        {"pg/wal/history/00000002.history", 1, NOW - 9999},
        {"pg/wal/history/00000003.history", 1, NOW - 9999},
        {"pg/wal/history/00000004.history", 1, NOW - 9999},
        {"pg/wal/history/0000000X.history", 1, NOW - 9999},
    };

    mk(&l[0], "20251124T010000Z", 1, 0x2000028, 0x2000100, NOW - 9100, NOW - 9000);
    mk(&l[1], "20251124T020000Z", 1, 0x6000028, 0x6000100, NOW - 8100, NOW - 8000);
    mk(&l[2], "20251124T030000Z", 3, 0x9000028, 0x9000100, NOW - 200, NOW - 100);
    CHECK_OK(expire_plan_make(&pl, l, 3, keep, objs, sizeof(objs) / sizeof(objs[0]), SEG, NOW,
                              24 * 3600, &err),
             &err);
    got = plan_text(&pl);
    CHECK_STR(got, "0 pg/catalog/20251124T010000Z.json\n"
                   "1 pg/backups/20251124T010000Z/backup_manifest\n"
                   "1 pg/backups/20251124T010000Z/base.tar\n"
                   "2 pg/backups/20251124T040000Z/16385.tar\n"
                   "2 pg/backups/20251124T040000Z/base.tar\n"
                   "3 pg/backups/20251124T020000Z/stray.tmp\n"
                   "3 pg/backups/loose\n"
                   "3 pg/catalog/README\n"
                   "3 pg/other/thing\n"
                   "3 pg/wal/0000000100000000/00000001000000000000000a\n"
                   "3 pg/wal/0000000100000000/garbage\n"
                   "3 pg/wal/0000000200000000/000000010000000000000003\n"
                   "3 pg/wal/history/0000000X.history\n"
                   "4 pg/wal/0000000100000000/000000010000000000000001\n"
                   "4 pg/wal/0000000100000000/000000010000000000000002\n"
                   "4 pg/wal/0000000100000000/000000010000000000000002.00000028.backup\n"
                   "4 pg/wal/0000000100000000/000000010000000000000005\n"
                   "4 pg/wal/0000000200000000/000000020000000000000004\n"
                   "4 pg/wal/0000000200000000/000000020000000000000005\n");
    free(got);
    CHECK_INT(pl.has_wal_floor, 1);
    CHECK_INT(pl.wal_floor, 6);
    CHECK_INT(pl.min_tli, 1);
    CHECK_INT(pl.count[EXPIRE_CATALOG], 1);
    CHECK_INT(pl.count[EXPIRE_PART], 2);
    CHECK_INT(pl.count[EXPIRE_INCOMPLETE], 2);
    CHECK_INT(pl.count[EXPIRE_ORPHAN], 8);
    CHECK_INT(pl.count[EXPIRE_WAL], 6);
    CHECK_INT(pl.bytes[EXPIRE_WAL], 16 * 5 + 1);
    /* timeline 2 has no WAL left, but B2 (timeline 1) may recover to the latest timeline:
     * PostgreSQL probes 00000002.history, 00000003.history, ... and stops at the first missing */
    CHECK_INT(pl.count[EXPIRE_HISTORY], 0);
    CHECK_INT(pl.n_incomplete_kept, 1);
    CHECK_INT(pl.n_kept_objects, 38 - 19);
    expire_plan_free(&pl);

    /* only B3 kept (timeline 3): WAL below segment 9 goes on every timeline; timeline 2 has
     * no WAL left and is below 3: its history goes, 3 and 4 stay */
    keep[1] = false;
    CHECK_OK(expire_plan_make(&pl, l, 3, keep, objs, sizeof(objs) / sizeof(objs[0]), SEG, NOW,
                              24 * 3600, &err),
             &err);
    CHECK_INT(pl.wal_floor, 9);
    CHECK_INT(pl.min_tli, 3);
    CHECK_INT(pl.count[EXPIRE_CATALOG], 2);
    CHECK_INT(pl.count[EXPIRE_PART], 4);
    CHECK_INT(pl.count[EXPIRE_ORPHAN], 8); /* stray.tmp is not a part: an orphan either way */
    CHECK_INT(pl.count[EXPIRE_WAL], 11);
    CHECK_INT(pl.count[EXPIRE_HISTORY], 1);
    CHECK_STR(pl.items[pl.n_items - 1].key, "pg/wal/history/00000002.history");
    expire_plan_free(&pl);
    free_list(l, 3);
}

static void
test_plan_history_with_wal_left(void)
{
    struct catalog_entry l[1];
    bool keep[1] = {true};
    struct expire_plan pl;
    struct err err;
    char *got;
    /* the only backup is on timeline 3 at segment 9; timeline 2 still has WAL at 9 and beyond
     * (a branch that went on): its history stays; timeline 1's WAL below 9 goes */
    static const struct expire_obj objs[] = {
        {"pg/wal/0000000100000000/000000010000000000000008", 16, NOW},
        {"pg/wal/0000000200000000/000000020000000000000008", 16, NOW},
        {"pg/wal/0000000200000000/00000002000000000000000A", 16, NOW},
        {"pg/wal/history/00000002.history", 1, NOW},
        {"pg/wal/history/00000003.history", 1, NOW},
    };

    mk(&l[0], "20251124T030000Z", 3, 0x9000028, 0x9000100, NOW - 200, NOW - 100);
    CHECK_OK(expire_plan_make(&pl, l, 1, keep, objs, 5, SEG, NOW, 3600, &err), &err);
    got = plan_text(&pl);
    CHECK_STR(got, "4 pg/wal/0000000100000000/000000010000000000000008\n"
                   "4 pg/wal/0000000200000000/000000020000000000000008\n");
    free(got);
    expire_plan_free(&pl);
    free_list(l, 1);
}

static void
test_plan_no_backup(void)
{
    struct expire_plan pl;
    struct err err;
    char *got;
    bool keep[1] = {false};
    /* no complete backup: no WAL or history is touched; old incomplete backups and orphans go */
    static const struct expire_obj objs[] = {
        {"pg/backups/20251124T040000Z/base.tar", 50, NOW - 2 * 3600},
        {"pg/cluster.json", 5, NOW},
        {"pg/junk", 1, NOW},
        {"pg/wal/0000000100000000/000000010000000000000001", 16, NOW - 99999},
        {"pg/wal/history/00000002.history", 1, NOW - 99999},
    };

    CHECK_OK(expire_plan_make(&pl, NULL, 0, keep, objs, 5, 0, NOW, 3600, &err), &err);
    got = plan_text(&pl);
    CHECK_STR(got, "2 pg/backups/20251124T040000Z/base.tar\n3 pg/junk\n");
    free(got);
    CHECK_INT(pl.has_wal_floor, 0);
    CHECK_INT(pl.n_kept_objects, 3);
    expire_plan_free(&pl);
    /* grace 3 hours: it stays */
    CHECK_OK(expire_plan_make(&pl, NULL, 0, keep, objs, 5, 0, NOW, 3 * 3600, &err), &err);
    CHECK_INT(pl.count[EXPIRE_INCOMPLETE], 0);
    CHECK_INT(pl.n_incomplete_kept, 1);
    expire_plan_free(&pl);
}

/* the lock (pg/locks/...) is neither an orphan nor counted among the objects that stay */
static void
test_plan_skips_locks(void)
{
    struct expire_plan pl;
    struct err err;
    char *got;
    bool keep[1] = {false};
    static const struct expire_obj objs[] = {
        {"pg/junk", 1, NOW},
        {"pg/locks/expire", 100, NOW - 99999},
        {"pg/locks/other", 100, NOW - 99999},
        {"pg/lockstep", 1, NOW},
    };

    CHECK_OK(expire_plan_make(&pl, NULL, 0, keep, objs, 4, 0, NOW, 3600, &err), &err);
    got = plan_text(&pl);
    CHECK_STR(got, "3 pg/junk\n3 pg/lockstep\n");
    free(got);
    CHECK_INT(pl.n_kept_objects, 0);
    CHECK_INT(pl.kept_bytes, 0);
    expire_plan_free(&pl);
}

static void
test_lock_text(void)
{
    struct expire_lock l, back;
    struct buf b = BUF_INIT;
    struct err err;
    char d[400];

    memset(&l, 0, sizeof(l));
    snprintf(l.host, sizeof(l.host), "db-cron-2.example");
    l.pid = 4242;
    l.started = NOW;
    snprintf(l.token, sizeof(l.token), "0123456789abcdef0123456789abcdef");
    expire_lock_format(&b, &l);
    CHECK_STR(buf_str(&b), "{\"program\":\"ferry expire\",\"host\":\"db-cron-2.example\","
                           "\"pid\":4242,\"started\":1764000000,"
                           "\"start_time\":\"2025-11-24T16:00:00Z\","
                           "\"token\":\"0123456789abcdef0123456789abcdef\"}\n");
    CHECK_OK(expire_lock_parse(&back, buf_str(&b), &err), &err);
    CHECK_STR(back.host, l.host);
    CHECK_INT(back.pid, 4242);
    CHECK_INT(back.started, NOW);
    CHECK_STR(back.token, l.token);
    buf_free(&b);

    expire_lock_describe(d, sizeof(d), &l, NOW + 65);
    CHECK_STR(d, "host \"db-cron-2.example\", pid 4242, since 2025-11-24T16:00:00Z (65 s ago)");
    expire_lock_describe(d, sizeof(d), &l, NOW + 3600);
    CHECK_STR(d, "host \"db-cron-2.example\", pid 4242, since 2025-11-24T16:00:00Z (60 min ago)");
    expire_lock_describe(d, sizeof(d), &l, NOW + 7 * 3600 + 1800);
    CHECK_STR(d,
              "host \"db-cron-2.example\", pid 4242, since 2025-11-24T16:00:00Z (7.5 hours ago)");
    expire_lock_describe(d, sizeof(d), &l, NOW - 30); /* the holder's clock runs ahead */
    CHECK_STR(d, "host \"db-cron-2.example\", pid 4242, since 2025-11-24T16:00:00Z (0 s ago)");

    CHECK_FAIL(expire_lock_parse(&back, "x", &err), &err, ERR_CORRUPT, NULL);
    CHECK_FAIL(expire_lock_parse(&back, "{\"host\":\"h\",\"pid\":1,\"started\":2}", &err), &err,
               ERR_CORRUPT, "lock \"pg/locks/expire\" lacks a field: Object item not found: token");
    CHECK_FAIL(
        expire_lock_parse(&back, "{\"host\":\"h\",\"pid\":-1,\"started\":2,\"token\":\"t\"}", &err),
        &err, ERR_CORRUPT, "lock \"pg/locks/expire\" has an invalid field");
}

/* ferry info's human units (also used by expire's summary) */
static void
test_info_formats(void)
{
    char b[32];

    info_fmt_bytes(b, 0);
    CHECK_STR(b, "0 B");
    info_fmt_bytes(b, 1023);
    CHECK_STR(b, "1023 B");
    info_fmt_bytes(b, 1024);
    CHECK_STR(b, "1.0 KiB");
    info_fmt_bytes(b, 1536);
    CHECK_STR(b, "1.5 KiB");
    info_fmt_bytes(b, 16u << 20);
    CHECK_STR(b, "16.0 MiB");
    info_fmt_bytes(b, 3ull << 40);
    CHECK_STR(b, "3.0 TiB");
    info_fmt_age(b, -5);
    CHECK_STR(b, "0 s");
    info_fmt_age(b, 59);
    CHECK_STR(b, "59 s");
    info_fmt_age(b, 60);
    CHECK_STR(b, "1 min");
    info_fmt_age(b, 7200 + 59);
    CHECK_STR(b, "2 h 0 min");
    info_fmt_age(b, 2 * DAY + 5 * 3600 + 1);
    CHECK_STR(b, "2 d 5 h");
}

int
main(void)
{
    RUN(test_order_by_stop_time_then_lsn);
    RUN(test_count);
    RUN(test_window);
    RUN(test_minimum_and_both);
    RUN(test_ties);
    RUN(test_timeline_behind_in_lsn);
    RUN(test_plan);
    RUN(test_plan_history_with_wal_left);
    RUN(test_plan_no_backup);
    RUN(test_plan_skips_locks);
    RUN(test_lock_text);
    RUN(test_info_formats);
    return check_done();
}
