/* SPDX-License-Identifier: MIT */
/*
 * The S3 upload sink (repo_put_sink_new). Bytes are buffered up to the part
 * size while their SHA-256 (signed as x-amz-content-sha256) and MD5
 * (Content-MD5, checked by the server) are computed. A stream that ends
 * before the first part is full becomes one PutObject; a longer one becomes a
 * multipart upload with up to `parallel` parts in flight, so memory stays
 * below (parallel + 1) x part size. Parts are retried one by one by the
 * request engine. Any failure, or freeing the sink before a successful
 * finish, aborts the multipart upload (best effort, logged at debug): nothing
 * becomes visible under the key.
 *
 * Part sizes: S3 allows 10000 parts, so the size doubles every 2000 parts
 * (16 MiB parts: 32 GiB, then 64, 128 ... about 1 TiB at part 10000).
 *
 * REPO_PUT_IF_ABSENT per s3->cond (see s3_internal.h): HeadObject before the
 * PutObject or the CreateMultipartUpload (and again before Complete), and/or
 * If-None-Match: * on PutObject and CompleteMultipartUpload; 412 means the
 * key exists. A 412 to a retried request is checked against the ETag we
 * expect, in case our own earlier attempt succeeded and its answer was lost.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "base/log.h"
#include "base/xmalloc.h"
#include "storage/s3/s3_internal.h"
#include "storage/s3/xml.h"

#define MAX_PARTS 10000
#define PARTS_PER_DOUBLING 2000
#define MAX_PART_SIZE (5ull * 1024 * 1024 * 1024)

struct part {
    int number;
    char *data;
    size_t len;
    size_t cap;
    EVP_MD_CTX *sha;
    EVP_MD_CTX *md5;
    unsigned char md5_raw[16];
    struct s3_call call;
    bool in_flight;
};

struct done_part {
    int number;
    char *etag;
    unsigned char md5_raw[16];
};

struct put_sink {
    struct sink base;
    struct s3 *s3;
    char *key;
    unsigned flags;
    struct part *cur;
    struct part **flight;
    size_t n_flight;
    struct part *spare;
    char *upload_id;
    struct done_part *done;
    size_t n_done;
    int next_number;
    bool checked_absent;
    bool succeeded;
};

static uint64_t
part_size_for(const struct s3 *s3, int number)
{
    uint64_t size = s3->part_size;

    for (int n = number - 1; n >= PARTS_PER_DOUBLING && size < MAX_PART_SIZE;
         n -= PARTS_PER_DOUBLING)
        size *= 2;
    return size < MAX_PART_SIZE ? size : MAX_PART_SIZE;
}

static void
part_free(struct part *p)
{
    if (!p)
        return;
    s3_call_free(&p->call);
    EVP_MD_CTX_free(p->sha);
    EVP_MD_CTX_free(p->md5);
    free(p->data);
    free(p);
}

static struct part *
part_get(struct put_sink *ps)
{
    struct part *p = ps->spare;

    ps->spare = NULL;
    if (!p) {
        p = xcalloc(1, sizeof(*p));
        p->sha = EVP_MD_CTX_new();
        p->md5 = EVP_MD_CTX_new();
        if (!p->sha || !p->md5)
            abort();
    } else {
        s3_call_free(&p->call);
        p->len = 0;
        p->in_flight = false;
    }
    EVP_DigestInit_ex(p->sha, EVP_sha256(), NULL);
    EVP_DigestInit_ex(p->md5, EVP_md5(), NULL);
    p->number = ++ps->next_number;
    return p;
}

static void
part_put(struct put_sink *ps, struct part *p)
{
    if (!ps->spare) {
        s3_call_free(&p->call);
        ps->spare = p;
    } else {
        part_free(p);
    }
}

static void
hex(char *out, const unsigned char *d, size_t n)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[d[i] >> 4];
        out[2 * i + 1] = digits[d[i] & 15];
    }
    out[2 * n] = '\0';
}

/* Finalize the part's hashes into hex SHA-256 and base64 MD5. */
static void
part_digests(struct part *p, char sha_hex[65], char md5_b64[32])
{
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int dl = 0;

    EVP_DigestFinal_ex(p->sha, d, &dl);
    hex(sha_hex, d, 32);
    EVP_DigestFinal_ex(p->md5, p->md5_raw, &dl);
    s3_base64(md5_b64, p->md5_raw, 16);
}

