/* SPDX-License-Identifier: MIT */
/*
 * The credential chain and region: options, environment, the shared
 * credentials and config files, and IMDSv2 against a small metadata server
 * run in a thread on 127.0.0.1. HOME points to a temporary directory and
 * every AWS_* variable is reset before each test, so the developer's own
 * ~/.aws and environment are never read.
 */
#include "check.h"

#include "base/xmalloc.h"
#include "storage/repo.h"
#include "storage/s3/creds.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define NOT_FOUND_MSG                                                                              \
    "no S3 credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile in "      \
    "~/.aws/credentials, or run on an instance with a role"

static char home[256];
static char cred_path[512];
static char config_path[512];

static const char *const aws_vars[] = {
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_EC2_METADATA_DISABLED",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE",
    "http_proxy",
    "HTTP_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "no_proxy",
    "NO_PROXY",
};

static void
write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    if (!f) {
        printf("# cannot write %s\n", path);
        check_cur_failed = 1;
        return;
    }
    fputs(text, f);
    fclose(f);
}

/*
 * A clean slate: no AWS_* variables, no files in $HOME/.aws, and instance
 * metadata off (tests that want it turn it back on).
 */
static void
reset(struct repo_opts *o)
{
    for (size_t i = 0; i < sizeof(aws_vars) / sizeof(aws_vars[0]); i++)
        unsetenv(aws_vars[i]);
    setenv("HOME", home, 1);
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    unlink(cred_path);
    unlink(config_path);
    memset(o, 0, sizeof(*o));
    o->retries = -1;
}

static void
check_creds(const struct s3_credentials *c, const char *id, const char *secret, const char *token)
{
    CHECK_STR(c->access_key_id, id);
    CHECK_STR(c->secret_access_key, secret);
    if (token)
        CHECK_STR(c->session_token, token);
    else
        CHECK(c->session_token == NULL);
}

/* No secret may ever appear in an error message. */
static void
check_no_secret(const struct err *err)
{
    static const char *const secrets[] = {"SECRET", "secret", "TOKEN", "imds-session"};

    for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++)
        if (strstr(err->msg, secrets[i]) && !strstr(err->msg, "aws_secret_access_key") &&
            !strstr(err->msg, "s3-secret-access-key") && !strstr(err->msg, "SECRET_ACCESS_KEY")) {
            printf("# secret-looking text in error: %s\n", err->msg);
            check_cur_failed = 1;
        }
}

/* ---- options, environment ---- */

static void
test_opts_over_env(void)
{
    struct repo_opts o;
    struct s3_credentials c;
    struct err err;

    reset(&o);
    setenv("AWS_ACCESS_KEY_ID", "AKIDENV", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "SECRETENV", 1);
    setenv("AWS_SESSION_TOKEN", "TOKENENV", 1);
    write_file(cred_path, "[default]\naws_access_key_id = AKIDFILE\n"
                          "aws_secret_access_key = SECRETFILE\n");
    o.s3_access_key_id = "AKIDOPT";
    o.s3_secret_access_key = "SECRETOPT";
    o.s3_session_token = "TOKENOPT";
    CHECK_OK(creds_resolve(&c, &o, &err), &err);
    check_creds(&c, "AKIDOPT", "SECRETOPT", "TOKENOPT");
    CHECK_INT(c.expiration, 0);
    s3_credentials_free(&c);

    /* The environment's token does not join keys from the options. */
    o.s3_session_token = NULL;
    CHECK_OK(creds_resolve(&c, &o, &err), &err);
    check_creds(&c, "AKIDOPT", "SECRETOPT", NULL);
    s3_credentials_free(&c);

    /* Half a pair in the options is a mistake, not a reason to look elsewhere. */
    o.s3_secret_access_key = NULL;
    CHECK_FAIL(creds_resolve(&c, &o, &err), &err, ERR_CONFIG,
               "\"s3-access-key-id\" is set but \"s3-secret-access-key\" is not");
    o.s3_access_key_id = "";
    o.s3_secret_access_key = "SECRETOPT";
    CHECK_FAIL(creds_resolve(&c, &o, &err), &err, ERR_CONFIG,
               "\"s3-secret-access-key\" is set but \"s3-access-key-id\" is not");
    check_no_secret(&err);
}

