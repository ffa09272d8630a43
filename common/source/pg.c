/* SPDX-License-Identifier: MIT */
/*
 * PostgreSQL through libpq in replication mode: see pg.h. The BASE_BACKUP
 * response is a sequence of results: the start point (one row), the
 * tablespace list, then COPY data (one typed stream from 15 on, one stream
 * per tablespace plus one for the manifest before), then the stop point.
 */
#include "source/pg.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/xmalloc.h"
#include "format/walname.h"

/* PostgreSQL 15 introduced the option list syntax, typed COPY messages and terminated tars. */
#define PG_VERSION_NEW_PROTOCOL 150000
#define PG_VERSION_MANIFEST 130000
#define TAR_BLOCK 512

/* libpq messages span lines ("...failed: ...\n\tIs the server running ...?"): make one line. */
static void
one_line(char *out, size_t size, const char *msg)
{
    size_t n = 0;
    bool space = false;

    if (!msg)
        msg = "";
    for (const char *p = msg; *p && n + 1 < size; p++) {
        if (isspace((unsigned char)*p)) {
            space = n > 0;
            continue;
        }
        if (space && n + 2 < size)
            out[n++] = ' ';
        space = false;
        out[n++] = *p;
    }
    out[n] = '\0';
}

static int
conn_err(struct err *err, enum err_kind kind, PGconn *conn, const char *context)
{
    char line[400];

    one_line(line, sizeof(line), conn ? PQerrorMessage(conn) : "out of memory");
    if (!line[0])
        return err_set(err, kind, "%s", context);
    return err_set(err, kind, "%s: %s", context, line);
}

static int
result_err(struct err *err, PGresult *res, PGconn *conn, const char *context)
{
    char line[400];
    const char *msg = res ? PQresultErrorMessage(res) : NULL;

    if (!msg || !*msg)
        msg = PQerrorMessage(conn);
    one_line(line, sizeof(line), msg);
    /* an error the server sent is remote; a lost connection is not */
    enum err_kind kind = PQstatus(conn) == CONNECTION_BAD ? ERR_NET : ERR_REMOTE;
    if (!line[0])
        return err_set(err, kind, "%s", context);
    return err_set(err, kind, "%s: %s", context, line);
}

int
pg_repl_connect(PGconn **out, const struct pg_conn_opts *o, struct err *err)
{
    const char *keys[9];
    const char *vals[9];
    int n = 0;
    PGconn *conn;

    *out = NULL;
    /* later entries win over earlier ones; what the dbname conninfo expands to wins over the first
     * two */
    /* no endless wait for a host that does not answer; the conninfo or environment may say */
    if (!getenv("PGCONNECT_TIMEOUT")) {
        keys[n] = "connect_timeout";
        vals[n++] = "30";
    }
    if (o->application_name) {
        keys[n] = "application_name";
        vals[n++] = o->application_name;
    }
    if (o->dbname) {
        keys[n] = "dbname";
        vals[n++] = o->dbname;
    }
    if (o->host) {
        keys[n] = "host";
        vals[n++] = o->host;
    }
    if (o->port) {
        keys[n] = "port";
        vals[n++] = o->port;
    }
    if (o->user) {
        keys[n] = "user";
        vals[n++] = o->user;
    }
    keys[n] = "replication";
    vals[n++] = "true";
    keys[n] = NULL;
    vals[n] = NULL;
    conn = PQconnectdbParams(keys, vals, 1);
    if (!conn || PQstatus(conn) != CONNECTION_OK) {
        const char *m = conn ? PQerrorMessage(conn) : "";
        bool auth = strstr(m, "authentication failed") || strstr(m, "password") ||
                    strstr(m, "replication role") || strstr(m, "pg_hba.conf") ||
                    strstr(m, "permission denied");

        conn_err(err, auth ? ERR_AUTH : ERR_NET, conn, "could not connect to the server");
        PQfinish(conn);
        return -1;
    }
    *out = conn;
    return 0;
}

