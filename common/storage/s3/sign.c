/* SPDX-License-Identifier: MIT */
/*
 * AWS Signature Version 4 (AWS4-HMAC-SHA256) computed with libcrypto: the
 * canonical request, the string to sign, the derived signing key and the
 * signature, for Authorization-header signing and presigned URLs. Pure
 * functions: no I/O, no clock (the caller passes the time). Checked byte for
 * byte against ../shared/spec/aws-sigv4-test-suite (tests/unit/storage/test_sign.c).
 *
 * Two path conventions exist. S3 signs the path as the server will decode
 * it, encoded once and never normalised ("a/../b" is a key, not a path);
 * every other service encodes the already-encoded path a second time and
 * may remove dot segments. struct sign_request selects between them.
 */
#include "storage/s3/sign.h"

#include "base/xmalloc.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#define SIGN_ALGORITHM "AWS4-HMAC-SHA256"
#define SIGN_TERMINATOR "aws4_request"
/* AWS refuses presigned URLs valid for more than seven days. */
#define SIGN_MAX_EXPIRES (7L * 24 * 3600)

void
s3_credentials_free(struct s3_credentials *c)
{
    if (!c)
        return;
    free(c->access_key_id);
    if (c->secret_access_key)
        OPENSSL_clear_free(c->secret_access_key, strlen(c->secret_access_key));
    if (c->session_token)
        OPENSSL_clear_free(c->session_token, strlen(c->session_token));
    memset(c, 0, sizeof(*c));
}

void
sign_result_free(struct sign_result *r)
{
    if (!r)
        return;
    buf_free(&r->canonical_request);
    buf_free(&r->string_to_sign);
    buf_free(&r->authorization);
    buf_free(&r->signed_headers);
    /* The presigned query may carry a session token. */
    if (r->query.data)
        OPENSSL_cleanse(r->query.data, r->query.cap);
    buf_free(&r->query);
    memset(r, 0, sizeof(*r));
}

/* ---- small helpers ---- */

static bool
is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

static int
hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static void
hex_encode(char *out, const unsigned char *in, size_t len)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * len] = '\0';
}

static bool
is_space(char c)
{
    /* CR and LF count: a folded (multi-line) header value becomes one line. */
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

void
sign_uri_encode(struct buf *out, const char *s, size_t len, bool keep_slash)
{
    static const char digits[] = "0123456789ABCDEF";

    if (len == 0)
        return; /* buf_reserve alone would leave an unterminated buffer */
    buf_reserve(out, len);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (is_unreserved(c) || (c == '/' && keep_slash)) {
            buf_putc(out, (char)c);
        } else {
            char esc[3] = {'%', digits[c >> 4], digits[c & 15]};
            buf_append(out, esc, sizeof(esc));
        }
    }
}

/* Decode %XX escapes (malformed ones stay literal). Returns a malloc'd copy, length in *out_len. */
static char *
uri_decode(const char *s, size_t len, size_t *out_len)
{
    char *d = xmalloc(len + 1);
    size_t n = 0;

    for (size_t i = 0; i < len; i++) {
        int hi, lo;

        if (s[i] == '%' && i + 2 < len && (hi = hex_value((unsigned char)s[i + 1])) >= 0 &&
            (lo = hex_value((unsigned char)s[i + 2])) >= 0) {
            d[n++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            d[n++] = s[i];
        }
    }
    d[n] = '\0';
    *out_len = n;
    return d;
}

void
sign_sha256_hex(char out[65], const void *data, size_t len)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;

    /* SHA-256 from the default provider only fails when it cannot allocate. */
    if (!EVP_Digest(data, len, md, &md_len, EVP_sha256(), NULL) || md_len != 32)
        abort();
    hex_encode(out, md, 32);
}

static int
hmac_sha256(unsigned char out[32], const void *key, size_t key_len, const void *data, size_t len)
{
    size_t out_len = 0;

    if (!EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, key_len, data, len, out, 32,
                   &out_len) ||
        out_len != 32)
        return -1;
    return 0;
}

/*
 * kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request").
 * It depends on the day, region and service only, so a caller signing many
 * requests could keep it for the day; every intermediate is wiped.
 */