static void
test_env_over_files(void)
{
    struct repo_opts o;
    struct s3_credentials c;
    struct err err;

    reset(&o);
    write_file(cred_path, "[default]\naws_access_key_id = AKIDFILE\n"
                          "aws_secret_access_key = SECRETFILE\naws_session_token = TOKENFILE\n");
    setenv("AWS_ACCESS_KEY_ID", "AKIDENV", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "SECRETENV", 1);
    CHECK_OK(creds_resolve(&c, &o, &err), &err);
    check_creds(&c, "AKIDENV", "SECRETENV", NULL);
    s3_credentials_free(&c);

    setenv("AWS_SESSION_TOKEN", "TOKENENV", 1);
    CHECK_OK(creds_resolve(&c, &o, &err), &err);
    check_creds(&c, "AKIDENV", "SECRETENV", "TOKENENV");
    s3_credentials_free(&c);

    /* An empty variable counts as unset. */
    setenv("AWS_ACCESS_KEY_ID", "", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "", 1);
    CHECK_OK(creds_resolve(&c, &o, &err), &err);
    check_creds(&c, "AKIDFILE", "SECRETFILE", "TOKENFILE");
    s3_credentials_free(&c);

    setenv("AWS_ACCESS_KEY_ID", "AKIDENV", 1);
    CHECK_FAIL(creds_resolve(&c, &o, &err), &err, ERR_CONFIG,
               "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not");
    unsetenv("AWS_ACCESS_KEY_ID");
    setenv("AWS_SECRET_ACCESS_KEY", "SECRETENV", 1);
    CHECK_FAIL(creds_resolve(&c, &o, &err), &err, ERR_CONFIG,
               "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not");
    check_no_secret(&err);
}

/* ---- shared files ---- */

static void
test_default_profile(void)
{
    struct repo_opts o;
    struct s3_credentials c;
    struct err err;

    reset(&o);
    write_file(cred_path, "# a comment\n"
                          "; another\n"
                          "[other]\n"
                          "aws_access_key_id = AKIDOTHER\n"
                          "aws_secret_access_key = SECRETOTHER\n"
                          "\n"
                          "[ default ]\n"
                          "  aws_access_key_id=AKIDDEFAULT   \n"
                          "AWS_SECRET_ACCESS_KEY\t=\tSECRET/DEF+AULT==\r\n"
                          "s3 =\n"
                          "    aws_session_token = NOT-A-KEY\n");
    CHECK_OK(creds_resolve(&c, &o, &err), &err);
    check_creds(&c, "AKIDDEFAULT", "SECRET/DEF+AULT==", NULL);
    CHECK_INT(c.expiration, 0);
    s3_credentials_free(&c);
}

static void
test_profiles_from_both_files(void)
{
    struct repo_opts o;
    struct s3_credentials c;
    struct err err;
    char *region;

    reset(&o);
    write_file(cred_path,
               "[dev]\naws_access_key_id = AKIDCRED\naws_secret_access_key = SECRETCRED\n"
               "region = eu-north-1\n");
    write_file(config_path, "[default]\nregion = ap-south-1\n"
                            "[profile dev]\naws_access_key_id = AKIDCONF\n"
                            "aws_secret_access_key = SECRETCONF\nregion = eu-central-1\n"
                            "[profile cfgonly]\naws_access_key_id = AKIDCFGONLY\n"
                            "aws_secret_access_key = SECRETCFGONLY\n"
                            "aws_session_token = TOKENCFGONLY\n"
                            "[dev]\naws_access_key_id = AKIDWRONGSECTION\n");
    setenv("AWS_PROFILE", "dev", 1);
    /* Keys: the credentials file wins; region: only the config file counts. */
    CHECK_OK(creds_resolve(&c, &o, &err), &err);
    check_creds(&c, "AKIDCRED", "SECRETCRED", NULL);
    s3_credentials_free(&c);
    CHECK_STR(region = creds_region(&o), "eu-central-1");
    free(region);

    /* A profile only in the config file, named as "[profile NAME]". */
    setenv("AWS_PROFILE", "cfgonly", 1);
    CHECK_OK(creds_resolve(&c, &o, &err), &err);
    check_creds(&c, "AKIDCFGONLY", "SECRETCFGONLY", "TOKENCFGONLY");
    s3_credentials_free(&c);
    CHECK_STR(region = creds_region(&o), "us-east-1");
    free(region);

    /* The option beats AWS_PROFILE. */
    o.s3_profile = "dev";
    CHECK_OK(creds_resolve(&c, &o, &err), &err);
    check_creds(&c, "AKIDCRED", "SECRETCRED", NULL);
    s3_credentials_free(&c);

    /* Without a profile: "default", whose config section is plain [default]. */
    o.s3_profile = NULL;
    unsetenv("AWS_PROFILE");
    CHECK_STR(region = creds_region(&o), "ap-south-1");
    free(region);
}

