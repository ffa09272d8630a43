/* SPDX-License-Identifier: MIT */
/* source/pg: sizes as SHOW prints them, the BASE_BACKUP command text, connection errors. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "source/pg.h"

static void
test_parse_size(void)
{
    struct err err;
    uint64_t v = 0;

    CHECK_OK(pg_parse_size("16MB", &v, &err), &err);
    CHECK(v == 16ULL << 20);
    CHECK_OK(pg_parse_size("1GB", &v, &err), &err);
    CHECK(v == 1ULL << 30);
    CHECK_OK(pg_parse_size("8192", &v, &err), &err);
    CHECK(v == 8192);
    CHECK_OK(pg_parse_size("8kB", &v, &err), &err);
    CHECK(v == 8192);
    CHECK_OK(pg_parse_size("64B", &v, &err), &err);
    CHECK(v == 64);
    CHECK_FAIL(pg_parse_size("16 MB", &v, &err), &err, ERR_USAGE, "invalid size \"16 MB\"");
    CHECK_FAIL(pg_parse_size("16mb", &v, &err), &err, ERR_USAGE, "invalid size \"16mb\"");
    CHECK_FAIL(pg_parse_size("", &v, &err), &err, ERR_USAGE, "invalid size \"\"");
    CHECK_FAIL(pg_parse_size("-1", &v, &err), &err, ERR_USAGE, "invalid size \"-1\"");
    CHECK_FAIL(pg_parse_size("99999999999TB", &v, &err), &err, ERR_USAGE,
               "invalid size \"99999999999TB\"");
}

static void
test_command_new_syntax(void)
{
    struct pg_backup_opts o = {.label = "nightly 'one'", .fast_checkpoint = true, .manifest = true};
    char *c = pg_base_backup_command(170002, &o);

    CHECK_STR(c, "BASE_BACKUP ( LABEL 'nightly ''one''', PROGRESS, CHECKPOINT 'fast', WAIT false, "
                 "MANIFEST 'yes', MANIFEST_CHECKSUMS 'CRC32C', TABLESPACE_MAP )");
    free(c);
    o.fast_checkpoint = false;
    o.max_rate = 1024;
    o.manifest_checksums = "SHA256";
    c = pg_base_backup_command(150000, &o);
    CHECK_STR(c, "BASE_BACKUP ( LABEL 'nightly ''one''', PROGRESS, CHECKPOINT 'spread', WAIT "
                 "false, MAX_RATE 1024, MANIFEST 'yes', MANIFEST_CHECKSUMS 'SHA256', "
                 "TABLESPACE_MAP )");
    free(c);
    /* server-side compression, with and without worker threads */
    o.max_rate = 0;
    o.manifest_checksums = NULL;
    o.server_zstd = true;
    o.server_zstd_level = 1;
    o.server_zstd_workers = 1;
    c = pg_base_backup_command(150000, &o);
    CHECK_STR(c, "BASE_BACKUP ( LABEL 'nightly ''one''', PROGRESS, CHECKPOINT 'spread', WAIT "
                 "false, MANIFEST 'yes', MANIFEST_CHECKSUMS 'CRC32C', COMPRESSION 'zstd', "
                 "COMPRESSION_DETAIL 'level=1,workers=1', TABLESPACE_MAP )");
    free(c);
    o.server_zstd_level = 7;
    o.server_zstd_workers = 0;
    c = pg_base_backup_command(170000, &o);
    CHECK_STR(c, "BASE_BACKUP ( LABEL 'nightly ''one''', PROGRESS, CHECKPOINT 'spread', WAIT "
                 "false, MANIFEST 'yes', MANIFEST_CHECKSUMS 'CRC32C', COMPRESSION 'zstd', "
                 "COMPRESSION_DETAIL 'level=7', TABLESPACE_MAP )");
    free(c);
}

static void
test_command_old_syntax(void)
{
    struct pg_backup_opts o = {.label = "a\\b", .fast_checkpoint = true, .manifest = true};
    char *c = pg_base_backup_command(140010, &o);

    /* backslashes are not special in the replication grammar */
    CHECK_STR(c, "BASE_BACKUP LABEL 'a\\b' PROGRESS FAST NOWAIT MANIFEST 'yes' "
                 "MANIFEST_CHECKSUMS 'CRC32C' TABLESPACE_MAP");
    free(c);
    o.manifest_checksums = "NONE";
    c = pg_base_backup_command(130000, &o);
    CHECK_STR(c, "BASE_BACKUP LABEL 'a\\b' PROGRESS FAST NOWAIT MANIFEST 'yes' "
                 "MANIFEST_CHECKSUMS 'NONE' TABLESPACE_MAP");
    free(c);
    o.manifest_checksums = NULL;
    /* before 15 the server cannot compress: not asked */
    o.server_zstd = true;
    o.server_zstd_level = 1;
    /* 12 has no manifest */
    o.fast_checkpoint = false;
    o.max_rate = 32;
    c = pg_base_backup_command(120005, &o);
    CHECK_STR(c, "BASE_BACKUP LABEL 'a\\b' PROGRESS NOWAIT MAX_RATE 32 TABLESPACE_MAP");
    free(c);
}

static void
test_connect_refused(void)
{
    struct err err;
    PGconn *conn = (PGconn *)1;
    struct sockaddr_in sa = {0};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    char port[16];

    /* a port nobody listens on: bind one, note it, close it */
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    CHECK(getsockname(fd, (struct sockaddr *)&sa, &len) == 0);
    snprintf(port, sizeof(port), "%d", ntohs(sa.sin_port));
    close(fd);
    struct pg_conn_opts o = {NULL, "127.0.0.1", port, "nobody", "test"};
    CHECK_FAIL(pg_repl_connect(&conn, &o, &err), &err, ERR_NET, NULL);
    CHECK(conn == NULL);
    CHECK(strncmp(err.msg, "could not connect to the server: connection to server at \"127.0.0.1\"",
                  68) == 0);
    CHECK(strstr(err.msg, "Connection refused") != NULL);
    CHECK(strchr(err.msg, '\n') == NULL && strchr(err.msg, '\t') == NULL);
    if (check_cur_failed)
        printf("# message: %s\n", err.msg);
}

int
main(void)
{
    RUN(test_parse_size);
    RUN(test_command_new_syntax);
    RUN(test_command_old_syntax);
    RUN(test_connect_refused);
    return check_done();
}
