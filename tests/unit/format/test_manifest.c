/* SPDX-License-Identifier: MIT */
/* Unit tests for format/manifest: PostgreSQL's backup_manifest and the per-file checksums. */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "check.h"
#include "format/manifest.h"

/* A manifest around body (the lines after the version line, up to the checksum line). */
static char *
make(const char *head, const char *body, size_t *len)
{
    struct buf b = BUF_INIT;
    unsigned char sha[32];
    unsigned int n;
    EVP_MD_CTX *md = EVP_MD_CTX_new();

    buf_puts(&b, head);
    buf_puts(&b, body);
    EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    EVP_DigestUpdate(md, b.data, b.len);
    EVP_DigestFinal_ex(md, sha, &n);
    EVP_MD_CTX_free(md);
    buf_puts(&b, "\"Manifest-Checksum\": \"");
    for (int i = 0; i < 32; i++)
        buf_printf(&b, "%02x", sha[i]);
    buf_puts(&b, "\"}\n");
    *len = b.len;
    return buf_detach(&b);
}

#define V1 "{ \"PostgreSQL-Backup-Manifest-Version\": 1,\n"
#define V2                                                                                         \
    "{ \"PostgreSQL-Backup-Manifest-Version\": 2,\n\"System-Identifier\": 7441955862227025419,\n"
#define WAL                                                                                        \
    "\"WAL-Ranges\": [\n{ \"Timeline\": 1, \"Start-LSN\": \"0/2000028\", \"End-LSN\": "            \
    "\"0/2000100\" }\n],\n"
/* sha256("abc") */
#define ABC_SHA256 "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

static char *
read_fixture(const char *name, size_t *len)
{
    char path[1024];
    FILE *f;
    char *data;
    long n;

    snprintf(path, sizeof(path), "%s/tests/unit/format/manifest/%s", getenv("FERRY_SOURCE_ROOT"),
             name);
    f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    data = malloc((size_t)n + 1);
    if (fread(data, 1, (size_t)n, f) != (size_t)n)
        n = 0;
    fclose(f);
    *len = (size_t)n;
    return data;
}

static void
test_real_pg15_manifest(void)
{
    /* written by PostgreSQL 15's pg_basebackup -Ft (default CRC32C checksums) */
    size_t len;
    char *text = read_fixture("pg15_crc32c", &len);
    struct manifest m;
    struct manifest_file *f;
    struct manifest_hash *h;
    unsigned char d[MANIFEST_DIGEST_MAX];
    struct err err;

    CHECK(text != NULL);
    if (!text)
        return;
    CHECK_OK(manifest_parse(&m, text, len, &err), &err);
    CHECK_INT(m.version, 1);
    CHECK(!m.has_sysid);
    CHECK(m.n_files > 900);
    CHECK_INT(m.n_wal, 1);
    CHECK_INT(m.wal[0].tli, 1);
    CHECK_INT(m.wal[0].start_lsn, 0x2000028);
    CHECK_INT(m.wal[0].end_lsn, 0x2000100);
    f = manifest_find(&m, "PG_VERSION");
    CHECK(f != NULL);
    if (f) {
        CHECK_INT(f->size, 3);
        CHECK_INT(f->algo, MANIFEST_CRC32C);
        CHECK_STR(f->last_modified, "2026-11-25 14:53:44 GMT");
        /* PostgreSQL's CRC-32C of "15\n", byte order and all */
        h = manifest_hash_new(f->algo);
        manifest_hash_update(h, "1", 1);
        manifest_hash_update(h, "5\n", 2);
        manifest_hash_end(h, d);
        manifest_hash_free(h);
        CHECK_OK(manifest_file_check(f, 3, d, &err), &err);
        CHECK_FAIL(manifest_file_check(f, 4, d, &err), &err, ERR_CORRUPT,
                   "file \"PG_VERSION\" has 4 bytes, the manifest says 3");
        d[0] ^= 1;
        CHECK_FAIL(manifest_file_check(f, 3, d, &err), &err, ERR_CORRUPT,
                   "file \"PG_VERSION\" does not match the manifest: CRC32C 8b744722, the "
                   "manifest says 8a744722");
    }
    CHECK(manifest_find(&m, "global/pg_control") != NULL);
    CHECK(manifest_find(&m, "backup_label") != NULL);
    CHECK(manifest_find(&m, "nope") == NULL);
    /* sorted, so lookups work */
    for (size_t i = 1; i < m.n_files; i++)
        CHECK(strcmp(m.files[i - 1].path, m.files[i].path) < 0);
    manifest_free(&m);
    /* one changed byte anywhere before the last line breaks the manifest checksum */
    text[100] ^= 0x20;
    CHECK_FAIL(manifest_parse(&m, text, len, &err), &err, ERR_CORRUPT, NULL);
    CHECK(strncmp(err.msg, "backup manifest checksum mismatch: computed ", 44) == 0 ||
          strncmp(err.msg, "backup manifest is not valid JSON", 33) == 0);
    free(text);
}