static void
test_file_locations_from_env(void)
{
    struct repo_opts o;
    struct s3_credentials c;
    struct err err;
    char other_cred[600], other_config[600];
    char *region;

    reset(&o);
    snprintf(other_cred, sizeof(other_cred), "%s/elsewhere-credentials", home);
    snprintf(other_config, sizeof(other_config), "%s/elsewhere-config", home);
    write_file(cred_path, "[default]\naws_access_key_id = AKIDHOME\n"
                          "aws_secret_access_key = SECRETHOME\n");
    write_file(config_path, "[default]\nregion = eu-west-3\n");
    write_file(other_cred, "[default]\naws_access_key_id = AKIDELSEWHERE\n"
                           "aws_secret_access_key = SECRETELSEWHERE\n");
    write_file(other_config, "[profile default]\nregion = sa-east-1\n");
    setenv("AWS_SHARED_CREDENTIALS_FILE", other_cred, 1);
    setenv("AWS_CONFIG_FILE", other_config, 1);
    CHECK_OK(creds_resolve(&c, &o, &err), &err);
    check_creds(&c, "AKIDELSEWHERE", "SECRETELSEWHERE", NULL);
    s3_credentials_free(&c);
    /* "[profile default]" is accepted for the default profile too. */
    CHECK_STR(region = creds_region(&o), "sa-east-1");
    free(region);
    unlink(other_cred);
    unlink(other_config);
}

static void
test_missing_named_profile(void)
{
    struct repo_opts o;
    struct s3_credentials c;
    struct err err;
    char want[1400];

    reset(&o);
    write_file(cred_path, "[default]\naws_access_key_id = AKIDDEFAULT\n"
                          "aws_secret_access_key = SECRETDEFAULT\n");
    setenv("AWS_PROFILE", "prod", 1);
    snprintf(want, sizeof(want), "profile \"prod\" not found in \"%s\" or \"%s\"", cred_path,
             config_path);
    CHECK_FAIL(creds_resolve(&c, &o, &err), &err, ERR_AUTH, want);
    unsetenv("AWS_PROFILE");
    o.s3_profile = "prod";
    CHECK_FAIL(creds_resolve(&c, &o, &err), &err, ERR_AUTH, want);

    /* Named and present, but without static keys (say, an SSO profile). */
    write_file(config_path, "[profile prod]\nsso_session = corp\nregion = us-west-2\n");
    snprintf(want, sizeof(want),
             "profile \"prod\" has no aws_access_key_id and aws_secret_access_key in \"%s\" or "
             "\"%s\" (only static keys are supported)",
             cred_path, config_path);
    CHECK_FAIL(creds_resolve(&c, &o, &err), &err, ERR_AUTH, want);

    /* Half a pair in a profile. */
    write_file(cred_path, "[prod]\naws_access_key_id = AKIDPROD\n");
    snprintf(want, sizeof(want),
             "profile \"prod\" in \"%s\" needs both aws_access_key_id and aws_secret_access_key",
             cred_path);
    CHECK_FAIL(creds_resolve(&c, &o, &err), &err, ERR_CONFIG, want);
    check_no_secret(&err);
}

