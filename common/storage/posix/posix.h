/* SPDX-License-Identifier: MIT */
/* Internals of the file:// backend exposed for its unit test only. */
#ifndef STORAGE_POSIX_POSIX_H
#define STORAGE_POSIX_POSIX_H

#include <stdbool.h>

/* Temporary files of unfinished puts start with this; keys may not use it and lists skip it. */
#define POSIX_TMP_PREFIX ".ferry-tmp-"

/*
 * Test hook, NULL in production: called with the fd of each new temporary
 * file right after it is created (a test points it at /dev/full to check
 * the disk-full path without mounting a small file system).
 */
extern void (*posix_test_tmp_fd_hook)(int fd);

/* Test switch, false in production: publish REPO_PUT_IF_ABSENT with link(2), the fallback. */
extern bool posix_test_force_link;

#endif
