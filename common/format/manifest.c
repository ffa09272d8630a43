/* SPDX-License-Identifier: MIT */
/* PostgreSQL backup manifests: see manifest.h. */
#include "format/manifest.h"

#include <inttypes.h>
#include <isa-l/crc.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "base/xmalloc.h"
#include "format/walname.h"

static const char *const algo_names[] = {"NONE", "CRC32C", "SHA224", "SHA256", "SHA384", "SHA512"};
static const size_t algo_lens[] = {0, 4, 28, 32, 48, 64};

int
manifest_algo_parse(const char *s, enum manifest_algo *out)
{
    for (size_t i = 0; i < sizeof(algo_names) / sizeof(algo_names[0]); i++) {
        if (strcmp(s, algo_names[i]) == 0) {
            *out = (enum manifest_algo)i;
            return 0;
        }
    }
    return -1;
}

const char *
manifest_algo_name(enum manifest_algo a)
{
    return algo_names[a];
}

size_t
manifest_algo_len(enum manifest_algo a)
{
    return algo_lens[a];
}

/* ---- checksums ---------------------------------------------------------------------------- */

/*
 * CRC-32C (Castagnoli), PostgreSQL's default manifest checksum, by ISA-L's
 * crc32_iscsi (SSE4.2/PCLMULQDQ/AVX-512 chosen at run time, about 20x the
 * byte-wise table). ISA-L neither inverts the initial value nor the result:
 * the usual ~0 start and final XOR are done here (tests/unit/format/
 * test_manifest.c checks values PostgreSQL wrote). Its length is an int, so
 * updates go in pieces of at most 1 GiB.
 */
#define CRC32C_PIECE (1u << 30)

struct manifest_hash {
    enum manifest_algo algo;
    uint32_t crc;
    EVP_MD_CTX *md;
};

struct manifest_hash *
manifest_hash_new(enum manifest_algo algo)
{
    struct manifest_hash *h = xcalloc(1, sizeof(*h));
    const EVP_MD *md = NULL;

    h->algo = algo;
    switch (algo) {
    case MANIFEST_NONE:
        break;
    case MANIFEST_CRC32C:
        h->crc = 0xFFFFFFFFu;
        break;
    case MANIFEST_SHA224:
        md = EVP_sha224();
        break;
    case MANIFEST_SHA256:
        md = EVP_sha256();
        break;
    case MANIFEST_SHA384:
        md = EVP_sha384();
        break;
    case MANIFEST_SHA512:
        md = EVP_sha512();
        break;
    }
    if (md) {
        h->md = EVP_MD_CTX_new();
        if (!h->md || EVP_DigestInit_ex(h->md, md, NULL) != 1)
            abort(); /* OpenSSL fails here only when out of memory */
    }
    return h;
}

void
manifest_hash_update(struct manifest_hash *h, const void *data, size_t len)
{
    const unsigned char *p = data;

    if (h->algo == MANIFEST_CRC32C) {
        while (len) {
            size_t n = len < CRC32C_PIECE ? len : CRC32C_PIECE;

            /* crc32_iscsi only reads the buffer; its prototype lacks the const */
            h->crc = crc32_iscsi((unsigned char *)(uintptr_t)p, (int)n, h->crc);
            p += n;
            len -= n;
        }
    } else if (h->md && len) {
        if (EVP_DigestUpdate(h->md, data, len) != 1)
            abort();
    }
}

void
manifest_hash_end(struct manifest_hash *h, unsigned char out[MANIFEST_DIGEST_MAX])
{
    unsigned int n = 0;

    memset(out, 0, MANIFEST_DIGEST_MAX);
    if (h->algo == MANIFEST_CRC32C) {
        uint32_t c = h->crc ^ 0xFFFFFFFFu;

        /* PostgreSQL copies the uint32 as it lies in memory on a little-endian machine */
        out[0] = (unsigned char)(c & 0xFF);
        out[1] = (unsigned char)((c >> 8) & 0xFF);
        out[2] = (unsigned char)((c >> 16) & 0xFF);
        out[3] = (unsigned char)(c >> 24);
    } else if (h->md) {
        if (EVP_DigestFinal_ex(h->md, out, &n) != 1)
            abort();
    }
}

