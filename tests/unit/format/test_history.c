/* SPDX-License-Identifier: MIT */
/* Unit tests for format/history: timeline history files. */
#include "check.h"
#include "format/history.h"

static void
test_parse_promoted_twice(void)
{
    /* as PostgreSQL writes 00000003.history after two promotions */
    const char *text = "1\t0/3000158\tno recovery target specified\n"
                       "\n"
                       "2\t0/5000000\tat restore point \"before\"\n";
    struct history h;
    struct err err;

    CHECK_OK(history_parse(&h, 3, text, strlen(text), &err), &err);
    CHECK_INT(h.n, 3);
    CHECK_INT(h.entries[0].tli, 1);
    CHECK_INT(h.entries[0].begin, 0);
    CHECK_INT(h.entries[0].end, 0x3000158);
    CHECK_INT(h.entries[1].tli, 2);
    CHECK_INT(h.entries[1].begin, 0x3000158);
    CHECK_INT(h.entries[1].end, 0x5000000);
    CHECK_INT(h.entries[2].tli, 3);
    CHECK_INT(h.entries[2].begin, 0x5000000);
    CHECK(h.entries[2].end == UINT64_MAX);
    /* 16 MiB segments: segment 3 holds the first switch, so it is read from timeline 2 */
    CHECK_INT(history_tli_for_segno(&h, 1, 16u << 20), 1);
    CHECK_INT(history_tli_for_segno(&h, 2, 16u << 20), 1);
    CHECK_INT(history_tli_for_segno(&h, 3, 16u << 20), 2);
    CHECK_INT(history_tli_for_segno(&h, 4, 16u << 20), 2);
    CHECK_INT(history_tli_for_segno(&h, 5, 16u << 20), 3);
    CHECK_INT(history_tli_for_segno(&h, 900, 16u << 20), 3);
    history_free(&h);
}

static void
test_parse_comments_and_no_newline(void)
{
    const char *text = "# comment\n  1\t0/3000158\tx";
    struct history h;
    struct err err;

    CHECK_OK(history_parse(&h, 2, text, strlen(text), &err), &err);
    CHECK_INT(h.n, 2);
    CHECK_INT(h.entries[1].begin, 0x3000158);
    history_free(&h);
    /* an empty history is timeline tli alone */
    CHECK_OK(history_parse(&h, 1, "", 0, &err), &err);
    CHECK_INT(h.n, 1);
    CHECK_INT(history_tli_for_segno(&h, 7, 16u << 20), 1);
    history_free(&h);
}

static void
test_switch_points_going_backwards(void)
{
    /* timeline 3 recovered along 2 but stopped before 2's switch from 1: PostgreSQL writes this */
    const char *t = "1\t0/5000000\tx\n2\t0/3000000\ty\n";
    struct history h;
    struct err err;

    CHECK_OK(history_parse(&h, 3, t, strlen(t), &err), &err);
    CHECK_INT(h.n, 3);
    CHECK_INT(history_tli_for_segno(&h, 2, 1u << 20), 1);
    CHECK_INT(history_tli_for_segno(&h, 0x30, 1u << 20), 3);
    CHECK_INT(history_tli_for_segno(&h, 0x60, 1u << 20), 3);
    history_free(&h);
}

static void
test_parse_rejects(void)
{
    struct history h;
    struct err err;
    const char *t;

    t = "1\t0/3000158\tx\n1\t0/4000000\ty\n";
    CHECK_FAIL(history_parse(&h, 3, t, strlen(t), &err), &err, ERR_CORRUPT,
               "timeline history of 3, line 2: timeline 1 out of order");
    t = "3\t0/5000000\tx\n";
    CHECK_FAIL(history_parse(&h, 3, t, strlen(t), &err), &err, ERR_CORRUPT,
               "timeline history of 3, line 1: timeline 3 out of order");
    t = "1 0/zz\n";
    CHECK_FAIL(history_parse(&h, 3, t, strlen(t), &err), &err, ERR_CORRUPT,
               "timeline history of 3, line 1: malformed line");
    t = "x\t0/1\n";
    CHECK_FAIL(history_parse(&h, 3, t, strlen(t), &err), &err, ERR_CORRUPT,
               "timeline history of 3, line 1: malformed line");
    t = "99999999999\t0/1\n";
    CHECK_FAIL(history_parse(&h, 3, t, strlen(t), &err), &err, ERR_CORRUPT,
               "timeline history of 3, line 1: malformed line");
}

int
main(void)
{
    RUN(test_parse_promoted_twice);
    RUN(test_parse_comments_and_no_newline);
    RUN(test_switch_points_going_backwards);
    RUN(test_parse_rejects);
    return check_done();
}
