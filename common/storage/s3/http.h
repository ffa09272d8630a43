/* SPDX-License-Identifier: MIT */
/*
 * HTTP transport for the S3 backend: one libcurl multi handle per
 * repository drives any number of requests at once over a cache of reused
 * connections (DNS and TLS sessions shared too). A request is one attempt:
 * retries, signing and error mapping belong to the caller (s3.c), which
 * builds a fresh request for each attempt.
 *
 * Use:
 *   struct http_req *r = http_req_new("GET", url);
 *   http_req_header(r, "host", "...");
 *   http_submit(h, r);                    (any number of them)
 *   while (!r->done) http_run(h, 100);    (or http_batch_run for a set)
 *   ... r->curl_code, r->status, r->body, http_req_resp_header(r, "etag") ...
 *   http_req_free(r);
 *
 * Deadlines: connect_timeout_ms for the TCP+TLS handshake, stall_timeout_ms
 * without a byte moving in either direction (r->stalled), total_timeout_ms
 * for the whole attempt. Nothing waits longer than those.
 * Not thread-safe: one thread drives one struct http.
 */
#ifndef STORAGE_S3_HTTP_H
#define STORAGE_S3_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

struct http;

struct http_config {
    long connect_timeout_ms;
    long stall_timeout_ms;
    long total_timeout_ms;
    const char *ca_file; /* NULL: system default */
    const char *ca_path;
    bool no_verify_tls;
    int max_connections; /* size of the connection cache */
};

struct http_header {
    char *name; /* lower case */
    char *value;
};

struct http_req;

/*
 * Body callback for 2xx answers (non-2xx bodies are always buffered in
 * r->body). Return 0 to go on, -1 to abort the transfer (r->aborted is set;
 * curl_code becomes a write error).
 */
typedef int (*http_body_cb)(struct http_req *r, const void *data, size_t len, void *arg);
/* Called once when the request is complete (success or failure), inside http_run. */
typedef void (*http_done_cb)(struct http_req *r, void *arg);

struct http_req {
    /* request: set with http_req_new/http_req_header/http_req_body */
    char *method;
    char *url;
    struct http_header *headers;
    size_t n_headers;
    const void *send_data; /* body to send; not owned, must live until done */
    size_t send_len;
    bool has_body;        /* send the body (even empty) with Content-Length */
    http_body_cb on_body; /* NULL: 2xx bodies are buffered too */
    http_done_cb on_done; /* NULL: nothing */
    void *arg;
    size_t max_body; /* buffered body cap (default 1 MiB); beyond: aborted, too_large */

    /* result: valid once done */
    bool done;
    int curl_code;                    /* CURLcode: 0 = a complete HTTP exchange */
    long status;                      /* final HTTP status, 0 if none */
    int os_errno;                     /* errno of a failed connect, else 0 */
    char errbuf[256];                 /* curl's reason when curl_code != 0 */
    bool stalled;                     /* aborted by the stall deadline */
    bool aborted;                     /* aborted by on_body */
    bool too_large;                   /* buffered body exceeded max_body */
    bool cancelled;                   /* removed by http_cancel */
    struct buf body;                  /* buffered body */
    struct http_header *resp_headers; /* of the final response */
    size_t n_resp_headers;
    int64_t content_length; /* -1 when not announced */
    uint64_t body_bytes;    /* body bytes received (final response) */

    /* private */
    struct http *h;
    void *easy;
    void *slist;
    size_t sent;
    int64_t last_move_ms;
    uint64_t last_total;
};

struct http *http_new(const struct http_config *cfg);
/* Cancels whatever is still running (their on_done is not called). */
void http_free(struct http *h);

struct http_req *http_req_new(const char *method, const char *url);
/* Add a request header (copied). Do not add Content-Length, Expect or Authorization twice. */
void http_req_header(struct http_req *r, const char *name, const char *value);
/* Send body (not copied, may be empty) with a Content-Length. */
void http_req_body(struct http_req *r, const void *body, size_t len);
/* Free a request; if it is still running it is cancelled first. NULL is a no-op. */
void http_req_free(struct http_req *r);

/* Value of a response header (name in lower case), or NULL. */
const char *http_req_resp_header(const struct http_req *r, const char *name);

/* Start a request (it runs as http_run is called). */
void http_submit(struct http *h, struct http_req *r);
/* Stop a running request: done and cancelled set, on_done not called. */
void http_cancel(struct http *h, struct http_req *r);

/*
 * Move every running request forward, waiting up to timeout_ms for network
 * activity (0: do not wait). Completed requests get done set and on_done
 * called. Returns how many completed.
 */
int http_run(struct http *h, int timeout_ms);

/* Number of requests running. */
int http_running(const struct http *h);

/*
 * The batch API: submit n independent requests and wait until all are done
 * (each one attempt; inspect each result). The requests run in parallel over
 * the connection cache.
 */
void http_batch_run(struct http *h, struct http_req *const *reqs, size_t n);

/* Milliseconds of a monotonic clock. */
int64_t http_now_ms(void);

#endif
