/* SPDX-License-Identifier: MIT */
/*
 * AWS Signature Version 4, in-house with OpenSSL: header authorization and
 * presigned (query) URLs. Pure functions, no I/O: tested against
 * ../shared/spec/aws-sigv4-test-suite.
 */
#ifndef STORAGE_S3_SIGN_H
#define STORAGE_S3_SIGN_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "base/buf.h"
#include "base/err.h"

struct s3_credentials {
    char *access_key_id;
    char *secret_access_key; /* secret: never printed */
    char *session_token;     /* NULL if none; secret */
    time_t expiration;       /* 0 = does not expire (IMDS credentials do) */
};

void s3_credentials_free(struct s3_credentials *c);

struct sign_header {
    const char *name;  /* any case; lower-cased for signing */
    const char *value; /* trimmed and inner runs of spaces collapsed for signing */
};

struct sign_request {
    const char *method; /* "GET" */
    const char *path;   /* already URI-encoded path as sent, e.g. "/bucket/a%20b" */
    const char
        *query; /* raw query string without '?', may be NULL/""; sorted/encoded for signing */
    const struct sign_header *headers; /* must include host; may repeat a name */
    size_t n_headers;
    const char *payload_sha256; /* hex, or "UNSIGNED-PAYLOAD" */
    const char *region;
    const char *service;     /* "s3" */
    time_t now;              /* request time (UTC) */
    bool normalize_path;     /* false for S3 */
    bool double_encode_path; /* false for S3; true for the generic suite */
};

/* The intermediate strings, exposed for the test suite. */
struct sign_result {
    struct buf canonical_request;
    struct buf string_to_sign;
    char signature[65];        /* hex */
    char amz_date[17];         /* "20150830T123600Z" */
    struct buf authorization;  /* header value (header signing) */
    struct buf signed_headers; /* "host;x-amz-date" */
    struct buf query;          /* presigning: the full signed query string */
};

void sign_result_free(struct sign_result *r);

/*
 * Header signing. The caller must already have put x-amz-date (use
 * sign_amz_date) and, for S3, x-amz-content-sha256 and any
 * x-amz-security-token among the headers; all given headers are signed.
 */
int sign_header_auth(struct sign_result *out, const struct sign_request *req,
                     const struct s3_credentials *cred, struct err *err);

/*
 * Presigned URL: adds X-Amz-Algorithm, X-Amz-Credential, X-Amz-Date,
 * X-Amz-Expires, X-Amz-SignedHeaders (, X-Amz-Security-Token) to the query
 * and signs. out->query is the whole query string to send.
 */
int sign_presign(struct sign_result *out, const struct sign_request *req,
                 const struct s3_credentials *cred, long expires_seconds, struct err *err);

/* "YYYYMMDDTHHMMSSZ" for t (UTC). buf must hold 17 bytes. */
void sign_amz_date(char *buf, time_t t);

/* URI-encode per SigV4: unreserved kept; '/' kept when keep_slash. Appends to out. */
void sign_uri_encode(struct buf *out, const char *s, size_t len, bool keep_slash);

/* Hex SHA-256 of data (65 bytes with NUL). */
void sign_sha256_hex(char out[65], const void *data, size_t len);

#endif
