/* SPDX-License-Identifier: MIT */
/*
 * libcurl multi transport (see http.h). Easy handles are pooled and reset
 * between requests; the multi handle keeps idle connections open, so
 * successive requests to one endpoint reuse them, and a share handle keeps
 * DNS answers and TLS sessions. Deadlines: libcurl's connect and total
 * timeouts plus our own stall check in the progress callback (milliseconds,
 * both directions), which libcurl's LOW_SPEED options cannot do.
 */
#include "storage/s3/http.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "base/clock.h"
#include "base/xmalloc.h"

#define DEFAULT_MAX_BODY (1024 * 1024)
#define POOL_MAX 16

struct http {
    CURLM *multi;
    CURLSH *share;
    struct http_config cfg;
    char *ca_file;
    char *ca_path;
    CURL *pool[POOL_MAX];
    int n_pool;
    int running; /* requests submitted and not done */
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;

static void
global_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

int64_t
http_now_ms(void)
{
    return clock_ms();
}

struct http *
http_new(const struct http_config *cfg)
{
    struct http *h = xcalloc(1, sizeof(*h));

    pthread_once(&global_once, global_init);
    h->cfg = *cfg;
    h->ca_file = cfg->ca_file ? xstrdup(cfg->ca_file) : NULL;
    h->ca_path = cfg->ca_path ? xstrdup(cfg->ca_path) : NULL;
    h->cfg.ca_file = h->ca_file;
    h->cfg.ca_path = h->ca_path;
    h->multi = curl_multi_init();
    h->share = curl_share_init();
    if (!h->multi || !h->share)
        abort(); /* out of memory */
    curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS,
                      (long)(cfg->max_connections > 0 ? cfg->max_connections : 8));
    return h;
}

static void
req_detach(struct http *h, struct http_req *r)
{
    CURL *e = r->easy;

    if (!e)
        return;
    curl_multi_remove_handle(h->multi, e);
    if (h->n_pool < POOL_MAX) {
        curl_easy_reset(e);
        h->pool[h->n_pool++] = e;
    } else {
        curl_easy_cleanup(e);
    }
    r->easy = NULL;
    for (struct curl_slist *l = r->slist; l; l = l->next)
        OPENSSL_cleanse(l->data, strlen(l->data));
    curl_slist_free_all(r->slist);
    r->slist = NULL;
    h->running--;
}

void
http_free(struct http *h)
{
    CURLMsg *m;
    int left;

    if (!h)
        return;
    /* Requests still attached belong to callers; detach their handles. */
    while ((m = curl_multi_info_read(h->multi, &left)) != NULL)
        ;
    for (int i = 0; i < h->n_pool; i++)
        curl_easy_cleanup(h->pool[i]);
    curl_multi_cleanup(h->multi);
    curl_share_cleanup(h->share);
    free(h->ca_file);
    free(h->ca_path);
    free(h);
}

struct http_req *
http_req_new(const char *method, const char *url)
{
    struct http_req *r = xcalloc(1, sizeof(*r));

    r->method = xstrdup(method);
    r->url = xstrdup(url);
    r->max_body = DEFAULT_MAX_BODY;
    r->content_length = -1;
    return r;
}

void
http_req_header(struct http_req *r, const char *name, const char *value)
{
    r->headers = xrealloc(r->headers, (r->n_headers + 1) * sizeof(*r->headers));
    r->headers[r->n_headers].name = xstrdup(name);
    r->headers[r->n_headers].value = xstrdup(value);
    r->n_headers++;
}

void
http_req_body(struct http_req *r, const void *body, size_t len)
{
    r->send_data = body;
    r->send_len = len;
    r->has_body = true;
}

static void
headers_free(struct http_header *hs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(hs[i].name);
        /* values may hold a session token, a signature or an SSE-C key */
        OPENSSL_cleanse(hs[i].value, strlen(hs[i].value));
        free(hs[i].value);
    }
    free(hs);
}

void
http_req_free(struct http_req *r)
{
    if (!r)
        return;
    if (r->easy && r->h)
        req_detach(r->h, r);
    free(r->method);
    free(r->url);
    headers_free(r->headers, r->n_headers);
    headers_free(r->resp_headers, r->n_resp_headers);
    buf_free(&r->body);
    free(r);
}

