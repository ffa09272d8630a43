/* SPDX-License-Identifier: MIT */
/*
 * The S3 repository backend: addressing (path or virtual-host style), the
 * request engine (signing every attempt, retries with backoff, mapping S3
 * answers to struct err) and the operations GetObject (streamed, resumed
 * with Range + If-Match after a drop), HeadObject, ListObjectsV2,
 * DeleteObject and DeleteObjects, and ListMultipartUploads for the
 * unfinished uploads killed writers leave. Uploads (and their abort) live in
 * multipart.c.
 *
 * Environment knobs (beside the repo_opts): FERRY_S3_CONDITIONAL_PUT =
 * auto | server | check (see s3_internal.h); FERRY_S3_RETRY_BASE_MS, the
 * first backoff step (default 200; tests make it small).
 */
#include "storage/s3/s3_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "base/log.h"
#include "base/xmalloc.h"
#include "storage/s3/creds.h"
#include "storage/s3/xml.h"

#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define DEFAULT_PART_SIZE (8u * 1024 * 1024) /* (parallel + 1) parts in memory: 40 MiB */
#define MIN_PART_SIZE (5u * 1024 * 1024)
#define LIST_PAGE 1000
#define DELETE_BATCH 1000
#define MAX_RESUMES 1000
#define RESUME_MIN_PROGRESS (1024 * 1024)
#define CRED_REFRESH_MARGIN 300 /* seconds before expiry */

/* ---- small helpers ---------------------------------------------------------------------- */

void
s3_base64(char *out, const unsigned char *data, size_t len)
{
    EVP_EncodeBlock((unsigned char *)out, data, (int)len);
}

char *
s3_full_key(const struct s3 *s3, const char *key)
{
    return xasprintf("%s%s", s3->prefix, key);
}

static uint64_t
rng_next(struct s3 *s3)
{
    /* xorshift64*: jitter only, not security */
    uint64_t x = s3->rng;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    s3->rng = x;
    return x * 2685821657736338717ull;
}

static bool
is_aws_host(const char *host)
{
    size_t n = strlen(host);
    const char *suffix = ".amazonaws.com";
    size_t sn = strlen(suffix);

    return n > sn && strcmp(host + n - sn, suffix) == 0;
}

/* ---- the call engine --------------------------------------------------------------------- */

void
s3_call_init(struct s3_call *c, struct s3 *s3, const char *method, const char *rel_key,
             const char *what_fmt, ...)
{
    va_list ap;
    struct buf b = BUF_INIT;
    char tmp[1024];

    memset(c, 0, sizeof(*c));
    c->s3 = s3;
    c->method = method;
    if (rel_key) {
        c->rel_key = xstrdup(rel_key);
        c->key = s3_full_key(s3, rel_key);
    }
    va_start(ap, what_fmt);
    vsnprintf(tmp, sizeof(tmp), what_fmt, ap);
    va_end(ap);
    buf_puts(&b, tmp);
    c->what = buf_detach(&b);
    memcpy(c->body_sha256, EMPTY_SHA256, sizeof(EMPTY_SHA256));
    c->max_body = 1024 * 1024;
}

void
s3_call_header(struct s3_call *c, const char *name, const char *value)
{
    if (c->n_hdr >= S3_CALL_MAX_HEADERS)
        abort(); /* a bug: raise S3_CALL_MAX_HEADERS */
    c->hdr[c->n_hdr].name = xstrdup(name);
    c->hdr[c->n_hdr].value = xstrdup(value);
    c->n_hdr++;
}

void
s3_call_body(struct s3_call *c, const void *body, size_t len, bool md5)
{
    c->body = body;
    c->body_len = len;
    c->has_body = true;
    sign_sha256_hex(c->body_sha256, body, len);
    c->body_md5_b64[0] = '\0';
    if (md5) {
        unsigned char d[16];
        unsigned int dl = 0;

        EVP_Digest(body, len, d, &dl, EVP_md5(), NULL);
        s3_base64(c->body_md5_b64, d, 16);
    }
}

void
s3_call_body_hashed(struct s3_call *c, const void *body, size_t len, const char *sha256_hex,
                    const char *md5_b64)
{
    c->body = body;
    c->body_len = len;
    c->has_body = true;
    snprintf(c->body_sha256, sizeof(c->body_sha256), "%s", sha256_hex);
    snprintf(c->body_md5_b64, sizeof(c->body_md5_b64), "%s", md5_b64 ? md5_b64 : "");
}

static void backoff_unlink(struct s3_call *c);

void
s3_call_free(struct s3_call *c)
{
    if (!c)
        return;
    s3_call_cancel(c);
    http_req_free(c->req);
    free(c->key);
    free(c->query);
    free(c->what);
    free(c->rel_key);
    for (size_t i = 0; i < c->n_hdr; i++) {
        free(c->hdr[i].name);
        free(c->hdr[i].value);
    }
    memset(c, 0, sizeof(*c));
}

/*
 * Calls waiting for their retry time, of all repositories (s3_drive picks
 * its own). A repository is driven by one thread at a time.
 */
static _Thread_local struct s3_call *backoff_head;

static void
backoff_unlink(struct s3_call *c)
{
    for (struct s3_call **p = &backoff_head; *p; p = &(*p)->next_backoff) {
        if (*p == c) {
            *p = c->next_backoff;
            c->next_backoff = NULL;
            return;
        }
    }
}

static int
ensure_creds(struct s3 *s3, struct err *err)
{
    time_t now = time(NULL);

    if (s3->have_cred &&
        (s3->cred.expiration == 0 || s3->cred.expiration - now > CRED_REFRESH_MARGIN))
        return 0;
    if (s3->have_cred) {
        struct s3_credentials fresh;

        memset(&fresh, 0, sizeof(fresh));
        if (creds_resolve(&fresh, &s3->opts, err) < 0) {
            /* keep the old ones while they are still valid */
            if (s3->cred.expiration > now)
                return 0;
            return -1;
        }
        s3_credentials_free(&s3->cred);
        s3->cred = fresh;
        return 0;
    }
    memset(&s3->cred, 0, sizeof(s3->cred));
    if (creds_resolve(&s3->cred, &s3->opts, err) < 0)
        return -1;
    s3->have_cred = true;
    return 0;
}

static int get_body_cb(struct http_req *r, const void *data, size_t len, void *arg);
static void call_done_cb(struct http_req *r, void *arg);

