/* SPDX-License-Identifier: MIT */
/*
 * What the WAL archive holds, from listings only (no object is read except
 * the small .history files): every segment, partial, backup and history
 * file per timeline, and the gaps. Used by ferry-verify, ferry info and
 * ferry expire. A gap is judged along each timeline's own history: a
 * timeline's segments run from its switch-in point to its switch-out point
 * (the next timeline's .history says where), so the segment a promotion
 * left as .partial on the old timeline is not a gap.
 */
#ifndef ARCHIVE_WALSCAN_H
#define ARCHIVE_WALSCAN_H

#include <stdbool.h>
#include <stdint.h>

#include "archive/archive.h"
#include "format/history.h"

struct walscan_file {
    struct walname name;
    char *key;
    uint64_t stored_size;
    int64_t mtime;
    uint64_t segno; /* segments, partials and backup files; 0 for history */
};

struct walscan_gap {
    uint32_t tli;
    uint64_t first_missing; /* segment numbers, inclusive */
    uint64_t last_missing;
};

struct walscan_timeline {
    uint32_t tli;
    uint64_t first_segno, last_segno; /* of the segments present (valid when n_segments > 0) */
    size_t n_segments;
    uint64_t stored_bytes;
    bool has_history;       /* a TTTTTTTT.history is archived (not needed for timeline 1) */
    struct history history; /* parsed; for timeline 1 without a file: just itself */
};

struct walscan {
    uint32_t seg_size;
    struct walscan_file *files; /* sorted by key */
    size_t n_files;
    struct walscan_timeline *timelines; /* ascending tli */
    size_t n_timelines;
    struct walscan_gap *gaps;
    size_t n_gaps;
    uint64_t stored_bytes;
};

/*
 * List and analyse the archive. seg_size from the cluster record. ERR_* from
 * storage; a .history that does not parse is ERR_CORRUPT naming its key.
 */
int walscan_run(struct walscan *out, struct archive *a, uint32_t seg_size, struct err *err);
void walscan_free(struct walscan *s);

/* The file for (tli, segno) as a full segment, or NULL. */
const struct walscan_file *walscan_find_segment(const struct walscan *s, uint32_t tli,
                                                uint64_t segno);

/*
 * Missing segments needed to recover from start_lsn to stop_lsn along the
 * history of timeline tli (PostgreSQL's choice of timeline per segment).
 * The last segment is the one holding the byte before stop_lsn (the one
 * pg_backup_stop waits for). Appends to *gaps (caller frees), adjacent
 * missing segments as one gap. Returns the number of gaps appended (0: all
 * present).
 */
size_t walscan_missing(const struct walscan *s, uint32_t tli, uint64_t start_lsn, uint64_t stop_lsn,
                       struct walscan_gap **gaps, size_t *n_gaps);

#endif
