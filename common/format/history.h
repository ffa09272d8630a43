/* SPDX-License-Identifier: MIT */
/*
 * Timeline history files (TTTTTTTT.history): one line per ancestor timeline,
 * "parent-tli <tab> switch-point-lsn <tab> reason", '#' comments and blank
 * lines allowed, timelines strictly increasing. Pure parsing, no I/O.
 *
 * The parsed history is a list of ranges: timeline t holds WAL from begin
 * (inclusive) to end (exclusive); the newest (the file's own timeline) ends
 * at UINT64_MAX.
 */
#ifndef FORMAT_HISTORY_H
#define FORMAT_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

struct history_entry {
    uint32_t tli;
    uint64_t begin; /* LSN where this timeline starts (0 for the first) */
    uint64_t end;   /* switch point to the next timeline; UINT64_MAX for the newest */
};

struct history {
    struct history_entry *entries; /* oldest first; the last is the file's own timeline */
    size_t n;
};

/*
 * Parse the text of tli's history file. ERR_CORRUPT naming the line on
 * malformed lines, non-increasing timelines, or a parent not below tli.
 * Switch points may go backwards (PostgreSQL writes such files); an entry
 * then covers an empty range. Bounded: at most 100000 lines.
 */
int history_parse(struct history *out, uint32_t tli, const char *text, size_t len, struct err *err);
void history_free(struct history *h);

/*
 * The timeline PostgreSQL reads segment segno from when recovering along this
 * history: the newest timeline whose first segment is at or before segno.
 */
uint32_t history_tli_for_segno(const struct history *h, uint64_t segno, uint32_t seg_size);

#endif
