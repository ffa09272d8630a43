/* SPDX-License-Identifier: MIT */
/* Unit tests for archive/catalog: the backup catalogue entries. */
#include <stdlib.h>
#include <unistd.h>

#include "archive/catalog.h"
#include "base/xmalloc.h"
#include "check.h"

static void
fill(struct catalog_entry *e, time_t start, uint64_t lsn)
{
    memset(e, 0, sizeof(*e));
    catalog_id(e->id, start);
    e->label = xstrdup("nightly");
    e->sysid = UINT64_C(7311234567890123456);
    e->pg_version_num = 150020;
    e->seg_size = 16u << 20;
    e->timeline = 1;
    e->start_lsn = lsn;
    e->stop_lsn = lsn + 0x100;
    e->start_time = start;
    e->stop_time = start + 42;
    snprintf(e->start_wal, sizeof(e->start_wal), "000000010000000000000013");
    snprintf(e->stop_wal, sizeof(e->stop_wal), "000000010000000000000013");
    struct catalog_part *p = catalog_add_part(e, "base.tar", 0, NULL);
    p->size = 1000;
    p->stored_size = 100;
    memset(p->sha256, 'a', 64);
    p = catalog_add_part(e, "16385.tar", 16385, "/srv/ts1");
    p->size = 2000;
    p->stored_size = 200;
    memset(p->sha256, 'b', 64);
}

static void
test_id_and_round_trip(void)
{
    struct catalog_entry e, back;
    struct err err;
    char *text;

    fill(&e, 1795622400, 0x13000028);
    CHECK_STR(e.id, "20261125T160000Z");
    CHECK_STR(e.parts[1].key, "pg/backups/20261125T160000Z/16385.tar");
    text = catalog_to_json(&e);
    CHECK(strstr(text, "\"start_lsn\": \"0/13000028\"") != NULL);
    CHECK(strstr(text, "\"start_time\": \"2026-11-25T16:00:00Z\"") != NULL);
    CHECK(strstr(text, "\"size\": 3000") != NULL);
    CHECK_OK(catalog_parse(&back, text, strlen(text), &err), &err);
    CHECK_STR(back.id, e.id);
    CHECK_STR(back.label, "nightly");
    CHECK(back.sysid == e.sysid);
    CHECK_INT(back.start_lsn, 0x13000028);
    CHECK_INT(back.stop_lsn, 0x13000128);
    CHECK_INT(back.start_time, 1795622400);
    CHECK_INT(back.stop_time, 1795622442);
    CHECK_INT(back.n_parts, 2);
    CHECK_INT(back.parts[1].tablespace, 16385);
    CHECK_STR(back.parts[1].location, "/srv/ts1");
    CHECK_INT(back.parts[1].stored_size, 200);
    CHECK(back.parts[0].location == NULL);
    free(text);
    catalog_entry_free(&back);
    catalog_entry_free(&e);
}

static void
test_parse_rejects(void)
{
    struct catalog_entry e, back;
    struct err err;
    char *text;

    CHECK_FAIL(catalog_parse(&back, "{", 1, &err), &err, ERR_CORRUPT, NULL);
    CHECK(strstr(err.msg, "catalogue entry is not valid JSON: ") == err.msg);
    fill(&e, 1795622400, 0x13000028);
    text = catalog_to_json(&e);
    /* a part whose key points elsewhere */
    char *k = strstr(text, "pg/backups/20261125T160000Z/base.tar");
    memcpy(k, "pg/backups/20261125T160000Z/xxxx.tar", 36);
    CHECK_FAIL(catalog_parse(&back, text, strlen(text), &err), &err, ERR_CORRUPT,
               "catalogue entry \"20261125T160000Z\": part \"base.tar\" has key "
               "\"pg/backups/20261125T160000Z/xxxx.tar\"");
    free(text);
    /* a part name with a slash would escape the backup's folder */
    free(e.parts[0].name);
    e.parts[0].name = xstrdup("../x");
    text = catalog_to_json(&e);
    CHECK_FAIL(catalog_parse(&back, text, strlen(text), &err), &err, ERR_CORRUPT,
               "catalogue entry \"20261125T160000Z\": part 0 is malformed");
    free(text);
    catalog_entry_free(&e);
    const char *no_parts = "{\"format\": 1}";
    CHECK_FAIL(catalog_parse(&back, no_parts, strlen(no_parts), &err), &err, ERR_CORRUPT, NULL);
    const char *future = "{\"format\": 2, \"id\": \"20261125T160000Z\", \"label\": \"\", "
                         "\"system_identifier\": \"1\", \"pg_version_num\": 1, \"timeline\": 1, "
                         "\"wal_segment_size\": 16777216, \"start_lsn\": \"0/1\", \"stop_lsn\": "
                         "\"0/2\", \"start_wal\": \"\", \"stop_wal\": \"\", \"start_time\": "
                         "\"2026-11-25T16:00:00Z\", \"stop_time\": \"2026-11-25T16:00:00Z\", "
                         "\"parts\": []}";
    CHECK_FAIL(catalog_parse(&back, future, strlen(future), &err), &err, ERR_CORRUPT,
               "catalogue entry \"20261125T160000Z\" has format 2, this ferry reads 1");
}

static void
test_write_list_read(void)
{
    char dir[] = "/tmp/ferry-test-catalog-XXXXXX";
    char url[64], cmd[96];
    struct repo_opts o;
    struct repo *r;
    struct err err;
    struct catalog_entry a, b, got, *list;
    size_t n;

    CHECK(mkdtemp(dir) != NULL);
    snprintf(url, sizeof(url), "file://%s", dir);
    repo_opts_init(&o);
    CHECK_OK(repo_open(&r, url, &o, &err), &err);
    struct archive ar = {r, {OBJECT_COMPRESS_ZSTD, 0, NULL}, NULL};
    /* written out of order; listed by LSN */
    fill(&a, 1795626000, 0x20000028);
    fill(&b, 1795622400, 0x13000028);
    CHECK_OK(catalog_write(&ar, &a, &err), &err);
    CHECK_OK(catalog_write(&ar, &b, &err), &err);
    CHECK_FAIL(catalog_write(&ar, &b, &err), &err, ERR_EXISTS, NULL);
    CHECK_OK(catalog_list(&ar, &list, &n, &err), &err);
    CHECK_INT(n, 2);
    if (n == 2) {
        CHECK_STR(list[0].id, "20261125T160000Z");
        CHECK_STR(list[1].id, "20261125T170000Z");
    }
    catalog_list_free(list, n);
    CHECK_OK(catalog_read(&ar, "20261125T170000Z", &got, &err), &err);
    CHECK_INT(got.start_lsn, 0x20000028);
    catalog_entry_free(&got);
    CHECK_FAIL(catalog_read(&ar, "20991125T170000Z", &got, &err), &err, ERR_NOT_FOUND,
               "no complete backup \"20991125T170000Z\" in the repository");
    catalog_entry_free(&a);
    catalog_entry_free(&b);
    repo_close(r);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CHECK_INT(system(cmd), 0);
}

int
main(void)
{
    RUN(test_id_and_round_trip);
    RUN(test_parse_rejects);
    RUN(test_write_list_read);
    return check_done();
}