/* Run a command that answers one row; *res holds it. */
static int
exec_row(PGconn *conn, const char *cmd, int min_fields, PGresult **res, struct err *err)
{
    *res = PQexec(conn, cmd);
    if (PQresultStatus(*res) != PGRES_TUPLES_OK) {
        char ctx[128];

        snprintf(ctx, sizeof(ctx), "%s failed", cmd);
        result_err(err, *res, conn, ctx);
        PQclear(*res);
        *res = NULL;
        return -1;
    }
    if (PQntuples(*res) != 1 || PQnfields(*res) < min_fields) {
        err_set(err, ERR_REMOTE, "%s: unexpected answer (%d rows, %d fields)", cmd, PQntuples(*res),
                PQnfields(*res));
        PQclear(*res);
        *res = NULL;
        return -1;
    }
    return 0;
}

int
pg_parse_size(const char *s, uint64_t *out, struct err *err)
{
    static const struct {
        const char *unit;
        uint64_t mult;
    } units[] = {
        {"", 1},           {"B", 1}, {"kB", 1ULL << 10}, {"MB", 1ULL << 20}, {"GB", 1ULL << 30},
        {"TB", 1ULL << 40}};
    char *end;
    unsigned long long v;

    if (!s || !isdigit((unsigned char)s[0]))
        return err_set(err, ERR_USAGE, "invalid size \"%s\"", s ? s : "");
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno)
        return err_set(err, ERR_USAGE, "invalid size \"%s\"", s);
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(end, units[i].unit) == 0) {
            if (v > UINT64_MAX / units[i].mult)
                break;
            *out = v * units[i].mult;
            return 0;
        }
    }
    return err_set(err, ERR_USAGE, "invalid size \"%s\"", s);
}

int
pg_show(PGconn *conn, const char *name, char *out, size_t size, struct err *err)
{
    char cmd[96];
    PGresult *res;

    snprintf(cmd, sizeof(cmd), "SHOW %s", name);
    if (exec_row(conn, cmd, 1, &res, err) < 0)
        return -1;
    const char *v = PQgetvalue(res, 0, 0);
    size_t n = strlen(v);
    int truncated = n >= size;
    if (truncated)
        n = size - 1;
    memcpy(out, v, n);
    out[n] = '\0';
    PQclear(res);
    return truncated;
}

static int
show_size(PGconn *conn, const char *name, uint32_t *out, struct err *err)
{
    char v[64];
    uint64_t n;

    int r = pg_show(conn, name, v, sizeof(v), err);
    if (r < 0)
        return -1;
    if (r > 0 || pg_parse_size(v, &n, err) < 0 || n == 0 || n > UINT32_MAX)
        return err_set(err, ERR_REMOTE, "the server reports an invalid %s \"%s\"", name, v);
    *out = (uint32_t)n;
    return 0;
}