/* HeadObject for REPO_PUT_IF_ABSENT: 0 when absent, -1 with ERR_EXISTS or another error. */
static int
check_absent(struct put_sink *ps, struct err *err)
{
    struct err e;

    if (!(ps->flags & REPO_PUT_IF_ABSENT) || ps->s3->cond == S3_COND_SERVER)
        return 0;
    if (s3_head_as(ps->s3, ps->key, "write", NULL, &e) == 0)
        return err_set(err, ERR_EXISTS, "object \"%s\" already exists", ps->key);
    if (e.kind == ERR_NOT_FOUND && strcmp(e.code, "NoSuchBucket") != 0)
        return 0;
    *err = e;
    return -1;
}

static bool
use_if_none_match(const struct put_sink *ps)
{
    return (ps->flags & REPO_PUT_IF_ABSENT) && ps->s3->cond != S3_COND_CHECK;
}

/*
 * A 412 to If-None-Match after a retry may be our own earlier attempt that
 * succeeded. True if the stored object carries the ETag we would have made.
 */
static bool
is_our_object(struct put_sink *ps, const char *want_etag)
{
    struct repo_stat st;
    struct err e;

    if (s3_head(ps->s3, ps->key, &st, &e) < 0)
        return false;
    return strcmp(st.etag, want_etag) == 0;
}

int
s3_abort_upload(struct s3 *s3, const char *key, const char *upload_id, struct err *err)
{
    struct s3_call c;
    struct buf q = BUF_INIT;
    int rc;

    s3_call_init(&c, s3, "DELETE", key, "abort the upload of \"%s\"", key);
    buf_puts(&q, "uploadId=");
    sign_uri_encode(&q, upload_id, strlen(upload_id), false);
    c.query = buf_detach(&q);
    rc = s3_call_run(&c, err);
    if (rc < 0 && (strcmp(err->code, "NoSuchUpload") == 0 ||
                   (err->kind == ERR_NOT_FOUND && strcmp(err->code, "NoSuchBucket") != 0)))
        rc = 0; /* already aborted or completed */
    s3_call_free(&c);
    return rc;
}

static void
abort_upload(struct put_sink *ps)
{
    struct err e;

    if (!ps->upload_id)
        return;
    for (size_t i = 0; i < ps->n_flight; i++)
        s3_call_cancel(&ps->flight[i]->call);
    if (s3_abort_upload(ps->s3, ps->key, ps->upload_id, &e) < 0)
        log_debug("%s", e.msg);
    else
        log_debug("aborted the multipart upload of \"%s\"", ps->key);
    free(ps->upload_id);
    ps->upload_id = NULL;
}

static int
create_upload(struct put_sink *ps, struct err *err)
{
    struct s3_call c;
    int rc;

    if (check_absent(ps, err) < 0)
        return -1;
    s3_call_init(&c, ps->s3, "POST", ps->key, "write \"%s\"", ps->key);
    c.query = xstrdup("uploads=");
    s3_call_sse_headers(&c);
    rc = s3_call_run(&c, err);
    if (rc == 0 &&
        s3_xml_parse_initiate(&ps->upload_id, c.req->body.data, c.req->body.len, err) < 0) {
        err_prefix(err, "could not write \"%s\"", ps->key);
        rc = -1;
    }
    s3_call_free(&c);
    return rc;
}

/* Collect finished parts; -1 on the first failed one. */
static int
reap(struct put_sink *ps, struct err *err)
{
    for (size_t i = 0; i < ps->n_flight;) {
        struct part *p = ps->flight[i];
        const char *etag;
        struct done_part *d;

        if (p->call.state != S3_CALL_DONE) {
            i++;
            continue;
        }
        if (p->call.rc < 0) {
            *err = p->call.err;
            return -1;
        }
        etag = http_req_resp_header(p->call.req, "etag");
        if (!etag || !*etag)
            return err_set(err, ERR_REMOTE, "could not %s: no ETag in the answer", p->call.what);
        ps->done = xrealloc(ps->done, (ps->n_done + 1) * sizeof(*ps->done));
        d = &ps->done[ps->n_done++];
        d->number = p->number;
        d->etag = xstrdup(etag);
        memcpy(d->md5_raw, p->md5_raw, 16);
        ps->flight[i] = ps->flight[--ps->n_flight];
        part_put(ps, p);
    }
    return 0;
}

/* Wait until fewer than max parts are in flight. */
static int
wait_flight(struct put_sink *ps, size_t max, struct err *err)
{
    for (;;) {
        if (reap(ps, err) < 0)
            return -1;
        if (ps->n_flight <= max)
            return 0;
        s3_drive(ps->s3, 1000);
    }
}

