/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the S3 backend's request engine against a scripted fake S3
 * inside this process (a thread on a loopback port): retries and backoff,
 * resumed downloads (Range + If-Match), truncation, the stall deadline,
 * error mapping with exact messages, conditional puts, multipart uploads
 * (parallel parts, error-in-200 on Complete, abort on failure), listing and
 * batch deletes. No real S3 server: those are the integration tests.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/err.h"
#include "base/xmalloc.h"
#include "check.h"
#include "storage/repo.h"
#include "storage/s3/s3_internal.h"
#include "stream/sink.h"

/* ---- the fake server ---------------------------------------------------------------------- */

#define MAX_LOG 256

struct fake_req {
    char method[16];
    char target[2048];
    struct buf headers; /* "name: value\n", names lower case */
    char *body;
    size_t body_len;
};

struct fake;
/* Answer one request (n counts from 0); return false to close the connection. */
typedef bool (*fake_handler)(struct fake *f, int fd, const struct fake_req *rq, int n);

struct fake {
    int lfd;
    int port;
    char endpoint[64];
    pthread_t th;
    volatile bool stop;
    fake_handler handler;
    pthread_mutex_t mu;
    struct fake_req log[MAX_LOG];
    int n;
    int n_threads;
    int state; /* handlers' scratch */
    int in_flight;
    int max_in_flight;
};

static const char *
hdr(const struct fake_req *rq, const char *name)
{
    static _Thread_local char val[1024];
    const char *p = buf_str(&rq->headers);
    size_t nl = strlen(name);

    while (*p) {
        const char *end = strchr(p, '\n');

        if (strncmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;

            while (*v == ' ')
                v++;
            snprintf(val, sizeof(val), "%.*s", (int)(end - v), v);
            return val;
        }
        p = end + 1;
    }
    return NULL;
}

static void
send_all(int fd, const void *data, size_t len)
{
    const char *p = data;

    while (len > 0) {
        ssize_t w = send(fd, p, len, MSG_NOSIGNAL);

        if (w <= 0)
            return;
        p += w;
        len -= (size_t)w;
    }
}

/* A full answer: status, extra header lines ("A: b\r\n..."), body. */
static void
respond(int fd, int status, const char *headers, const char *body)
{
    struct buf b = BUF_INIT;
    size_t blen = body ? strlen(body) : 0;

    buf_printf(&b, "HTTP/1.1 %d X\r\nContent-Length: %zu\r\n%s\r\n", status, blen,
               headers ? headers : "");
    buf_append(&b, body ? body : "", blen);
    send_all(fd, b.data, b.len);
    buf_free(&b);
}

static void
respond_error(int fd, int status, const char *code, const char *message)
{
    char body[1024];

    snprintf(body, sizeof(body),
             "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code>"
             "<Message>%s</Message><RequestId>tx1</RequestId></Error>",
             code, message);
    respond(fd, status, "Content-Type: application/xml\r\n", body);
}

static int
read_line(int fd, char *out, size_t cap, struct fake *f)
{
    size_t n = 0;

    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        char c;
        ssize_t r;

        if (f->stop)
            return -1;
        if (poll(&p, 1, 50) <= 0)
            continue;
        r = recv(fd, &c, 1, 0);
        if (r <= 0)
            return -1;
        if (c == '\n') {
            if (n > 0 && out[n - 1] == '\r')
                n--;
            out[n] = '\0';
            return 0;
        }
        if (n + 1 < cap)
            out[n++] = c;
    }
}

static int
read_request(int fd, struct fake_req *rq, struct fake *f)
{
    char line[4096];
    size_t clen = 0;
    char *sp;

    memset(rq, 0, sizeof(*rq));
    if (read_line(fd, line, sizeof(line), f) < 0)
        return -1;
    sp = strchr(line, ' ');
    if (!sp)
        return -1;
    snprintf(rq->method, sizeof(rq->method), "%.*s", (int)(sp - line), line);
    snprintf(rq->target, sizeof(rq->target), "%s", sp + 1);
    sp = strrchr(rq->target, ' ');
    if (sp)
        *sp = '\0';
    for (;;) {
        char *colon;

        if (read_line(fd, line, sizeof(line), f) < 0)
            return -1;
        if (!line[0])
            break;
        colon = strchr(line, ':');
        if (!colon)
            continue;
        for (char *p = line; p < colon; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p - 'A' + 'a');
        buf_printf(&rq->headers, "%s\n", line);
        if (strncmp(line, "content-length:", 15) == 0)
            clen = strtoul(colon + 1, NULL, 10);
    }
    rq->body = xmalloc(clen + 1);
    rq->body_len = 0;
    while (rq->body_len < clen) {
        ssize_t r = recv(fd, rq->body + rq->body_len, clen - rq->body_len, 0);

        if (r <= 0)
            return -1;
        rq->body_len += (size_t)r;
    }
    rq->body[clen] = '\0';
    return 0;
}

struct conn {
    struct fake *f;
    int fd;
};

static void *
conn_main(void *arg)
{
    struct conn *c = arg;
    struct fake *f = c->f;

    for (;;) {
        struct fake_req rq;
        int n;
        bool keep;

        if (read_request(c->fd, &rq, f) < 0) {
            buf_free(&rq.headers);
            free(rq.body);
            break;
        }
        pthread_mutex_lock(&f->mu);
        n = f->n;
        if (f->n < MAX_LOG)
            f->log[f->n++] = rq;
        pthread_mutex_unlock(&f->mu);
        keep = f->handler(f, c->fd, &f->log[n < MAX_LOG ? n : MAX_LOG - 1], n);
        if (n >= MAX_LOG) {
            buf_free(&rq.headers);
            free(rq.body);
        }
        if (!keep)
            break;
    }
    close(c->fd);
    pthread_mutex_lock(&f->mu);
    f->n_threads--;
    pthread_mutex_unlock(&f->mu);
    free(c);
    return NULL;
}