static void
test_nothing_found(void)
{
    struct repo_opts o;
    struct s3_credentials c;
    struct err err;

    reset(&o);
    CHECK_FAIL(creds_resolve(&c, &o, &err), &err, ERR_AUTH, NOT_FOUND_MSG);
    CHECK(c.access_key_id == NULL && c.secret_access_key == NULL);
    /* The default profile may exist without keys (just a region): not an error by itself. */
    write_file(config_path, "[default]\nregion = eu-west-1\n");
    CHECK_FAIL(creds_resolve(&c, &o, &err), &err, ERR_AUTH, NOT_FOUND_MSG);
    /* Naming "default" is like naming nothing: a missing default profile is no error. */
    setenv("AWS_PROFILE", "default", 1);
    CHECK_FAIL(creds_resolve(&c, &o, &err), &err, ERR_AUTH, NOT_FOUND_MSG);
    unsetenv("AWS_PROFILE");
    /* No HOME at all. */
    unsetenv("HOME");
    CHECK_FAIL(creds_resolve(&c, &o, &err), &err, ERR_AUTH, NOT_FOUND_MSG);
    setenv("HOME", home, 1);
}

static void
test_session_token(void)
{
    struct repo_opts o;
    struct s3_credentials c;
    struct err err;

    reset(&o);
    write_file(cred_path, "[default]\naws_access_key_id = AKIDT\naws_secret_access_key = SECRETT\n"
                          "aws_session_token = TOKEN/with+base64==\n");
    CHECK_OK(creds_resolve(&c, &o, &err), &err);
    check_creds(&c, "AKIDT", "SECRETT", "TOKEN/with+base64==");
    s3_credentials_free(&c);
    /* An empty token is no token. */
    write_file(cred_path, "[default]\naws_access_key_id = AKIDT\naws_secret_access_key = SECRETT\n"
                          "aws_session_token =\n");
    CHECK_OK(creds_resolve(&c, &o, &err), &err);
    check_creds(&c, "AKIDT", "SECRETT", NULL);
    s3_credentials_free(&c);
    o.s3_access_key_id = "AKIDO";
    o.s3_secret_access_key = "SECRETO";
    o.s3_session_token = "";
    CHECK_OK(creds_resolve(&c, &o, &err), &err);
    check_creds(&c, "AKIDO", "SECRETO", NULL);
    s3_credentials_free(&c);
}

static void
test_region_order(void)
{
    struct repo_opts o;
    char *r;

    reset(&o);
    CHECK_STR(r = creds_region(&o), "us-east-1");
    free(r);
    CHECK_STR(r = creds_region(NULL), "us-east-1");
    free(r);
    write_file(config_path, "[default]\nregion = eu-west-1\n[profile p]\nregion = eu-west-2\n");
    CHECK_STR(r = creds_region(&o), "eu-west-1");
    free(r);
    setenv("AWS_PROFILE", "p", 1);
    CHECK_STR(r = creds_region(&o), "eu-west-2");
    free(r);
    o.s3_profile = "default";
    CHECK_STR(r = creds_region(&o), "eu-west-1");
    free(r);
    setenv("AWS_DEFAULT_REGION", "ca-central-1", 1);
    CHECK_STR(r = creds_region(&o), "ca-central-1");
    free(r);
    setenv("AWS_REGION", "af-south-1", 1);
    CHECK_STR(r = creds_region(&o), "af-south-1");
    free(r);
    o.s3_region = "me-south-1";
    CHECK_STR(r = creds_region(&o), "me-south-1");
    free(r);
}