/* Bit by bit, straight from the definition (reflected 0x82F63B78, ~0 in and out). */
static uint32_t
crc32c_reference(const unsigned char *p, size_t len)
{
    uint32_t c = 0xFFFFFFFFu;

    for (size_t i = 0; i < len; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    }
    return c ^ 0xFFFFFFFFu;
}

static void
crc32c_of(unsigned char d[MANIFEST_DIGEST_MAX], const unsigned char *p, size_t len, size_t piece)
{
    struct manifest_hash *h = manifest_hash_new(MANIFEST_CRC32C);

    for (size_t off = 0; off < len; off += piece)
        manifest_hash_update(h, p + off, len - off < piece ? len - off : piece);
    manifest_hash_end(h, d);
    manifest_hash_free(h);
}

static void
test_crc32c_simd(void)
{
    /* the check value of CRC-32C is e3069283; the manifest holds its little-endian bytes */
    unsigned char d[MANIFEST_DIGEST_MAX];
    static const size_t sizes[] = {0,   1,   7,    8,    15,   16,    63,     64,
                                   255, 256, 1000, 4095, 8192, 65536, 1000003};
    static const size_t pieces[] = {1, 3, 64, 4096, 1u << 20};
    size_t max = 1000003 + 64;
    unsigned char *buf = malloc(max);
    uint32_t x = 12345;

    crc32c_of(d, (const unsigned char *)"123456789", 9, 9);
    CHECK_INT(d[0], 0x83);
    CHECK_INT(d[1], 0x92);
    CHECK_INT(d[2], 0x06);
    CHECK_INT(d[3], 0xe3);
    CHECK(buf != NULL);
    if (!buf)
        return;
    for (size_t i = 0; i < max; i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (unsigned char)(x >> 16);
    }
    /* every length, alignment and split gives the reference value */
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        for (size_t align = 0; align < 3; align++) {
            uint32_t want = crc32c_reference(buf + align, sizes[s]);

            for (size_t k = 0; k < sizeof(pieces) / sizeof(pieces[0]); k++) {
                if (sizes[s] > 70000 && pieces[k] < 64)
                    continue; /* slow and says nothing more */
                crc32c_of(d, buf + align, sizes[s], pieces[k]);
                CHECK_INT((uint32_t)d[0] | (uint32_t)d[1] << 8 | (uint32_t)d[2] << 16 |
                              (uint32_t)d[3] << 24,
                          want);
            }
        }
    }
    free(buf);
}

static void
test_v2_encoded_path_sha256(void)
{
    size_t len;
    char *text = make(V2,
                      "\"Files\": [\n"
                      "{ \"Encoded-Path\": \"626173652f312f61\", \"Size\": 3, \"Last-Modified\": "
                      "\"2026-11-25 14:00:00 GMT\", \"Checksum-Algorithm\": \"SHA256\", "
                      "\"Checksum\": \"" ABC_SHA256 "\" },\n"
                      "{ \"Path\": \"none\", \"Size\": 0, \"Last-Modified\": \"x\", "
                      "\"Checksum-Algorithm\": \"NONE\" },\n"
                      "{ \"Path\": \"bare\", \"Size\": 7 }\n"
                      "],\n" WAL,
                      &len);
    struct manifest m;
    struct manifest_file *f;
    struct manifest_hash *h;
    unsigned char d[MANIFEST_DIGEST_MAX];
    struct err err;

    CHECK_OK(manifest_parse(&m, text, len, &err), &err);
    CHECK_INT(m.version, 2);
    CHECK(m.has_sysid);
    CHECK(m.sysid == 7441955862227025419ULL);
    CHECK_INT(m.n_files, 3);
    f = manifest_find(&m, "base/1/a");
    CHECK(f != NULL);
    if (f) {
        h = manifest_hash_new(MANIFEST_SHA256);
        manifest_hash_update(h, "abc", 3);
        manifest_hash_end(h, d);
        manifest_hash_free(h);
        CHECK_OK(manifest_file_check(f, 3, d, &err), &err);
    }
    f = manifest_find(&m, "bare");
    CHECK(f && f->algo == MANIFEST_NONE && f->size == 7);
    /* no checksum: only the size counts */
    memset(d, 0, sizeof(d));
    if (f) {
        CHECK_OK(manifest_file_check(f, 7, d, &err), &err);
    }
    manifest_free(&m);
    free(text);
}

