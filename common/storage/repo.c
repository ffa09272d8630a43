/* SPDX-License-Identifier: MIT */
/*
 * The front of the repository: URL parsing and dispatch to a backend
 * (posix/ for file://, s3/ for s3://), key checks, the small conveniences
 * every backend shares (put and get of a memory buffer, a default batched
 * delete), and repo_opts_load() which turns the common options into
 * struct repo_opts.
 *
 * r->url belongs to this file: backends leave it NULL, repo_open() sets it
 * to the canonical URL and repo_close() frees it after the backend's close.
 */
#include "storage/repo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "base/buf.h"
#include "base/config.h"
#include "base/log.h"
#include "base/xmalloc.h"
#include "storage/repo_config.h"

/* S3 limits keys to 1024 bytes; the same limit everywhere keeps repositories portable. */
#define REPO_KEY_MAX 1024

void
repo_opts_init(struct repo_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->retries = -1;
}

/* Strip leading and trailing '/' of [s, s+len) into a new string. */
static char *
trim_slashes(const char *s, size_t len)
{
    while (len > 0 && *s == '/') {
        s++;
        len--;
    }
    while (len > 0 && s[len - 1] == '/')
        len--;
    return xstrndup(s, len);
}

static int
open_s3(struct repo **out, const char *url, const struct repo_opts *opts, struct err *err)
{
    const char *rest = url + strlen("s3://");
    const char *slash = strchr(rest, '/');
    size_t blen = slash ? (size_t)(slash - rest) : strlen(rest);
    char *bucket, *prefix, *canon;
    int rc;

    if (blen == 0)
        return err_set(err, ERR_USAGE, "missing bucket in repository URL \"%s\"", url);
    bucket = xstrndup(rest, blen);
    prefix = trim_slashes(slash ? slash : "", slash ? strlen(slash) : 0);
    if (*prefix && repo_key_check(prefix, err) < 0) {
        err_prefix(err, "invalid prefix in repository URL \"%s\"", url);
        err->kind = ERR_USAGE;
        free(bucket);
        free(prefix);
        return -1;
    }
    canon = *prefix ? xasprintf("s3://%s/%s", bucket, prefix) : xasprintf("s3://%s", bucket);
    rc = s3_repo_open(out, bucket, prefix, opts, err);
    if (rc == 0 && !(*out)->url)
        (*out)->url = canon;
    else
        free(canon);
    free(bucket);
    free(prefix);
    return rc;
}

static int
open_file(struct repo **out, const char *url, const char *path, const struct repo_opts *opts,
          struct err *err)
{
    char *clean;
    int rc;

    if (path[0] != '/')
        return err_set(err, ERR_USAGE, "invalid repository URL \"%s\": use file:///absolute/path",
                       url);
    clean = trim_slashes(path, strlen(path));
    {
        char *abs = xasprintf("/%s", clean);

        free(clean);
        clean = abs;
    }
    rc = posix_repo_open(out, clean, opts, err);
    if (rc == 0 && !(*out)->url)
        (*out)->url = xasprintf("file://%s", clean);
    free(clean);
    return rc;
}

int
repo_open(struct repo **out, const char *url, const struct repo_opts *opts, struct err *err)
{
    struct repo_opts dflt;

    *out = NULL;
    if (!opts) {
        repo_opts_init(&dflt);
        opts = &dflt;
    }
    if (!url || !*url)
        return err_set(err, ERR_USAGE, "no repository given: use --repo URL or FERRY_REPO");
    if (strncmp(url, "s3://", 5) == 0)
        return open_s3(out, url, opts, err);
    if (strncmp(url, "file://", 7) == 0)
        return open_file(out, url, url + 7, opts, err);
    if (url[0] == '/')
        return open_file(out, url, url, opts, err);
    return err_set(err, ERR_USAGE,
                   "unknown repository URL scheme in \"%s\": use s3://bucket/prefix or "
                   "file:///path",
                   url);
}

void
repo_close(struct repo *r)
{
    char *url;

    if (!r)
        return;
    url = r->url;
    r->url = NULL;
    r->ops->close(r);
    free(url);
}

const char *
repo_url(const struct repo *r)
{
    return r->url ? r->url : "";
}

