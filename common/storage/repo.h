/* SPDX-License-Identifier: MIT */
/*
 * The repository: one interface over file:///path and s3://bucket/prefix.
 * Keys are relative to the repository root ("wal/0000000100000000/..."),
 * '/'-separated, never starting with '/', never containing "." or ".."
 * segments. Objects are immutable byte strings; this layer stores bytes as
 * given (the object format lives in stream/object.h).
 */
#ifndef STORAGE_REPO_H
#define STORAGE_REPO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "stream/sink.h"

struct repo;

enum repo_uri_style { REPO_URI_PATH = 0, REPO_URI_HOST };

/* Everything a backend may need; unset strings are NULL. Filled by the options layer. */
struct repo_opts {
    /* S3 */
    const char *s3_endpoint; /* "https://host:port"; NULL = AWS regional endpoint */
    const char *s3_region;   /* NULL = "us-east-1" */
    enum repo_uri_style s3_uri_style;
    bool s3_uri_style_set;  /* false: host style for AWS, path style for a custom endpoint */
    const char *s3_ca_file; /* CA bundle; NULL = system default (or AWS_CA_BUNDLE) */
    const char *s3_ca_path; /* CA directory */
    bool s3_no_verify_tls;  /* only for tests; never the default */
    const char *s3_access_key_id;
    const char *s3_secret_access_key;
    const char *s3_session_token;
    const char *s3_profile; /* AWS_PROFILE */
    const char *s3_sse;     /* NULL, "AES256" or "aws:kms" */
    const char *s3_sse_kms_key_id;
    bool s3_sse_customer_key_set;
    unsigned char s3_sse_customer_key[32];
    uint64_t s3_part_size;     /* multipart part size; 0 = default (8 MiB) */
    int parallel;              /* concurrent transfers; 0 = default (4) */
    int retries;               /* attempts after the first; -1 = default (4) */
    int timeout_ms;            /* deadline of one request attempt; 0 = default (60 s) */
    int connect_timeout_ms;    /* 0 = default (10 s) */
    bool imds_disabled;        /* do not ask instance metadata for credentials */
    const char *imds_endpoint; /* override of http://169.254.169.254 (tests) */
};

/* Zero plus defaults marked as "unset" (retries = -1). */
void repo_opts_init(struct repo_opts *o);

struct repo_stat {
    uint64_t size; /* stored bytes */
    int64_t mtime; /* seconds since the epoch */
    char etag[80]; /* without quotes; "" for file:// */
    char sse[16];  /* "", "AES256" or "aws:kms" as reported by the server */
    char sse_kms_key_id[256];
    bool sse_customer; /* stored with a customer key */
};

struct repo_entry {
    const char *key; /* relative to the repository root */
    uint64_t size;
    int64_t mtime;
    bool is_prefix; /* a common prefix (only with a delimiter) */
};

/* Called once per entry, in ascending byte order of key. Return non-zero to stop early. */
typedef int (*repo_list_cb)(const struct repo_entry *e, void *arg);

/* Open "file:///abs/path" or "s3://bucket[/prefix]". A bare absolute path means file://. */
int repo_open(struct repo **out, const char *url, const struct repo_opts *opts, struct err *err);
void repo_close(struct repo *r);

/* The URL as opened, without secrets. */
const char *repo_url(const struct repo *r);

enum repo_put_flags {
    REPO_PUT_IF_ABSENT = 1, /* fail with ERR_EXISTS if the key exists (atomic where possible) */
};

/*
 * A sink that stores everything written to it under key. Nothing is visible
 * under key until sink_finish() succeeds; freeing it unfinished discards
 * everything (temp file removed, multipart upload aborted). The length need
 * not be known in advance. With REPO_PUT_IF_ABSENT, finish fails with
 * ERR_EXISTS ("... already exists") when another writer got there first.
 */
struct sink *repo_put_sink_new(struct repo *r, const char *key, unsigned flags);

/* Convenience: store a memory buffer. */
int repo_put_buf(struct repo *r, const char *key, const void *data, size_t len, unsigned flags,
                 struct err *err);

/*
 * Push the object's bytes [offset, offset+len) into out (len 0 = to the end).
 * Does not finish out. Dropped connections are resumed with ranged requests
 * (the object must not change meanwhile: checked by ETag). ERR_NOT_FOUND if
 * the key does not exist.
 */
int repo_get(struct repo *r, const char *key, uint64_t offset, uint64_t len, struct sink *out,
             struct err *err);

/* Read a whole small object into memory (fails with ERR_CORRUPT beyond max bytes). */
int repo_get_buf(struct repo *r, const char *key, size_t max, char **out, size_t *out_len,
                 struct err *err);