static int
derive_signing_key(unsigned char out[32], const char *secret, const char *date8, const char *region,
                   const char *service)
{
    size_t secret_len = strlen(secret);
    size_t k_len = secret_len + 4;
    unsigned char *k = xmalloc(k_len);
    unsigned char a[32], b[32];
    int rc;

    memcpy(k, "AWS4", 4);
    memcpy(k + 4, secret, secret_len);
    rc = hmac_sha256(a, k, k_len, date8, strlen(date8)) < 0 ||
                 hmac_sha256(b, a, sizeof(a), region, strlen(region)) < 0 ||
                 hmac_sha256(a, b, sizeof(b), service, strlen(service)) < 0 ||
                 hmac_sha256(out, a, sizeof(a), SIGN_TERMINATOR, strlen(SIGN_TERMINATOR)) < 0
             ? -1
             : 0;
    OPENSSL_cleanse(k, k_len);
    OPENSSL_cleanse(a, sizeof(a));
    OPENSSL_cleanse(b, sizeof(b));
    free(k);
    return rc;
}

void
sign_amz_date(char *buf, time_t t)
{
    struct tm tm;

    if (!gmtime_r(&t, &tm) || strftime(buf, 17, "%Y%m%dT%H%M%SZ", &tm) != 16)
        memcpy(buf, "19700101T000000Z", 17);
}

/* ---- canonical URI ---- */

/*
 * RFC 3986 remove_dot_segments, also collapsing empty segments ("//"), as
 * the generic SigV4 suite expects. path starts with '/'.
 */
static char *
normalize_path(const char *path)
{
    size_t n = strlen(path);
    size_t max_segs = 1;
    struct seg {
        size_t off, len;
    } * segs;
    size_t n_segs = 0;
    bool trailing_slash = false;
    struct buf out = BUF_INIT;

    for (size_t i = 0; i < n; i++)
        if (path[i] == '/')
            max_segs++;
    segs = xcalloc(max_segs, sizeof(*segs));
    for (size_t i = 1; i <= n;) {
        size_t j = i;

        while (j < n && path[j] != '/')
            j++;
        size_t len = j - i;
        bool last = j >= n;

        if (len == 0 || (len == 1 && path[i] == '.')) {
            trailing_slash = last;
        } else if (len == 2 && path[i] == '.' && path[i + 1] == '.') {
            if (n_segs > 0)
                n_segs--;
            trailing_slash = last;
        } else {
            segs[n_segs].off = i;
            segs[n_segs].len = len;
            n_segs++;
            trailing_slash = false;
        }
        i = j + 1;
    }
    for (size_t k = 0; k < n_segs; k++) {
        buf_putc(&out, '/');
        buf_append(&out, path + segs[k].off, segs[k].len);
    }
    if (n_segs == 0 || trailing_slash)
        buf_putc(&out, '/');
    free(segs);
    return buf_detach(&out);
}

static void
canonical_uri(struct buf *out, const struct sign_request *req)
{
    char *path = req->normalize_path ? normalize_path(req->path) : xstrdup(req->path);

    if (req->double_encode_path) {
        /* Generic services: encode the path as sent (already encoded) once more. */
        sign_uri_encode(out, path, strlen(path), true);
    } else {
        /* S3: the key as the server decodes it, encoded exactly once. */
        size_t len;
        char *raw = uri_decode(path, strlen(path), &len);

        sign_uri_encode(out, raw, len, true);
        free(raw);
    }
    free(path);
}

/* ---- canonical query string ---- */

struct qparam {
    char *name; /* encoded */
    char *value;
};

static int
qparam_cmp(const void *a, const void *b)
{
    const struct qparam *x = a, *y = b;
    int c = strcmp(x->name, y->name);

    return c ? c : strcmp(x->value, y->value);
}

static char *
encode_component(const char *s, size_t len, bool decode_first)
{
    struct buf b = BUF_INIT;

    if (decode_first) {
        size_t raw_len;
        char *raw = uri_decode(s, len, &raw_len);

        sign_uri_encode(&b, raw, raw_len, false);
        OPENSSL_clear_free(raw, raw_len + 1);
    } else {
        sign_uri_encode(&b, s, len, false);
    }
    return buf_detach(&b);
}

/*
 * Appends the canonical form of query (raw, may be NULL) plus the extra
 * name/value pairs (unencoded, e.g. the X-Amz-* presigning parameters).
 */
