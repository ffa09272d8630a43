/* SPDX-License-Identifier: MIT */
/*
 * A tiny TAP unit-test harness (meson runs the executables with protocol 'tap').
 *
 *   static void test_thing(void) { CHECK(x == 1); CHECK_STR(a, "b"); }
 *   int main(void) { RUN(test_thing); return check_done(); }
 *
 * Each RUN is one TAP test point; a failed CHECK prints a diagnostic with the
 * file and line and marks the current test failed (the test goes on).
 */
#ifndef TESTS_UNIT_CHECK_H
#define TESTS_UNIT_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"

static int check_n, check_failed_total, check_cur_failed;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            printf("# %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond);                      \
            check_cur_failed = 1;                                                                  \
        }                                                                                          \
    } while (0)

#define CHECK_STR(got, want)                                                                       \
    do {                                                                                           \
        const char *check_g_ = (got), *check_w_ = (want);                                          \
        if (!check_g_ || strcmp(check_g_, check_w_) != 0) {                                        \
            printf("# %s:%d: got \"%s\", want \"%s\"\n", __FILE__, __LINE__,                       \
                   check_g_ ? check_g_ : "(null)", check_w_);                                      \
            check_cur_failed = 1;                                                                  \
        }                                                                                          \
    } while (0)

#define CHECK_INT(got, want)                                                                       \
    do {                                                                                           \
        long long check_g_ = (long long)(got), check_w_ = (long long)(want);                       \
        if (check_g_ != check_w_) {                                                                \
            printf("# %s:%d: %s = %lld, want %lld\n", __FILE__, __LINE__, #got, check_g_,          \
                   check_w_);                                                                      \
            check_cur_failed = 1;                                                                  \
        }                                                                                          \
    } while (0)

/* A call returned 0; otherwise show its error. */
#define CHECK_OK(call, errp)                                                                       \
    do {                                                                                           \
        if ((call) != 0) {                                                                         \
            printf("# %s:%d: %s failed: %s\n", __FILE__, __LINE__, #call, (errp)->msg);            \
            check_cur_failed = 1;                                                                  \
        }                                                                                          \
    } while (0)

/* A call returned -1 with this kind and exactly this message (NULL: any message). */
#define CHECK_FAIL(call, errp, want_kind, want_msg)                                                \
    do {                                                                                           \
        err_clear(errp);                                                                           \
        if ((call) != -1) {                                                                        \
            printf("# %s:%d: %s succeeded, expected failure\n", __FILE__, __LINE__, #call);        \
            check_cur_failed = 1;                                                                  \
        } else {                                                                                   \
            if ((errp)->kind != (want_kind)) {                                                     \
                printf("# %s:%d: kind %s, want %s (%s)\n", __FILE__, __LINE__,                     \
                       err_kind_name((errp)->kind), err_kind_name(want_kind), (errp)->msg);        \
                check_cur_failed = 1;                                                              \
            }                                                                                      \
            const char *check_wm_ = (want_msg);                                                    \
            if (check_wm_ && strcmp((errp)->msg, check_wm_) != 0) {                                \
                printf("# %s:%d: message \"%s\", want \"%s\"\n", __FILE__, __LINE__, (errp)->msg,  \
                       check_wm_);                                                                 \
                check_cur_failed = 1;                                                              \
            }                                                                                      \
        }                                                                                          \
    } while (0)

#define RUN(fn)                                                                                    \
    do {                                                                                           \
        check_cur_failed = 0;                                                                      \
        fn();                                                                                      \
        check_n++;                                                                                 \
        if (check_cur_failed)                                                                      \
            check_failed_total++;                                                                  \
        printf("%s %d - %s\n", check_cur_failed ? "not ok" : "ok", check_n, #fn);                  \
        fflush(stdout);                                                                            \
    } while (0)

static inline int
check_done(void)
{
    printf("1..%d\n", check_n);
    return check_failed_total ? 1 : 0;
}

#endif