#define MAX_SIGN_HEADERS (S3_CALL_MAX_HEADERS + 12)

/* Build, sign and submit one attempt. */
static int
call_submit(struct s3_call *c, struct err *err)
{
    struct s3 *s3 = c->s3;
    struct buf path = BUF_INIT;
    struct buf url = BUF_INIT;
    struct sign_header hs[MAX_SIGN_HEADERS];
    size_t n = 0;
    char date[17];
    char range[64];
    struct sign_request sr;
    struct sign_result res;
    struct http_req *req;
    time_t now;
    int rc = -1;

    memset(&res, 0, sizeof(res));
    if (ensure_creds(s3, err) < 0)
        return -1;
    if (s3->path_style) {
        buf_putc(&path, '/');
        sign_uri_encode(&path, s3->bucket, strlen(s3->bucket), false);
        if (c->key) {
            buf_putc(&path, '/');
            sign_uri_encode(&path, c->key, strlen(c->key), true);
        }
    } else {
        buf_putc(&path, '/');
        if (c->key)
            sign_uri_encode(&path, c->key, strlen(c->key), true);
    }
    buf_puts(&url, s3->url_base);
    buf_puts(&url, buf_str(&path));
    if (c->query && *c->query) {
        buf_putc(&url, '?');
        buf_puts(&url, c->query);
    }

    now = time(NULL);
    sign_amz_date(date, now);
    hs[n++] = (struct sign_header){"host", s3->host};
    hs[n++] = (struct sign_header){"x-amz-date", date};
    hs[n++] = (struct sign_header){"x-amz-content-sha256", c->body_sha256};
    if (s3->cred.session_token && *s3->cred.session_token)
        hs[n++] = (struct sign_header){"x-amz-security-token", s3->cred.session_token};
    if (c->body_md5_b64[0])
        hs[n++] = (struct sign_header){"content-md5", c->body_md5_b64};
    for (size_t i = 0; i < c->n_hdr; i++)
        hs[n++] = (struct sign_header){c->hdr[i].name, c->hdr[i].value};
    if (c->sse_c) {
        hs[n++] = (struct sign_header){"x-amz-server-side-encryption-customer-algorithm", "AES256"};
        hs[n++] =
            (struct sign_header){"x-amz-server-side-encryption-customer-key", s3->sse_c_key_b64};
        hs[n++] = (struct sign_header){"x-amz-server-side-encryption-customer-key-md5",
                                       s3->sse_c_md5_b64};
    }
    if (c->if_none_match)
        hs[n++] = (struct sign_header){"if-none-match", "*"};
    c->attempt_skip = 0;
    c->attempt_pushed = 0;
    if (c->out) {
        uint64_t start = c->offset + c->pushed;

        if (c->len > 0)
            snprintf(range, sizeof(range), "bytes=%llu-%llu", (unsigned long long)start,
                     (unsigned long long)(c->offset + c->len - 1));
        else
            snprintf(range, sizeof(range), "bytes=%llu-", (unsigned long long)start);
        if (start > 0 || c->len > 0)
            hs[n++] = (struct sign_header){"range", range};
        if (c->have_etag)
            hs[n++] = (struct sign_header){"if-match", c->etag};
    }

    memset(&sr, 0, sizeof(sr));
    sr.method = c->method;
    sr.path = buf_str(&path);
    sr.query = c->query ? c->query : "";
    sr.headers = hs;
    sr.n_headers = n;
    sr.payload_sha256 = c->body_sha256;
    sr.region = s3->region;
    sr.service = "s3";
    sr.now = now;
    if (sign_header_auth(&res, &sr, &s3->cred, err) < 0)
        goto out;

    req = http_req_new(c->method, buf_str(&url));
    for (size_t i = 0; i < n; i++)
        http_req_header(req, hs[i].name, hs[i].value);
    http_req_header(req, "authorization", buf_str(&res.authorization));
    if (c->has_body)
        http_req_body(req, c->body, c->body_len);
    else if (strcmp(c->method, "PUT") == 0 || strcmp(c->method, "POST") == 0)
        http_req_body(req, "", 0);
    req->max_body = c->max_body;
    if (c->out)
        req->on_body = get_body_cb;
    req->on_done = call_done_cb;
    req->arg = c;
    http_req_free(c->req);
    c->req = req;
    c->state = S3_CALL_RUNNING;
    http_submit(s3->http, req);
    rc = 0;
out:
    sign_result_free(&res);
    buf_free(&path);
    buf_free(&url);
    return rc;
}

void
s3_call_start(struct s3_call *c)
{
    c->attempt = 0;
    c->resumes = 0;
    c->rc = -1;
    err_clear(&c->err);
    if (call_submit(c, &c->err) < 0) {
        c->state = S3_CALL_DONE;
        c->rc = -1;
    }
}

void
s3_call_cancel(struct s3_call *c)
{
    if (c->state == S3_CALL_RUNNING && c->req)
        http_cancel(c->s3->http, c->req);
    if (c->state == S3_CALL_BACKOFF)
        backoff_unlink(c);
    if (c->state != S3_CALL_IDLE && c->state != S3_CALL_DONE) {
        c->state = S3_CALL_DONE;
        c->rc = -1;
        err_set(&c->err, ERR_INTERNAL, "could not %s: cancelled", c->what);
    }
}

/* ---- mapping answers to errors ---------------------------------------------------------- */

static bool
is_read(const struct s3_call *c)
{
    return strcmp(c->method, "GET") == 0 || strcmp(c->method, "HEAD") == 0;
}

static bool
code_is(const char *code, const char *want)
{
    return strcmp(code, want) == 0;
}

static bool
code_is_auth(const char *code)
{
    return code_is(code, "SignatureDoesNotMatch") || code_is(code, "InvalidAccessKeyId") ||
           code_is(code, "AccessDenied") || code_is(code, "ExpiredToken") ||
           code_is(code, "InvalidToken") || code_is(code, "TokenRefreshRequired") ||
           code_is(code, "AllAccessDisabled") || code_is(code, "AccountProblem");
}

static bool
code_is_retryable(const char *code)
{
    return code_is(code, "SlowDown") || code_is(code, "RequestTimeout") ||
           code_is(code, "InternalError") || code_is(code, "ServiceUnavailable") ||
           code_is(code, "OperationAborted") || code_is(code, "Throttling") ||
           code_is(code, "ThrottlingException") || code_is(code, "RequestLimitExceeded");
}