/* Metadata; ERR_NOT_FOUND if absent. */
int repo_stat(struct repo *r, const char *key, struct repo_stat *out, struct err *err);

/*
 * Every key starting with prefix ("" for all), sorted. With delimiter (e.g.
 * "/"), keys below the next delimiter are grouped into one is_prefix entry.
 */
int repo_list(struct repo *r, const char *prefix, const char *delimiter, repo_list_cb cb, void *arg,
              struct err *err);

/* Delete one key; deleting an absent key succeeds. */
int repo_delete(struct repo *r, const char *key, struct err *err);
/* Delete many keys (batched); reports the first failure after trying all. */
int repo_delete_many(struct repo *r, const char *const *keys, size_t n, struct err *err);

/*
 * Incomplete writes: what a put killed before sink_finish() or sink_free()
 * leaves behind. file:// keeps a temporary file (a path segment starting
 * with ".ferry-tmp-", never listed by repo_list; its time is its mtime, the
 * last write); S3 keeps an unfinished multipart upload (invisible, but
 * stored and billed until aborted; its time is its Initiated date). A write
 * in progress is listed too: only the caller can tell it from a leftover,
 * by its age.
 */
struct repo_incomplete {
    const char *key;       /* file://: the temporary file's path below the root (not a valid key);
                              S3: the key being uploaded, relative to the repository */
    const char *upload_id; /* S3 multipart upload ID; NULL for file:// */
    int64_t started;       /* seconds since the epoch (see above) */
};

/* Called once per incomplete write, in ascending order of key. Return non-zero to stop early. */
typedef int (*repo_incomplete_cb)(const struct repo_incomplete *w, void *arg);

/* The error code (struct err.code) of an operation the backend or the server does not have. */
#define REPO_NOT_IMPLEMENTED "NotImplemented"

/*
 * Every incomplete write whose key starts with prefix. Fails with
 * err->code REPO_NOT_IMPLEMENTED (see repo_err_not_implemented) when the
 * backend has no such operation or the server answers that it does not
 * implement it (S3 ListMultipartUploads: HTTP 501 NotImplemented, e.g.
 * s3rver); other failures as repo_list.
 */
int repo_list_incomplete(struct repo *r, const char *prefix, repo_incomplete_cb cb, void *arg,
                         struct err *err);

/*
 * Remove one incomplete write as listed (file://: delete the temporary
 * file; S3: AbortMultipartUpload). One already gone is not an error. Never
 * removes a finished object: on file:// the last path segment must be a
 * temporary name (ERR_USAGE otherwise); on S3 only the upload is aborted.
 */
int repo_abort_incomplete(struct repo *r, const struct repo_incomplete *w, struct err *err);

/* True when err is the REPO_NOT_IMPLEMENTED failure of an optional operation. */
bool repo_err_not_implemented(const struct err *err);

/*
 * Backend vtable: each backend provides one. Internal to storage/, exposed
 * here so the backends and repo.c share it.
 */
struct repo_ops {
    const char *scheme;
    struct sink *(*put_sink_new)(struct repo *r, const char *key, unsigned flags);
    int (*get)(struct repo *r, const char *key, uint64_t offset, uint64_t len, struct sink *out,
               struct err *err);
    int (*stat)(struct repo *r, const char *key, struct repo_stat *out, struct err *err);
    int (*list)(struct repo *r, const char *prefix, const char *delimiter, repo_list_cb cb,
                void *arg, struct err *err);
    int (*delete_one)(struct repo *r, const char *key, struct err *err);
    int (*delete_many)(struct repo *r, const char *const *keys, size_t n, struct err *err);
    void (*close)(struct repo *r);
    /* optional (NULL: REPO_NOT_IMPLEMENTED): incomplete writes, see repo_list_incomplete */
    int (*list_incomplete)(struct repo *r, const char *prefix, repo_incomplete_cb cb, void *arg,
                           struct err *err);
    int (*abort_incomplete)(struct repo *r, const struct repo_incomplete *w, struct err *err);
};

struct repo {
    const struct repo_ops *ops;
    char *url;
};

/* Backends' constructors (called by repo_open). */
int posix_repo_open(struct repo **out, const char *path, const struct repo_opts *opts,
                    struct err *err);
int s3_repo_open(struct repo **out, const char *bucket, const char *prefix,
                 const struct repo_opts *opts, struct err *err);

/* Check a key: non-empty, relative, no "." / ".." / empty segments, no NUL or control chars. */
int repo_key_check(const char *key, struct err *err);

#endif