const char *
http_req_resp_header(const struct http_req *r, const char *name)
{
    for (size_t i = 0; i < r->n_resp_headers; i++)
        if (strcmp(r->resp_headers[i].name, name) == 0)
            return r->resp_headers[i].value;
    return NULL;
}

static size_t
read_cb(char *dst, size_t size, size_t nmemb, void *arg)
{
    struct http_req *r = arg;
    size_t want = size * nmemb;
    size_t left = r->send_len - r->sent;

    if (want > left)
        want = left;
    if (want)
        memcpy(dst, (const char *)r->send_data + r->sent, want);
    r->sent += want;
    return want;
}

static int
seek_cb(void *arg, curl_off_t offset, int origin)
{
    struct http_req *r = arg;

    if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > r->send_len)
        return CURL_SEEKFUNC_FAIL;
    r->sent = (size_t)offset;
    return CURL_SEEKFUNC_OK;
}

static size_t
header_cb(char *data, size_t size, size_t nmemb, void *arg)
{
    struct http_req *r = arg;
    size_t len = size * nmemb;
    const char *colon;
    size_t nlen;
    const char *v;
    const char *end = data + len;
    struct http_header *hd;

    if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        /* A new response (after 100 Continue, for one): forget the previous one. */
        const char *sp = memchr(data, ' ', len);

        headers_free(r->resp_headers, r->n_resp_headers);
        r->resp_headers = NULL;
        r->n_resp_headers = 0;
        r->content_length = -1;
        r->status = 0;
        if (sp) {
            for (sp++; sp < end && *sp >= '0' && *sp <= '9'; sp++)
                r->status = r->status * 10 + (*sp - '0');
        }
        return len;
    }
    colon = memchr(data, ':', len);
    if (!colon)
        return len;
    nlen = (size_t)(colon - data);
    v = colon + 1;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
        end--;
    r->resp_headers = xrealloc(r->resp_headers, (r->n_resp_headers + 1) * sizeof(*r->resp_headers));
    hd = &r->resp_headers[r->n_resp_headers++];
    hd->name = xstrndup(data, nlen);
    for (char *p = hd->name; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    hd->value = xstrndup(v, (size_t)(end - v));
    if (strcmp(hd->name, "content-length") == 0) {
        int64_t cl = 0;
        const char *p = hd->value;

        for (; *p >= '0' && *p <= '9' && cl < INT64_MAX / 10 - 10; p++)
            cl = cl * 10 + (*p - '0');
        if (p != hd->value && *p == '\0')
            r->content_length = cl;
    }
    return len;
}

static size_t
write_cb(char *data, size_t size, size_t nmemb, void *arg)
{
    struct http_req *r = arg;
    size_t len = size * nmemb;

    r->body_bytes += len;
    if (r->on_body && r->status >= 200 && r->status < 300) {
        if (r->on_body(r, data, len, r->arg) < 0) {
            r->aborted = true;
            return 0;
        }
        return len;
    }
    if (r->body.len + len > r->max_body) {
        r->too_large = true;
        return 0;
    }
    buf_append(&r->body, data, len);
    return len;
}

static int
progress_cb(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
    struct http_req *r = arg;
    uint64_t total = (uint64_t)dlnow + (uint64_t)ulnow;
    int64_t now = http_now_ms();

    (void)dltotal;
    (void)ultotal;
    if (total != r->last_total || r->last_move_ms == 0) {
        r->last_total = total;
        r->last_move_ms = now;
        return 0;
    }
    if (r->h->cfg.stall_timeout_ms > 0 && now - r->last_move_ms > r->h->cfg.stall_timeout_ms) {
        r->stalled = true;
        return 1;
    }
    return 0;
}

static CURL *
easy_get(struct http *h)
{
    CURL *e;

    if (h->n_pool > 0)
        return h->pool[--h->n_pool];
    e = curl_easy_init();
    if (!e)
        abort();
    return e;
}