static void
test_ini_lookup(void)
{
    char path[600];
    char *v;

    snprintf(path, sizeof(path), "%s/test.ini", home);
    write_file(path, "top = level\n"
                     "[a]\n"
                     "k1 = v1\n"
                     "# k2 = commented\n"
                     "; k3 = commented\n"
                     "k4=  spaced value  \n"
                     "K5 = a=b=c\n"
                     "empty =\n"
                     "nested =\n"
                     "  inner = x\n"
                     "[  b c  ]\n"
                     "k1 = in b c\r\n"
                     "[a]\n"
                     "late = again\n"
                     "[c]\n"
                     "# a comment is not a key: the indented line below is one\n"
                     "  k6 = indented\n"
                     "[broken\n"
                     "k1 = nowhere\n");
    CHECK_STR(v = creds_ini_lookup(path, "a", "k1"), "v1");
    free(v);
    CHECK(creds_ini_lookup(path, "a", "k2") == NULL);
    CHECK(creds_ini_lookup(path, "a", "k3") == NULL);
    CHECK_STR(v = creds_ini_lookup(path, "a", "k4"), "spaced value");
    free(v);
    CHECK_STR(v = creds_ini_lookup(path, "a", "k5"), "a=b=c");
    free(v);
    CHECK_STR(v = creds_ini_lookup(path, "a", "empty"), "");
    free(v);
    CHECK(creds_ini_lookup(path, "a", "inner") == NULL);
    CHECK_STR(v = creds_ini_lookup(path, "b c", "k1"), "in b c");
    free(v);
    CHECK_STR(v = creds_ini_lookup(path, "a", "late"), "again");
    free(v);
    CHECK_STR(v = creds_ini_lookup(path, "c", "k6"), "indented");
    free(v);
    CHECK(creds_ini_lookup(path, "", "top") == NULL);
    CHECK(creds_ini_lookup(path, "A", "k1") == NULL);
    CHECK(creds_ini_lookup(path, "broken", "k1") == NULL);
    CHECK(creds_ini_lookup(path, "a", "missing") == NULL);
    CHECK(creds_ini_lookup("/nonexistent/ferry/file", "a", "k1") == NULL);
    write_file(path, "");
    CHECK(creds_ini_lookup(path, "a", "k1") == NULL);
    write_file(path, "[a]\nk1 = no final newline");
    CHECK_STR(v = creds_ini_lookup(path, "a", "k1"), "no final newline");
    free(v);
    unlink(path);
}

/* ---- IMDSv2 ---- */

#define IMDS_TOKEN "AQAEAFakeImdsSessionToken=="
#define IMDS_ROLE "ferry-test-role"

enum imds_mode {
    IMDS_OK,
    IMDS_PUT_FORBIDDEN, /* IMDS turned off for this instance */
    IMDS_NO_ROLE,       /* 404 on the role list */
    IMDS_BAD_JSON,      /* the keys document is malformed */
    IMDS_HANG,          /* accepts, never answers */
};

struct fake_imds {
    int listen_fd;
    int port;
    enum imds_mode mode;
    pthread_t thread;
    atomic_bool stop;
    /* read after pthread_join */
    int connections, puts, puts_with_ttl, gets_with_token, gets_without_token, unknown;
    char last_ttl[32];
};

static bool
header_value(const char *req, const char *name, char *out, size_t out_size)
{
    size_t name_len = strlen(name);

    for (const char *line = strstr(req, "\r\n"); line && line[2] && line[2] != '\r';
         line = strstr(line + 2, "\r\n")) {
        const char *h = line + 2;

        if (strncasecmp(h, name, name_len) == 0 && h[name_len] == ':') {
            const char *v = h + name_len + 1;
            const char *end = strstr(v, "\r\n");

            while (*v == ' ')
                v++;
            snprintf(out, out_size, "%.*s", (int)(end - v), v);
            return true;
        }
    }
    return false;
}

static void
respond(int fd, int status, const char *body)
{
    char head[256];
    const char *reason = status == 200   ? "OK"
                         : status == 401 ? "Unauthorized"
                         : status == 403 ? "Forbidden"
                                         : "Not Found";
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     status, reason, strlen(body));

    if (write(fd, head, (size_t)n) < 0 || write(fd, body, strlen(body)) < 0)
        return;
}