/*
 * An S3 error answer (status + Code/Message) for call c into err. Shared
 * with CompleteMultipartUpload's error-in-200 and DeleteObjects' entries.
 */
static void
map_s3_error(struct s3_call *c, const char *what, const char *rel_key, long status,
             const char *code, const char *message, struct err *err)
{
    struct s3 *s3 = c->s3;

    if (status == 412 && c->if_none_match && rel_key) {
        err_set(err, ERR_EXISTS, "object \"%s\" already exists", rel_key);
    } else if (status == 412 && c->out && c->have_etag && rel_key) {
        err_set(err, ERR_REMOTE, "object \"%s\" changed during download", rel_key);
    } else if (code_is(code, "NoSuchBucket")) {
        err_set(err, ERR_NOT_FOUND, "bucket \"%s\" does not exist", s3->bucket);
    } else if (rel_key && (code_is(code, "NoSuchKey") || (status == 404 && !code[0]))) {
        err_set(err, ERR_NOT_FOUND, "object \"%s\" not found", rel_key);
    } else if (code_is_auth(code) || (status == 403 && !code[0]) ||
               (status == 403 && !code_is_retryable(code))) {
        if (code[0])
            err_set(err, ERR_AUTH, "could not %s: access denied by \"%s\": %s", what, s3->endpoint,
                    code);
        else
            err_set(err, ERR_AUTH, "could not %s: access denied by \"%s\": HTTP %ld", what,
                    s3->endpoint, status);
    } else if (status == 400 && rel_key && is_read(c) &&
               (code_is(code, "InvalidArgument") || code_is(code, "InvalidRequest")) && message &&
               (strcasestr(message, "encrypt") || strcasestr(message, "customer") ||
                strcasestr(message, "key"))) {
        /* SSE-C: RGW says 400 InvalidArgument, AWS 400 InvalidRequest */
        err_set(err, ERR_KEY, "could not %s: wrong or missing SSE-C customer key: %s: %s", what,
                code, message);
    } else if (status == 400 && rel_key && is_read(c) && !code[0]) {
        /* HEAD answers carry no body: a bare 400 is what an SSE-C mismatch looks like */
        if (s3->sse_c)
            err_set(err, ERR_KEY, "could not %s: wrong SSE-C customer key? (HTTP 400)", what);
        else
            err_set(err, ERR_REMOTE, "could not %s: HTTP 400 (stored with an SSE-C customer key?)",
                    what);
    } else if (code[0] && message && message[0]) {
        err_set(err, ERR_REMOTE, "could not %s: %s: %s (HTTP %ld)", what, code, message, status);
    } else if (code[0]) {
        err_set(err, ERR_REMOTE, "could not %s: %s (HTTP %ld)", what, code, status);
    } else {
        err_set(err, ERR_REMOTE, "could not %s: HTTP %ld", what, status);
    }
    /* 501 Not Implemented is an answer, not a transient failure */
    err->retryable = (status >= 500 && status != 501 && !code_is(code, "NotImplemented")) ||
                     status == 429 || code_is_retryable(code);
    if (err->kind == ERR_AUTH || err->kind == ERR_NOT_FOUND || err->kind == ERR_EXISTS)
        err->retryable = false;
    err->http_status = (int)status;
    snprintf(err->code, sizeof(err->code), "%s", code);
}

static void
map_http_status(struct s3_call *c, struct http_req *r, struct err *err)
{
    struct s3_xml_error xe;
    struct err perr;
    const char *code = "";
    const char *message = "";
    bool parsed = false;

    memset(&xe, 0, sizeof(xe));
    if (r->body.len > 0 && s3_xml_parse_error(&xe, r->body.data, r->body.len, &perr) == 0) {
        parsed = true;
        code = xe.code;
        message = xe.message;
    }
    map_s3_error(c, c->what, c->rel_key, r->status, code, message, err);
    if (parsed)
        s3_xml_error_free(&xe);
}

static void
map_curl_error(struct s3_call *c, struct http_req *r, struct err *err)
{
    struct s3 *s3 = c->s3;
    const char *reason = r->errbuf[0] ? r->errbuf : curl_easy_strerror((CURLcode)r->curl_code);
    bool retry = true;

    switch ((CURLcode)r->curl_code) {
    case CURLE_COULDNT_CONNECT:
        err_set(err, ERR_NET, "could not connect to \"%s\": %s", s3->endpoint,
                r->os_errno ? strerror(r->os_errno) : reason);
        err->sys_errno = r->os_errno;
        break;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        err_set(err, ERR_NET, "could not connect to \"%s\": %s", s3->endpoint, reason);
        break;
    case CURLE_OPERATION_TIMEDOUT:
        if (r->status == 0 && r->body_bytes == 0 && r->sent == 0)
            err_set(err, ERR_TIMEOUT, "could not connect to \"%s\": %s", s3->endpoint, reason);
        else
            err_set(err, ERR_TIMEOUT, "could not %s: %s (\"%s\")", c->what, reason, s3->endpoint);
        break;
    case CURLE_ABORTED_BY_CALLBACK:
        if (r->stalled) {
            err_set(err, ERR_TIMEOUT, "could not %s: no data moved for %d ms (\"%s\")", c->what,
                    c->s3->opts.timeout_ms > 0 ? c->s3->opts.timeout_ms : 60000, s3->endpoint);
        } else {
            err_set(err, ERR_INTERNAL, "could not %s: aborted", c->what);
            retry = false;
        }
        break;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
        err_set(err, ERR_TLS, "TLS verification failed for \"%s\": %s", s3->endpoint, reason);
        retry = false;
        break;
    case CURLE_SSL_CONNECT_ERROR:
        err_set(err, ERR_TLS, "TLS handshake with \"%s\" failed: %s", s3->endpoint, reason);
        break;
    case CURLE_WRITE_ERROR:
        if (r->too_large) {
            err_set(err, ERR_REMOTE, "could not %s: response from \"%s\" too large", c->what,
                    s3->endpoint);
            retry = false;
            break;
        }
        /* fall through */
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        err_set(err, ERR_NET, "could not %s: connection to \"%s\" failed: %s", c->what,
                s3->endpoint, reason);
        break;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        err_set(err, ERR_CONFIG, "could not %s: bad URL for \"%s\": %s", c->what, s3->endpoint,
                reason);
        retry = false;
        break;
    default:
        err_set(err, ERR_NET, "could not %s: %s (\"%s\")", c->what, reason, s3->endpoint);
        retry = false;
        break;
    }
    err->retryable = retry;
}

