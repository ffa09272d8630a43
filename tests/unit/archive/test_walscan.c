/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for archive/walscan: what the WAL archive holds and where its
 * gaps are, on a file:// repository filled with objects under the layout's
 * keys (1 MiB segments: segment number = log * 4096 + seg). walscan reads
 * only the .history files, so segments are small stand-ins.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive/walscan.h"
#include "base/xmalloc.h"
#include "check.h"
#include "stream/stages.h"

#define SEG (1u << 20)

static char dir[128];
static struct repo *repo;
static struct archive ar;

static void
setup(void)
{
    struct repo_opts o;
    struct err err;
    char url[200];

    snprintf(dir, sizeof(dir), "/tmp/ferry-test-walscan-XXXXXX");
    if (!mkdtemp(dir))
        abort();
    snprintf(url, sizeof(url), "file://%s", dir);
    repo_opts_init(&o);
    if (repo_open(&repo, url, &o, &err) < 0) {
        printf("# %s\n", err.msg);
        abort();
    }
    memset(&ar, 0, sizeof(ar));
    ar.repo = repo;
    ar.oopts.compress = OBJECT_COMPRESS_ZSTD;
}

static void
teardown(void)
{
    char cmd[200];

    repo_close(repo);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        abort();
}

/* Store text as a ferry object under key. */
static void
put(const char *key, const char *text)
{
    struct err err;
    struct sink *chain = object_encode_sink_new(repo_put_sink_new(repo, key, 0), &ar.oopts, NULL);

    if (sink_write(chain, text, strlen(text), &err) < 0 || sink_finish(chain, &err) < 0) {
        printf("# put \"%s\": %s\n", key, err.msg);
        abort();
    }
    sink_free(chain);
}

static void
put_segment(uint32_t tli, uint64_t segno, const char *suffix)
{
    struct walname w;
    char name[WALNAME_MAX], key[128];

    walname_from_segno(&w, tli, segno, SEG);
    walname_format(name, &w);
    snprintf(key, sizeof(key), "pg/wal/%08X%08X/%s%s", tli, w.log, name, suffix);
    put(key, "segment stand-in");
}

static void
del_segment(uint32_t tli, uint64_t segno)
{
    struct walname w;
    struct err err;
    char name[WALNAME_MAX], key[128];

    walname_from_segno(&w, tli, segno, SEG);
    walname_format(name, &w);
    snprintf(key, sizeof(key), "pg/wal/%08X%08X/%s", tli, w.log, name);
    if (repo_delete(repo, key, &err) < 0)
        abort();
}

/*
 * Timeline 1: segments 1..5 and 6.partial (promotion at 0/650000, inside
 * segment 6); timeline 2: 6..9 and its history; a backup history file.
 */
static void
two_timelines(bool with_history)
{
    for (uint64_t i = 1; i <= 5; i++)
        put_segment(1, i, "");
    put_segment(1, 6, ".partial");
    put_segment(1, 2, ".00000028.backup");
    for (uint64_t i = 6; i <= 9; i++)
        put_segment(2, i, "");
    if (with_history)
        put("pg/wal/history/00000002.history", "1\t0/650000\tno recovery target specified\n");
}