static void
canonical_query(struct buf *out, const char *query, const char *const *extra, size_t n_extra)
{
    size_t cap = n_extra + 1;
    size_t n = 0;
    struct qparam *p;

    if (query)
        for (const char *s = query; *s; s++)
            if (*s == '&')
                cap++;
    p = xcalloc(cap, sizeof(*p));
    for (const char *s = query ? query : ""; *s;) {
        const char *end = strchr(s, '&');
        size_t len = end ? (size_t)(end - s) : strlen(s);

        if (len > 0) {
            const char *eq = memchr(s, '=', len);
            size_t name_len = eq ? (size_t)(eq - s) : len;

            p[n].name = encode_component(s, name_len, true);
            p[n].value = eq ? encode_component(eq + 1, len - name_len - 1, true) : xstrdup("");
            n++;
        }
        s += len;
        if (*s == '&')
            s++;
    }
    for (size_t i = 0; i < n_extra; i++) {
        p[n].name = encode_component(extra[2 * i], strlen(extra[2 * i]), false);
        p[n].value = encode_component(extra[2 * i + 1], strlen(extra[2 * i + 1]), false);
        n++;
    }
    qsort(p, n, sizeof(*p), qparam_cmp);
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            buf_putc(out, '&');
        buf_puts(out, p[i].name);
        buf_putc(out, '=');
        buf_puts(out, p[i].value);
        free(p[i].name);
        OPENSSL_clear_free(p[i].value, strlen(p[i].value));
    }
    free(p);
}

/* ---- canonical headers ---- */

struct chdr {
    char *name;        /* lower case */
    const char *value; /* as given */
    size_t index;      /* original position: repeated names keep their order */
};

static int
chdr_cmp(const void *a, const void *b)
{
    const struct chdr *x = a, *y = b;
    /*
     * Whole names, never "name:value" lines: "x-amz-server-side-encryption"
     * must come before "x-amz-server-side-encryption-aws-kms-key-id".
     */
    int c = strcmp(x->name, y->name);

    if (c)
        return c;
    return x->index < y->index ? -1 : x->index > y->index;
}

static bool
is_token_char(unsigned char c)
{
    return c > 0x20 && c < 0x7f && c != ':';
}

/* Trim, collapse inner runs of white space (folded lines included) to one space. */
static void
append_trimmed(struct buf *out, const char *v)
{
    bool pending_space = false;
    bool any = false;

    for (; *v; v++) {
        if (is_space(*v)) {
            pending_space = any;
            continue;
        }
        if (pending_space)
            buf_putc(out, ' ');
        pending_space = false;
        buf_putc(out, *v);
        any = true;
    }
}

/*
 * Appends the canonical header block (each "name:value\n") to out and the
 * signed header list to signed_headers. Fails if a name is malformed or
 * there is no host header.
 */
static int
canonical_headers(struct buf *out, struct buf *signed_headers, const struct sign_request *req,
                  struct err *err)
{
    int rc = -1;
    struct chdr *h = xcalloc(req->n_headers ? req->n_headers : 1, sizeof(*h));
    bool has_host = false;
    size_t n = 0;

    for (size_t i = 0; i < req->n_headers; i++) {
        const char *name = req->headers[i].name;
        size_t len = name ? strlen(name) : 0;

        if (len == 0) {
            err_set(err, ERR_INTERNAL, "cannot sign a header with an empty name");
            goto out;
        }
        h[n].name = xstrdup(name);
        h[n].value = req->headers[i].value ? req->headers[i].value : "";
        h[n].index = i;
        n++;
        for (size_t k = 0; k < len; k++) {
            unsigned char c = (unsigned char)h[n - 1].name[k];

            if (!is_token_char(c)) {
                err_set(err, ERR_INTERNAL, "cannot sign header \"%s\": invalid name", name);
                goto out;
            }
            if (c >= 'A' && c <= 'Z')
                h[n - 1].name[k] = (char)(c - 'A' + 'a');
        }
        for (const char *v = h[n - 1].value; *v; v++) {
            unsigned char c = (unsigned char)*v;

            if ((c < 0x20 && !is_space((char)c)) || c == 0x7f) {
                err_set(err, ERR_INTERNAL, "cannot sign header \"%s\": control character in value",
                        name);
                goto out;
            }
        }
        if (strcmp(h[n - 1].name, "host") == 0)
            has_host = true;
    }
    if (!has_host) {
        err_set(err, ERR_INTERNAL, "cannot sign a request without a \"host\" header");
        goto out;
    }
    qsort(h, n, sizeof(*h), chdr_cmp);
    for (size_t i = 0; i < n; i++) {
        bool same_as_prev = i > 0 && strcmp(h[i].name, h[i - 1].name) == 0;

        if (same_as_prev) {
            buf_putc(out, ',');
        } else {
            if (i > 0) {
                buf_putc(out, '\n');
                buf_putc(signed_headers, ';');
            }
            buf_puts(out, h[i].name);
            buf_putc(out, ':');
            buf_puts(signed_headers, h[i].name);
        }
        append_trimmed(out, h[i].value);
    }
    buf_putc(out, '\n');
    rc = 0;
out:
    for (size_t i = 0; i < n; i++)
        free(h[i].name);
    free(h);
    return rc;
}

