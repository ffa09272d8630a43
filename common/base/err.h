/* SPDX-License-Identifier: MIT */
/*
 * One error model for the whole suite. Fallible functions return 0 or -1 and
 * fill a caller-owned struct err (last parameter). Only main() prints it.
 */
#ifndef BASE_ERR_H
#define BASE_ERR_H

#include <stdbool.h>
#include <stdarg.h>

enum err_kind {
    ERR_NONE = 0,
    ERR_USAGE,     /* bad option or argument */
    ERR_CONFIG,    /* bad configuration (file, environment, permissions) */
    ERR_IO,        /* local I/O failure */
    ERR_NOSPACE,   /* local disk full (ENOSPC, EDQUOT) */
    ERR_NET,       /* connection failure, DNS, reset */
    ERR_TIMEOUT,   /* a deadline passed */
    ERR_TLS,       /* TLS handshake or verification failure */
    ERR_AUTH,      /* credentials missing or rejected */
    ERR_REMOTE,    /* the server answered with an error not covered below */
    ERR_NOT_FOUND, /* object, bucket or file does not exist */
    ERR_EXISTS,    /* conditional create found an existing object */
    ERR_CORRUPT,   /* data failed a format or checksum check */
    ERR_KEY,       /* wrong or missing encryption key */
    ERR_INTERNAL,  /* a library failed in a way that should not happen */
};

struct err {
    enum err_kind kind;
    int sys_errno;
    bool retryable;  /* e.g. HTTP 503, connection reset */
    int http_status; /* 0 when not an HTTP error */
    char code[64];   /* remote error code, e.g. "SignatureDoesNotMatch", or "" */
    char msg[512];
};

/* Reset to ERR_NONE. */
void err_clear(struct err *err);

/* Set kind and message (printf format). Returns -1 so callers can "return err_set(...)". */
int err_set(struct err *err, enum err_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Like err_set, appends ": strerror(errno)" and records errno. ENOSPC/EDQUOT make ERR_NOSPACE. */
int err_sys(struct err *err, enum err_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepend context: "context: old message". Keeps kind, errno, code. */
void err_prefix(struct err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Short stable name of a kind ("corrupt", "not found", ...). */
const char *err_kind_name(enum err_kind kind);

#endif