/* ---- GET streaming ------------------------------------------------------------------- */

/* Check (first answer: remember) the ETag of a GET answer. false if the object changed. */
static bool
etag_check(struct s3_call *c, struct http_req *r)
{
    const char *etag = http_req_resp_header(r, "etag");

    if (!etag)
        return true;
    if (!c->have_etag) {
        snprintf(c->etag, sizeof(c->etag), "%s", etag);
        c->have_etag = true;
        return true;
    }
    return strcmp(c->etag, etag) == 0;
}

static int
get_body_cb(struct http_req *r, const void *data, size_t len, void *arg)
{
    struct s3_call *c = arg;
    const char *p = data;
    uint64_t start = c->offset + c->pushed - c->attempt_pushed;

    if (r->body_bytes == len) {
        /* first chunk of this attempt */
        if (!etag_check(c, r)) {
            c->changed = true;
            return -1;
        }
        /* A server that ignored our Range sends the object from byte 0. */
        if (r->status == 200 && start > 0)
            c->attempt_skip = start;
    }
    if (c->attempt_skip > 0) {
        uint64_t skip = c->attempt_skip < len ? c->attempt_skip : len;

        c->attempt_skip -= skip;
        p += skip;
        len -= (size_t)skip;
    }
    if (c->len > 0 && c->pushed + len > c->len)
        len = (size_t)(c->len - c->pushed);
    if (len == 0)
        return 0;
    if (sink_write(c->out, p, len, &c->sink_err) < 0) {
        c->sink_failed = true;
        return -1;
    }
    c->pushed += len;
    c->attempt_pushed += len;
    return 0;
}

/* ---- completion and retries --------------------------------------------------------------- */

static void
call_finish(struct s3_call *c, int rc)
{
    c->state = S3_CALL_DONE;
    c->rc = rc;
}

static void
call_done_cb(struct http_req *r, void *arg)
{
    struct s3_call *c = arg;
    struct s3 *s3 = c->s3;
    struct err e;
    bool progress;

    err_clear(&e);
    if (c->sink_failed) {
        c->err = c->sink_err;
        call_finish(c, -1);
        return;
    }
    if (c->changed) {
        err_set(&c->err, ERR_REMOTE, "object \"%s\" changed during download",
                c->rel_key ? c->rel_key : "");
        call_finish(c, -1);
        return;
    }
    if (r->curl_code != CURLE_OK) {
        map_curl_error(c, r, &e);
    } else if (r->status >= 200 && r->status < 300) {
        if (c->out) {
            if (r->body_bytes == 0 && !etag_check(c, r)) {
                err_set(&c->err, ERR_REMOTE, "object \"%s\" changed during download",
                        c->rel_key ? c->rel_key : "");
                call_finish(c, -1);
                return;
            }
            if (r->content_length >= 0 && r->body_bytes < (uint64_t)r->content_length) {
                err_set(&e, ERR_NET, "could not %s: body truncated at %llu of %lld bytes", c->what,
                        (unsigned long long)r->body_bytes, (long long)r->content_length);
                e.retryable = true;
            }
        }
        if (e.kind == ERR_NONE) {
            call_finish(c, 0);
            return;
        }
    } else {
        map_http_status(c, r, &e);
    }

    c->err = e;
    /* an attempt that moved at least RESUME_MIN_PROGRESS bytes is a resume, not a retry */
    progress = c->out && c->attempt_pushed >= RESUME_MIN_PROGRESS;
    if (!e.retryable) {
        call_finish(c, -1);
        return;
    }
    if (progress && c->resumes < MAX_RESUMES) {
        c->resumes++;
    } else {
        if (c->attempt >= s3->retries) {
            call_finish(c, -1);
            return;
        }
        c->attempt++;
    }
    {
        uint64_t ceiling = s3->retry_base_ms;
        uint64_t delay;

        for (int i = 1; i < c->attempt && ceiling < s3->retry_cap_ms; i++)
            ceiling *= 2;
        if (ceiling > s3->retry_cap_ms)
            ceiling = s3->retry_cap_ms;
        delay = progress ? 0 : rng_next(s3) % (ceiling + 1);
        if (progress)
            log_debug("resuming at byte %llu: %s", (unsigned long long)(c->offset + c->pushed),
                      e.msg);
        else
            log_debug("retrying (%d of %d) in %llu ms: %s", c->attempt, s3->retries,
                      (unsigned long long)delay, e.msg);
        c->retry_at_ms = http_now_ms() + (int64_t)delay;
    }
    c->state = S3_CALL_BACKOFF;
    c->next_backoff = backoff_head;
    backoff_head = c;
}

int
s3_drive(struct s3 *s3, int wait_ms)
{
    int done = 0;
    int64_t now = http_now_ms();
    int64_t next = -1;

    /* Submit due retries; find the next due time. */
    for (struct s3_call **p = &backoff_head; *p;) {
        struct s3_call *c = *p;

        if (c->s3 != s3) {
            p = &c->next_backoff;
            continue;
        }
        if (c->retry_at_ms <= now) {
            *p = c->next_backoff;
            c->next_backoff = NULL;
            if (call_submit(c, &c->err) < 0) {
                call_finish(c, -1);
                done++;
            }
            continue;
        }
        if (next < 0 || c->retry_at_ms < next)
            next = c->retry_at_ms;
        p = &c->next_backoff;
    }
    if (done)
        wait_ms = 0;
    if (next >= 0 && next - now < wait_ms)
        wait_ms = (int)(next - now);
    if (http_running(s3->http) == 0) {
        if (wait_ms > 0)
            usleep((useconds_t)wait_ms * 1000);
        return done;
    }
    done += http_run(s3->http, wait_ms);
    return done;
}

int
s3_call_run(struct s3_call *c, struct err *err)
{
    s3_call_start(c);
    while (c->state != S3_CALL_DONE)
        s3_drive(c->s3, 1000);
    if (c->rc < 0)
        *err = c->err;
    return c->rc;
}