static void *
accept_main(void *arg)
{
    struct fake *f = arg;

    while (!f->stop) {
        struct pollfd p = {f->lfd, POLLIN, 0};
        struct conn *c;
        pthread_t th;

        if (poll(&p, 1, 50) <= 0)
            continue;
        c = xcalloc(1, sizeof(*c));
        c->f = f;
        c->fd = accept(f->lfd, NULL, NULL);
        if (c->fd < 0) {
            free(c);
            continue;
        }
        pthread_mutex_lock(&f->mu);
        f->n_threads++;
        pthread_mutex_unlock(&f->mu);
        pthread_create(&th, NULL, conn_main, c);
        pthread_detach(th);
    }
    return NULL;
}

static void
fake_start(struct fake *f, fake_handler h)
{
    struct sockaddr_in a;
    socklen_t al = sizeof(a);
    int one = 1;

    memset(f, 0, sizeof(*f));
    pthread_mutex_init(&f->mu, NULL);
    f->handler = h;
    f->lfd = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(f->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(f->lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(f->lfd, 16) < 0)
        abort();
    getsockname(f->lfd, (struct sockaddr *)&a, &al);
    f->port = ntohs(a.sin_port);
    snprintf(f->endpoint, sizeof(f->endpoint), "http://127.0.0.1:%d", f->port);
    pthread_create(&f->th, NULL, accept_main, f);
}

/* Forget the requests seen so far. */
static void
fake_reset(struct fake *f)
{
    pthread_mutex_lock(&f->mu);
    for (int i = 0; i < f->n && i < MAX_LOG; i++) {
        buf_free(&f->log[i].headers);
        free(f->log[i].body);
    }
    f->n = 0;
    pthread_mutex_unlock(&f->mu);
}

static void
fake_stop(struct fake *f)
{
    f->stop = true;
    pthread_join(f->th, NULL);
    for (;;) {
        int n;

        pthread_mutex_lock(&f->mu);
        n = f->n_threads;
        pthread_mutex_unlock(&f->mu);
        if (n == 0)
            break;
        usleep(10000);
    }
    close(f->lfd);
    for (int i = 0; i < f->n && i < MAX_LOG; i++) {
        buf_free(&f->log[i].headers);
        free(f->log[i].body);
    }
    pthread_mutex_destroy(&f->mu);
}

/* ---- client helpers ---------------------------------------------------------------------- */

static struct repo *
open_repo(struct fake *f, int retries, int parallel, struct err *err)
{
    struct repo_opts o;
    struct repo *r = NULL;

    memset(&o, 0, sizeof(o));
    o.retries = retries;
    o.parallel = parallel;
    o.s3_endpoint = f ? f->endpoint : "http://127.0.0.1:1";
    o.s3_region = "us-east-1";
    o.s3_access_key_id = "AKIDEXAMPLE";
    o.s3_secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    o.imds_disabled = true;
    o.timeout_ms = 2000;
    o.s3_part_size = 5 * 1024 * 1024;
    if (s3_repo_open(&r, "bkt", "pre", &o, err) < 0)
        return NULL;
    return r;
}

struct mem_sink {
    struct sink base;
    struct buf data;
};

static int
mem_write(struct sink *s, const void *buf, size_t len, struct err *err)
{
    buf_append(&((struct mem_sink *)s)->data, buf, len);
    return 0;
}

static int
mem_finish(struct sink *s, struct err *err)
{
    return 0;
}

static void
mem_free(struct sink *s)
{
}

static const struct sink_ops mem_ops = {"mem", mem_write, mem_finish, mem_free};

static void
mem_init(struct mem_sink *m)
{
    sink_init(&m->base, &mem_ops, NULL);
    m->data = (struct buf)BUF_INIT;
}

/* ---- tests -------------------------------------------------------------------------------- */

static void
test_connection_refused(void)
{
    struct err err;
    struct repo *r = open_repo(NULL, 0, 1, &err);
    struct repo_stat st;

    CHECK(r != NULL);
    CHECK_FAIL(r->ops->stat(r, "k", &st, &err), &err, ERR_NET,
               "could not connect to \"http://127.0.0.1:1\": Connection refused");
    CHECK(err.retryable);
    r->ops->close(r);
}

static bool
h_truncate_then_resume(struct fake *f, int fd, const struct fake_req *rq, int n)
{
    if (n == 0) {
        const char *head = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\nETag: \"e1\"\r\n\r\n01234";

        send_all(fd, head, strlen(head));
        return false; /* drop the connection mid-body */
    }
    respond(fd, 206, "ETag: \"e1\"\r\nContent-Range: bytes 5-9/10\r\n", "56789");
    return true;
}

static void
test_get_resumes_after_truncation(void)
{
    struct fake f;
    struct err err;
    struct repo *r;
    struct mem_sink m;

    fake_start(&f, h_truncate_then_resume);
    r = open_repo(&f, 2, 1, &err);
    mem_init(&m);
    CHECK_OK(r->ops->get(r, "wal/a b", 0, 0, &m.base, &err), &err);
    CHECK_STR(buf_str(&m.data), "0123456789");
    CHECK_INT(f.n, 2);
    CHECK_STR(f.log[0].target, "/bkt/pre/wal/a%20b");
    CHECK(hdr(&f.log[0], "range") == NULL);
    CHECK(hdr(&f.log[0], "authorization") != NULL);
    CHECK_STR(hdr(&f.log[0], "x-amz-content-sha256"),
              "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK_STR(hdr(&f.log[1], "range"), "bytes=5-");
    CHECK_STR(hdr(&f.log[1], "if-match"), "\"e1\"");
    buf_free(&m.data);
    r->ops->close(r);
    fake_stop(&f);
}

static bool
h_truncate_then_changed(struct fake *f, int fd, const struct fake_req *rq, int n)
{
    if (n == 0) {
        const char *head = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\nETag: \"e1\"\r\n\r\n01234";

        send_all(fd, head, strlen(head));
        return false;
    }
    if (f->state == 0)
        respond(fd, 206, "ETag: \"e2\"\r\n", "xxxxx");
    else
        respond_error(fd, 412, "PreconditionFailed", "At least one of the pre-conditions");
    return true;
}

static void
test_get_detects_change(void)
{
    struct fake f;
    struct err err;
    struct repo *r;
    struct mem_sink m;

    for (int mode = 0; mode < 2; mode++) {
        fake_start(&f, h_truncate_then_changed);
        f.state = mode; /* 0: a different ETag comes back; 1: the server says 412 */
        r = open_repo(&f, 2, 1, &err);
        mem_init(&m);
        CHECK_FAIL(r->ops->get(r, "k", 0, 0, &m.base, &err), &err, ERR_REMOTE,
                   "object \"k\" changed during download");
        CHECK_STR(buf_str(&m.data), "01234");
        buf_free(&m.data);
        r->ops->close(r);
        fake_stop(&f);
    }
}

static bool
h_ranged(struct fake *f, int fd, const struct fake_req *rq, int n)
{
    /* a server that ignores Range: the client must cut the bytes itself */
    respond(fd, 200, "ETag: \"e\"\r\n", "0123456789");
    return true;
}

static void
test_get_range_on_server_ignoring_range(void)
{
    struct fake f;
    struct err err;
    struct repo *r;
    struct mem_sink m;

    fake_start(&f, h_ranged);
    r = open_repo(&f, 0, 1, &err);
    mem_init(&m);
    CHECK_OK(r->ops->get(r, "k", 3, 4, &m.base, &err), &err);
    CHECK_STR(buf_str(&m.data), "3456");
    CHECK_STR(hdr(&f.log[0], "range"), "bytes=3-6");
    buf_free(&m.data);
    r->ops->close(r);
    fake_stop(&f);
}

static bool
h_short_body(struct fake *f, int fd, const struct fake_req *rq, int n)
{
    const char *head = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\nETag: \"e\"\r\n\r\n0123";

    send_all(fd, head, strlen(head));
    return false;
}

static void
test_get_truncated_is_never_success(void)
{
    struct fake f;
    struct err err;
    struct repo *r;
    struct mem_sink m;

    fake_start(&f, h_short_body);
    r = open_repo(&f, 1, 1, &err);
    mem_init(&m);
    CHECK_FAIL(r->ops->get(r, "k", 0, 0, &m.base, &err), &err, ERR_NET, NULL);
    CHECK(strstr(err.msg, "could not read \"k\": connection to \"http://127.0.0.1:") == err.msg);
    CHECK_INT(f.n, 2);
    buf_free(&m.data);
    r->ops->close(r);
    fake_stop(&f);
}

static bool
h_slowdown(struct fake *f, int fd, const struct fake_req *rq, int n)
{
    if (n < 2) {
        respond_error(fd, 503, "SlowDown", "Reduce your request rate.");
        return true;
    }
    respond(fd, 200, "ETag: \"abc\"\r\n", NULL);
    return true;
}

static void
test_retries_5xx_then_gives_up(void)
{
    struct fake f;
    struct err err;
    struct repo *r;
    struct repo_stat st;

    setenv("FERRY_S3_RETRY_BASE_MS", "5", 1);
    fake_start(&f, h_slowdown);
    r = open_repo(&f, 2, 1, &err);
    CHECK_OK(r->ops->delete_one(r, "k", &err), &err);
    CHECK_INT(f.n, 3);
    r->ops->close(r);
    fake_stop(&f);

    fake_start(&f, h_slowdown);
    r = open_repo(&f, 1, 1, &err);
    CHECK_FAIL(r->ops->delete_one(r, "k", &err), &err, ERR_REMOTE,
               "could not delete \"k\": SlowDown: Reduce your request rate. (HTTP 503)");
    CHECK(err.retryable);
    CHECK_INT(err.http_status, 503);
    CHECK_STR(err.code, "SlowDown");
    CHECK_INT(f.n, 2);
    (void)st;
    r->ops->close(r);
    fake_stop(&f);
}

static bool
h_status(struct fake *f, int fd, const struct fake_req *rq, int n)
{
    switch (f->state) {
    case 0:
        respond_error(fd, 403, "SignatureDoesNotMatch", "");
        break;
    case 1:
        respond_error(fd, 404, "NoSuchKey", "The specified key does not exist.");
        break;
    case 2:
        respond_error(fd, 404, "NoSuchBucket", "The specified bucket does not exist");
        break;
    case 3:
        respond(fd, 404, NULL, NULL); /* HEAD: no body */
        break;
    case 4:
        respond_error(fd, 400, "InvalidArgument", "");
        break;
    case 5:
        respond(fd, 502, NULL, "<html>bad gateway</html>");
        break;
    case 6:
        /* HEAD has no body; the one-byte GET that follows learns the code */
        if (strcmp(rq->method, "HEAD") == 0)
            respond(fd, 403, NULL, NULL);
        else
            respond_error(fd, 403, "SignatureDoesNotMatch", "");
        break;
    }
    return true;
}

static void
test_error_mapping(void)
{
    struct fake f;
    struct err err;
    struct repo *r;
    struct mem_sink m;
    struct repo_stat st;
    char want[256];

    setenv("FERRY_S3_RETRY_BASE_MS", "1", 1);
    fake_start(&f, h_status);
    r = open_repo(&f, 3, 1, &err);
    mem_init(&m);

    f.state = 0;
    snprintf(want, sizeof(want),
             "could not read \"wal/x\": access denied by \"%s\": SignatureDoesNotMatch",
             f.endpoint);
    CHECK_FAIL(r->ops->get(r, "wal/x", 0, 0, &m.base, &err), &err, ERR_AUTH, want);
    CHECK_INT(err.http_status, 403);
    CHECK_STR(err.code, "SignatureDoesNotMatch");
    CHECK(!err.retryable);
    CHECK_INT(f.n, 1); /* never retried */

    f.state = 1;
    CHECK_FAIL(r->ops->get(r, "wal/x", 0, 0, &m.base, &err), &err, ERR_NOT_FOUND,
               "object \"wal/x\" not found");
    CHECK_INT(err.http_status, 404);
    CHECK_STR(err.code, "NoSuchKey");

    f.state = 2;
    CHECK_FAIL(r->ops->get(r, "wal/x", 0, 0, &m.base, &err), &err, ERR_NOT_FOUND,
               "bucket \"bkt\" does not exist");

    f.state = 3;
    CHECK_FAIL(r->ops->stat(r, "wal/x", &st, &err), &err, ERR_NOT_FOUND,
               "object \"wal/x\" not found");

    f.state = 4;
    CHECK_FAIL(r->ops->delete_one(r, "wal/x", &err), &err, ERR_REMOTE,
               "could not delete \"wal/x\": InvalidArgument (HTTP 400)");

    f.state = 5;
    fake_reset(&f);
    CHECK_FAIL(r->ops->delete_one(r, "wal/x", &err), &err, ERR_REMOTE,
               "could not delete \"wal/x\": HTTP 502");
    CHECK_INT(f.n, 4); /* 1 + 3 retries */

    f.state = 6;
    fake_reset(&f);
    snprintf(want, sizeof(want),
             "could not stat \"wal/x\": access denied by \"%s\": SignatureDoesNotMatch",
             f.endpoint);
    CHECK_FAIL(r->ops->stat(r, "wal/x", &st, &err), &err, ERR_AUTH, want);
    CHECK_INT(f.n, 2);
    CHECK_STR(f.log[1].method, "GET");
    CHECK_STR(hdr(&f.log[1], "range"), "bytes=0-0");
    buf_free(&m.data);
    r->ops->close(r);
    fake_stop(&f);
}

static bool
h_stall(struct fake *f, int fd, const struct fake_req *rq, int n)
{
    const char *head = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\nETag: \"e\"\r\n\r\n0";

    send_all(fd, head, strlen(head));
    for (int i = 0; i < 40 && !f->stop; i++)
        usleep(50000);
    return false;
}

static void
test_stall_deadline(void)
{
    struct fake f;
    struct err err;
    struct repo *r;
    struct mem_sink m;
    struct repo_opts o;
    char want[256];

    fake_start(&f, h_stall);
    memset(&o, 0, sizeof(o));
    o.retries = 0;
    o.s3_endpoint = f.endpoint;
    o.s3_access_key_id = "AKIDEXAMPLE";
    o.s3_secret_access_key = "secret";
    o.imds_disabled = true;
    o.timeout_ms = 300;
    CHECK_OK(s3_repo_open(&r, "bkt", "", &o, &err), &err);
    mem_init(&m);
    snprintf(want, sizeof(want), "could not read \"k\": no data moved for 300 ms (\"%s\")",
             f.endpoint);
    CHECK_FAIL(r->ops->get(r, "k", 0, 0, &m.base, &err), &err, ERR_TIMEOUT, want);
    CHECK_STR(f.log[0].target, "/bkt/k");
    buf_free(&m.data);
    r->ops->close(r);
    fake_stop(&f);
}

static bool
h_put(struct fake *f, int fd, const struct fake_req *rq, int n)
{
    if (strcmp(rq->method, "HEAD") == 0) {
        if (f->state == 1)
            respond(fd, 200, "ETag: \"x\"\r\n", NULL);
        else
            respond(fd, 404, NULL, NULL);
        return true;
    }
    if (f->state == 2)
        respond_error(fd, 412, "PreconditionFailed", "At least one of the pre-conditions");
    else
        respond(fd, 200, "ETag: \"5d41402abc4b2a76b9719d911017c592\"\r\n", NULL);
    return true;
}

static void
test_put_small_and_conditional(void)
{
    struct fake f;
    struct err err;
    struct repo *r;
    struct sink *s;

    /* auto mode, absent: HEAD, then PUT with If-None-Match, Content-MD5 and the body hash */
    unsetenv("FERRY_S3_CONDITIONAL_PUT");
    fake_start(&f, h_put);
    r = open_repo(&f, 0, 1, &err);
    s = r->ops->put_sink_new(r, "wal/1", REPO_PUT_IF_ABSENT);
    CHECK_OK(sink_write(s, "hel", 3, &err), &err);
    CHECK_OK(sink_write(s, "lo", 2, &err), &err);
    CHECK_OK(sink_finish(s, &err), &err);
    sink_free(s);
    CHECK_INT(f.n, 2);
    CHECK_STR(f.log[0].method, "HEAD");
    CHECK_STR(f.log[1].method, "PUT");
    CHECK_STR(f.log[1].target, "/bkt/pre/wal/1");
    CHECK_STR(f.log[1].body, "hello");
    CHECK_STR(hdr(&f.log[1], "if-none-match"), "*");
    CHECK_STR(hdr(&f.log[1], "content-md5"), "XUFAKrxLKna5cZ2REBfFkg==");
    CHECK_STR(hdr(&f.log[1], "x-amz-content-sha256"),
              "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");

    /* auto mode, present: ERR_EXISTS from the HEAD, no PUT */
    f.state = 1;
    fake_reset(&f);
    s = r->ops->put_sink_new(r, "wal/1", REPO_PUT_IF_ABSENT);
    CHECK_OK(sink_write(s, "x", 1, &err), &err);
    CHECK_FAIL(sink_finish(s, &err), &err, ERR_EXISTS, "object \"wal/1\" already exists");
    sink_free(s);
    CHECK_INT(f.n, 1);
    r->ops->close(r);

    /* server mode: no HEAD; 412 is ERR_EXISTS */
    setenv("FERRY_S3_CONDITIONAL_PUT", "server", 1);
    r = open_repo(&f, 0, 1, &err);
    f.state = 2;
    fake_reset(&f);
    s = r->ops->put_sink_new(r, "wal/1", REPO_PUT_IF_ABSENT);
    CHECK_FAIL(sink_finish(s, &err), &err, ERR_EXISTS, "object \"wal/1\" already exists");
    CHECK_INT(err.http_status, 412);
    sink_free(s);
    CHECK_INT(f.n, 1);
    CHECK_STR(f.log[0].method, "PUT");
    r->ops->close(r);

    /* check mode: HEAD only, no header */
    setenv("FERRY_S3_CONDITIONAL_PUT", "check", 1);
    r = open_repo(&f, 0, 1, &err);
    f.state = 0;
    fake_reset(&f);
    s = r->ops->put_sink_new(r, "wal/1", REPO_PUT_IF_ABSENT);
    CHECK_OK(sink_finish(s, &err), &err);
    sink_free(s);
    CHECK_INT(f.n, 2);
    CHECK(hdr(&f.log[1], "if-none-match") == NULL);
    r->ops->close(r);

    setenv("FERRY_S3_CONDITIONAL_PUT", "bogus", 1);
    CHECK(open_repo(&f, 0, 1, &err) == NULL);
    CHECK_INT(err.kind, ERR_USAGE);
    CHECK_STR(err.msg, "invalid FERRY_S3_CONDITIONAL_PUT \"bogus\": use auto, server or check");
    unsetenv("FERRY_S3_CONDITIONAL_PUT");
    fake_stop(&f);
}

/* Multipart: state bit 1 = fail part 2 with 400; bit 2 = Complete answers 200 + InternalError once
 */
static bool
h_multipart(struct fake *f, int fd, const struct fake_req *rq, int n)
{
    if (strcmp(rq->method, "POST") == 0 && strstr(rq->target, "?uploads")) {
        respond(fd, 200, NULL,
                "<InitiateMultipartUploadResult><UploadId>up/1+x</UploadId>"
                "</InitiateMultipartUploadResult>");
    } else if (strcmp(rq->method, "PUT") == 0 && strstr(rq->target, "partNumber=")) {
        int part = (int)strtol(strstr(rq->target, "partNumber=") + 11, NULL, 10);
        char h[64];

        if ((f->state & 1) && part == 2) {
            respond_error(fd, 400, "InvalidDigest", "The Content-MD5 you specified is not valid.");
            return true;
        }
        snprintf(h, sizeof(h), "ETag: \"etag%d\"\r\n", part);
        pthread_mutex_lock(&f->mu);
        if (++f->in_flight > f->max_in_flight)
            f->max_in_flight = f->in_flight;
        pthread_mutex_unlock(&f->mu);
        usleep(100000); /* long enough for the next part to be sent meanwhile */
        pthread_mutex_lock(&f->mu);
        f->in_flight--;
        pthread_mutex_unlock(&f->mu);
        respond(fd, 200, h, NULL);
    } else if (strcmp(rq->method, "POST") == 0 && strstr(rq->target, "uploadId=")) {
        if (f->state & 2) {
            f->state &= ~2;
            respond(fd, 200, NULL,
                    "<?xml version=\"1.0\"?>\n<Error><Code>InternalError</Code>"
                    "<Message></Message></Error>");
        } else {
            respond(fd, 200, NULL,
                    "<CompleteMultipartUploadResult><ETag>\"m-3\"</ETag>"
                    "</CompleteMultipartUploadResult>");
        }
    } else if (strcmp(rq->method, "DELETE") == 0) {
        respond(fd, 204, NULL, NULL);
    } else {
        respond(fd, 500, NULL, NULL);
    }
    return true;
}

static int
count_method(struct fake *f, const char *method, const char *in_target)
{
    int c = 0;

    for (int i = 0; i < f->n; i++)
        if (strcmp(f->log[i].method, method) == 0 &&
            (!in_target || strstr(f->log[i].target, in_target)))
            c++;
    return c;
}

static void
write_pattern(struct sink *s, size_t total, struct err *err, int *rc)
{
    static char blk[65536];

    for (size_t i = 0; i < sizeof(blk); i++)
        blk[i] = (char)(i * 7);
    *rc = 0;
    for (size_t done = 0; done < total && *rc == 0;) {
        size_t n = total - done < sizeof(blk) ? total - done : sizeof(blk);

        *rc = sink_write(s, blk, n, err);
        done += n;
    }
}

static void
test_multipart(void)
{
    struct fake f;
    struct err err;
    struct repo *r;
    struct sink *s;
    int rc;
    const struct fake_req *complete = NULL;
    size_t total = 12 * 1024 * 1024; /* 5 + 5 + 2 MiB */

    setenv("FERRY_S3_RETRY_BASE_MS", "1", 1);
    fake_start(&f, h_multipart);
    f.state = 2;
    r = open_repo(&f, 2, 2, &err);
    s = r->ops->put_sink_new(r, "base/b.tar", 0);
    write_pattern(s, total, &err, &rc);
    CHECK_INT(rc, 0);
    CHECK_OK(sink_finish(s, &err), &err);
    sink_free(s);
    CHECK_INT(count_method(&f, "POST", "?uploads"), 1);
    CHECK_INT(count_method(&f, "PUT", "partNumber="), 3);
    CHECK_INT(count_method(&f, "POST", "uploadId="), 2); /* error-in-200 retried */
    CHECK_INT(count_method(&f, "DELETE", NULL), 0);
    CHECK_INT(f.max_in_flight, 2); /* parts in parallel, never more than --parallel */
    for (int i = 0; i < f.n; i++)
        if (strcmp(f.log[i].method, "POST") == 0 && strstr(f.log[i].target, "uploadId="))
            complete = &f.log[i];
    CHECK(complete != NULL);
    if (complete) {
        CHECK_STR(complete->target, "/bkt/pre/base/b.tar?uploadId=up%2F1%2Bx");
        CHECK_STR(complete->body,
                  "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                  "<Part><PartNumber>1</PartNumber><ETag>&quot;etag1&quot;</ETag></Part>"
                  "<Part><PartNumber>2</PartNumber><ETag>&quot;etag2&quot;</ETag></Part>"
                  "<Part><PartNumber>3</PartNumber><ETag>&quot;etag3&quot;</ETag></Part>"
                  "</CompleteMultipartUpload>");
    }
    for (int i = 0; i < f.n; i++) {
        if (strcmp(f.log[i].method, "PUT") == 0) {
            CHECK(hdr(&f.log[i], "content-md5") != NULL);
            CHECK(f.log[i].body_len == 5u * 1024 * 1024 || f.log[i].body_len == 2u * 1024 * 1024);
        }
    }
    r->ops->close(r);
    fake_stop(&f);

    /* a part fails for good: the upload is aborted, the error names the part */
    fake_start(&f, h_multipart);
    f.state = 1;
    r = open_repo(&f, 2, 2, &err);
    s = r->ops->put_sink_new(r, "base/b.tar", 0);
    write_pattern(s, total, &err, &rc);
    if (rc == 0)
        rc = sink_finish(s, &err);
    CHECK_INT(rc, -1);
    CHECK_INT(err.kind, ERR_REMOTE);
    CHECK_STR(err.msg, "could not upload part 2 of \"base/b.tar\": InvalidDigest: The Content-MD5 "
                       "you specified is not valid. (HTTP 400)");
    sink_free(s);
    CHECK_INT(count_method(&f, "DELETE", "uploadId=up%2F1%2Bx"), 1);
    CHECK_INT(count_method(&f, "POST", "uploadId="), 0);
    r->ops->close(r);
    fake_stop(&f);

    /* freed unfinished: aborted */
    fake_start(&f, h_multipart);
    r = open_repo(&f, 2, 2, &err);
    s = r->ops->put_sink_new(r, "base/b.tar", 0);
    write_pattern(s, total, &err, &rc);
    CHECK_INT(rc, 0);
    sink_free(s);
    CHECK_INT(count_method(&f, "DELETE", "uploadId="), 1);
    CHECK_INT(count_method(&f, "POST", "uploadId="), 0);
    r->ops->close(r);
    fake_stop(&f);
}

static bool
h_list(struct fake *f, int fd, const struct fake_req *rq, int n)
{
    if (!strstr(rq->target, "continuation-token="))
        respond(fd, 200, NULL,
                "<ListBucketResult><IsTruncated>true</IsTruncated>"
                "<NextContinuationToken>tok/1=</NextContinuationToken>"
                "<Contents><Key>pre/a</Key><Size>1</Size>"
                "<LastModified>2026-01-02T03:04:05.000Z</LastModified></Contents>"
                "<Contents><Key>pre/c</Key><Size>3</Size></Contents>"
                "<CommonPrefixes><Prefix>pre/b/</Prefix></CommonPrefixes>"
                "</ListBucketResult>");
    else
        respond(fd, 200, NULL,
                "<ListBucketResult><IsTruncated>false</IsTruncated>"
                "<Contents><Key>pre/d&amp;e</Key><Size>4</Size></Contents>"
                "</ListBucketResult>");
    return true;
}

static int
list_collect(const struct repo_entry *e, void *arg)
{
    buf_printf(arg, "%s%s:%llu:%lld,", e->key, e->is_prefix ? "(p)" : "",
               (unsigned long long)e->size, (long long)e->mtime);
    return 0;
}

static void
test_list_pages(void)
{
    struct fake f;
    struct err err;
    struct repo *r;
    struct buf out = BUF_INIT;

    fake_start(&f, h_list);
    r = open_repo(&f, 0, 1, &err);
    CHECK_OK(r->ops->list(r, "", "/", list_collect, &out, &err), &err);
    CHECK_STR(buf_str(&out), "a:1:1767323045,b/(p):0:0,c:3:0,d&e:4:0,");
    CHECK_INT(f.n, 2);
    CHECK_STR(f.log[0].target, "/bkt?delimiter=%2F&list-type=2&max-keys=1000&prefix=pre%2F");
    CHECK_STR(f.log[1].target, "/bkt?continuation-token=tok%2F1%3D&delimiter=%2F&list-type=2&"
                               "max-keys=1000&prefix=pre%2F");
    buf_free(&out);
    r->ops->close(r);
    fake_stop(&f);
}

static bool
h_uploads(struct fake *f, int fd, const struct fake_req *rq, int n)
{
    if (strcmp(rq->method, "DELETE") == 0) {
        if (strstr(rq->target, "uploadId=gone"))
            respond(fd, 404, NULL,
                    "<Error><Code>NoSuchUpload</Code><Message>The specified upload does not "
                    "exist.</Message></Error>");
        else
            respond(fd, 204, NULL, NULL);
    } else if (f->state == 501) {
        respond(fd, 501, NULL,
                "<Error><Code>NotImplemented</Code><Message>A parameter you provided implies "
                "functionality that is not implemented</Message></Error>");
    } else if (!strstr(rq->target, "key-marker=")) {
        respond(fd, 200, NULL,
                "<ListMultipartUploadsResult><IsTruncated>true</IsTruncated>"
                "<NextKeyMarker>pre/pg/b</NextKeyMarker>"
                "<NextUploadIdMarker>2~x/y+z</NextUploadIdMarker>"
                "<Upload><Key>pre/pg/a</Key><UploadId>1</UploadId>"
                "<Initiated>2026-01-02T03:04:05.000Z</Initiated></Upload>"
                "<Upload><Key>pre/pg/b</Key><UploadId>2~x/y+z</UploadId>"
                "<Initiated>2026-01-02T03:04:06.000Z</Initiated></Upload>"
                "</ListMultipartUploadsResult>");
    } else if (f->state == 1) {
        /* a faulty server: the same markers again */
        respond(fd, 200, NULL,
                "<ListMultipartUploadsResult><IsTruncated>true</IsTruncated>"
                "<NextKeyMarker>pre/pg/b</NextKeyMarker>"
                "<NextUploadIdMarker>2~x/y+z</NextUploadIdMarker>"
                "</ListMultipartUploadsResult>");
    } else {
        respond(fd, 200, NULL,
                "<ListMultipartUploadsResult><IsTruncated>false</IsTruncated>"
                "<Upload><Key>pre/pg/b</Key><UploadId>3</UploadId>"
                "<Initiated>2026-01-02T03:04:07Z</Initiated></Upload>"
                "</ListMultipartUploadsResult>");
    }
    return true;
}

static int
uploads_collect(const struct repo_incomplete *w, void *arg)
{
    buf_printf(arg, "%s:%s:%lld,", w->key, w->upload_id, (long long)w->started);
    return 0;
}

/* ListMultipartUploads paged by key-marker and upload-id-marker; abort; a server without it */
static void
test_incomplete_uploads(void)
{
    struct fake f;
    struct err err;
    struct repo *r;
    struct buf out = BUF_INIT;
    struct repo_incomplete w = {"pg/a", "1", 0};
    char want[256];

    fake_start(&f, h_uploads);
    r = open_repo(&f, 3, 1, &err);
    CHECK_OK(repo_list_incomplete(r, "pg/", uploads_collect, &out, &err), &err);
    CHECK_STR(buf_str(&out), "pg/a:1:1767323045,pg/b:2~x/y+z:1767323046,pg/b:3:1767323047,");
    CHECK_INT(f.n, 2);
    CHECK_STR(f.log[0].target, "/bkt?max-uploads=1000&prefix=pre%2Fpg%2F&uploads=");
    CHECK_STR(f.log[1].target, "/bkt?key-marker=pre%2Fpg%2Fb&max-uploads=1000&prefix=pre%2Fpg%2F&"
                               "upload-id-marker=2~x%2Fy%2Bz&uploads=");

    /* abort: DELETE with the upload ID; one already gone is fine */
    fake_reset(&f);
    CHECK_OK(repo_abort_incomplete(r, &w, &err), &err);
    CHECK_INT(f.n, 1);
    CHECK_STR(f.log[0].method, "DELETE");
    CHECK_STR(f.log[0].target, "/bkt/pre/pg/a?uploadId=1");
    w.upload_id = "gone";
    CHECK_OK(repo_abort_incomplete(r, &w, &err), &err);
    w.upload_id = NULL;
    CHECK_FAIL(repo_abort_incomplete(r, &w, &err), &err, ERR_USAGE,
               "no upload ID for the unfinished upload of \"pg/a\"");

    /* markers that do not move: an error, not a loop */
    fake_reset(&f);
    f.state = 1;
    buf_reset(&out);
    CHECK_FAIL(repo_list_incomplete(r, "pg/", uploads_collect, &out, &err), &err, ERR_REMOTE,
               "invalid S3 upload listing: the page markers do not advance");
    CHECK_INT(f.n, 2);

    /* 501 NotImplemented (s3rver): not retried, and marked as such */
    fake_reset(&f);
    f.state = 501;
    snprintf(want, sizeof(want),
             "\"%s\" does not implement ListMultipartUploads (HTTP 501): unfinished uploads "
             "cannot be listed",
             f.endpoint);
    CHECK_FAIL(repo_list_incomplete(r, "pg/", uploads_collect, &out, &err), &err, ERR_REMOTE, want);
    CHECK(repo_err_not_implemented(&err));
    CHECK_INT(f.n, 1);
    buf_free(&out);
    r->ops->close(r);
    fake_stop(&f);
}

static bool
h_delete_many(struct fake *f, int fd, const struct fake_req *rq, int n)
{
    respond(fd, 200, NULL,
            "<DeleteResult><Error><Key>pre/b</Key><Code>AccessDenied</Code>"
            "<Message>Access Denied</Message></Error>"
            "<Error><Key>pre/c</Key><Code>NoSuchKey</Code><Message></Message></Error>"
            "</DeleteResult>");
    return true;
}

static void
test_delete_many(void)
{
    struct fake f;
    struct err err;
    struct repo *r;
    const char *keys[2500];
    char names[2500][16];
    char want[256];

    for (int i = 0; i < 2500; i++) {
        snprintf(names[i], sizeof(names[i]), "k%04d", i);
        keys[i] = names[i];
    }
    keys[1] = "b";
    keys[2] = "c";
    fake_start(&f, h_delete_many);
    r = open_repo(&f, 0, 4, &err);
    snprintf(want, sizeof(want), "could not delete \"b\": access denied by \"%s\": AccessDenied",
             f.endpoint);
    CHECK_FAIL(r->ops->delete_many(r, keys, 2500, &err), &err, ERR_AUTH, want);
    CHECK_INT(f.n, 3); /* 1000 + 1000 + 500, all tried */
    for (int i = 0; i < f.n; i++) {
        CHECK_STR(f.log[i].target, "/bkt?delete=");
        CHECK(hdr(&f.log[i], "content-md5") != NULL);
        CHECK(strstr(f.log[i].body, "<Quiet>true</Quiet>") != NULL);
    }
    r->ops->close(r);
    fake_stop(&f);
}

static void
test_addressing(void)
{
    struct repo_opts o;
    struct repo *r;
    struct err err;
    struct s3 *s3;

    memset(&o, 0, sizeof(o));
    o.retries = -1;
    o.s3_region = "eu-west-3";
    unsetenv("AWS_ENDPOINT_URL");
    CHECK_OK(s3_repo_open(&r, "my-bucket", "/p/q/", &o, &err), &err);
    s3 = (struct s3 *)r;
    CHECK(!s3->path_style);
    CHECK_STR(s3->url_base, "https://my-bucket.s3.eu-west-3.amazonaws.com");
    CHECK_STR(s3->host, "my-bucket.s3.eu-west-3.amazonaws.com");
    CHECK_STR(s3->endpoint, "https://s3.eu-west-3.amazonaws.com");
    CHECK_STR(s3->prefix, "p/q/");
    r->ops->close(r);

    CHECK_OK(s3_repo_open(&r, "my.dotted.bucket", "", &o, &err), &err);
    s3 = (struct s3 *)r;
    CHECK(s3->path_style);
    CHECK_STR(s3->url_base, "https://s3.eu-west-3.amazonaws.com");
    CHECK_STR(s3->prefix, "");
    r->ops->close(r);

    o.s3_endpoint = "http://127.0.0.1:9000/";
    CHECK_OK(s3_repo_open(&r, "b", "x", &o, &err), &err);
    s3 = (struct s3 *)r;
    CHECK(s3->path_style);
    CHECK_STR(s3->url_base, "http://127.0.0.1:9000");
    CHECK_STR(s3->host, "127.0.0.1:9000");
    r->ops->close(r);

    o.s3_endpoint = "https://minio.example:443";
    o.s3_uri_style_set = true;
    o.s3_uri_style = REPO_URI_HOST;
    CHECK_OK(s3_repo_open(&r, "b", "x", &o, &err), &err);
    s3 = (struct s3 *)r;
    CHECK(!s3->path_style);
    CHECK_STR(s3->url_base, "https://b.minio.example");
    CHECK_STR(s3->endpoint, "https://minio.example");
    r->ops->close(r);

    o.s3_uri_style_set = false;
    o.s3_endpoint = NULL;
    setenv("AWS_ENDPOINT_URL", "http://localhost:4566", 1);
    CHECK_OK(s3_repo_open(&r, "b", "", &o, &err), &err);
    s3 = (struct s3 *)r;
    CHECK(s3->path_style);
    CHECK_STR(s3->url_base, "http://localhost:4566");
    r->ops->close(r);
    unsetenv("AWS_ENDPOINT_URL");

    o.s3_endpoint = "ftp://x";
    CHECK_FAIL(s3_repo_open(&r, "b", "", &o, &err), &err, ERR_USAGE,
               "invalid S3 endpoint \"ftp://x\": scheme must be http or https");
    o.s3_endpoint = "http://h/path";
    CHECK_FAIL(s3_repo_open(&r, "b", "", &o, &err), &err, ERR_USAGE,
               "invalid S3 endpoint \"http://h/path\": a path is not supported");
    o.s3_endpoint = NULL;
    o.s3_sse = "aws:kms";
    o.s3_sse_customer_key_set = true;
    CHECK_FAIL(s3_repo_open(&r, "b", "", &o, &err), &err, ERR_USAGE,
               "S3 server-side encryption \"aws:kms\" and a customer key (SSE-C) cannot be "
               "combined");
    o.s3_sse = "AES128";
    CHECK_FAIL(s3_repo_open(&r, "b", "", &o, &err), &err, ERR_USAGE,
               "invalid S3 server-side encryption \"AES128\": use AES256 or aws:kms");
}

static bool
h_batch(struct fake *f, int fd, const struct fake_req *rq, int n)
{
    usleep(200000);
    respond(fd, 200, NULL, rq->target);
    return true;
}

/* The internal batch API: N requests in parallel, on N connections at most. */
static void
test_http_batch(void)
{
    struct fake f;
    struct http_config hc;
    struct http *h;
    struct http_req *reqs[6];
    int64_t t0;
    int64_t elapsed;

    fake_start(&f, h_batch);
    memset(&hc, 0, sizeof(hc));
    hc.connect_timeout_ms = 2000;
    hc.stall_timeout_ms = 2000;
    hc.total_timeout_ms = 5000;
    hc.max_connections = 8;
    h = http_new(&hc);
    for (int i = 0; i < 6; i++) {
        char url[128];

        snprintf(url, sizeof(url), "%s/r%d", f.endpoint, i);
        reqs[i] = http_req_new("GET", url);
    }
    t0 = http_now_ms();
    http_batch_run(h, reqs, 6);
    elapsed = http_now_ms() - t0;
    CHECK(elapsed < 1000); /* 6 x 200 ms would be 1.2 s one by one */
    for (int i = 0; i < 6; i++) {
        char want[16];

        snprintf(want, sizeof(want), "/r%d", i);
        CHECK_INT(reqs[i]->status, 200);
        CHECK_STR(buf_str(&reqs[i]->body), want);
        http_req_free(reqs[i]);
    }
    http_free(h);
    fake_stop(&f);
}

int
main(void)
{
    unsetenv("AWS_ENDPOINT_URL");
    unsetenv("AWS_CA_BUNDLE");
    unsetenv("FERRY_S3_CONDITIONAL_PUT");
    RUN(test_connection_refused);
    RUN(test_get_resumes_after_truncation);
    RUN(test_get_detects_change);
    RUN(test_get_range_on_server_ignoring_range);
    RUN(test_get_truncated_is_never_success);
    RUN(test_retries_5xx_then_gives_up);
    RUN(test_error_mapping);
    RUN(test_stall_deadline);
    RUN(test_put_small_and_conditional);
    RUN(test_multipart);
    RUN(test_list_pages);
    RUN(test_incomplete_uploads);
    RUN(test_delete_many);
    RUN(test_addressing);
    RUN(test_http_batch);
    return check_done();
}
