/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for format/walheader, on first pages of real segments written by
 * PostgreSQL 15 (tests/unit/format/data/, made with initdb --wal-segsize 16 and 1).
 */
#include <stdio.h>

#include "check.h"
#include "format/walheader.h"

static size_t
load(unsigned char *buf, size_t cap, const char *name)
{
    char path[1024];
    FILE *f;
    size_t n;

    snprintf(path, sizeof(path), "%s/tests/unit/format/data/%s", getenv("FERRY_SOURCE_ROOT"), name);
    f = fopen(path, "rb");
    if (!f) {
        printf("# cannot open %s\n", path);
        return 0;
    }
    n = fread(buf, 1, cap, f);
    fclose(f);
    return n;
}

static void
test_real_pg15_segment(void)
{
    unsigned char page[8192];
    struct walheader h;
    struct walname w;
    struct err err;
    size_t n = load(page, sizeof(page), "pg15-16m-000000010000000000000001.head");

    CHECK_INT(n, 8192);
    CHECK_OK(walheader_parse(&h, page, n, &err), &err);
    CHECK_INT(h.magic, 0xD110);
    CHECK_INT(h.pg_version, 15);
    CHECK_INT(h.tli, 1);
    CHECK_INT(h.seg_size, 16u << 20);
    CHECK_INT(h.blcksz, 8192);
    CHECK_INT(h.pageaddr, 16u << 20);
    CHECK(h.sysid != 0);
    CHECK_OK(walname_parse(&w, "000000010000000000000001", &err), &err);
    CHECK_OK(walheader_check_name(&h, &w, &err), &err);
    /* the same bytes under another segment's name */
    CHECK_OK(walname_parse(&w, "000000010000000000000002", &err), &err);
    CHECK_FAIL(walheader_check_name(&h, &w, &err), &err, ERR_CORRUPT,
               "WAL file \"000000010000000000000002\" holds the segment starting at 0/1000000, "
               "not the one its name says");
    /* a later timeline may start with a copy of the old one's segment */
    CHECK_OK(walname_parse(&w, "000000020000000000000001", &err), &err);
    CHECK_OK(walheader_check_name(&h, &w, &err), &err);
    CHECK_OK(walname_parse(&w, "000000010000000000000001.partial", &err), &err);
    CHECK_OK(walheader_check_name(&h, &w, &err), &err);
}

static void
test_recycled_segment_is_refused(void)
{
    unsigned char page[8192];
    struct walheader h;
    struct walname w;
    struct err err;
    size_t n;

    /* 1 MiB segments: segment 6 is the live one, 0B a recycled file still holding segment 2 */
    n = load(page, sizeof(page), "pg15-1m-000000010000000000000006.head");
    CHECK_OK(walheader_parse(&h, page, n, &err), &err);
    CHECK_INT(h.seg_size, 1u << 20);
    CHECK_OK(walname_parse(&w, "000000010000000000000006", &err), &err);
    CHECK_OK(walheader_check_name(&h, &w, &err), &err);
    n = load(page, sizeof(page), "pg15-1m-00000001000000000000000B.head");
    CHECK_OK(walheader_parse(&h, page, n, &err), &err);
    CHECK_OK(walname_parse(&w, "00000001000000000000000B", &err), &err);
    CHECK_FAIL(walheader_check_name(&h, &w, &err), &err, ERR_CORRUPT,
               "WAL file \"00000001000000000000000B\" holds the segment starting at 0/200000, "
               "not the one its name says");
}

static void
test_damaged_headers(void)
{
    unsigned char page[8192], bad[8192];
    struct walheader h;
    struct walname w;
    struct err err;
    size_t n = load(page, sizeof(page), "pg15-16m-000000010000000000000001.head");

    CHECK_FAIL(walheader_parse(&h, page, 39, &err), &err, ERR_CORRUPT,
               "not a WAL segment: 39 bytes, too short for a page header");
    memcpy(bad, page, n);
    bad[0] = 0x34;
    bad[1] = 0x12;
    CHECK_FAIL(walheader_parse(&h, bad, n, &err), &err, ERR_CORRUPT,
               "not a WAL segment: unknown page magic 0x1234");
    memcpy(bad, page, n);
    bad[0] = 0xD1;
    bad[1] = 0x10;
    CHECK_FAIL(walheader_parse(&h, bad, n, &err), &err, ERR_CORRUPT,
               "not supported: WAL from a big-endian server (page magic 0xD110)");
    memcpy(bad, page, n);
    bad[2] = 0x01; /* short header on a first page */
    CHECK_FAIL(walheader_parse(&h, bad, n, &err), &err, ERR_CORRUPT,
               "not a WAL segment: first page has flags 0x0001, not a long header");
    memcpy(bad, page, n);
    bad[33] = 0x03; /* 0x01000000 -> 0x01000300 */
    CHECK_FAIL(walheader_parse(&h, bad, n, &err), &err, ERR_CORRUPT,
               "not a WAL segment: invalid segment size 16777984");
    memcpy(bad, page, n);
    bad[37] = 0x21;
    CHECK_FAIL(walheader_parse(&h, bad, n, &err), &err, ERR_CORRUPT,
               "not a WAL segment: invalid WAL block size 8448");
    memcpy(bad, page, n);
    bad[4] = 0;
    CHECK_FAIL(walheader_parse(&h, bad, n, &err), &err, ERR_CORRUPT,
               "not a WAL segment: timeline 0 in the page header");
    memcpy(bad, page, n);
    bad[8] = 0x28;
    CHECK_FAIL(walheader_parse(&h, bad, n, &err), &err, ERR_CORRUPT,
               "not a WAL segment: page address 1000028 is not a segment start");
    memcpy(bad, page, n);
    bad[4] = 3; /* timeline 3 in the header, 2 in the name */
    CHECK_OK(walheader_parse(&h, bad, n, &err), &err);
    CHECK_OK(walname_parse(&w, "000000020000000000000001", &err), &err);
    CHECK_FAIL(walheader_check_name(&h, &w, &err), &err, ERR_CORRUPT,
               "WAL file \"000000020000000000000001\" has timeline 3 in its header, above the 2 "
               "of its name");
}

static void
test_magic_versions(void)
{
    CHECK_INT(walheader_version_of_magic(0xD110), 15);
    CHECK_INT(walheader_version_of_magic(0xD113), 16);
    CHECK_INT(walheader_version_of_magic(0xD116), 17);
    CHECK_INT(walheader_version_of_magic(0xD10D), 14);
    CHECK_INT(walheader_version_of_magic(0xD111), 0);
}

int
main(void)
{
    RUN(test_real_pg15_segment);
    RUN(test_recycled_segment_is_refused);
    RUN(test_damaged_headers);
    RUN(test_magic_versions);
    return check_done();
}