int
s3_calls_run(struct s3_call *const *calls, size_t n, struct err *err)
{
    bool all;
    int rc = 0;

    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        s3_call_start(calls[i]);
    do {
        all = true;
        for (size_t i = 0; i < n; i++)
            if (calls[i]->state != S3_CALL_DONE)
                all = false;
        if (!all)
            s3_drive(calls[0]->s3, 1000);
    } while (!all);
    for (size_t i = 0; i < n; i++) {
        if (calls[i]->rc < 0 && rc == 0) {
            *err = calls[i]->err;
            rc = -1;
        }
    }
    return rc;
}

/* ---- operations ---------------------------------------------------------------------------- */

void
s3_call_sse_headers(struct s3_call *c)
{
    struct s3 *s3 = c->s3;

    if (s3->sse) {
        s3_call_header(c, "x-amz-server-side-encryption", s3->sse);
        if (s3->sse_kms_key_id && strcmp(s3->sse, "aws:kms") == 0)
            s3_call_header(c, "x-amz-server-side-encryption-aws-kms-key-id", s3->sse_kms_key_id);
    }
    c->sse_c = s3->sse_c;
}

static int
s3_get(struct repo *r, const char *key, uint64_t offset, uint64_t len, struct sink *out,
       struct err *err)
{
    struct s3 *s3 = (struct s3 *)r;
    struct s3_call c;
    int rc;

    s3_call_init(&c, s3, "GET", key, "read \"%s\"", key);
    c.sse_c = s3->sse_c;
    c.out = out;
    c.offset = offset;
    c.len = len;
    rc = s3_call_run(&c, err);
    s3_call_free(&c);
    return rc;
}

int
s3_head(struct s3 *s3, const char *key, struct repo_stat *out, struct err *err)
{
    return s3_head_as(s3, key, "stat", out, err);
}

int
s3_head_as(struct s3 *s3, const char *key, const char *verb, struct repo_stat *out, struct err *err)
{
    struct s3_call c;
    const char *v;
    int rc;

    s3_call_init(&c, s3, "HEAD", key, "%s \"%s\"", verb, key);
    c.sse_c = s3->sse_c;
    rc = s3_call_run(&c, err);
    if (rc < 0 && (err->http_status == 400 || err->http_status == 403) && !err->code[0]) {
        /*
         * A HEAD answer has no body, so no error code: ask again with a
         * one-byte GET to learn it (SignatureDoesNotMatch, an SSE-C key ...).
         */
        struct s3_call g;
        struct err ge;

        s3_call_init(&g, s3, "GET", key, "%s \"%s\"", verb, key);
        g.sse_c = s3->sse_c;
        g.max_body = 64 * 1024;
        s3_call_header(&g, "range", "bytes=0-0");
        if (s3_call_run(&g, &ge) < 0 && ge.code[0])
            *err = ge;
        s3_call_free(&g);
    }
    if (rc == 0 && out) {
        struct http_req *h = c.req;

        memset(out, 0, sizeof(*out));
        out->size = h->content_length >= 0 ? (uint64_t)h->content_length : 0;
        v = http_req_resp_header(h, "last-modified");
        if (v) {
            time_t t = curl_getdate(v, NULL);

            out->mtime = t > 0 ? (int64_t)t : 0;
        }
        v = http_req_resp_header(h, "etag");
        if (v) {
            size_t n = strlen(v);

            if (n >= 2 && v[0] == '"' && v[n - 1] == '"')
                snprintf(out->etag, sizeof(out->etag), "%.*s", (int)(n - 2), v + 1);
            else
                snprintf(out->etag, sizeof(out->etag), "%s", v);
        }
        v = http_req_resp_header(h, "x-amz-server-side-encryption");
        if (v)
            snprintf(out->sse, sizeof(out->sse), "%s", v);
        v = http_req_resp_header(h, "x-amz-server-side-encryption-aws-kms-key-id");
        if (v)
            snprintf(out->sse_kms_key_id, sizeof(out->sse_kms_key_id), "%s", v);
        out->sse_customer =
            http_req_resp_header(h, "x-amz-server-side-encryption-customer-algorithm") != NULL;
    }
    s3_call_free(&c);
    return rc;
}

static int
s3_stat(struct repo *r, const char *key, struct repo_stat *out, struct err *err)
{
    return s3_head((struct s3 *)r, key, out, err);
}

static void
query_param(struct buf *q, const char *name, const char *value)
{
    if (q->len)
        buf_putc(q, '&');
    buf_puts(q, name);
    buf_putc(q, '=');
    sign_uri_encode(q, value, strlen(value), false);
}

/* Entries of one page, objects and prefixes merged in byte order. */
static int
list_emit(struct s3 *s3, const struct s3_xml_list *page, repo_list_cb cb, void *arg, bool *stop,
          struct err *err)
{
    size_t i = 0;
    size_t j = 0;
    size_t plen = strlen(s3->prefix);

    while (i < page->n_objects || j < page->n_prefixes) {
        struct repo_entry e;
        const char *full;
        bool take_obj;

        if (i < page->n_objects && j < page->n_prefixes)
            take_obj = strcmp(page->objects[i].key, page->prefixes[j]) < 0;
        else
            take_obj = i < page->n_objects;
        memset(&e, 0, sizeof(e));
        if (take_obj) {
            full = page->objects[i].key;
            e.size = page->objects[i].size;
            e.mtime = page->objects[i].mtime;
            i++;
        } else {
            full = page->prefixes[j];
            e.is_prefix = true;
            j++;
        }
        if (strncmp(full, s3->prefix, plen) != 0)
            return err_set(err, ERR_REMOTE, "S3 listing returned \"%s\" outside prefix \"%s\"",
                           full, s3->prefix);
        e.key = full + plen;
        if (!*e.key)
            continue; /* a "directory marker" equal to the repository prefix */
        if (cb(&e, arg) != 0) {
            *stop = true;
            return 0;
        }
    }
    return 0;
}

static int
s3_list(struct repo *r, const char *prefix, const char *delimiter, repo_list_cb cb, void *arg,
        struct err *err)
{
    struct s3 *s3 = (struct s3 *)r;
    char *full = s3_full_key(s3, prefix ? prefix : "");
    char *token = NULL;
    bool stop = false;
    int rc = -1;