void
manifest_hash_free(struct manifest_hash *h)
{
    if (!h)
        return;
    EVP_MD_CTX_free(h->md);
    free(h);
}

static void
hex(char *out, const unsigned char *b, size_t n)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = '\0';
}

int
manifest_file_check(const struct manifest_file *f, uint64_t size,
                    const unsigned char digest[MANIFEST_DIGEST_MAX], struct err *err)
{
    char got[2 * MANIFEST_DIGEST_MAX + 1], want[2 * MANIFEST_DIGEST_MAX + 1];

    if (size != f->size)
        return err_set(err, ERR_CORRUPT,
                       "file \"%s\" has %" PRIu64 " bytes, the manifest says %" PRIu64, f->path,
                       size, f->size);
    if (f->checksum_len && memcmp(digest, f->checksum, f->checksum_len) != 0) {
        hex(got, digest, f->checksum_len);
        hex(want, f->checksum, f->checksum_len);
        return err_set(err, ERR_CORRUPT,
                       "file \"%s\" does not match the manifest: %s %s, the manifest says %s",
                       f->path, manifest_algo_name(f->algo), got, want);
    }
    return 0;
}

/* ---- parsing ------------------------------------------------------------------------------ */

static int
unhex(unsigned char *out, size_t max, size_t *out_len, const char *s)
{
    size_t n = strlen(s);

    if (n % 2 || n / 2 > max)
        return -1;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int v;

        if (c >= '0' && c <= '9')
            v = c - '0';
        else if (c >= 'a' && c <= 'f')
            v = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v = c - 'A' + 10;
        else
            return -1;
        if (i % 2 == 0)
            out[i / 2] = (unsigned char)(v << 4);
        else
            out[i / 2] |= (unsigned char)v;
    }
    *out_len = n / 2;
    return 0;
}

/*
 * The checksum covers every byte up to and including the newline before the
 * last line; the text must end with a newline and have at least two lines.
 */
static int
check_manifest_checksum(const char *text, size_t len, const char *want, struct err *err)
{
    size_t last = 0, before_last = 0, newlines = 0;
    unsigned char sha[32], w[32];
    size_t wlen;
    unsigned int n;
    EVP_MD_CTX *md;
    char got_hex[65];

    for (size_t i = 0; i < len; i++) {
        if (text[i] == '\n') {
            newlines++;
            before_last = last;
            last = i;
        }
    }
    if (newlines < 2)
        return err_set(err, ERR_CORRUPT, "backup manifest has fewer than two lines");
    if (last != len - 1)
        return err_set(err, ERR_CORRUPT, "backup manifest does not end with a newline");
    if (unhex(w, sizeof(w), &wlen, want) < 0 || wlen != 32)
        return err_set(err, ERR_CORRUPT, "backup manifest has a malformed Manifest-Checksum");
    md = EVP_MD_CTX_new();
    if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(md, text, before_last + 1) != 1 || EVP_DigestFinal_ex(md, sha, &n) != 1)
        abort();
    EVP_MD_CTX_free(md);
    if (memcmp(sha, w, 32) != 0) {
        hex(got_hex, sha, 32);
        return err_set(err, ERR_CORRUPT,
                       "backup manifest checksum mismatch: computed %s, the manifest says %.64s",
                       got_hex, want);
    }
    return 0;
}

static int
cmp_files(const void *a, const void *b)
{
    return strcmp(((const struct manifest_file *)a)->path, ((const struct manifest_file *)b)->path);
}

static void
files_free(struct manifest_file *files, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(files[i].path);
        free(files[i].last_modified);
    }
    free(files);
}

/* A relative '/'-separated path as PostgreSQL writes it: no NUL, not empty, not absolute. */
static bool
path_ok(const char *p, size_t len)
{
    return len > 0 && p[0] != '/' && memchr(p, '\0', len) == NULL;
}

