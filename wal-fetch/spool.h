/* SPDX-License-Identifier: MIT */
/*
 * What ferry-wal-fetch's front (front.c) and core (main.c) share: the
 * options and the prefetch spool as PostgreSQL's calls use it. Nothing here
 * needs the repository.
 *
 * The spool (--spool-path, default pg_wal/ferry-prefetch):
 *   NAME          a segment the prefetcher fetched, decoded and verified
 *                 (not fsynced: a cache, trusted only within the boot that
 *                 wrote it)
 *   NAME.sha256   its note: "SHA256 SIZE DEV INO MTIME_SEC MTIME_NSEC BOOT_ID"
 *   NAME.fetching the prefetcher is fetching NAME now
 *   .position     the name of the latest call; the prefetcher follows it
 *   .lock         flock held by the prefetcher
 *   .sock         the prefetcher's unix socket: a call the spool cannot answer
 *                 asks it to fetch the file on its open connection (spool_ask)
 */
#ifndef WAL_FETCH_SPOOL_H
#define WAL_FETCH_SPOOL_H

#include <stdbool.h>
#include <stdint.h>

#include "archive/archive.h"
#include "base/options.h"

#define CORE_NAME "ferry-wal-fetch-core"
#define ROLE_PREFETCH "prefetch"
#define PREFETCH_DEFAULT 16
#define FETCH_EXIT_FATAL 200

extern const struct opt_def fetch_opts[];

/*
 * The spool for a call (--spool-path, or DEST's directory/ferry-prefetch),
 * or NULL when there is no prefetch: DEST is not PostgreSQL's RECOVERYXLOG
 * (e.g. pg_rewind), the file is not a segment, or --prefetch is 0.
 */
char *spool_for(const struct opts *o, const struct walname *w, const char *dest, long prefetch);
/*
 * The spool a call for a timeline history file may ask (spool_ask): the same
 * directory as for segments, when DEST is PostgreSQL's RECOVERYHISTORY and
 * --prefetch is not 0; NULL otherwise.
 */
char *spool_for_history(const struct opts *o, const struct walname *w, const char *dest,
                        long prefetch);
/* Create the spool if needed and write the position; false if it cannot be used. */
bool spool_enter(const char *spool, const char *name);

/* This boot's identity ("" if unknown): spool notes are valid within one boot. */
void boot_id(char out[64]);

typedef int spool_hash_fn(const char *path, unsigned char sha[32], uint64_t *size, struct err *err);
bool spool_take(const char *spool, const char *name, const char *dest, spool_hash_fn *hash);
/* Wait (bounded) while the prefetcher fetches name; true when its note appeared. */
bool spool_wait(const char *spool, const char *name);
/*
 * spool/.sock as a unix socket address that fits whatever the spool's path
 * (/proc/self/fd/N/.sock): the directory's descriptor N, to close after
 * bind or connect, or -1.
 */
struct sockaddr_un;
int spool_sock_addr(const char *spool, struct sockaddr_un *sa);

/*
 * What the running prefetcher answered for a file that was not in the
 * spool: it fetched, verified and noted it there (take it with spool_take),
 * or the archive does not have it (reason gets its message), or no answer
 * (no prefetcher, an error, or nothing within seconds): the core must ask.
 */
enum spool_answer { SPOOL_ASK_NONE, SPOOL_ASK_OK, SPOOL_ASK_MISSING };
enum spool_answer spool_ask(const char *spool, const char *name, unsigned seconds, char *reason,
                            size_t reason_size);

/*
 * Read one line from a socket (bounded by its timeouts) into line: true
 * with the newline cut off, false without a whole line.
 */
bool spool_read_line(int fd, char *line, size_t size);

/*
 * Standby mode: standby.signal in the working directory, which is the data
 * directory when PostgreSQL runs restore_command.
 */
bool standby_mode(void);

/* Tell the prefetcher which segment PostgreSQL asked for last. */
void position_write(const char *spool, const char *name);

#endif