void
http_submit(struct http *h, struct http_req *r)
{
    CURL *e = easy_get(h);
    struct curl_slist *sl = NULL;
    struct buf line = BUF_INIT;

    r->h = h;
    r->easy = e;
    r->done = false;
    r->sent = 0;
    r->last_move_ms = 0;
    r->last_total = 0;
    for (size_t i = 0; i < r->n_headers; i++) {
        buf_reset(&line);
        if (r->headers[i].value[0])
            buf_printf(&line, "%s: %s", r->headers[i].name, r->headers[i].value);
        else
            buf_printf(&line, "%s;", r->headers[i].name); /* curl's way to send an empty value */
        sl = curl_slist_append(sl, buf_str(&line));
    }
    /* No 100-continue round trip; no Accept header to explain. */
    sl = curl_slist_append(sl, "Expect:");
    sl = curl_slist_append(sl, "Accept:");
    OPENSSL_cleanse(line.data, line.cap);
    buf_free(&line);
    r->slist = sl;

    curl_easy_setopt(e, CURLOPT_URL, r->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, r);
    curl_easy_setopt(e, CURLOPT_SHARE, h->share);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, sl);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
    r->errbuf[0] = '\0';
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, progress_cb);
    curl_easy_setopt(e, CURLOPT_XFERINFODATA, r);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "ferry");
    if (h->cfg.connect_timeout_ms > 0)
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, h->cfg.connect_timeout_ms);
    if (h->cfg.total_timeout_ms > 0)
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, h->cfg.total_timeout_ms);
    if (h->cfg.ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, h->cfg.ca_file);
    if (h->cfg.ca_path)
        curl_easy_setopt(e, CURLOPT_CAPATH, h->cfg.ca_path);
    if (h->cfg.no_verify_tls) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (strcmp(r->method, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (r->has_body) {
        curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(e, CURLOPT_READFUNCTION, read_cb);
        curl_easy_setopt(e, CURLOPT_READDATA, r);
        curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, seek_cb);
        curl_easy_setopt(e, CURLOPT_SEEKDATA, r);
        curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)r->send_len);
        if (strcmp(r->method, "PUT") != 0)
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
    } else if (strcmp(r->method, "GET") != 0) {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
    }
    h->running++;
    if (curl_multi_add_handle(h->multi, e) != CURLM_OK)
        abort(); /* only on misuse (a handle added twice) */
}

void
http_cancel(struct http *h, struct http_req *r)
{
    if (!r->easy)
        return;
    req_detach(h, r);
    r->done = true;
    r->cancelled = true;
}

static void
harvest(struct http *h, int *completed)
{
    CURLMsg *m;
    int left;

    while ((m = curl_multi_info_read(h->multi, &left)) != NULL) {
        struct http_req *r = NULL;
        long status = 0;
        long oserr = 0;

        if (m->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        r->curl_code = (int)m->data.result;
        curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_getinfo(m->easy_handle, CURLINFO_OS_ERRNO, &oserr);
        if (status)
            r->status = status;
        r->os_errno = (int)oserr;
        if (r->curl_code != CURLE_OK && !r->errbuf[0])
            snprintf(r->errbuf, sizeof(r->errbuf), "%s",
                     curl_easy_strerror((CURLcode)r->curl_code));
        req_detach(h, r);
        r->done = true;
        (*completed)++;
        if (r->on_done)
            r->on_done(r, r->arg);
    }
}

int
http_run(struct http *h, int timeout_ms)
{
    int still = 0;
    int completed = 0;

    curl_multi_perform(h->multi, &still);
    harvest(h, &completed);
    if (completed || timeout_ms <= 0 || h->running == 0)
        return completed;
    curl_multi_poll(h->multi, NULL, 0, timeout_ms, NULL);
    curl_multi_perform(h->multi, &still);
    harvest(h, &completed);
    return completed;
}

int
http_running(const struct http *h)
{
    return h->running;
}

void
http_batch_run(struct http *h, struct http_req *const *reqs, size_t n)
{
    bool all;

    for (size_t i = 0; i < n; i++)
        http_submit(h, reqs[i]);
    do {
        http_run(h, 1000);
        all = true;
        for (size_t i = 0; i < n; i++)
            if (!reqs[i]->done)
                all = false;
    } while (!all);
}