static void
imds_serve_one(struct fake_imds *s, int fd)
{
    char req[8192];
    size_t len = 0;
    char method[16], path[512], value[256];

    /* Read the request head (bodies are empty: PUT carries Content-Length: 0). */
    while (len < sizeof(req) - 1) {
        struct pollfd p = {fd, POLLIN, 0};

        if (poll(&p, 1, 2000) <= 0)
            return;
        ssize_t n = read(fd, req + len, sizeof(req) - 1 - len);
        if (n <= 0)
            return;
        len += (size_t)n;
        req[len] = '\0';
        if (strstr(req, "\r\n\r\n"))
            break;
    }
    if (sscanf(req, "%15s %511s", method, path) != 2)
        return;
    if (s->mode == IMDS_HANG) {
        while (!atomic_load(&s->stop))
            usleep(20000);
        return;
    }
    if (strcmp(method, "PUT") == 0 && strcmp(path, "/latest/api/token") == 0) {
        s->puts++;
        if (header_value(req, "X-aws-ec2-metadata-token-ttl-seconds", value, sizeof(value))) {
            s->puts_with_ttl++;
            snprintf(s->last_ttl, sizeof(s->last_ttl), "%.31s", value);
            if (s->mode == IMDS_PUT_FORBIDDEN)
                respond(fd, 403, "");
            else
                respond(fd, 200, IMDS_TOKEN);
        } else {
            respond(fd, 400, "missing ttl");
        }
        return;
    }
    if (strcmp(method, "GET") != 0) {
        s->unknown++;
        respond(fd, 404, "");
        return;
    }
    if (!header_value(req, "X-aws-ec2-metadata-token", value, sizeof(value)) ||
        strcmp(value, IMDS_TOKEN) != 0) {
        s->gets_without_token++;
        respond(fd, 401, "");
        return;
    }
    s->gets_with_token++;
    if (strcmp(path, "/latest/meta-data/iam/security-credentials/") == 0) {
        if (s->mode == IMDS_NO_ROLE)
            respond(fd, 404, "");
        else
            respond(fd, 200, IMDS_ROLE "\nsecond-role\n");
    } else if (strcmp(path, "/latest/meta-data/iam/security-credentials/" IMDS_ROLE) == 0) {
        if (s->mode == IMDS_BAD_JSON)
            respond(fd, 200,
                    "{\"Code\":\"Success\",\"AccessKeyId\":\"ASIAIMDS\","
                    "\"SecretAccessKey\":\"imds-session-secret\",\"Expiration\":\"soon\"}");
        else
            respond(fd, 200,
                    "{\n  \"Code\" : \"Success\",\n  \"LastUpdated\" : \"2026-11-25T14:00:00Z\",\n"
                    "  \"Type\" : \"AWS-HMAC\",\n  \"AccessKeyId\" : \"ASIAIMDSEXAMPLE\",\n"
                    "  \"SecretAccessKey\" : \"imds/secret+KEY\",\n"
                    "  \"Token\" : \"imds-session-token==\",\n"
                    "  \"Expiration\" : \"2026-11-25T20:00:00Z\"\n}");
    } else {
        s->unknown++;
        respond(fd, 404, "");
    }
}

static void *
imds_thread(void *arg)
{
    struct fake_imds *s = arg;

    while (!atomic_load(&s->stop)) {
        struct pollfd p = {s->listen_fd, POLLIN, 0};

        if (poll(&p, 1, 50) <= 0)
            continue;
        int fd = accept(s->listen_fd, NULL, NULL);
        if (fd < 0)
            continue;
        s->connections++;
        imds_serve_one(s, fd);
        close(fd);
    }
    return NULL;
}