static void
test_two_timelines_no_gap(void)
{
    struct walscan s;
    struct err err;
    struct walscan_gap *gaps = NULL;
    size_t n = 0;

    setup();
    two_timelines(true);
    /* not WAL, or not where the layout puts it: ignored */
    put("pg/wal/0000000100000000/junk", "x");
    put("pg/wal/0000000200000000/000000010000000000000007", "x");
    CHECK_OK(walscan_run(&s, &ar, SEG, &err), &err);
    CHECK_INT(s.seg_size, SEG);
    CHECK_INT(s.n_files, 12);
    CHECK_INT(s.n_timelines, 2);
    CHECK_INT(s.n_gaps, 0);
    CHECK_STR(s.files[0].key, "pg/wal/0000000100000000/000000010000000000000001");
    CHECK_STR(s.files[s.n_files - 1].key, "pg/wal/history/00000002.history");
    CHECK_INT(s.timelines[0].tli, 1);
    CHECK_INT(s.timelines[0].n_segments, 5);
    CHECK_INT(s.timelines[0].first_segno, 1);
    CHECK_INT(s.timelines[0].last_segno, 5);
    CHECK(!s.timelines[0].has_history);
    CHECK_INT(s.timelines[0].history.n, 1);
    CHECK_INT(s.timelines[1].tli, 2);
    CHECK_INT(s.timelines[1].n_segments, 4);
    CHECK_INT(s.timelines[1].first_segno, 6);
    CHECK_INT(s.timelines[1].last_segno, 9);
    CHECK(s.timelines[1].has_history);
    CHECK_INT(s.timelines[1].history.n, 2);
    CHECK_INT(s.timelines[1].history.entries[0].end, 0x650000);
    uint64_t total = 0;
    for (size_t i = 0; i < s.n_files; i++)
        total += s.files[i].stored_size;
    CHECK(total > 0);
    CHECK_INT(s.stored_bytes, total);
    CHECK_INT(s.timelines[0].stored_bytes + s.timelines[1].stored_bytes, total);

    const struct walscan_file *f = walscan_find_segment(&s, 1, 6);
    CHECK(f == NULL); /* only the .partial */
    f = walscan_find_segment(&s, 2, 6);
    CHECK(f != NULL && f->name.kind == WALNAME_SEGMENT && f->segno == 6);
    CHECK(walscan_find_segment(&s, 1, 2) != NULL);
    CHECK(walscan_find_segment(&s, 3, 2) == NULL);
    for (size_t i = 0; i < s.n_files; i++) {
        if (s.files[i].name.kind == WALNAME_BACKUP)
            CHECK_INT(s.files[i].segno, 2);
        if (s.files[i].name.kind == WALNAME_HISTORY)
            CHECK_INT(s.files[i].segno, 0);
        if (s.files[i].name.kind == WALNAME_PARTIAL)
            CHECK_INT(s.files[i].segno, 6);
    }

    /* along timeline 2 from a backup on timeline 1 across the switch: all there */
    CHECK_INT(walscan_missing(&s, 2, 0x100028, 0x980000, &gaps, &n), 0);
    CHECK_INT(n, 0);
    /* along timeline 1 beyond its switch point: 6 is only a .partial, 7..9 do not exist */
    CHECK_INT(walscan_missing(&s, 1, 0x100028, 0x980000, &gaps, &n), 1);
    CHECK_INT(n, 1);
    CHECK_INT(gaps[0].tli, 1);
    CHECK_INT(gaps[0].first_missing, 6);
    CHECK_INT(gaps[0].last_missing, 9);
    /* a stop point at a segment boundary needs only the segment before it */
    CHECK_INT(walscan_missing(&s, 1, 0x100028, 0x600000, &gaps, &n), 0);
    CHECK_INT(walscan_missing(&s, 1, 0x100028, 0x600001, &gaps, &n), 1);
    CHECK_INT(n, 2);
    CHECK_INT(gaps[1].first_missing, 6);
    CHECK_INT(gaps[1].last_missing, 6);
    /* a new call never merges into the gaps of an earlier one */
    CHECK_INT(walscan_missing(&s, 1, 0x700000, 0x700010, &gaps, &n), 1);
    CHECK_INT(n, 3);
    CHECK_INT(gaps[2].first_missing, 7);
    free(gaps);
    walscan_free(&s);
    walscan_free(&s); /* twice is harmless */
    teardown();
}

