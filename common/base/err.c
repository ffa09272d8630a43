/* SPDX-License-Identifier: MIT */
/* The error model: see err.h. */
#include "base/err.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

void
err_clear(struct err *err)
{
    memset(err, 0, sizeof(*err));
}

static void
err_vset(struct err *err, enum err_kind kind, const char *fmt, va_list ap)
{
    err->kind = kind;
    err->sys_errno = 0;
    err->retryable = false;
    err->http_status = 0;
    err->code[0] = '\0';
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
}

int
err_set(struct err *err, enum err_kind kind, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    err_vset(err, kind, fmt, ap);
    va_end(ap);
    return -1;
}

int
err_sys(struct err *err, enum err_kind kind, const char *fmt, ...)
{
    int saved = errno;
    va_list ap;
    size_t n;

    va_start(ap, fmt);
    err_vset(err, kind, fmt, ap);
    va_end(ap);
    err->sys_errno = saved;
    if (saved == ENOSPC || saved == EDQUOT)
        err->kind = ERR_NOSPACE;
    n = strlen(err->msg);
    if (n < sizeof(err->msg))
        snprintf(err->msg + n, sizeof(err->msg) - n, ": %s", strerror(saved));
    errno = saved;
    return -1;
}

void
err_prefix(struct err *err, const char *fmt, ...)
{
    char head[512];
    char old[sizeof(err->msg)];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(head, sizeof(head), fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof(old));
    /* the result may be cut at the buffer's end: messages are one line, best effort */
    size_t n = strnlen(head, sizeof(head) - 1);
    if (n > sizeof(err->msg) - 3)
        n = sizeof(err->msg) - 3;
    memcpy(err->msg, head, n);
    memcpy(err->msg + n, ": ", 2);
    n += 2;
    size_t rest = strnlen(old, sizeof(old));
    if (rest > sizeof(err->msg) - 1 - n)
        rest = sizeof(err->msg) - 1 - n;
    memcpy(err->msg + n, old, rest);
    err->msg[n + rest] = '\0';
}

const char *
err_kind_name(enum err_kind kind)
{
    switch (kind) {
    case ERR_NONE:
        return "none";
    case ERR_USAGE:
        return "usage";
    case ERR_CONFIG:
        return "config";
    case ERR_IO:
        return "i/o";
    case ERR_NOSPACE:
        return "no space";
    case ERR_NET:
        return "network";
    case ERR_TIMEOUT:
        return "timeout";
    case ERR_TLS:
        return "tls";
    case ERR_AUTH:
        return "auth";
    case ERR_REMOTE:
        return "remote";
    case ERR_NOT_FOUND:
        return "not found";
    case ERR_EXISTS:
        return "exists";
    case ERR_CORRUPT:
        return "corrupt";
    case ERR_KEY:
        return "key";
    case ERR_INTERNAL:
        return "internal";
    }
    return "unknown";
}