int
repo_key_check(const char *key, struct err *err)
{
    size_t len = strlen(key);
    const char *seg = key;

    if (len == 0)
        return err_set(err, ERR_USAGE, "invalid key \"\": it is empty");
    for (const char *p = key; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return err_set(err, ERR_USAGE, "invalid key: it contains control characters");
    if (len > REPO_KEY_MAX)
        return err_set(err, ERR_USAGE, "invalid key \"%.40s...\": longer than %d bytes", key,
                       REPO_KEY_MAX);
    if (key[0] == '/')
        return err_set(err, ERR_USAGE, "invalid key \"%s\": it must not start with \"/\"", key);
    for (;;) {
        const char *end = strchr(seg, '/');
        size_t n = end ? (size_t)(end - seg) : strlen(seg);

        if (n == 0 || (n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
            return err_set(err, ERR_USAGE,
                           "invalid key \"%s\": empty, \".\" and \"..\" path segments are not "
                           "allowed",
                           key);
        if (!end)
            break;
        seg = end + 1;
    }
    return 0;
}

/* A sink that failed before it began (a bad key): every call reports the error. */
struct failed_sink {
    struct sink base;
    struct err err;
};

static int
failed_write(struct sink *s, const void *data, size_t len, struct err *err)
{
    *err = ((struct failed_sink *)s)->err;
    return -1;
}

static int
failed_finish(struct sink *s, struct err *err)
{
    *err = ((struct failed_sink *)s)->err;
    return -1;
}

static void
failed_free(struct sink *s)
{
    free(s);
}

static const struct sink_ops failed_ops = {"failed", failed_write, failed_finish, failed_free};

struct sink *
repo_put_sink_new(struct repo *r, const char *key, unsigned flags)
{
    struct err err;

    err_clear(&err);
    if (repo_key_check(key, &err) < 0) {
        struct failed_sink *f = xcalloc(1, sizeof(*f));

        sink_init(&f->base, &failed_ops, NULL);
        f->err = err;
        return &f->base;
    }
    return r->ops->put_sink_new(r, key, flags);
}

int
repo_put_buf(struct repo *r, const char *key, const void *data, size_t len, unsigned flags,
             struct err *err)
{
    struct sink *s = repo_put_sink_new(r, key, flags);
    int rc = -1;

    if (sink_write(s, data, len, err) < 0 || sink_finish(s, err) < 0)
        goto out;
    rc = 0;
out:
    sink_free(s);
    return rc;
}

int
repo_get(struct repo *r, const char *key, uint64_t offset, uint64_t len, struct sink *out,
         struct err *err)
{
    if (repo_key_check(key, err) < 0)
        return -1;
    return r->ops->get(r, key, offset, len, out, err);
}

/* Terminal sink into a bounded buf: more than max bytes is ERR_CORRUPT naming the key. */
struct limit_sink {
    struct sink base;
    struct buf *out;
    size_t max;
    const char *key;
};

static int
limit_write(struct sink *s, const void *data, size_t len, struct err *err)
{
    struct limit_sink *l = (struct limit_sink *)s;

    if (len > l->max - l->out->len)
        return err_set(err, ERR_CORRUPT, "object \"%s\" is larger than %zu bytes", l->key, l->max);
    buf_append(l->out, data, len);
    return 0;
}

static int
limit_finish(struct sink *s, struct err *err)
{
    return 0;
}

static void
limit_free(struct sink *s)
{
    free(s);
}

static const struct sink_ops limit_ops = {"buffer", limit_write, limit_finish, limit_free};

int
repo_get_buf(struct repo *r, const char *key, size_t max, char **out, size_t *out_len,
             struct err *err)
{
    struct buf b = BUF_INIT;
    struct limit_sink *l = xcalloc(1, sizeof(*l));
    int rc = -1;

    *out = NULL;
    *out_len = 0;
    sink_init(&l->base, &limit_ops, NULL);
    l->out = &b;
    l->max = max;
    l->key = key;
    if (repo_get(r, key, 0, 0, &l->base, err) < 0 || sink_finish(&l->base, err) < 0)
        goto out;
    *out_len = b.len;
    *out = buf_detach(&b);
    rc = 0;
out:
    sink_free(&l->base);
    buf_free(&b);
    return rc;
}

int
repo_stat(struct repo *r, const char *key, struct repo_stat *out, struct err *err)
{
    memset(out, 0, sizeof(*out));
    if (repo_key_check(key, err) < 0)
        return -1;
    return r->ops->stat(r, key, out, err);
}

int
repo_list(struct repo *r, const char *prefix, const char *delimiter, repo_list_cb cb, void *arg,
          struct err *err)
{
    if (!prefix)
        prefix = "";
    if (delimiter && !*delimiter)
        delimiter = NULL;
    return r->ops->list(r, prefix, delimiter, cb, arg, err);
}

int
repo_delete(struct repo *r, const char *key, struct err *err)
{
    if (repo_key_check(key, err) < 0)
        return -1;
    return r->ops->delete_one(r, key, err);
}

int
repo_delete_many(struct repo *r, const char *const *keys, size_t n, struct err *err)
{
    struct err first;
    bool failed = false;

    for (size_t i = 0; i < n; i++)
        if (repo_key_check(keys[i], err) < 0)
            return -1;
    if (r->ops->delete_many)
        return r->ops->delete_many(r, keys, n, err);
    err_clear(&first);
    for (size_t i = 0; i < n; i++) {
        if (r->ops->delete_one(r, keys[i], err) < 0 && !failed) {
            first = *err;
            failed = true;
        }
    }
    if (failed) {
        *err = first;
        return -1;
    }
    return 0;
}

static int
not_implemented(struct repo *r, const char *what, struct err *err)
{
    err_set(err, ERR_USAGE, "%s repositories cannot %s", r->ops->scheme, what);
    snprintf(err->code, sizeof(err->code), "%s", REPO_NOT_IMPLEMENTED);
    return -1;
}

int
repo_list_incomplete(struct repo *r, const char *prefix, repo_incomplete_cb cb, void *arg,
                     struct err *err)
{
    if (!r->ops->list_incomplete)
        return not_implemented(r, "list incomplete writes", err);
    return r->ops->list_incomplete(r, prefix ? prefix : "", cb, arg, err);
}

int
repo_abort_incomplete(struct repo *r, const struct repo_incomplete *w, struct err *err)
{
    if (!r->ops->abort_incomplete)
        return not_implemented(r, "remove incomplete writes", err);
    if (!w->key || !*w->key)
        return err_set(err, ERR_USAGE, "an incomplete write without a key");
    return r->ops->abort_incomplete(r, w, err);
}

bool
repo_err_not_implemented(const struct err *err)
{
    return strcmp(err->code, REPO_NOT_IMPLEMENTED) == 0;
}

/* ---- options ---- */

static void
wipe(void *p, size_t n)
{
    volatile unsigned char *v = p;

    while (n--)
        *v++ = 0;
}

/* 32 bytes raw, or base64 of 32 bytes with surrounding whitespace. */
static int
load_sse_c_key(unsigned char key[32], const char *path, struct err *err)
{
    char *data = NULL;
    size_t len = 0, b64len;
    struct stat st;
    unsigned char dec[64];
    const char *p;
    int n, rc = -1;

    if (config_read_file(&data, &len, &st, path, "SSE-C key file", 4096, err) < 0) {
        if (err->kind == ERR_NOT_FOUND || err->kind == ERR_IO)
            err->kind = ERR_CONFIG;
        return -1;
    }
    if (config_check_private(&st, path, "SSE-C key file", err) < 0)
        goto out;
    if (len == 32) {
        memcpy(key, data, 32);
        rc = 0;
        goto out;
    }
    p = data;
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    b64len = strlen(p);
    while (b64len > 0 && (p[b64len - 1] == ' ' || p[b64len - 1] == '\t' || p[b64len - 1] == '\n' ||
                          p[b64len - 1] == '\r'))
        b64len--;
    /* base64 of 32 bytes is 44 characters, one '=' of padding */
    if (b64len == 44 && p[43] == '=' && p[42] != '=') {
        n = EVP_DecodeBlock(dec, (const unsigned char *)p, 44);
        if (n == 33) {
            memcpy(key, dec, 32);
            rc = 0;
            goto out;
        }
    }
    err_set(err, ERR_CONFIG, "SSE-C key file \"%s\" must hold a 32-byte key, raw or base64", path);
out:
    wipe(dec, sizeof(dec));
    wipe(data, len);
    free(data);
    return rc;
}

static int
get_seconds_ms(const struct opts *o, const char *name, long max, int *out, struct err *err)
{
    long v;

    if (opts_get_int(o, name, 0, 1, max, &v, err) < 0)
        return -1;
    *out = (int)(v * 1000);
    return 0;
}

int
repo_opts_load(struct repo_opts *out, const struct opts *o, struct err *err)
{
    const char *s, *cust;
    long l;
    unsigned long long size;

    repo_opts_init(out);
    out->s3_endpoint = opts_get(o, "s3-endpoint");
    if (!out->s3_endpoint && getenv("AWS_ENDPOINT_URL") && *getenv("AWS_ENDPOINT_URL"))
        out->s3_endpoint = getenv("AWS_ENDPOINT_URL");
    if (out->s3_endpoint && strncmp(out->s3_endpoint, "http://", 7) != 0 &&
        strncmp(out->s3_endpoint, "https://", 8) != 0)
        return err_set(err, ERR_USAGE,
                       "invalid S3 endpoint \"%s\": use http://host[:port] or https://host[:port]",
                       out->s3_endpoint);
    out->s3_region = opts_get(o, "s3-region");
    if ((s = opts_get(o, "s3-uri-style"))) {
        if (strcmp(s, "path") == 0)
            out->s3_uri_style = REPO_URI_PATH;
        else if (strcmp(s, "host") == 0)
            out->s3_uri_style = REPO_URI_HOST;
        else
            return err_set(err, ERR_USAGE,
                           "invalid value \"%s\" for --s3-uri-style: expected path or host", s);
        out->s3_uri_style_set = true;
    }
    out->s3_ca_file = opts_get(o, "s3-ca-file");
    out->s3_ca_path = opts_get(o, "s3-ca-path");
    out->s3_no_verify_tls = opts_get_bool(o, "s3-no-verify-tls", false);
    out->s3_access_key_id = opts_get(o, "s3-access-key-id");
    out->s3_secret_access_key = opts_get(o, "s3-secret-access-key");
    out->s3_session_token = opts_get(o, "s3-session-token");
    out->s3_profile = opts_get(o, "s3-profile");
    if ((s = opts_get(o, "s3-sse"))) {
        if (strcmp(s, "AES256") != 0 && strcmp(s, "aws:kms") != 0)
            return err_set(err, ERR_USAGE,
                           "invalid value \"%s\" for --s3-sse: expected AES256 or aws:kms", s);
        out->s3_sse = s;
    }
    out->s3_sse_kms_key_id = opts_get(o, "s3-sse-kms-key-id");
    if (out->s3_sse_kms_key_id && (!out->s3_sse || strcmp(out->s3_sse, "aws:kms") != 0))
        return err_set(err, ERR_USAGE, "--s3-sse-kms-key-id needs --s3-sse aws:kms");
    if ((cust = opts_get(o, "s3-sse-customer-key-file"))) {
        if (out->s3_sse)
            return err_set(err, ERR_USAGE,
                           "--s3-sse and --s3-sse-customer-key-file cannot be used together");
        if (load_sse_c_key(out->s3_sse_customer_key, cust, err) < 0)
            return -1;
        out->s3_sse_customer_key_set = true;
    }
    if (opts_get_size(o, "s3-part-size", 0, &size, err) < 0)
        return -1;
    if (size && (size < 5ull << 20 || size > 5ull << 30))
        return err_set(err, ERR_USAGE,
                       "invalid value \"%s\" for --s3-part-size: must be between 5M and 5G",
                       opts_get(o, "s3-part-size"));
    out->s3_part_size = size;
    if (opts_get_int(o, "s3-parallel", 0, 1, 64, &l, err) < 0)
        return -1;
    out->parallel = (int)l;
    if (opts_get_int(o, "s3-retries", -1, 0, 100, &l, err) < 0)
        return -1;
    out->retries = (int)l;
    if (get_seconds_ms(o, "s3-timeout", 86400, &out->timeout_ms, err) < 0 ||
        get_seconds_ms(o, "s3-connect-timeout", 3600, &out->connect_timeout_ms, err) < 0)
        return -1;
    out->imds_disabled = opts_get_bool(o, "s3-no-imds", false);
    if ((s = getenv("AWS_EC2_METADATA_DISABLED")) && strcmp(s, "true") == 0)
        out->imds_disabled = true;
    out->imds_endpoint = opts_get(o, "s3-imds-endpoint");
    if (out->s3_no_verify_tls)
        log_warning("TLS certificates of the S3 server are NOT verified (--s3-no-verify-tls): "
                    "anyone on the network path can read and change the backups");
    return 0;
}