static int
parse_u64(const char *s, uint64_t *out)
{
    char *end;

    if (!s || !isdigit((unsigned char)s[0]))
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

static int
parse_tli(const char *s, uint32_t *out)
{
    uint64_t v;

    if (parse_u64(s, &v) < 0 || v == 0 || v > UINT32_MAX)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

int
pg_identify(PGconn *conn, struct pg_system *out, struct err *err)
{
    PGresult *res;
    struct err e2;

    memset(out, 0, sizeof(*out));
    out->version_num = PQserverVersion(conn);
    const char *hs = PQparameterStatus(conn, "in_hot_standby");
    out->standby = hs && strcmp(hs, "on") == 0;
    if (exec_row(conn, "IDENTIFY_SYSTEM", 3, &res, err) < 0)
        return -1;
    if (parse_u64(PQgetvalue(res, 0, 0), &out->sysid) < 0 ||
        parse_tli(PQgetvalue(res, 0, 1), &out->timeline) < 0 ||
        walname_lsn_parse(&out->xlogpos, PQgetvalue(res, 0, 2), &e2) < 0) {
        err_set(err, ERR_REMOTE, "IDENTIFY_SYSTEM: unexpected answer \"%s\", \"%s\", \"%s\"",
                PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2));
        PQclear(res);
        return -1;
    }
    PQclear(res);
    if (show_size(conn, "wal_segment_size", &out->seg_size, err) < 0 ||
        show_size(conn, "wal_block_size", &out->blcksz, err) < 0)
        return -1;
    if (!walname_seg_size_valid(out->seg_size))
        return err_set(err, ERR_REMOTE, "the server reports an invalid wal_segment_size %" PRIu32,
                       out->seg_size);
    return 0;
}

/* A string literal of the replication grammar: quotes doubled, nothing else special. */
static void
put_literal(struct buf *b, const char *s)
{
    buf_putc(b, '\'');
    for (; *s; s++) {
        if (*s == '\'')
            buf_putc(b, '\'');
        buf_putc(b, *s);
    }
    buf_putc(b, '\'');
}

char *
pg_base_backup_command(int version_num, const struct pg_backup_opts *o)
{
    struct buf b = BUF_INIT;
    bool manifest = o->manifest && version_num >= PG_VERSION_MANIFEST;
    const char *sums = o->manifest_checksums ? o->manifest_checksums : "CRC32C";

    if (version_num >= PG_VERSION_NEW_PROTOCOL) {
        buf_puts(&b, "BASE_BACKUP ( LABEL ");
        put_literal(&b, o->label ? o->label : "");
        buf_puts(&b, ", PROGRESS, CHECKPOINT ");
        buf_puts(&b, o->fast_checkpoint ? "'fast'" : "'spread'");
        buf_puts(&b, ", WAIT false");
        if (o->max_rate)
            buf_printf(&b, ", MAX_RATE %" PRIu32, o->max_rate);
        if (manifest) {
            buf_puts(&b, ", MANIFEST 'yes', MANIFEST_CHECKSUMS ");
            put_literal(&b, sums);
        }
        if (o->server_zstd) {
            buf_printf(&b, ", COMPRESSION 'zstd', COMPRESSION_DETAIL 'level=%d",
                       o->server_zstd_level);
            if (o->server_zstd_workers > 0)
                buf_printf(&b, ",workers=%d", o->server_zstd_workers);
            buf_puts(&b, "'");
        }
        buf_puts(&b, ", TABLESPACE_MAP )");
    } else {
        buf_puts(&b, "BASE_BACKUP LABEL ");
        put_literal(&b, o->label ? o->label : "");
        buf_puts(&b, " PROGRESS");
        if (o->fast_checkpoint)
            buf_puts(&b, " FAST");
        buf_puts(&b, " NOWAIT");
        if (o->max_rate)
            buf_printf(&b, " MAX_RATE %" PRIu32, o->max_rate);
        if (manifest) {
            buf_puts(&b, " MANIFEST 'yes' MANIFEST_CHECKSUMS ");
            put_literal(&b, sums);
        }
        buf_puts(&b, " TABLESPACE_MAP");
    }
    return buf_detach(&b);
}

struct bb {
    PGconn *conn;
    int version_num;
    const struct pg_backup_opts *o;
    const struct pg_backup_cb *cb;
    struct pg_backup_result *out;
    struct pg_tablespace *ts;
    size_t n_ts;
    int n_tuple_sets; /* 1 start point, 2 tablespaces, 3 stop point */
    int n_copies;
    bool open;           /* a stream is between begin and end */
    bool open_is_tar;    /* ... and is a tar archive (not the manifest) */
    bool add_terminator; /* servers before 15 do not end their tars */
};

static int
parse_point(PGresult *res, uint64_t *lsn, uint32_t *tli, const char *what, struct err *err)
{
    struct err e2;

    if (PQntuples(res) != 1 || PQnfields(res) < 2 ||
        walname_lsn_parse(lsn, PQgetvalue(res, 0, 0), &e2) < 0 ||
        parse_tli(PQgetvalue(res, 0, 1), tli) < 0)
        return err_set(err, ERR_REMOTE, "BASE_BACKUP: unexpected %s from the server", what);
    return 0;
}

static int
take_tablespaces(struct bb *b, PGresult *res, struct err *err)
{
    int n = PQntuples(res);

    if (PQnfields(res) < 3 || n < 1)
        return err_set(err, ERR_REMOTE, "BASE_BACKUP: unexpected tablespace list from the server");
    b->ts = xcalloc((size_t)n, sizeof(*b->ts));
    for (int i = 0; i < n; i++) {
        struct pg_tablespace *t = &b->ts[b->n_ts++];
        uint64_t v;

        if (!PQgetisnull(res, i, 0)) {
            if (parse_u64(PQgetvalue(res, i, 0), &v) < 0 || v == 0 || v > UINT32_MAX)
                return err_set(err, ERR_REMOTE, "BASE_BACKUP: invalid tablespace oid \"%s\"",
                               PQgetvalue(res, i, 0));
            t->oid = (uint32_t)v;
            t->location = xstrdup(PQgetvalue(res, i, 1));
        }
        if (!PQgetisnull(res, i, 2) && parse_u64(PQgetvalue(res, i, 2), &v) == 0 &&
            v < UINT64_MAX / 1024)
            t->size_estimate = v * 1024; /* the server counts kB */
    }
    if (b->cb->started &&
        b->cb->started(b->cb->arg, b->ts, b->n_ts, b->out->start_lsn, b->out->start_tli, err) < 0)
        return -1;
    return 0;
}

static int
stream_end(struct bb *b, struct err *err)
{
    static const char zeros[2 * TAR_BLOCK];

    if (!b->open)
        return 0;
    b->open = false;
    if (b->open_is_tar && b->add_terminator &&
        b->cb->data(b->cb->arg, zeros, sizeof(zeros), err) < 0)
        return -1;
    return b->cb->end(b->cb->arg, err);
}

static int
stream_begin(struct bb *b, enum pg_stream_kind kind, const char *name, uint32_t oid,
             const char *location, struct err *err)
{
    if (stream_end(b, err) < 0)
        return -1;
    if (b->cb->begin(b->cb->arg, kind, name, oid, location, err) < 0)
        return -1;
    b->open = true;
    b->open_is_tar = kind == PG_STREAM_ARCHIVE;
    return 0;
}

/* The tablespace an archive of the 15+ protocol belongs to, by its path. */
static const struct pg_tablespace *
find_ts(const struct bb *b, const char *path)
{
    for (size_t i = 0; i < b->n_ts; i++) {
        if ((!path[0] && b->ts[i].oid == 0) ||
            (path[0] && b->ts[i].location && strcmp(b->ts[i].location, path) == 0))
            return &b->ts[i];
    }
    return NULL;
}

/* Pass COPY data on; *mem (libpq's buffer holding buf) is handed over when the caller takes it. */
static int
pass_data(struct bb *b, char **mem, const char *buf, size_t len, struct err *err)
{
    if (b->cb->data_owned) {
        void *m = *mem;

        *mem = NULL;
        return b->cb->data_owned(b->cb->arg, m, buf, len, err);
    }
    return b->cb->data(b->cb->arg, buf, len, err);
}

/* One CopyData message of the 15+ protocol, in *mem (NULL afterwards when it was handed over). */
static int
typed_message(struct bb *b, char **mem, size_t len, struct err *err)
{
    const char *msg = *mem;

    if (len < 1)
        return err_set(err, ERR_REMOTE, "BASE_BACKUP: empty COPY message from the server");
    switch (msg[0]) {
    case 'n': {
        const char *name = msg + 1;
        const char *nul = memchr(name, '\0', len - 1);
        const char *path, *nul2;
        const struct pg_tablespace *t;

        if (!nul)
            goto bad;
        path = nul + 1;
        nul2 = memchr(path, '\0', len - (size_t)(path - msg));
        if (!nul2)
            goto bad;
        t = find_ts(b, path);
        if (!t)
            return err_set(err, ERR_REMOTE,
                           "BASE_BACKUP: archive \"%s\" of unknown tablespace \"%s\"", name, path);
        if (b->o->server_zstd) {
            /* "base.tar.zst": handed on as "base.tar", of the compressed kind */
            size_t n = (size_t)(nul - name);
            char plain[256];

            if (n <= 4 || n - 4 >= sizeof(plain) || memcmp(name + n - 4, ".zst", 4) != 0)
                return err_set(err, ERR_REMOTE,
                               "BASE_BACKUP: archive \"%s\" is not zstd-compressed as asked", name);
            memcpy(plain, name, n - 4);
            plain[n - 4] = '\0';
            return stream_begin(b, PG_STREAM_ARCHIVE_ZSTD, plain, t->oid, t->location, err);
        }
        return stream_begin(b, PG_STREAM_ARCHIVE, name, t->oid, t->location, err);
    }
    case 'm':
        return stream_begin(b, PG_STREAM_MANIFEST, "backup_manifest", 0, NULL, err);
    case 'd':
        if (!b->open)
            return err_set(err, ERR_REMOTE, "BASE_BACKUP: data before the first archive");
        return pass_data(b, mem, msg + 1, len - 1, err);
    case 'p':
        if (len != 9)
            goto bad;
        return 0; /* progress is counted from the bytes received */
    default:
        return err_set(err, ERR_REMOTE, "BASE_BACKUP: unknown COPY message type 0x%02x",
                       (unsigned)(unsigned char)msg[0]);
    }
bad:
    return err_set(err, ERR_REMOTE, "BASE_BACKUP: malformed COPY message of type '%c'", msg[0]);
}

/*
 * Wait until the socket has input (or half a second passed), asking the
 * caller in between whether to give up: the server may be silent for long
 * (a spread checkpoint) and a signal must not wait for it.
 */
static int
wait_input(struct bb *b, struct err *err)
{
    struct pollfd pfd = {PQsocket(b->conn), POLLIN, 0};

    if (b->cb->tick && b->cb->tick(b->cb->arg, err) < 0)
        return -1;
    if (pfd.fd < 0)
        return result_err(err, NULL, b->conn, "lost the connection to the server");
    if (poll(&pfd, 1, 500) < 0 && errno != EINTR)
        return err_sys(err, ERR_NET, "could not wait for the server");
    if (b->cb->tick && b->cb->tick(b->cb->arg, err) < 0)
        return -1;
    if (!PQconsumeInput(b->conn))
        return result_err(err, NULL, b->conn, "could not read from the server");
    return 0;
}

/* PQgetResult without blocking in libpq. */
static PGresult *
next_result(struct bb *b, bool *failed, struct err *err)
{
    *failed = false;
    while (PQisBusy(b->conn)) {
        if (wait_input(b, err) < 0) {
            *failed = true;
            return NULL;
        }
    }
    return PQgetResult(b->conn);
}

static int
copy_out(struct bb *b, struct err *err)
{
    bool typed = b->version_num >= PG_VERSION_NEW_PROTOCOL;
    int idx = b->n_copies++;

    if (b->n_tuple_sets != 2)
        return err_set(err, ERR_REMOTE, "BASE_BACKUP: COPY data before the tablespace list");
    if (!typed) {
        /* one COPY per tablespace in the order of the list, then the manifest */
        if ((size_t)idx < b->n_ts) {
            const struct pg_tablespace *t = &b->ts[idx];
            char name[32];

            if (t->oid)
                snprintf(name, sizeof(name), "%" PRIu32 ".tar", t->oid);
            else
                snprintf(name, sizeof(name), "base.tar");
            if (stream_begin(b, PG_STREAM_ARCHIVE, name, t->oid, t->location, err) < 0)
                return -1;
        } else if ((size_t)idx == b->n_ts && b->o->manifest &&
                   b->version_num >= PG_VERSION_MANIFEST) {
            if (stream_begin(b, PG_STREAM_MANIFEST, "backup_manifest", 0, NULL, err) < 0)
                return -1;
        } else {
            return err_set(err, ERR_REMOTE, "BASE_BACKUP: unexpected COPY stream %d", idx + 1);
        }
    } else if (idx > 0) {
        return err_set(err, ERR_REMOTE, "BASE_BACKUP: unexpected second COPY stream");
    }
    for (;;) {
        char *data = NULL;
        int r = PQgetCopyData(b->conn, &data, 1);
        int rc = 0;

        if (r == 0) {
            if (wait_input(b, err) < 0)
                return -1;
            continue;
        }
        if (r == -1)
            break;
        if (r < 0)
            return result_err(err, NULL, b->conn, "could not read COPY data");
        if (typed)
            rc = typed_message(b, &data, (size_t)r, err);
        else
            rc = pass_data(b, &data, data, (size_t)r, err);
        PQfreemem(data); /* NULL when handed over */
        if (rc < 0)
            return -1;
    }
    return stream_end(b, err);
}

int
pg_base_backup(PGconn *conn, int version_num, const struct pg_backup_opts *o,
               const struct pg_backup_cb *cb, struct pg_backup_result *out, struct err *err)
{
    struct bb b;
    char *cmd = pg_base_backup_command(version_num, o);
    PGresult *res = NULL;
    int rc = -1;

    memset(&b, 0, sizeof(b));
    memset(out, 0, sizeof(*out));
    b.conn = conn;
    b.version_num = version_num;
    b.o = o;
    b.cb = cb;
    b.out = out;
    b.add_terminator = version_num < PG_VERSION_NEW_PROTOCOL;
    if (!PQsendQuery(conn, cmd)) {
        result_err(err, NULL, conn, "could not send BASE_BACKUP");
        goto out;
    }
    for (;;) {
        bool failed;

        res = next_result(&b, &failed, err);
        if (failed)
            goto out;
        if (!res)
            break;
        switch (PQresultStatus(res)) {
        case PGRES_TUPLES_OK:
            out->began = true;
            b.n_tuple_sets++;
            if (b.n_tuple_sets == 1) {
                if (parse_point(res, &out->start_lsn, &out->start_tli, "start point", err) < 0)
                    goto out;
            } else if (b.n_tuple_sets == 2) {
                if (take_tablespaces(&b, res, err) < 0)
                    goto out;
            } else if (b.n_tuple_sets == 3) {
                if (parse_point(res, &out->stop_lsn, &out->stop_tli, "stop point", err) < 0)
                    goto out;
            } else {
                err_set(err, ERR_REMOTE, "BASE_BACKUP: unexpected result set from the server");
                goto out;
            }
            break;
        case PGRES_COPY_OUT:
            if (copy_out(&b, err) < 0)
                goto out;
            break;
        case PGRES_COMMAND_OK:
            break;
        default: {
            const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);

            snprintf(out->sqlstate, sizeof(out->sqlstate), "%s", st ? st : "");
            result_err(err, res, conn, "BASE_BACKUP failed");
            /* read up to the end of the command, so the connection can take another */
            for (;;) {
                bool f;
                struct err e2;
                PGresult *r = next_result(&b, &f, &e2);

                if (!r)
                    break;
                PQclear(r);
            }
            goto out;
        }
        }
        PQclear(res);
        res = NULL;
    }
    if (b.n_tuple_sets != 3) {
        result_err(err, NULL, conn, "BASE_BACKUP ended early");
        goto out;
    }
    if (b.n_copies == 0) {
        err_set(err, ERR_REMOTE, "BASE_BACKUP: the server sent no data");
        goto out;
    }
    rc = 0;
out:
    PQclear(res);
    for (size_t i = 0; i < b.n_ts; i++)
        free(b.ts[i].location);
    free(b.ts);
    free(cmd);
    return rc;
}