static int
send_cur(struct put_sink *ps, struct err *err)
{
    struct part *p = ps->cur;
    char sha[65];
    char md5[32];
    struct buf q = BUF_INIT;

    if (!ps->upload_id && create_upload(ps, err) < 0)
        return -1;
    if (p->number > MAX_PARTS)
        return err_set(err, ERR_USAGE, "could not write \"%s\": more than %d parts", ps->key,
                       MAX_PARTS);
    if (wait_flight(ps, (size_t)ps->s3->parallel - 1, err) < 0)
        return -1;
    part_digests(p, sha, md5);
    s3_call_init(&p->call, ps->s3, "PUT", ps->key, "upload part %d of \"%s\"", p->number, ps->key);
    buf_printf(&q, "partNumber=%d&uploadId=", p->number);
    sign_uri_encode(&q, ps->upload_id, strlen(ps->upload_id), false);
    p->call.query = buf_detach(&q);
    s3_call_body_hashed(&p->call, p->data, p->len, sha, md5);
    p->call.sse_c = ps->s3->sse_c;
    p->in_flight = true;
    ps->flight[ps->n_flight++] = p;
    ps->cur = NULL;
    s3_call_start(&p->call);
    return 0;
}

static int
put_write(struct sink *s, const void *buf, size_t len, struct err *err)
{
    struct put_sink *ps = (struct put_sink *)s;
    const char *data = buf;

    while (len > 0) {
        struct part *p;
        uint64_t psize;
        size_t n;

        if (!ps->cur)
            ps->cur = part_get(ps);
        p = ps->cur;
        psize = part_size_for(ps->s3, p->number);
        if (p->len == psize) {
            /* full, and more is coming: it goes as a part */
            if (send_cur(ps, err) < 0)
                goto fail;
            continue;
        }
        n = psize - p->len < len ? (size_t)(psize - p->len) : len;
        if (p->len + n > p->cap) {
            size_t cap = p->cap ? p->cap : 64 * 1024;

            while (cap < p->len + n)
                cap *= 2;
            if (cap > psize)
                cap = (size_t)psize;
            p->data = xrealloc(p->data, cap);
            p->cap = cap;
        }
        memcpy(p->data + p->len, data, n);
        EVP_DigestUpdate(p->sha, data, n);
        EVP_DigestUpdate(p->md5, data, n);
        p->len += n;
        data += n;
        len -= n;
    }
    if (ps->n_flight > 0) {
        /* keep the uploads moving while the producer works */
        s3_drive(ps->s3, 0);
        if (reap(ps, err) < 0)
            goto fail;
    }
    return 0;
fail:
    abort_upload(ps);
    return -1;
}

static int
put_single(struct put_sink *ps, struct err *err)
{
    struct s3_call c;
    char sha[65];
    char md5[32];
    char md5_hex[33];
    struct part *p = ps->cur;
    int rc;

    if (!p)
        p = ps->cur = part_get(ps);
    if (check_absent(ps, err) < 0)
        return -1;
    part_digests(p, sha, md5);
    hex(md5_hex, p->md5_raw, 16);
    s3_call_init(&c, ps->s3, "PUT", ps->key, "write \"%s\"", ps->key);
    s3_call_body_hashed(&c, p->data ? p->data : "", p->len, sha, md5);
    s3_call_sse_headers(&c);
    c.if_none_match = use_if_none_match(ps);
    rc = s3_call_run(&c, err);
    if (rc < 0 && err->kind == ERR_EXISTS && c.attempt > 0 && is_our_object(ps, md5_hex))
        rc = 0;
    s3_call_free(&c);
    return rc;
}

static int
done_cmp(const void *a, const void *b)
{
    const struct done_part *x = a, *y = b;

    return (x->number > y->number) - (x->number < y->number);
}

/* The ETag S3 gives a multipart object: MD5 of the parts' MD5s, "-N". */
static void
multipart_etag(struct put_sink *ps, char *out, size_t cap)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char d[16];
    unsigned int dl = 0;
    char h[33];

    EVP_DigestInit_ex(ctx, EVP_md5(), NULL);
    for (size_t i = 0; i < ps->n_done; i++)
        EVP_DigestUpdate(ctx, ps->done[i].md5_raw, 16);
    EVP_DigestFinal_ex(ctx, d, &dl);
    EVP_MD_CTX_free(ctx);
    hex(h, d, 16);
    snprintf(out, cap, "%s-%zu", h, ps->n_done);
}