    for (;;) {
        struct s3_call c;
        struct buf q = BUF_INIT;
        struct s3_xml_list page;
        char max[16];

        /* parameters in sorted order (the canonical query must be sorted) */
        if (token)
            query_param(&q, "continuation-token", token);
        if (delimiter && *delimiter)
            query_param(&q, "delimiter", delimiter);
        query_param(&q, "list-type", "2");
        snprintf(max, sizeof(max), "%d", LIST_PAGE);
        query_param(&q, "max-keys", max);
        query_param(&q, "prefix", full);
        s3_call_init(&c, s3, "GET", NULL, "list \"%s\"", prefix ? prefix : "");
        c.query = buf_detach(&q);
        c.max_body = 64 * 1024 * 1024;
        if (s3_call_run(&c, err) < 0) {
            s3_call_free(&c);
            goto out;
        }
        if (s3_xml_parse_list(&page, c.req->body.data, c.req->body.len, err) < 0) {
            err_prefix(err, "could not list \"%s\"", prefix ? prefix : "");
            s3_call_free(&c);
            goto out;
        }
        s3_call_free(&c);
        if (list_emit(s3, &page, cb, arg, &stop, err) < 0) {
            s3_xml_list_free(&page);
            goto out;
        }
        free(token);
        token = page.truncated && page.next_token ? xstrdup(page.next_token) : NULL;
        s3_xml_list_free(&page);
        if (stop || !token)
            break;
    }
    rc = 0;
out:
    free(token);
    free(full);
    return rc;
}

static int
s3_delete_one(struct repo *r, const char *key, struct err *err)
{
    struct s3 *s3 = (struct s3 *)r;
    struct s3_call c;
    struct err e;
    int rc;

    s3_call_init(&c, s3, "DELETE", key, "delete \"%s\"", key);
    rc = s3_call_run(&c, &e);
    if (rc < 0 && e.kind == ERR_NOT_FOUND && strcmp(e.code, "NoSuchBucket") != 0)
        rc = 0; /* already gone */
    if (rc < 0)
        *err = e;
    s3_call_free(&c);
    return rc;
}

/* First failure of one DeleteObjects answer into err (others logged at debug). */
static int
delete_result(struct s3_call *c, struct err *err)
{
    struct s3_xml_delete_result d;
    size_t plen = strlen(c->s3->prefix);
    int rc = 0;

    if (s3_xml_parse_delete(&d, c->req->body.data, c->req->body.len, err) < 0) {
        err_prefix(err, "could not %s", c->what);
        return -1;
    }
    for (size_t i = 0; i < d.n_errors; i++) {
        struct s3_xml_delete_error *de = &d.errors[i];
        const char *rel = strncmp(de->key, c->s3->prefix, plen) == 0 ? de->key + plen : de->key;
        char what[600];
        struct err e;

        if (strcmp(de->code, "NoSuchKey") == 0)
            continue;
        snprintf(what, sizeof(what), "delete \"%s\"", rel);
        map_s3_error(c, what, rel, 0, de->code, de->message, &e);
        if (rc == 0) {
            *err = e;
            rc = -1;
        } else {
            log_debug("%s", e.msg);
        }
    }
    s3_xml_delete_result_free(&d);
    return rc;
}

static int
s3_delete_many(struct repo *r, const char *const *keys, size_t n, struct err *err)
{
    struct s3 *s3 = (struct s3 *)r;
    size_t n_batches = (n + DELETE_BATCH - 1) / DELETE_BATCH;
    size_t group = (size_t)s3->parallel;
    int rc = 0;

    for (size_t g = 0; g < n_batches; g += group) {
        size_t m = n_batches - g < group ? n_batches - g : group;
        struct s3_call *calls = xcalloc(m, sizeof(*calls));
        struct s3_call **ptrs = xcalloc(m, sizeof(*ptrs));
        struct buf *bodies = xcalloc(m, sizeof(*bodies));
        struct err e;

        for (size_t i = 0; i < m; i++) {
            size_t first = (g + i) * DELETE_BATCH;
            size_t cnt = n - first < DELETE_BATCH ? n - first : DELETE_BATCH;
            char **full = xcalloc(cnt, sizeof(*full));

            for (size_t k = 0; k < cnt; k++)
                full[k] = s3_full_key(s3, keys[first + k]);
            s3_xml_build_delete(&bodies[i], (const char *const *)full, cnt, true);
            for (size_t k = 0; k < cnt; k++)
                free(full[k]);
            free(full);
            s3_call_init(&calls[i], s3, "POST", NULL, "delete \"%s\"", keys[first]);
            calls[i].query = xstrdup("delete=");
            s3_call_body(&calls[i], bodies[i].data, bodies[i].len, true);
            ptrs[i] = &calls[i];
        }
        if (s3_calls_run(ptrs, m, &e) < 0 && rc == 0) {
            *err = e;
            rc = -1;
        }
        for (size_t i = 0; i < m; i++) {
            if (calls[i].rc == 0 && delete_result(&calls[i], &e) < 0 && rc == 0) {
                *err = e;
                rc = -1;
            }
            s3_call_free(&calls[i]);
            buf_free(&bodies[i]);
        }
        free(calls);
        free(ptrs);
        free(bodies);
    }
    return rc;
}

/* ---- incomplete writes: unfinished multipart uploads ---------------------------------- */

#define UPLOADS_PAGE 1000

static int
s3_list_incomplete(struct repo *r, const char *prefix, repo_incomplete_cb cb, void *arg,
                   struct err *err)
{
    struct s3 *s3 = (struct s3 *)r;
    char *full = s3_full_key(s3, prefix);
    size_t plen = strlen(s3->prefix);
    char *key_marker = NULL;
    char *id_marker = NULL;
    bool stop = false;
    int rc = -1;

