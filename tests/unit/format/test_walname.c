/* SPDX-License-Identifier: MIT */
/* Unit tests for format/walname: WAL file names, segment numbers, LSNs. */
#include "check.h"
#include "format/walname.h"

static void
test_parse_each_kind(void)
{
    struct walname w;
    struct err err;
    char buf[WALNAME_MAX];

    CHECK_OK(walname_parse(&w, "0000000200000001000000FF", &err), &err);
    CHECK_INT(w.kind, WALNAME_SEGMENT);
    CHECK_INT(w.tli, 2);
    CHECK_INT(w.log, 1);
    CHECK_INT(w.seg, 0xFF);
    walname_format(buf, &w);
    CHECK_STR(buf, "0000000200000001000000FF");

    CHECK_OK(walname_parse(&w, "0000000200000001000000FF.partial", &err), &err);
    CHECK_INT(w.kind, WALNAME_PARTIAL);
    walname_format(buf, &w);
    CHECK_STR(buf, "0000000200000001000000FF.partial");

    CHECK_OK(walname_parse(&w, "000000010000000000000002.00000028.backup", &err), &err);
    CHECK_INT(w.kind, WALNAME_BACKUP);
    CHECK_INT(w.offset, 0x28);
    walname_format(buf, &w);
    CHECK_STR(buf, "000000010000000000000002.00000028.backup");

    CHECK_OK(walname_parse(&w, "0000000A.history", &err), &err);
    CHECK_INT(w.kind, WALNAME_HISTORY);
    CHECK_INT(w.tli, 10);
    walname_format(buf, &w);
    CHECK_STR(buf, "0000000A.history");
}

static void
test_parse_rejects(void)
{
    static const char *const bad[] = {
        "",
        "00000001000000000000000",
        "0000000100000000000000001",
        "00000001000000000000000a", /* PostgreSQL writes upper case */
        "00000001000000000000000G",
        "000000000000000000000001", /* timeline 0 */
        "00000000.history",
        "0000001.history",
        "000000010000000000000001.part",
        "000000010000000000000001.0000028.backup",
        "000000010000000000000001.00000028.backupX",
        "../00000001000000000000001",
        "RECOVERYXLOG",
    };
    struct walname w;
    struct err err;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char want[128];

        snprintf(want, sizeof(want), "\"%s\" is not a WAL file name", bad[i]);
        CHECK_FAIL(walname_parse(&w, bad[i], &err), &err, ERR_USAGE, want);
    }
}

static void
test_segno_round_trip(void)
{
    static const uint32_t sizes[] = {1u << 20, 16u << 20, 64u << 20, 1u << 30};
    struct walname w, back;
    struct err err;
    uint64_t segno;

    for (size_t i = 0; i < 4; i++) {
        uint64_t per_log = UINT64_C(0x100000000) / sizes[i];
        uint64_t cases[] = {0, 1, per_log - 1, per_log, per_log * 7 + 3};

        for (size_t j = 0; j < 5; j++) {
            walname_from_segno(&w, 3, cases[j], sizes[i]);
            CHECK_OK(walname_segno(&segno, &w, sizes[i]) == 0 ? 0 : -1, &err);
            CHECK_INT(segno, cases[j]);
            CHECK_INT(walname_segno_lsn(segno, sizes[i]), cases[j] * sizes[i]);
            back = w;
            CHECK_INT(back.log, cases[j] / per_log);
        }
    }
    /* 16 MiB: 256 segments per log id, so seg 0x100 does not exist */
    CHECK_OK(walname_parse(&w, "000000010000000000000100", &err), &err);
    CHECK_INT(walname_segno(&segno, &w, 16u << 20), -1);
    CHECK_INT(walname_segno(&segno, &w, 1u << 20), 0);
    CHECK_INT(segno, 0x100);
    CHECK(!walname_seg_size_valid(0));
    CHECK(!walname_seg_size_valid(3u << 20));
    CHECK(!walname_seg_size_valid(1u << 31));
    CHECK(walname_seg_size_valid(1u << 20));
}

static void
test_lsn(void)
{
    uint64_t lsn;
    struct err err;
    char buf[18];

    CHECK_OK(walname_lsn_parse(&lsn, "16/B374D848", &err), &err);
    CHECK_INT(lsn, UINT64_C(0x16B374D848));
    walname_lsn_format(buf, lsn);
    CHECK_STR(buf, "16/B374D848");
    CHECK_OK(walname_lsn_parse(&lsn, "0/0", &err), &err);
    CHECK_INT(lsn, 0);
    CHECK_OK(walname_lsn_parse(&lsn, "FFFFFFFF/ffffffff", &err), &err);
    CHECK_INT(lsn, UINT64_MAX);
    CHECK_FAIL(walname_lsn_parse(&lsn, "16B374D848", &err), &err, ERR_USAGE,
               "\"16B374D848\" is not a valid LSN (expected e.g. \"0/16B3748\")");
    CHECK_FAIL(walname_lsn_parse(&lsn, "/1", &err), &err, ERR_USAGE, NULL);
    CHECK_FAIL(walname_lsn_parse(&lsn, "1/", &err), &err, ERR_USAGE, NULL);
    CHECK_FAIL(walname_lsn_parse(&lsn, "1/123456789", &err), &err, ERR_USAGE, NULL);
    CHECK_FAIL(walname_lsn_parse(&lsn, "1/2/3", &err), &err, ERR_USAGE, NULL);
    CHECK_FAIL(walname_lsn_parse(&lsn, "1/x", &err), &err, ERR_USAGE, NULL);
}

int
main(void)
{
    RUN(test_parse_each_kind);
    RUN(test_parse_rejects);
    RUN(test_segno_round_trip);
    RUN(test_lsn);
    return check_done();
}
