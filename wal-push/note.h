/* SPDX-License-Identifier: MIT */
/*
 * What ferry-wal-push's front (front.c) and core (main.c) share: the options,
 * the notes the look-ahead leaves in archive_status, the busy locks that
 * keep two processes from pushing one file at once, and the choice of the
 * files to push ahead. Nothing here needs the repository.
 *
 * In pg_wal/archive_status, beside PostgreSQL's NAME.ready / NAME.done:
 *   NAME.ferry       NAME is stored (by the look-ahead, or by a call of
 *                    PostgreSQL's that has not returned yet): "SHA256 SIZE DEV
 *                    INO MTIME_SEC MTIME_NSEC\nREPO-URL\n"; the call for NAME
 *                    trusts it when the repository and the file's identity are
 *                    the same; removed once NAME is .done (next scan)
 *   NAME.ferry-busy  flock held by the process pushing NAME right now
 *   ferry-lookahead.lock  flock held by the look-ahead process
 */
#ifndef WAL_PUSH_NOTE_H
#define WAL_PUSH_NOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/options.h"

#define NOTE_SUFFIX ".ferry"
#define BUSY_SUFFIX ".ferry-busy"
#define LOOKAHEAD_LOCK "ferry-lookahead.lock"
#define CORE_NAME "ferry-wal-push-core"
#define ROLE_LOOKAHEAD "lookahead"

#define LOOKAHEAD_DEFAULT 16
#define LOOKAHEAD_BYTES_DEFAULT (256ULL << 20)
#define LOOKAHEAD_JOBS_DEFAULT 4

extern const struct opt_def push_opts[];

/* The archive_status directory beside the WAL file, or NULL when there is none. */
char *status_dir_of(const char *path);

enum note_state {
    NOTE_NONE,      /* no usable note (a stale one is removed) */
    NOTE_SAME_FILE, /* pushed ahead to this repository, and the file is the one noted */
    NOTE_CHECK,     /* pushed ahead to this repository, but the file's identity changed */
};

/* Read NAME's note; for NOTE_CHECK, want_hex and want_size say what was pushed. */
enum note_state note_read(const char *status_dir, const char *name, const char *path,
                          const char *repo_url, char want_hex[65], uint64_t *want_size);
void note_write(const char *status_dir, const char *name, const char *path,
                const unsigned char sha[32], uint64_t size, const char *repo_url);
void note_remove(const char *status_dir, const char *name);

/* Take NAME's busy lock: its descriptor, or -1 when another process holds it. */
int busy_take(const char *status_dir, const char *name);
void busy_release(int fd, const char *status_dir, const char *name);
/* Wait (bounded) while another process holds NAME's busy lock. */
void busy_wait(const char *status_dir, const char *name);

/*
 * The files to push ahead: of the .ready files in PostgreSQL's order
 * (history files first, then the oldest), the first max_files within
 * max_bytes, except `except`, without a note. Returns how many (names
 * allocated in *out, to free with names_free). Removes the notes of files
 * that are no longer .ready.
 */
size_t ahead_candidates(const char *status_dir, const char *wal_dir, const char *except,
                        long max_files, unsigned long long max_bytes, char ***out);
void names_free(char **names, size_t n);

#endif