    for (;;) {
        struct s3_call c;
        struct buf q = BUF_INIT;
        struct s3_xml_uploads page;
        char max[16];

        /* parameters in sorted order (the canonical query must be sorted) */
        if (key_marker)
            query_param(&q, "key-marker", key_marker);
        snprintf(max, sizeof(max), "%d", UPLOADS_PAGE);
        query_param(&q, "max-uploads", max);
        query_param(&q, "prefix", full);
        if (key_marker && id_marker)
            query_param(&q, "upload-id-marker", id_marker);
        query_param(&q, "uploads", "");
        s3_call_init(&c, s3, "GET", NULL, "list the unfinished uploads under \"%s\"", prefix);
        c.query = buf_detach(&q);
        c.max_body = 64 * 1024 * 1024;
        if (s3_call_run(&c, err) < 0) {
            int status = err->http_status;

            if (status == 501 || strcmp(err->code, "NotImplemented") == 0) {
                err_set(err, ERR_REMOTE,
                        "\"%s\" does not implement ListMultipartUploads (HTTP %d): unfinished "
                        "uploads cannot be listed",
                        s3->endpoint, status);
                snprintf(err->code, sizeof(err->code), "%s", REPO_NOT_IMPLEMENTED);
                err->http_status = status;
            }
            s3_call_free(&c);
            goto out;
        }
        if (s3_xml_parse_uploads(&page, c.req->body.data, c.req->body.len, err) < 0) {
            err_prefix(err, "could not list the unfinished uploads under \"%s\"", prefix);
            s3_call_free(&c);
            goto out;
        }
        s3_call_free(&c);
        for (size_t i = 0; i < page.n_uploads && !stop; i++) {
            const struct s3_xml_upload *u = &page.uploads[i];
            struct repo_incomplete w;

            if (strncmp(u->key, full, strlen(full)) != 0) {
                err_set(err, ERR_REMOTE, "S3 upload listing returned \"%s\" outside prefix \"%s\"",
                        u->key, full);
                s3_xml_uploads_free(&page);
                goto out;
            }
            w = (struct repo_incomplete){u->key + plen, u->upload_id, u->initiated};
            if (cb(&w, arg) != 0)
                stop = true;
        }
        if (stop || !page.truncated) {
            s3_xml_uploads_free(&page);
            break;
        }
        /* the markers must move on, or a faulty server would keep us here */
        if (key_marker && strcmp(key_marker, page.next_key_marker) == 0 &&
            (!page.next_upload_id_marker ||
             (id_marker && strcmp(id_marker, page.next_upload_id_marker) == 0))) {
            err_set(err, ERR_REMOTE, "invalid S3 upload listing: the page markers do not advance");
            s3_xml_uploads_free(&page);
            goto out;
        }
        free(key_marker);
        free(id_marker);
        key_marker = xstrdup(page.next_key_marker);
        id_marker = page.next_upload_id_marker ? xstrdup(page.next_upload_id_marker) : NULL;
        s3_xml_uploads_free(&page);
    }
    rc = 0;
out:
    free(key_marker);
    free(id_marker);
    free(full);
    return rc;
}

static int
s3_abort_incomplete(struct repo *r, const struct repo_incomplete *w, struct err *err)
{
    if (!w->upload_id || !*w->upload_id)
        return err_set(err, ERR_USAGE, "no upload ID for the unfinished upload of \"%s\"", w->key);
    return s3_abort_upload((struct s3 *)r, w->key, w->upload_id, err);
}