static int
listen_loopback(int *port)
{
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0; /* a free port */
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 16) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &alen) < 0) {
        printf("# cannot listen on 127.0.0.1\n");
        check_cur_failed = 1;
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

static void
imds_start(struct fake_imds *s, enum imds_mode mode)
{
    memset(s, 0, sizeof(*s));
    s->mode = mode;
    atomic_init(&s->stop, false);
    s->listen_fd = listen_loopback(&s->port);
    if (s->listen_fd >= 0)
        pthread_create(&s->thread, NULL, imds_thread, s);
}

static void
imds_stop(struct fake_imds *s)
{
    if (s->listen_fd < 0)
        return;
    atomic_store(&s->stop, true);
    pthread_join(s->thread, NULL);
    close(s->listen_fd);
}

static double
elapsed_since(const struct timespec *t0)
{
    struct timespec t1;

    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

static void
test_imds_v2(void)
{
    struct repo_opts o;
    struct s3_credentials c;
    struct err err;
    struct fake_imds s;
    char endpoint[64];
    struct tm tm = {.tm_year = 2026 - 1900, .tm_mon = 10, .tm_mday = 25, .tm_hour = 20};

    reset(&o);
    unsetenv("AWS_EC2_METADATA_DISABLED");
    /* A proxy in the environment must not be used for instance metadata. */
    setenv("http_proxy", "http://127.0.0.1:9", 1);
    setenv("HTTP_PROXY", "http://127.0.0.1:9", 1);
    setenv("ALL_PROXY", "http://127.0.0.1:9", 1);
    imds_start(&s, IMDS_OK);
    snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d", s.port);
    o.imds_endpoint = endpoint;
    CHECK_OK(creds_resolve(&c, &o, &err), &err);
    imds_stop(&s);
    check_creds(&c, "ASIAIMDSEXAMPLE", "imds/secret+KEY", "imds-session-token==");
    CHECK_INT(c.expiration, timegm(&tm));
    CHECK_INT(c.expiration, 1795636800);
    s3_credentials_free(&c);
    /* One token PUT with the TTL, then role list and keys, both with the token. */
    CHECK_INT(s.puts, 1);
    CHECK_INT(s.puts_with_ttl, 1);
    CHECK_STR(s.last_ttl, "21600");
    CHECK_INT(s.gets_with_token, 2);
    CHECK_INT(s.gets_without_token, 0);
    CHECK_INT(s.unknown, 0);
}

static void
test_imds_endpoint_from_env(void)
{
    struct repo_opts o;
    struct s3_credentials c;
    struct err err;
    struct fake_imds s;
    char endpoint[64];

    reset(&o);
    unsetenv("AWS_EC2_METADATA_DISABLED");
    imds_start(&s, IMDS_OK);
    snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d/", s.port);
    setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", endpoint, 1);
    CHECK_OK(creds_resolve(&c, &o, &err), &err);
    imds_stop(&s);
    check_creds(&c, "ASIAIMDSEXAMPLE", "imds/secret+KEY", "imds-session-token==");
    CHECK_INT(s.gets_with_token, 2);
    s3_credentials_free(&c);

    /* The option beats the variable: a closed port in the option means failure. */
    imds_start(&s, IMDS_OK);
    snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d", s.port);
    setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", endpoint, 1);
    o.imds_endpoint = "http://127.0.0.1:1";
    CHECK_FAIL(creds_resolve(&c, &o, &err), &err, ERR_AUTH, NOT_FOUND_MSG);
    imds_stop(&s);
    CHECK_INT(s.connections, 0);
}

static void
test_imds_disabled(void)
{
    struct repo_opts o;
    struct s3_credentials c;
    struct err err;
    struct fake_imds s;
    char endpoint[64];

    reset(&o);
    imds_start(&s, IMDS_OK);
    snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d", s.port);
    o.imds_endpoint = endpoint;
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    CHECK_FAIL(creds_resolve(&c, &o, &err), &err, ERR_AUTH, NOT_FOUND_MSG);
    setenv("AWS_EC2_METADATA_DISABLED", "TRUE", 1);
    CHECK_FAIL(creds_resolve(&c, &o, &err), &err, ERR_AUTH, NOT_FOUND_MSG);
    unsetenv("AWS_EC2_METADATA_DISABLED");
    o.imds_disabled = true;
    CHECK_FAIL(creds_resolve(&c, &o, &err), &err, ERR_AUTH, NOT_FOUND_MSG);
    /* Not "true": metadata is asked. */
    o.imds_disabled = false;
    setenv("AWS_EC2_METADATA_DISABLED", "false", 1);
    CHECK_OK(creds_resolve(&c, &o, &err), &err);
    s3_credentials_free(&c);
    imds_stop(&s);
    CHECK_INT(s.connections, 3);
    CHECK_INT(s.puts, 1);

    /* Files come before instance metadata. */
    reset(&o);
    unsetenv("AWS_EC2_METADATA_DISABLED");
    imds_start(&s, IMDS_OK);
    snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d", s.port);
    o.imds_endpoint = endpoint;
    write_file(cred_path,
               "[default]\naws_access_key_id = AKIDF\naws_secret_access_key = SECRETF\n");
    CHECK_OK(creds_resolve(&c, &o, &err), &err);
    check_creds(&c, "AKIDF", "SECRETF", NULL);
    s3_credentials_free(&c);
    imds_stop(&s);
    CHECK_INT(s.connections, 0);
}

static void
test_imds_failures(void)
{
    static const enum imds_mode modes[] = {IMDS_PUT_FORBIDDEN, IMDS_NO_ROLE, IMDS_BAD_JSON};
    struct repo_opts o;
    struct s3_credentials c;
    struct err err;
    struct fake_imds s;
    char endpoint[64];

    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        reset(&o);
        unsetenv("AWS_EC2_METADATA_DISABLED");
        imds_start(&s, modes[i]);
        snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d", s.port);
        o.imds_endpoint = endpoint;
        if (modes[i] == IMDS_BAD_JSON)
            CHECK_FAIL(creds_resolve(&c, &o, &err), &err, ERR_AUTH,
                       "instance metadata returned unusable credentials for role \"" IMDS_ROLE
                       "\"");
        else
            CHECK_FAIL(creds_resolve(&c, &o, &err), &err, ERR_AUTH, NOT_FOUND_MSG);
        check_no_secret(&err);
        CHECK(c.access_key_id == NULL && c.secret_access_key == NULL && c.session_token == NULL);
        imds_stop(&s);
        CHECK_INT(s.puts, 1);
        CHECK_INT(s.gets_without_token, 0);
        /* Forbidden token: nothing else asked. */
        CHECK_INT(s.gets_with_token, modes[i] == IMDS_PUT_FORBIDDEN ? 0
                                     : modes[i] == IMDS_NO_ROLE     ? 1
                                                                    : 2);
    }
}

static void
test_imds_unreachable(void)
{
    struct repo_opts o;
    struct s3_credentials c;
    struct err err;
    char endpoint[64];
    struct timespec t0;
    int port = 0;
    int fd;

    reset(&o);
    unsetenv("AWS_EC2_METADATA_DISABLED");
    /* A port that was free a moment ago and is closed now: connection refused. */
    fd = listen_loopback(&port);
    if (fd >= 0)
        close(fd);
    snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d", port);
    o.imds_endpoint = endpoint;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK_FAIL(creds_resolve(&c, &o, &err), &err, ERR_AUTH, NOT_FOUND_MSG);
    CHECK(elapsed_since(&t0) < 3.5);
}

static void
test_imds_hang(void)
{
    struct repo_opts o;
    struct s3_credentials c;
    struct err err;
    struct fake_imds s;
    char endpoint[64];
    struct timespec t0;
    double t;

    reset(&o);
    unsetenv("AWS_EC2_METADATA_DISABLED");
    imds_start(&s, IMDS_HANG);
    snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d", s.port);
    o.imds_endpoint = endpoint;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK_FAIL(creds_resolve(&c, &o, &err), &err, ERR_AUTH, NOT_FOUND_MSG);
    t = elapsed_since(&t0);
    imds_stop(&s);
    /* A server that accepts and never answers costs the 3 s budget, no more. */
    if (t < 2.5 || t > 4.0) {
        printf("# gave up after %.2f s, want about 3 s\n", t);
        check_cur_failed = 1;
    }
    CHECK_INT(s.connections, 1);
}

int
main(void)
{
    char tmpl[] = "/tmp/ferry-test-creds-XXXXXX";
    char aws_dir[400];

    if (!mkdtemp(tmpl)) {
        printf("Bail out! cannot create a temporary directory\n");
        return 1;
    }
    snprintf(home, sizeof(home), "%s", tmpl);
    snprintf(aws_dir, sizeof(aws_dir), "%s/.aws", home);
    mkdir(aws_dir, 0700);
    snprintf(cred_path, sizeof(cred_path), "%s/credentials", aws_dir);
    snprintf(config_path, sizeof(config_path), "%s/config", aws_dir);

    RUN(test_opts_over_env);
    RUN(test_env_over_files);
    RUN(test_default_profile);
    RUN(test_profiles_from_both_files);
    RUN(test_file_locations_from_env);
    RUN(test_missing_named_profile);
    RUN(test_nothing_found);
    RUN(test_session_token);
    RUN(test_region_order);
    RUN(test_ini_lookup);
    RUN(test_imds_v2);
    RUN(test_imds_endpoint_from_env);
    RUN(test_imds_disabled);
    RUN(test_imds_failures);
    RUN(test_imds_unreachable);
    RUN(test_imds_hang);

    unlink(cred_path);
    unlink(config_path);
    rmdir(aws_dir);
    rmdir(home);
    return check_done();
}