/* ---- the whole signature ---- */

static int
check_request(const struct sign_request *req, const struct s3_credentials *cred, struct err *err)
{
    if (!req->method || !*req->method)
        return err_set(err, ERR_INTERNAL, "cannot sign a request without a method");
    if (!req->path || req->path[0] != '/')
        return err_set(err, ERR_INTERNAL, "cannot sign path \"%s\": it must start with '/'",
                       req->path ? req->path : "");
    if (!req->payload_sha256 || !*req->payload_sha256)
        return err_set(err, ERR_INTERNAL, "cannot sign a request without a payload hash");
    if (!req->region || !*req->region || strchr(req->region, '/'))
        return err_set(err, ERR_INTERNAL, "cannot sign for region \"%s\"",
                       req->region ? req->region : "");
    if (!req->service || !*req->service || strchr(req->service, '/'))
        return err_set(err, ERR_INTERNAL, "cannot sign for service \"%s\"",
                       req->service ? req->service : "");
    if (!cred || !cred->access_key_id || !*cred->access_key_id || !cred->secret_access_key ||
        !*cred->secret_access_key)
        return err_set(err, ERR_AUTH, "cannot sign a request without an access key and a secret");
    return 0;
}

/* From the canonical request in out: the string to sign and the signature. */
static int
sign_canonical(struct sign_result *out, const struct sign_request *req,
               const struct s3_credentials *cred, struct err *err)
{
    char date8[9];
    char hash[65];
    unsigned char key[32], sig[32];
    const struct buf *cr = &out->canonical_request;
    struct buf *sts = &out->string_to_sign;
    int rc;

    memcpy(date8, out->amz_date, 8);
    date8[8] = '\0';

    sign_sha256_hex(hash, cr->data, cr->len);
    buf_printf(sts, SIGN_ALGORITHM "\n%s\n%s/%s/%s/" SIGN_TERMINATOR "\n%s", out->amz_date, date8,
               req->region, req->service, hash);

    rc = derive_signing_key(key, cred->secret_access_key, date8, req->region, req->service);
    if (rc == 0)
        rc = hmac_sha256(sig, key, sizeof(key), sts->data, sts->len);
    OPENSSL_cleanse(key, sizeof(key));
    if (rc < 0)
        return err_set(err, ERR_INTERNAL, "could not compute HMAC-SHA256 for the signature");
    hex_encode(out->signature, sig, sizeof(sig));
    return 0;
}

/*
 * Canonical request: method, URI, query, headers, blank, signed headers,
 * payload hash, separated by newlines.
 */
static int
build_canonical_request(struct sign_result *out, const struct sign_request *req,
                        const char *const *extra, size_t n_extra, struct err *err)
{
    struct buf headers = BUF_INIT;
    struct buf *cr = &out->canonical_request;

    if (canonical_headers(&headers, &out->signed_headers, req, err) < 0) {
        buf_free(&headers);
        return -1;
    }
    buf_puts(cr, req->method);
    buf_putc(cr, '\n');
    canonical_uri(cr, req);
    buf_putc(cr, '\n');
    canonical_query(cr, req->query, extra, n_extra);
    buf_putc(cr, '\n');
    buf_append(cr, headers.data, headers.len);
    buf_putc(cr, '\n');
    buf_append(cr, out->signed_headers.data, out->signed_headers.len);
    buf_putc(cr, '\n');
    buf_puts(cr, req->payload_sha256);
    OPENSSL_cleanse(headers.data, headers.cap); /* may hold x-amz-security-token */
    buf_free(&headers);
    return 0;
}

static const char *
find_header(const struct sign_request *req, const char *name)
{
    for (size_t i = 0; i < req->n_headers; i++)
        if (req->headers[i].name && strcasecmp(req->headers[i].name, name) == 0)
            return req->headers[i].value ? req->headers[i].value : "";
    return NULL;
}

