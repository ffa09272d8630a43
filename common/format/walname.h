/* SPDX-License-Identifier: MIT */
/*
 * PostgreSQL WAL file names: what archive_command and restore_command see
 * as %f. Pure parsing and formatting, no I/O.
 *
 *   segment   TTTTTTTTLLLLLLLLSSSSSSSS            timeline, log, seg (hex, upper case)
 *   partial   TTTTTTTTLLLLLLLLSSSSSSSS.partial    last segment of an old timeline (promotion)
 *   backup    TTTTTTTTLLLLLLLLSSSSSSSS.OOOOOOOO.backup   backup history file, offset in hex
 *   history   TTTTTTTT.history                    timeline history file
 *
 * The segment number is log * (2^32 / segment size) + seg, so turning a name
 * into a position needs the segment size (a power of two, 1 MiB to 1 GiB).
 */
#ifndef FORMAT_WALNAME_H
#define FORMAT_WALNAME_H

#include <stdbool.h>
#include <stdint.h>

#include "base/err.h"

enum walname_kind {
    WALNAME_SEGMENT = 1,
    WALNAME_PARTIAL,
    WALNAME_BACKUP,
    WALNAME_HISTORY,
};

struct walname {
    enum walname_kind kind;
    uint32_t tli;
    uint32_t log;    /* high part of the name (segments, partial, backup) */
    uint32_t seg;    /* low part of the name */
    uint32_t offset; /* backup files: the start offset in the segment */
};

/* Length of a segment name, and the longest name (backup) with its NUL. */
#define WALNAME_SEGMENT_LEN 24
#define WALNAME_MAX 41

/*
 * Parse a bare file name (no directory). Hex digits must be upper case, as
 * PostgreSQL writes them; timeline 0 is invalid. ERR_USAGE
 * "\"x\" is not a WAL file name" when it is none of the four kinds.
 */
int walname_parse(struct walname *out, const char *name, struct err *err);

/* Format a name into buf (WALNAME_MAX bytes). */
void walname_format(char *buf, const struct walname *w);

/* Valid WAL segment sizes: powers of two from 1 MiB to 1 GiB. */
bool walname_seg_size_valid(uint32_t seg_size);

/* Segment number of a segment/partial/backup name for a segment size; -1 if seg is out of range. */
int walname_segno(uint64_t *out, const struct walname *w, uint32_t seg_size);

/* The segment name for (tli, segno) with a segment size. */
void walname_from_segno(struct walname *out, uint32_t tli, uint64_t segno, uint32_t seg_size);

/* The start LSN of a segment. */
uint64_t walname_segno_lsn(uint64_t segno, uint32_t seg_size);

/* Parse "16/B374D848" (PostgreSQL's LSN text form). ERR_USAGE if malformed. */
int walname_lsn_parse(uint64_t *out, const char *s, struct err *err);
/* Format an LSN as "16/B374D848" (buf of at least 18 bytes). */
void walname_lsn_format(char *buf, uint64_t lsn);

#endif