static void
test_real_gaps(void)
{
    struct walscan s;
    struct err err;
    struct walscan_gap *gaps = NULL;
    size_t n = 0;

    setup();
    two_timelines(true);
    del_segment(1, 3);
    del_segment(2, 6); /* the first segment after the switch */
    del_segment(2, 8);
    CHECK_OK(walscan_run(&s, &ar, SEG, &err), &err);
    CHECK_INT(s.n_gaps, 3);
    CHECK_INT(s.gaps[0].tli, 1);
    CHECK_INT(s.gaps[0].first_missing, 3);
    CHECK_INT(s.gaps[0].last_missing, 3);
    CHECK_INT(s.gaps[1].tli, 2);
    CHECK_INT(s.gaps[1].first_missing, 6);
    CHECK_INT(s.gaps[1].last_missing, 6);
    CHECK_INT(s.gaps[2].tli, 2);
    CHECK_INT(s.gaps[2].first_missing, 8);
    CHECK_INT(s.gaps[2].last_missing, 8);
    CHECK_INT(s.timelines[1].first_segno, 7);
    CHECK_INT(walscan_missing(&s, 2, 0x100028, 0x980000, &gaps, &n), 3);
    CHECK_INT(n, 3);
    CHECK(gaps[0].tli == 1 && gaps[0].first_missing == 3 && gaps[0].last_missing == 3);
    CHECK(gaps[1].tli == 2 && gaps[1].first_missing == 6 && gaps[1].last_missing == 6);
    CHECK(gaps[2].tli == 2 && gaps[2].first_missing == 8 && gaps[2].last_missing == 8);
    free(gaps);
    walscan_free(&s);

    /* several adjacent missing segments make one gap; the end of timeline 1 is known from 2's
     * history even though its last segments are gone */
    del_segment(1, 4);
    del_segment(1, 5);
    CHECK_OK(walscan_run(&s, &ar, SEG, &err), &err);
    CHECK_INT(s.n_gaps, 3);
    CHECK(s.gaps[0].tli == 1 && s.gaps[0].first_missing == 3 && s.gaps[0].last_missing == 5);
    walscan_free(&s);
    teardown();
}

static void
test_expired_start_is_not_a_gap(void)
{
    struct walscan s;
    struct err err;

    /* older WAL expired: timeline 1 starts at 4, timeline 2 (from 0/650000) is complete */
    setup();
    two_timelines(true);
    del_segment(1, 1);
    del_segment(1, 2);
    del_segment(1, 3);
    CHECK_OK(walscan_run(&s, &ar, SEG, &err), &err);
    CHECK_INT(s.n_gaps, 0);
    CHECK_INT(s.timelines[0].first_segno, 4);
    walscan_free(&s);
    teardown();

    /* only timeline 2 is left: nothing before its first segment is expected */
    setup();
    put("pg/wal/history/00000002.history", "1\t0/650000\tno recovery target specified\n");
    for (uint64_t i = 8; i <= 9; i++)
        put_segment(2, i, "");
    CHECK_OK(walscan_run(&s, &ar, SEG, &err), &err);
    CHECK_INT(s.n_gaps, 0);
    CHECK_INT(s.n_timelines, 1);
    walscan_free(&s);
    teardown();
}

static void
test_missing_history(void)
{
    struct walscan s;
    struct err err;
    struct walscan_gap *gaps = NULL;
    size_t n = 0;

    setup();
    two_timelines(false);
    CHECK_OK(walscan_run(&s, &ar, SEG, &err), &err);
    CHECK_INT(s.n_timelines, 2);
    CHECK(!s.timelines[1].has_history);
    /* without it, timeline 2 is just itself: its own segments show no gap */
    CHECK_INT(s.timelines[1].history.n, 1);
    CHECK_INT(s.timelines[1].history.entries[0].tli, 2);
    CHECK_INT(s.n_gaps, 0);
    /* but a backup on timeline 1 cannot be followed onto timeline 2 */
    CHECK_INT(walscan_missing(&s, 2, 0x100028, 0x980000, &gaps, &n), 1);
    CHECK(n == 1 && gaps[0].tli == 2 && gaps[0].first_missing == 1 && gaps[0].last_missing == 5);
    free(gaps);
    walscan_free(&s);
    teardown();
}

