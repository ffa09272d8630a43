/* SPDX-License-Identifier: MIT */
/* Unit tests for base/: buf and err. */
#include <errno.h>

#include "base/buf.h"
#include "base/err.h"
#include "check.h"

static void
test_buf_grows_and_stays_terminated(void)
{
    struct buf b = BUF_INIT;

    CHECK_STR(buf_str(&b), "");
    for (int i = 0; i < 1000; i++)
        buf_printf(&b, "%d,", i % 10);
    CHECK_INT(b.len, 2000);
    CHECK(b.data[b.len] == '\0');
    buf_reset(&b);
    CHECK_STR(buf_str(&b), "");
    buf_append(&b, "a\0b", 3);
    CHECK_INT(b.len, 3);
    buf_free(&b);
}

static void
test_err_sys_maps_enospc(void)
{
    struct err err;

    err_clear(&err);
    errno = ENOSPC;
    err_sys(&err, ERR_IO, "could not write \"%s\"", "x");
    CHECK_INT(err.kind, ERR_NOSPACE);
    CHECK_STR(err.msg, "could not write \"x\": No space left on device");
    err_prefix(&err, "could not store \"%s\"", "k");
    CHECK_STR(err.msg, "could not store \"k\": could not write \"x\": No space left on device");
}

int
main(void)
{
    RUN(test_buf_grows_and_stays_terminated);
    RUN(test_err_sys_maps_enospc);
    return check_done();
}