static void
test_hash_lengths(void)
{
    static const enum manifest_algo algos[] = {MANIFEST_SHA224, MANIFEST_SHA256, MANIFEST_SHA384,
                                               MANIFEST_SHA512, MANIFEST_CRC32C, MANIFEST_NONE};
    static const size_t lens[] = {28, 32, 48, 64, 4, 0};
    enum manifest_algo a;

    for (size_t i = 0; i < 6; i++) {
        CHECK_INT(manifest_algo_len(algos[i]), lens[i]);
        CHECK_OK(manifest_algo_parse(manifest_algo_name(algos[i]), &a), &(struct err){0});
        CHECK_INT(a, algos[i]);
    }
    CHECK(manifest_algo_parse("MD5", &a) == -1);
    CHECK(manifest_algo_parse("sha256", &a) == -1);
}

struct bad {
    const char *head;
    const char *body;
    const char *msg;
};

static void
test_rejects(void)
{
    static const struct bad cases[] = {
        {V2 "", "\"Files\": [],\n" WAL, NULL},
        {"{ \"PostgreSQL-Backup-Manifest-Version\": 2,\n", "\"Files\": [],\n" WAL,
         "backup manifest version 2 lacks System-Identifier"},
        {"{ \"PostgreSQL-Backup-Manifest-Version\": 1,\n\"System-Identifier\": 5,\n",
         "\"Files\": [],\n" WAL, "backup manifest version 1 has a System-Identifier"},
        {"{ \"PostgreSQL-Backup-Manifest-Version\": 3,\n", "\"Files\": [],\n" WAL,
         "backup manifest has unsupported version 3"},
        {V1, WAL, "backup manifest lacks Files"},
        {V1, "\"Files\": [],\n", "backup manifest lacks WAL-Ranges"},
        {V1, "\"Files\": [],\n\"WAL-Ranges\": [],\n", "backup manifest has no WAL range"},
        {V1, "\"Files\": [],\n\"Extra\": 1,\n" WAL,
         "backup manifest has an unexpected or malformed field \"Extra\""},
        {V1,
         "\"Files\": [{ \"Path\": \"a\", \"Size\": 1 },\n{ \"Path\": \"a\", \"Size\": 1 }],\n" WAL,
         "backup manifest lists \"a\" twice"},
        {V1, "\"Files\": [{ \"Path\": \"a\", \"Encoded-Path\": \"61\", \"Size\": 1 }],\n" WAL,
         "backup manifest: file 0 needs exactly one of Path and Encoded-Path"},
        {V1, "\"Files\": [{ \"Size\": 1 }],\n" WAL,
         "backup manifest: file 0 needs exactly one of Path and Encoded-Path"},
        {V1, "\"Files\": [{ \"Encoded-Path\": \"6\", \"Size\": 1 }],\n" WAL,
         "backup manifest: file 0 has a bad Encoded-Path"},
        {V1, "\"Files\": [{ \"Encoded-Path\": \"2f6574632f706173737764\", \"Size\": 1 }],\n" WAL,
         "backup manifest: file 0 has a bad Encoded-Path"},
        {V1, "\"Files\": [{ \"Path\": \"/etc/passwd\", \"Size\": 1 }],\n" WAL,
         "backup manifest: file 0 has a bad path"},
        {V1, "\"Files\": [{ \"Path\": \"a\", \"Size\": -1 }],\n" WAL,
         "backup manifest: file \"a\" has no valid Size"},
        {V1,
         "\"Files\": [{ \"Path\": \"a\", \"Size\": 1, \"Checksum-Algorithm\": \"MD5\", "
         "\"Checksum\": \"00\" }],\n" WAL,
         "backup manifest: file \"a\" has an unknown checksum algorithm \"MD5\""},
        {V1,
         "\"Files\": [{ \"Path\": \"a\", \"Size\": 1, \"Checksum-Algorithm\": \"CRC32C\", "
         "\"Checksum\": \"001122\" }],\n" WAL,
         "backup manifest: file \"a\" has a malformed CRC32C checksum"},
        {V1, "\"Files\": [{ \"Path\": \"a\", \"Size\": 1, \"Checksum\": \"00112233\" }],\n" WAL,
         "backup manifest: file \"a\" has a checksum but no algorithm"},
        {V1, "\"Files\": [{ \"Path\": \"a\", \"Size\": 1, \"Mode\": 384 }],\n" WAL,
         "backup manifest: file 0 has an unexpected or malformed field \"Mode\""},
        {V1,
         "\"Files\": [],\n\"WAL-Ranges\": [{ \"Timeline\": 0, \"Start-LSN\": \"0/1\", "
         "\"End-LSN\": \"0/2\" }],\n",
         "backup manifest: WAL range 0 is malformed"},
        {V1,
         "\"Files\": [],\n\"WAL-Ranges\": [{ \"Timeline\": 1, \"Start-LSN\": \"0/3\", "
         "\"End-LSN\": \"0/2\" }],\n",
         "backup manifest: WAL range 0 is malformed"},
    };
    struct manifest m;
    struct err err;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len;
        char *text = make(cases[i].head, cases[i].body, &len);

        if (!cases[i].msg) {
            CHECK_OK(manifest_parse(&m, text, len, &err), &err);
            manifest_free(&m);
        } else {
            CHECK_FAIL(manifest_parse(&m, text, len, &err), &err, ERR_CORRUPT, cases[i].msg);
        }
        free(text);
    }
}