static const char *
dup_opt(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

static void
free_opt(const char *s)
{
    if (s) {
        OPENSSL_cleanse((char *)s, strlen(s));
        free((char *)s);
    }
}

static void
s3_close(struct repo *r)
{
    struct s3 *s3 = (struct s3 *)r;

    if (!s3)
        return;
    http_free(s3->http);
    if (s3->have_cred)
        s3_credentials_free(&s3->cred);
    free(s3->bucket);
    free(s3->prefix);
    free(s3->endpoint);
    free(s3->url_base);
    free(s3->host);
    free(s3->region);
    free(s3->sse);
    free(s3->sse_kms_key_id);
    free_opt(s3->opts.s3_region);
    free_opt(s3->opts.s3_access_key_id);
    free_opt(s3->opts.s3_secret_access_key);
    free_opt(s3->opts.s3_session_token);
    free_opt(s3->opts.s3_profile);
    free_opt(s3->opts.imds_endpoint);
    OPENSSL_cleanse(s3->sse_c_key_b64, sizeof(s3->sse_c_key_b64));
    free(s3);
}

static const struct repo_ops s3_ops = {
    .scheme = "s3",
    .put_sink_new = s3_put_sink_new,
    .get = s3_get,
    .stat = s3_stat,
    .list = s3_list,
    .delete_one = s3_delete_one,
    .delete_many = s3_delete_many,
    .close = s3_close,
    .list_incomplete = s3_list_incomplete,
    .abort_incomplete = s3_abort_incomplete,
};

/* ---- opening ---------------------------------------------------------------------------- */

static int
parse_endpoint(struct s3 *s3, const char *endpoint, bool aws, struct err *err)
{
    CURLU *u = curl_url();
    char *scheme = NULL;
    char *host = NULL;
    char *port = NULL;
    char *path = NULL;
    int rc = -1;
    bool dflt_port;

    if (!u)
        abort();
    if (curl_url_set(u, CURLUPART_URL, endpoint, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        err_set(err, ERR_USAGE, "invalid S3 endpoint \"%s\"", endpoint);
        goto out;
    }
    if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) {
        err_set(err, ERR_USAGE, "invalid S3 endpoint \"%s\": scheme must be http or https",
                endpoint);
        goto out;
    }
    if (curl_url_get(u, CURLUPART_PATH, &path, 0) == CURLUE_OK && path && strcmp(path, "/") != 0 &&
        path[0]) {
        err_set(err, ERR_USAGE, "invalid S3 endpoint \"%s\": a path is not supported", endpoint);
        goto out;
    }
    curl_url_get(u, CURLUPART_PORT, &port, 0);
    dflt_port = !port || (strcmp(scheme, "http") == 0 && strcmp(port, "80") == 0) ||
                (strcmp(scheme, "https") == 0 && strcmp(port, "443") == 0);

    aws = aws || is_aws_host(host);
    if (!s3->opts.s3_uri_style_set)
        s3->path_style = !aws || strchr(s3->bucket, '.') != NULL;
    else
        s3->path_style = s3->opts.s3_uri_style == REPO_URI_PATH;

    s3->endpoint = dflt_port ? xasprintf("%s://%s", scheme, host)
                             : xasprintf("%s://%s:%s", scheme, host, port);
    if (s3->path_style)
        s3->host = dflt_port ? xstrdup(host) : xasprintf("%s:%s", host, port);
    else
        s3->host = dflt_port ? xasprintf("%s.%s", s3->bucket, host)
                             : xasprintf("%s.%s:%s", s3->bucket, host, port);
    s3->url_base = xasprintf("%s://%s", scheme, s3->host);
    rc = 0;
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_url_cleanup(u);
    return rc;
}

int
s3_repo_open(struct repo **out, const char *bucket, const char *prefix,
             const struct repo_opts *opts, struct err *err)
{
    struct s3 *s3 = xcalloc(1, sizeof(*s3));
    struct http_config hc;
    const char *endpoint = opts->s3_endpoint;
    const char *env;
    char *aws_endpoint = NULL;
    bool aws = false;
    size_t plen;

    *out = NULL;
    s3->base.ops = &s3_ops;
    s3->opts = *opts;
    /* Keep our own copies of what creds_resolve may read later. */
    s3->opts.s3_region = dup_opt(opts->s3_region);
    s3->opts.s3_access_key_id = dup_opt(opts->s3_access_key_id);
    s3->opts.s3_secret_access_key = dup_opt(opts->s3_secret_access_key);
    s3->opts.s3_session_token = dup_opt(opts->s3_session_token);
    s3->opts.s3_profile = dup_opt(opts->s3_profile);
    s3->opts.imds_endpoint = dup_opt(opts->imds_endpoint);
    s3->opts.s3_endpoint = NULL;
    s3->opts.s3_ca_file = NULL;
    s3->opts.s3_ca_path = NULL;
    s3->opts.s3_sse = NULL;
    s3->opts.s3_sse_kms_key_id = NULL;
    if (!bucket || !*bucket) {
        free(s3);
        return err_set(err, ERR_USAGE, "S3 repository URL has no bucket");
    }
    s3->bucket = xstrdup(bucket);
    while (prefix && *prefix == '/')
        prefix++;
    plen = prefix ? strlen(prefix) : 0;
    while (plen > 0 && prefix[plen - 1] == '/')
        plen--;
    s3->prefix = plen ? xasprintf("%.*s/", (int)plen, prefix) : xstrdup("");
    /* base.url stays NULL: repo.c sets it and frees it */
    s3->region = creds_region(opts);

    if (!endpoint || !*endpoint) {
        env = getenv("AWS_ENDPOINT_URL");
        if (env && *env) {
            endpoint = env;
        } else {
            aws_endpoint = xasprintf("https://s3.%s.amazonaws.com", s3->region);
            endpoint = aws_endpoint;
            aws = true;
        }
    }
    if (parse_endpoint(s3, endpoint, aws, err) < 0) {
        free(aws_endpoint);
        s3_close(&s3->base);
        return -1;
    }
    free(aws_endpoint);

    if (opts->s3_sse && *opts->s3_sse) {
        if (strcmp(opts->s3_sse, "AES256") != 0 && strcmp(opts->s3_sse, "aws:kms") != 0) {
            err_set(err, ERR_USAGE,
                    "invalid S3 server-side encryption \"%s\": use AES256 or aws:kms",
                    opts->s3_sse);
            s3_close(&s3->base);
            return -1;
        }
        s3->sse = xstrdup(opts->s3_sse);
        if (opts->s3_sse_kms_key_id && *opts->s3_sse_kms_key_id)
            s3->sse_kms_key_id = xstrdup(opts->s3_sse_kms_key_id);
    }
    if (opts->s3_sse_customer_key_set) {
        unsigned char md5[16];
        unsigned int ml = 0;

        if (s3->sse) {
            err_set(err, ERR_USAGE,
                    "S3 server-side encryption \"%s\" and a customer key (SSE-C) "
                    "cannot be combined",
                    s3->sse);
            s3_close(&s3->base);
            return -1;
        }
        s3->sse_c = true;
        s3_base64(s3->sse_c_key_b64, opts->s3_sse_customer_key, 32);
        EVP_Digest(opts->s3_sse_customer_key, 32, md5, &ml, EVP_md5(), NULL);
        s3_base64(s3->sse_c_md5_b64, md5, 16);
    }
    /* Strings of opts are only needed by creds_resolve; the secret fields are copied there. */
    memset(s3->opts.s3_sse_customer_key, 0, sizeof(s3->opts.s3_sse_customer_key));

    s3->retries = opts->retries >= 0 ? opts->retries : 4;
    s3->parallel = opts->parallel > 0 ? opts->parallel : 4;
    s3->part_size = opts->s3_part_size ? opts->s3_part_size : DEFAULT_PART_SIZE;
    if (s3->part_size < MIN_PART_SIZE)
        s3->part_size = MIN_PART_SIZE;
    s3->retry_base_ms = 200;
    s3->retry_cap_ms = 10000;
    env = getenv("FERRY_S3_RETRY_BASE_MS");
    if (env && *env) {
        char *end;
        unsigned long v = strtoul(env, &end, 10);

        if (*end == '\0' && v <= 10000)
            s3->retry_base_ms = (unsigned)v;
    }
    s3->cond = S3_COND_AUTO;
    env = getenv("FERRY_S3_CONDITIONAL_PUT");
    if (env && *env) {
        if (strcmp(env, "auto") == 0) {
            s3->cond = S3_COND_AUTO;
        } else if (strcmp(env, "server") == 0) {
            s3->cond = S3_COND_SERVER;
        } else if (strcmp(env, "check") == 0) {
            s3->cond = S3_COND_CHECK;
        } else {
            err_set(err, ERR_USAGE,
                    "invalid FERRY_S3_CONDITIONAL_PUT \"%s\": use auto, server or check", env);
            s3_close(&s3->base);
            return -1;
        }
    }
    s3->rng = ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid() ^ (uint64_t)(uintptr_t)s3;
    if (!s3->rng)
        s3->rng = 1;

    memset(&hc, 0, sizeof(hc));
    hc.connect_timeout_ms = opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms : 10000;
    hc.stall_timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : 60000;
    /* Overall cap per attempt: generous for a 5 GiB part on a slow link, but finite. */
    hc.total_timeout_ms = hc.stall_timeout_ms * 30;
    hc.ca_file = opts->s3_ca_file;
    hc.ca_path = opts->s3_ca_path;
    if (!hc.ca_file && !hc.ca_path) {
        env = getenv("AWS_CA_BUNDLE");
        if (env && *env)
            hc.ca_file = env;
    }
    hc.no_verify_tls = opts->s3_no_verify_tls;
    hc.max_connections = s3->parallel * 2 + 2;
    s3->http = http_new(&hc);
    *out = &s3->base;
    return 0;
}