static int
parse_file(struct manifest_file *f, json_t *jf, size_t idx, struct err *err)
{
    json_t *v;
    const char *key;
    const char *path = NULL, *epath = NULL, *algo = NULL, *sum = NULL, *mtime = NULL;
    json_int_t size = -1;
    unsigned char raw[4096];
    size_t raw_len;

    memset(f, 0, sizeof(*f));
    if (!json_is_object(jf))
        return err_set(err, ERR_CORRUPT, "backup manifest: file %zu is not an object", idx);
    json_object_foreach(jf, key, v)
    {
        if (strcmp(key, "Path") == 0 && json_is_string(v))
            path = json_string_value(v);
        else if (strcmp(key, "Encoded-Path") == 0 && json_is_string(v))
            epath = json_string_value(v);
        else if (strcmp(key, "Size") == 0 && json_is_integer(v))
            size = json_integer_value(v);
        else if (strcmp(key, "Last-Modified") == 0 && json_is_string(v))
            mtime = json_string_value(v);
        else if (strcmp(key, "Checksum-Algorithm") == 0 && json_is_string(v))
            algo = json_string_value(v);
        else if (strcmp(key, "Checksum") == 0 && json_is_string(v))
            sum = json_string_value(v);
        else
            return err_set(
                err, ERR_CORRUPT,
                "backup manifest: file %zu has an unexpected or malformed field \"%.64s\"", idx,
                key);
    }
    if (!path == !epath)
        return err_set(err, ERR_CORRUPT,
                       "backup manifest: file %zu needs exactly one of Path and Encoded-Path", idx);
    if (path) {
        if (!path_ok(path, json_string_length(json_object_get(jf, "Path"))))
            return err_set(err, ERR_CORRUPT, "backup manifest: file %zu has a bad path", idx);
        f->path = xstrdup(path);
    } else {
        if (unhex(raw, sizeof(raw) - 1, &raw_len, epath) < 0 || !path_ok((char *)raw, raw_len))
            return err_set(err, ERR_CORRUPT, "backup manifest: file %zu has a bad Encoded-Path",
                           idx);
        f->path = xstrndup((const char *)raw, raw_len);
    }
    if (size < 0)
        return err_set(err, ERR_CORRUPT, "backup manifest: file \"%s\" has no valid Size", f->path);
    f->size = (uint64_t)size;
    f->last_modified = xstrdup(mtime ? mtime : "");
    f->algo = MANIFEST_NONE;
    if (algo && manifest_algo_parse(algo, &f->algo) < 0)
        return err_set(err, ERR_CORRUPT,
                       "backup manifest: file \"%s\" has an unknown checksum algorithm \"%.32s\"",
                       f->path, algo);
    if (f->algo == MANIFEST_NONE) {
        if (sum)
            return err_set(err, ERR_CORRUPT,
                           "backup manifest: file \"%s\" has a checksum but no algorithm", f->path);
        return 0;
    }
    if (!sum || unhex(f->checksum, sizeof(f->checksum), &f->checksum_len, sum) < 0 ||
        f->checksum_len != manifest_algo_len(f->algo))
        return err_set(err, ERR_CORRUPT, "backup manifest: file \"%s\" has a malformed %s checksum",
                       f->path, manifest_algo_name(f->algo));
    return 0;
}

static int
parse_wal(struct manifest_wal_range *w, json_t *jw, size_t idx, struct err *err)
{
    json_int_t tli;
    const char *start, *end;
    json_error_t jerr;
    struct err lerr;

    if (json_unpack_ex(jw, &jerr, JSON_STRICT, "{s:I, s:s, s:s}", "Timeline", &tli, "Start-LSN",
                       &start, "End-LSN", &end) < 0 ||
        tli <= 0 || tli > UINT32_MAX || walname_lsn_parse(&w->start_lsn, start, &lerr) < 0 ||
        walname_lsn_parse(&w->end_lsn, end, &lerr) < 0 || w->end_lsn < w->start_lsn)
        return err_set(err, ERR_CORRUPT, "backup manifest: WAL range %zu is malformed", idx);
    w->tli = (uint32_t)tli;
    return 0;
}