int
sign_header_auth(struct sign_result *out, const struct sign_request *req,
                 const struct s3_credentials *cred, struct err *err)
{
    const char *date_header;
    char trimmed[32];
    size_t tn = 0;

    memset(out, 0, sizeof(*out));
    if (check_request(req, cred, err) < 0)
        return -1;
    sign_amz_date(out->amz_date, req->now);
    date_header = find_header(req, "x-amz-date");
    if (!date_header)
        return err_set(err, ERR_INTERNAL, "cannot sign a request without an \"x-amz-date\" header");
    for (const char *v = date_header; *v && tn < sizeof(trimmed) - 1; v++)
        if (!is_space(*v))
            trimmed[tn++] = *v;
    trimmed[tn] = '\0';
    if (strcmp(trimmed, out->amz_date) != 0)
        return err_set(err, ERR_INTERNAL,
                       "\"x-amz-date\" header \"%.20s\" does not match the signing time \"%s\"",
                       date_header, out->amz_date);
    if (build_canonical_request(out, req, NULL, 0, err) < 0 ||
        sign_canonical(out, req, cred, err) < 0) {
        sign_result_free(out);
        return -1;
    }
    buf_printf(&out->authorization,
               SIGN_ALGORITHM " Credential=%s/%.8s/%s/%s/" SIGN_TERMINATOR
                              ", SignedHeaders=%s, Signature=%s",
               cred->access_key_id, out->amz_date, req->region, req->service,
               buf_str(&out->signed_headers), out->signature);
    return 0;
}

int
sign_presign(struct sign_result *out, const struct sign_request *req,
             const struct s3_credentials *cred, long expires_seconds, struct err *err)
{
    struct buf names = BUF_INIT;
    char *credential = NULL;
    char expires[24];
    const char *extra[12];
    size_t n_extra = 0;
    int rc = -1;

    memset(out, 0, sizeof(*out));
    if (check_request(req, cred, err) < 0)
        return -1;
    if (expires_seconds < 1 || expires_seconds > SIGN_MAX_EXPIRES)
        return err_set(err, ERR_INTERNAL,
                       "cannot presign for %ld seconds: it must be between 1 and %ld",
                       expires_seconds, SIGN_MAX_EXPIRES);
    sign_amz_date(out->amz_date, req->now);

    /* X-Amz-SignedHeaders is part of the query it signs: compute the list first. */
    {
        struct buf scratch = BUF_INIT;

        int hrc = canonical_headers(&scratch, &names, req, err);

        if (scratch.data)
            OPENSSL_cleanse(scratch.data, scratch.cap);
        buf_free(&scratch);
        if (hrc < 0)
            goto out;
    }
    credential = xasprintf("%s/%.8s/%s/%s/" SIGN_TERMINATOR, cred->access_key_id, out->amz_date,
                           req->region, req->service);
    snprintf(expires, sizeof(expires), "%ld", expires_seconds);
    extra[n_extra++] = "X-Amz-Algorithm";
    extra[n_extra++] = SIGN_ALGORITHM;
    extra[n_extra++] = "X-Amz-Credential";
    extra[n_extra++] = credential;
    extra[n_extra++] = "X-Amz-Date";
    extra[n_extra++] = out->amz_date;
    extra[n_extra++] = "X-Amz-Expires";
    extra[n_extra++] = expires;
    extra[n_extra++] = "X-Amz-SignedHeaders";
    extra[n_extra++] = buf_str(&names);
    if (cred->session_token && *cred->session_token) {
        extra[n_extra++] = "X-Amz-Security-Token";
        extra[n_extra++] = cred->session_token;
    }
    if (build_canonical_request(out, req, extra, n_extra / 2, err) < 0 ||
        sign_canonical(out, req, cred, err) < 0)
        goto out;

    /* The canonical query is itself a valid, fully encoded query string. */
    {
        const char *cr = buf_str(&out->canonical_request);
        const char *q = strchr(strchr(cr, '\n') + 1, '\n') + 1;
        const char *q_end = strchr(q, '\n');

        buf_append(&out->query, q, (size_t)(q_end - q));
        buf_printf(&out->query, "&X-Amz-Signature=%s", out->signature);
    }
    rc = 0;
out:
    free(credential);
    buf_free(&names);
    if (rc < 0)
        sign_result_free(out);
    return rc;
}
