/* SPDX-License-Identifier: MIT */
/*
 * PostgreSQL as a source, through libpq in physical replication mode: the
 * connection (libpq conninfo and PG* environment), IDENTIFY_SYSTEM and the
 * WAL geometry, and BASE_BACKUP with its result sets and COPY streams, for
 * both protocols: PostgreSQL 15+ (one COPY with typed messages) and 12-14
 * (one COPY per tablespace, then one for the manifest). Callers get every
 * archive as a complete tar stream (the 12-14 servers omit the two zero
 * blocks that end a tar; they are added here) and the manifest, through
 * callbacks, so nothing is held in memory beyond one protocol message.
 * Used by ferry-basebackup; the parsing helpers by restore and verify.
 */
#ifndef SOURCE_PG_H
#define SOURCE_PG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "base/err.h"

/* How to reach the server; NULL fields fall back on libpq's PG* environment and defaults. */
struct pg_conn_opts {
    const char *dbname; /* a database name or a whole conninfo string / URI */
    const char *host;
    const char *port;
    const char *user;
    const char *application_name; /* e.g. "ferry-basebackup" */
};

/*
 * Connect with replication=true. The error is one line: ERR_AUTH when the
 * server refused the credentials or the role may not replicate (or
 * pg_hba.conf has no replication entry), ERR_NET otherwise.
 */
int pg_repl_connect(PGconn **out, const struct pg_conn_opts *o, struct err *err);

struct pg_system {
    uint64_t sysid;
    uint32_t timeline;
    uint64_t xlogpos;
    int version_num;   /* PQserverVersion, e.g. 150020 */
    uint32_t seg_size; /* wal_segment_size in bytes */
    uint32_t blcksz;   /* wal_block_size in bytes */
    bool standby;      /* in_hot_standby (reported by PostgreSQL 14+; false before) */
};

/* IDENTIFY_SYSTEM, SHOW wal_segment_size, SHOW wal_block_size. */
int pg_identify(PGconn *conn, struct pg_system *out, struct err *err);

/*
 * SHOW NAME: the setting's text into out (size > 0 bytes with the NUL).
 * 0, or 1 when it was longer and out holds its first size - 1 bytes; -1
 * when the server refuses.
 */
int pg_show(PGconn *conn, const char *name, char *out, size_t size, struct err *err);

/*
 * Parse a size as SHOW prints it: "16MB", "1GB", "8192", "8kB". Units B,
 * kB, MB, GB, TB (powers of 1024). ERR_USAGE when malformed.
 */
int pg_parse_size(const char *s, uint64_t *out, struct err *err);

struct pg_backup_opts {
    const char *label;
    bool fast_checkpoint;
    bool manifest;     /* MANIFEST 'yes' (PostgreSQL 13+) */
    uint32_t max_rate; /* kB/s the server may send, 32 to 1048576; 0 = no limit */
    /*
     * The manifest's per-file checksums, as the server names them: "CRC32C"
     * (NULL: PostgreSQL's default, cheap for the walsender), "SHA224",
     * "SHA256", "SHA384", "SHA512" or "NONE". Validated by the caller.
     */
    const char *manifest_checksums;
    /*
     * Server-side compression (PostgreSQL 15+, ignored before): COMPRESSION
     * 'zstd' with this level (and worker threads in the server, when not 0).
     * The archives then arrive as PG_STREAM_ARCHIVE_ZSTD; the manifest does not
     * change.
     */
    bool server_zstd;
    int server_zstd_level;
    int server_zstd_workers;
};

struct pg_tablespace {
    uint32_t oid;           /* 0 for the main data directory */
    char *location;         /* NULL for the main data directory */
    uint64_t size_estimate; /* bytes (the server's estimate); 0 when unknown */
};

/* ARCHIVE_ZSTD: a tar the server compressed (one zstd frame, named without ".zst"). */
enum pg_stream_kind { PG_STREAM_ARCHIVE = 1, PG_STREAM_MANIFEST, PG_STREAM_ARCHIVE_ZSTD };

/*
 * Callbacks of pg_base_backup; each returns 0 or -1 with err filled, which
 * stops the backup. Streams come one at a time: begin, data..., end.
 */
struct pg_backup_cb {
    /* After the tablespace list: the start point and the estimates are known. */
    int (*started)(void *arg, const struct pg_tablespace *ts, size_t n_ts, uint64_t start_lsn,
                   uint32_t start_tli, struct err *err);
    /* name: "base.tar", "16385.tar" or "backup_manifest"; location NULL for base and manifest. */
    int (*begin)(void *arg, enum pg_stream_kind kind, const char *name, uint32_t oid,
                 const char *location, struct err *err);
    int (*data)(void *arg, const void *buf, size_t len, struct err *err);
    int (*end)(void *arg, struct err *err);
    /* Called at least every half second while waiting for the server (may be NULL): -1 stops. */
    int (*tick)(void *arg, struct err *err);
    void *arg;
    /*
     * May be NULL. If set, COPY data goes here instead of to data, without a
     * copy: buf lies inside mem, a libpq buffer the callee owns from the call
     * on, also when it fails, and releases with PQfreemem (from any thread).
     * data still gets what pg.c makes itself (the end blocks of 12-14 tars).
     */
    int (*data_owned)(void *arg, void *mem, const void *buf, size_t len, struct err *err);
};

struct pg_backup_result {
    uint64_t start_lsn;
    uint32_t start_tli;
    uint64_t stop_lsn;
    uint32_t stop_tli;
    /* After a failure: the server's SQLSTATE ("" if none), and whether anything had come back. */
    char sqlstate[6];
    bool began;
};

/*
 * Run BASE_BACKUP (WAIT false, TABLESPACE_MAP, PROGRESS) on a replication
 * connection, for server version version_num. The server's errors come
 * back as ERR_REMOTE with its message (and the connection can take another
 * command when nothing had begun); a broken connection as ERR_NET.
 */
int pg_base_backup(PGconn *conn, int version_num, const struct pg_backup_opts *o,
                   const struct pg_backup_cb *cb, struct pg_backup_result *out, struct err *err);

/* The BASE_BACKUP command text (malloc'd), for a server version. */
char *pg_base_backup_command(int version_num, const struct pg_backup_opts *o);

#endif