static void
test_checksum_and_lines(void)
{
    size_t len;
    char *text = make(V1, "\"Files\": [],\n" WAL, &len);
    struct manifest m;
    struct err err;
    char *p;

    /* the last line is not part of the checksum; the text must end with a newline */
    CHECK_FAIL(manifest_parse(&m, text, len - 1, &err), &err, ERR_CORRUPT,
               "backup manifest does not end with a newline");
    p = strstr(text, "\"Manifest-Checksum\": \"") + 22;
    *p = *p == '0' ? '1' : '0';
    CHECK_FAIL(manifest_parse(&m, text, len, &err), &err, ERR_CORRUPT, NULL);
    CHECK(strncmp(err.msg, "backup manifest checksum mismatch: computed ", 44) == 0);
    *p = 'x';
    CHECK_FAIL(manifest_parse(&m, text, len, &err), &err, ERR_CORRUPT,
               "backup manifest has a malformed Manifest-Checksum");
    free(text);
    CHECK_FAIL(manifest_parse(&m, "{}\n", 3, &err), &err, ERR_CORRUPT,
               "backup manifest lacks PostgreSQL-Backup-Manifest-Version");
    CHECK_FAIL(manifest_parse(&m, "[1,\n2]\n", 7, &err), &err, ERR_CORRUPT,
               "backup manifest is not a JSON object");
    CHECK_FAIL(manifest_parse(&m, "{", 1, &err), &err, ERR_CORRUPT, NULL);
    CHECK(strncmp(err.msg, "backup manifest is not valid JSON: ", 35) == 0);
    CHECK_FAIL(manifest_parse(&m, "", MANIFEST_MAX_BYTES + 1ul, &err), &err, ERR_CORRUPT,
               "backup manifest is larger than 268435456 bytes");
}

int
main(void)
{
    RUN(test_real_pg15_manifest);
    RUN(test_crc32c_simd);
    RUN(test_v2_encoded_path_sha256);
    RUN(test_hash_lengths);
    RUN(test_rejects);
    RUN(test_checksum_and_lines);
    return check_done();
}