static int
complete_upload(struct put_sink *ps, struct err *err)
{
    struct s3_xml_part *parts = xcalloc(ps->n_done, sizeof(*parts));
    struct buf body = BUF_INIT;
    struct buf q = BUF_INIT;
    char query_id[1024];
    char want[64];
    int rc = -1;

    qsort(ps->done, ps->n_done, sizeof(*ps->done), done_cmp);
    for (size_t i = 0; i < ps->n_done; i++) {
        parts[i].number = ps->done[i].number;
        parts[i].etag = ps->done[i].etag;
    }
    s3_xml_build_complete(&body, parts, ps->n_done);
    multipart_etag(ps, want, sizeof(want));
    buf_puts(&q, "uploadId=");
    sign_uri_encode(&q, ps->upload_id, strlen(ps->upload_id), false);
    snprintf(query_id, sizeof(query_id), "%s", buf_str(&q));
    buf_free(&q);
    if (check_absent(ps, err) < 0)
        goto out;
    /* An <Error> in a 200 answer with a retryable code is retried like a 5xx. */
    for (int attempt = 0;; attempt++) {
        struct s3_call c;
        struct s3_xml_complete res;
        int r;

        s3_call_init(&c, ps->s3, "POST", ps->key, "write \"%s\"", ps->key);
        c.query = xstrdup(query_id);
        s3_call_body(&c, body.data, body.len, false);
        c.if_none_match = use_if_none_match(ps);
        r = s3_call_run(&c, err);
        if (r < 0) {
            if (err->kind == ERR_EXISTS && (c.attempt > 0 || attempt > 0) &&
                is_our_object(ps, want))
                rc = 0;
            s3_call_free(&c);
            goto out;
        }
        if (s3_xml_parse_complete(&res, c.req->body.data, c.req->body.len, err) < 0) {
            err_prefix(err, "could not write \"%s\"", ps->key);
            s3_call_free(&c);
            goto out;
        }
        s3_call_free(&c);
        if (!res.is_error) {
            s3_xml_complete_free(&res);
            rc = 0;
            goto out;
        }
        {
            const char *code = res.error.code;
            bool retry = strcmp(code, "InternalError") == 0 || strcmp(code, "SlowDown") == 0 ||
                         strcmp(code, "ServiceUnavailable") == 0 ||
                         strcmp(code, "RequestTimeout") == 0;

            if (res.error.message[0])
                err_set(err, ERR_REMOTE, "could not write \"%s\": %s: %s", ps->key, code,
                        res.error.message);
            else
                err_set(err, ERR_REMOTE, "could not write \"%s\": %s", ps->key,
                        code[0] ? code : "error in CompleteMultipartUpload answer");
            snprintf(err->code, sizeof(err->code), "%s", code);
            err->http_status = 200;
            err->retryable = retry;
            s3_xml_complete_free(&res);
            if (!retry || attempt >= ps->s3->retries)
                goto out;
            log_debug("retrying: %s", err->msg);
            /* short pause; the engine's backoff applies to HTTP-level failures */
            s3_drive(ps->s3, (int)(ps->s3->retry_base_ms << (attempt < 6 ? attempt : 6)));
        }
    }
out:
    free(parts);
    buf_free(&body);
    return rc;
}

static int
put_finish(struct sink *s, struct err *err)
{
    struct put_sink *ps = (struct put_sink *)s;

    if (!ps->upload_id) {
        if (put_single(ps, err) < 0)
            return -1;
        ps->succeeded = true;
        return sink_next_finish(s, err);
    }
    if (ps->cur && ps->cur->len > 0 && send_cur(ps, err) < 0)
        goto fail;
    if (wait_flight(ps, 0, err) < 0)
        goto fail;
    if (complete_upload(ps, err) < 0)
        goto fail;
    free(ps->upload_id);
    ps->upload_id = NULL;
    ps->succeeded = true;
    return sink_next_finish(s, err);
fail:
    abort_upload(ps);
    return -1;
}

static void
put_free(struct sink *s)
{
    struct put_sink *ps = (struct put_sink *)s;

    if (!ps)
        return;
    if (!ps->succeeded)
        abort_upload(ps);
    for (size_t i = 0; i < ps->n_flight; i++)
        part_free(ps->flight[i]);
    part_free(ps->cur);
    part_free(ps->spare);
    for (size_t i = 0; i < ps->n_done; i++)
        free(ps->done[i].etag);
    free(ps->done);
    free(ps->flight);
    free(ps->upload_id);
    free(ps->key);
    free(ps);
}

static const struct sink_ops put_ops = {
    .name = "s3 put",
    .write = put_write,
    .finish = put_finish,
    .free = put_free,
};

struct sink *
s3_put_sink_new(struct repo *r, const char *key, unsigned flags)
{
    struct put_sink *ps = xcalloc(1, sizeof(*ps));

    sink_init(&ps->base, &put_ops, NULL);
    ps->s3 = (struct s3 *)r;
    ps->key = xstrdup(key);
    ps->flags = flags;
    ps->flight = xcalloc((size_t)ps->s3->parallel, sizeof(*ps->flight));
    return &ps->base;
}