int
manifest_parse(struct manifest *out, const char *text, size_t len, struct err *err)
{
    json_error_t jerr;
    json_t *root = NULL, *v, *files = NULL, *wal = NULL;
    const char *key, *checksum = NULL;
    struct manifest m;
    bool has_version = false;
    int rc = -1;

    memset(&m, 0, sizeof(m));
    if (len > MANIFEST_MAX_BYTES)
        return err_set(err, ERR_CORRUPT, "backup manifest is larger than %u bytes",
                       MANIFEST_MAX_BYTES);
    root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return err_set(err, ERR_CORRUPT, "backup manifest is not valid JSON: %s (line %d)",
                       jerr.text, jerr.line);
    if (!json_is_object(root)) {
        err_set(err, ERR_CORRUPT, "backup manifest is not a JSON object");
        goto out;
    }
    json_object_foreach(root, key, v)
    {
        if (strcmp(key, "PostgreSQL-Backup-Manifest-Version") == 0 && json_is_integer(v)) {
            json_int_t ver = json_integer_value(v);

            if (ver != 1 && ver != 2) {
                err_set(err, ERR_CORRUPT, "backup manifest has unsupported version %" PRId64,
                        (int64_t)ver);
                goto out;
            }
            m.version = (int)ver;
            has_version = true;
        } else if (strcmp(key, "System-Identifier") == 0 && json_is_integer(v) &&
                   json_integer_value(v) > 0) {
            m.has_sysid = true;
            m.sysid = (uint64_t)json_integer_value(v);
        } else if (strcmp(key, "Files") == 0 && json_is_array(v)) {
            files = v;
        } else if (strcmp(key, "WAL-Ranges") == 0 && json_is_array(v)) {
            wal = v;
        } else if (strcmp(key, "Manifest-Checksum") == 0 && json_is_string(v)) {
            checksum = json_string_value(v);
        } else {
            err_set(err, ERR_CORRUPT,
                    "backup manifest has an unexpected or malformed field \"%.64s\"", key);
            goto out;
        }
    }
    if (!has_version || !files || !wal || !checksum) {
        err_set(err, ERR_CORRUPT, "backup manifest lacks %s",
                !has_version ? "PostgreSQL-Backup-Manifest-Version"
                : !files     ? "Files"
                : !wal       ? "WAL-Ranges"
                             : "Manifest-Checksum");
        goto out;
    }
    if (m.version == 2 && !m.has_sysid) {
        err_set(err, ERR_CORRUPT, "backup manifest version 2 lacks System-Identifier");
        goto out;
    }
    if (m.version == 1 && m.has_sysid) {
        err_set(err, ERR_CORRUPT, "backup manifest version 1 has a System-Identifier");
        goto out;
    }
    if (check_manifest_checksum(text, len, checksum, err) < 0)
        goto out;
    m.n_files = json_array_size(files);
    m.files = xcalloc(m.n_files ? m.n_files : 1, sizeof(*m.files));
    for (size_t i = 0; i < m.n_files; i++) {
        if (parse_file(&m.files[i], json_array_get(files, i), i, err) < 0) {
            m.n_files = i + 1; /* free what was filled, including this one */
            goto out;
        }
    }
    qsort(m.files, m.n_files, sizeof(*m.files), cmp_files);
    for (size_t i = 1; i < m.n_files; i++) {
        if (strcmp(m.files[i - 1].path, m.files[i].path) == 0) {
            err_set(err, ERR_CORRUPT, "backup manifest lists \"%s\" twice", m.files[i].path);
            goto out;
        }
    }
    m.n_wal = json_array_size(wal);
    if (m.n_wal == 0) {
        err_set(err, ERR_CORRUPT, "backup manifest has no WAL range");
        goto out;
    }
    m.wal = xcalloc(m.n_wal, sizeof(*m.wal));
    for (size_t i = 0; i < m.n_wal; i++)
        if (parse_wal(&m.wal[i], json_array_get(wal, i), i, err) < 0)
            goto out;
    *out = m;
    memset(&m, 0, sizeof(m));
    rc = 0;
out:
    files_free(m.files, m.n_files);
    free(m.wal);
    json_decref(root);
    return rc;
}

void
manifest_free(struct manifest *m)
{
    if (!m)
        return;
    files_free(m->files, m->n_files);
    free(m->wal);
    memset(m, 0, sizeof(*m));
}

struct manifest_file *
manifest_find(const struct manifest *m, const char *path)
{
    struct manifest_file key = {.path = (char *)path};

    if (!m->n_files)
        return NULL;
    return bsearch(&key, m->files, m->n_files, sizeof(*m->files), cmp_files);
}
