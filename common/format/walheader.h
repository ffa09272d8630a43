/* SPDX-License-Identifier: MIT */
/*
 * The long page header at the start of every WAL segment file
 * (XLogLongPageHeaderData in PostgreSQL's access/xlog_internal.h). Pure
 * parsing, no I/O. WAL is written in the server's byte order; ferry supports
 * little-endian servers and says so when it meets a big-endian one.
 *
 *   offset size field
 *   0      2    xlp_magic       WAL format version (one per major version)
 *   2      2    xlp_info        flags; XLP_LONG_HEADER (0x0002) must be set
 *   4      4    xlp_tli         timeline of the first record on the page
 *   8      8    xlp_pageaddr    LSN of this page: the segment's start LSN
 *   16     4    xlp_rem_len     continuation bytes from the previous page
 *   20     4    (padding)
 *   24     8    xlp_sysid       system identifier from pg_control
 *   32     4    xlp_seg_size    WAL segment size
 *   36     4    xlp_xlog_blcksz WAL block size
 */
#ifndef FORMAT_WALHEADER_H
#define FORMAT_WALHEADER_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "format/walname.h"

#define WALHEADER_SIZE 40
#define WALHEADER_XLP_LONG_HEADER 0x0002
#define WALHEADER_XLP_ALL_FLAGS 0x0007

struct walheader {
    uint16_t magic;
    int pg_version; /* major version for the magic, e.g. 15 */
    uint16_t info;
    uint32_t tli;
    uint64_t pageaddr;
    uint32_t rem_len;
    uint64_t sysid;
    uint32_t seg_size;
    uint32_t blcksz;
};

/*
 * Parse the first WALHEADER_SIZE bytes of a segment. ERR_CORRUPT with a
 * precise message when the bytes are not a WAL segment's first page
 * ("not a WAL segment: unknown page magic 0x1234", "... too short" ...).
 */
int walheader_parse(struct walheader *out, const void *buf, size_t len, struct err *err);

/*
 * Check a parsed header against the file's name: the page address must be
 * the segment's start, and the header's timeline may not be above the name's
 * (the first segment of a new timeline starts with a copy of the old one).
 * ERR_CORRUPT naming both values.
 */
int walheader_check_name(const struct walheader *h, const struct walname *w, struct err *err);

/* PostgreSQL major version of a WAL page magic, or 0 if unknown. */
int walheader_version_of_magic(uint16_t magic);

#endif