static void
test_branches_and_multiple_children(void)
{
    struct walscan s;
    struct err err;
    struct walscan_gap *gaps = NULL;
    size_t n = 0;

    /* timeline 3 branches from 1 again, later (0/8800000, segment 8): timeline 1 must hold 1..7 */
    setup();
    two_timelines(true);
    for (uint64_t i = 6; i <= 7; i++)
        put_segment(1, i, "");
    put_segment(1, 8, ".partial");
    put("pg/wal/history/00000003.history", "1\t0/880000\tbranch again\n");
    for (uint64_t i = 8; i <= 9; i++)
        put_segment(3, i, "");
    del_segment(1, 7);
    CHECK_OK(walscan_run(&s, &ar, SEG, &err), &err);
    CHECK_INT(s.n_timelines, 3);
    CHECK_INT(s.n_gaps, 1);
    CHECK(s.gaps[0].tli == 1 && s.gaps[0].first_missing == 7 && s.gaps[0].last_missing == 7);
    CHECK_INT(walscan_missing(&s, 3, 0x100000, 0x9FFFFF, &gaps, &n), 1);
    CHECK(n == 1 && gaps[0].tli == 1 && gaps[0].first_missing == 7);
    CHECK_INT(walscan_missing(&s, 2, 0x100000, 0x9FFFFF, &gaps, &n), 0);
    /* an unknown timeline is just itself */
    CHECK_INT(walscan_missing(&s, 9, 0x100000, 0x100001, &gaps, &n), 1);
    CHECK(n == 2 && gaps[1].tli == 9 && gaps[1].first_missing == 1 && gaps[1].last_missing == 1);
    free(gaps);
    walscan_free(&s);
    teardown();

    /* a timeline with nothing archived but its history, between 1 and 3, is all missing */
    setup();
    for (uint64_t i = 1; i <= 3; i++)
        put_segment(1, i, "");
    put("pg/wal/history/00000002.history", "1\t0/300000\tx\n");
    put("pg/wal/history/00000003.history", "1\t0/300000\tx\n2\t0/500000\ty\n");
    put_segment(3, 5, "");
    CHECK_OK(walscan_run(&s, &ar, SEG, &err), &err);
    CHECK_INT(s.n_timelines, 3);
    CHECK_INT(s.timelines[1].n_segments, 0);
    CHECK_INT(s.n_gaps, 1);
    CHECK(s.gaps[0].tli == 2 && s.gaps[0].first_missing == 3 && s.gaps[0].last_missing == 4);
    walscan_free(&s);
    teardown();
}

static void
test_errors(void)
{
    struct walscan s;
    struct err err;

    setup();
    CHECK_OK(walscan_run(&s, &ar, SEG, &err), &err); /* empty archive */
    CHECK_INT(s.n_files, 0);
    CHECK_INT(s.n_timelines, 0);
    CHECK_INT(s.n_gaps, 0);
    CHECK(walscan_find_segment(&s, 1, 1) == NULL);
    walscan_free(&s);

    CHECK_FAIL(walscan_run(&s, &ar, 12345, &err), &err, ERR_USAGE,
               "invalid WAL segment size 12345");
    put_segment(1, 1, "");
    put("pg/wal/history/00000002.history", "1\tnot-an-lsn\tx\n");
    CHECK_FAIL(walscan_run(&s, &ar, SEG, &err), &err, ERR_CORRUPT, NULL);
    CHECK(strncmp(err.msg, "\"pg/wal/history/00000002.history\": ", 35) == 0);
    CHECK(s.n_files == 0 && s.files == NULL); /* untouched on failure */

    /* a history object that is not a ferry object */
    struct err e2;
    CHECK_OK(repo_put_buf(repo, "pg/wal/history/00000002.history", "1\t0/300000\tx\n", 13, 0, &e2),
             &e2);
    CHECK_FAIL(walscan_run(&s, &ar, SEG, &err), &err, ERR_CORRUPT, NULL);
    CHECK(strncmp(err.msg, "could not read \"pg/wal/history/00000002.history\": ", 50) == 0);
    teardown();
}

int
main(void)
{
    RUN(test_two_timelines_no_gap);
    RUN(test_real_gaps);
    RUN(test_expired_start_is_not_a_gap);
    RUN(test_missing_history);
    RUN(test_branches_and_multiple_children);
    RUN(test_errors);
    return check_done();
}
