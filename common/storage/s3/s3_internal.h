/* SPDX-License-Identifier: MIT */
/*
 * Shared by s3.c (the repository backend and the request engine) and
 * multipart.c (the upload sink). Private to storage/s3/.
 *
 * A struct s3_call is one logical S3 request with its retries: the engine
 * builds, signs and submits a fresh HTTP attempt each time, classifies the
 * answer, and on a retryable failure waits (exponential backoff with full
 * jitter) and tries again. Many calls may be in flight at once on the
 * repository's HTTP multi handle: s3_call_start() them, then s3_drive()
 * until each is done (or s3_calls_run() for a fixed set).
 */
#ifndef STORAGE_S3_S3_INTERNAL_H
#define STORAGE_S3_S3_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "storage/repo.h"
#include "storage/s3/http.h"
#include "storage/s3/sign.h"
#include "stream/sink.h"

/*
 * How REPO_PUT_IF_ABSENT is enforced (FERRY_S3_CONDITIONAL_PUT):
 *   auto   HeadObject before the write, and If-None-Match: * on PutObject and
 *          CompleteMultipartUpload (default: atomic on AWS, still correct
 *          on servers that ignore the header, bar a race between HEAD and write)
 *   server If-None-Match: * only (AWS, RGW PutObject; one round trip less)
 *   check  HeadObject only (servers that reject the header)
 */
enum s3_cond_mode { S3_COND_AUTO = 0, S3_COND_SERVER, S3_COND_CHECK };

struct s3 {
    struct repo base;
    char *bucket;
    char *prefix;   /* "" or ending in '/' */
    char *endpoint; /* "scheme://host[:port]" as configured, for messages */
    char *url_base; /* "scheme://host[:port]" requests go to (bucket.host in host style) */
    char *host;     /* Host header value */
    bool path_style;
    char *region;
    char *sse; /* NULL, "AES256", "aws:kms" */
    char *sse_kms_key_id;
    bool sse_c;
    char sse_c_key_b64[48];
    char sse_c_md5_b64[32];
    int retries;
    int parallel;
    uint64_t part_size;
    enum s3_cond_mode cond;
    unsigned retry_base_ms;
    unsigned retry_cap_ms;
    struct repo_opts opts; /* strings not owned: used only for creds_resolve at first use */
    struct http *http;
    struct s3_credentials cred;
    bool have_cred;
    uint64_t rng;
};

enum s3_call_state { S3_CALL_IDLE = 0, S3_CALL_RUNNING, S3_CALL_BACKOFF, S3_CALL_DONE };

#define S3_CALL_MAX_HEADERS 8

struct s3_call {
    struct s3 *s3;
    /* request */
    const char *method;
    char *key;   /* full object key (with the repository prefix); NULL: the bucket */
    char *query; /* encoded "a=b&c=d", sorted by name; NULL for none */
    const void *body;
    size_t body_len;
    bool has_body;
    char body_sha256[65];
    char body_md5_b64[32]; /* "" = no Content-MD5 */
    struct http_header hdr[S3_CALL_MAX_HEADERS];
    size_t n_hdr;
    bool sse_c;         /* send the SSE-C headers */
    bool if_none_match; /* If-None-Match: * (412 means "exists") */
    size_t max_body;

    /* for messages */
    char *what;    /* "read \"wal/x\"" after "could not " */
    char *rel_key; /* key relative to the repository, for "not found" / "exists"; NULL for bucket */
    bool not_found_ok; /* 404 is a success (delete) */

    /* streaming GET into a sink */
    struct sink *out;
    uint64_t offset;         /* first byte wanted */
    uint64_t len;            /* 0: to the end */
    uint64_t pushed;         /* bytes pushed to out so far */
    uint64_t attempt_skip;   /* bytes to drop at the start of this attempt (200 to a Range) */
    uint64_t attempt_pushed; /* pushed during this attempt */
    char etag[128];          /* from the first answer; quotes kept */
    bool have_etag;
    bool changed;
    bool sink_failed;
    struct err sink_err;

    /* engine */
    enum s3_call_state state;
    int attempt; /* retries used */
    int resumes; /* attempts that made progress (not counted as retries) */
    int64_t retry_at_ms;
    struct http_req *req; /* last attempt; kept after done for headers and body */
    struct s3_call *next_backoff;

    /* result, once done */
    int rc;
    struct err err;
};

/* Set up a call; what/rel_key are copied (rel_key may be NULL). */
void s3_call_init(struct s3_call *c, struct s3 *s3, const char *method, const char *rel_key,
                  const char *what_fmt, ...) __attribute__((format(printf, 5, 6)));
/* Add a header sent (and signed) on every attempt. */
void s3_call_header(struct s3_call *c, const char *name, const char *value);
/* Body (not copied): computes its SHA-256 (and MD5 when md5). */
void s3_call_body(struct s3_call *c, const void *body, size_t len, bool md5);
/* Body whose hashes the caller computed while buffering. */
void s3_call_body_hashed(struct s3_call *c, const void *body, size_t len, const char *sha256_hex,
                         const char *md5_b64);
void s3_call_free(struct s3_call *c);

/* Start the first attempt (the call is done at once if it cannot even be built). */
void s3_call_start(struct s3_call *c);
/* Stop a running call (no result). */
void s3_call_cancel(struct s3_call *c);
/*
 * Move running calls forward: waits up to wait_ms for activity (0: none),
 * submits due retries. Returns the number of calls that became done.
 */
int s3_drive(struct s3 *s3, int wait_ms);
/* Start c and drive until it is done; returns c->rc and copies c->err to err. */
int s3_call_run(struct s3_call *c, struct err *err);
/* Start all and drive until all are done (in parallel); first failure into err. */
int s3_calls_run(struct s3_call *const *calls, size_t n, struct err *err);

/* Full key for a repository key. malloc'd. */
char *s3_full_key(const struct s3 *s3, const char *key);

/* Base64 of data into out (NUL-terminated); out must hold 4*((len+2)/3)+1. */
void s3_base64(char *out, const unsigned char *data, size_t len);

/* HeadObject answer, or ERR_NOT_FOUND. */
int s3_head(struct s3 *s3, const char *key, struct repo_stat *out, struct err *err);
/* The same; failures say "could not <verb> \"key\"" (e.g. "write" for the check before a put). */
int s3_head_as(struct s3 *s3, const char *key, const char *verb, struct repo_stat *out,
               struct err *err);

/* Add the SSE (S3/KMS) headers for PutObject/CreateMultipartUpload. */
void s3_call_sse_headers(struct s3_call *c);

/* The upload sink (multipart.c). */
struct sink *s3_put_sink_new(struct repo *r, const char *key, unsigned flags);

/*
 * AbortMultipartUpload of upload_id under key (relative to the repository).
 * An upload already gone (404 NoSuchUpload) is not an error.
 */
int s3_abort_upload(struct s3 *s3, const char *key, const char *upload_id, struct err *err);

#endif
