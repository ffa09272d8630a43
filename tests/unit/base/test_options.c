/* SPDX-License-Identifier: MIT */
/* Unit tests for base/options: sources and their precedence, syntax, numbers, secrets. */
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/config.h"
#include "base/log.h"
#include "base/options.h"
#include "base/xmalloc.h"
#include "check.h"

static const struct opt_def test_table[] = {
    {"long", 'l', OPT_BOOL, 0, NULL, "long listing"},
    {"delimiter", 'd', OPT_STRING, 0, "SEP", "group keys"},
    {"count", 'n', OPT_INT, 0, "N", "how many"},
    {"flag-default-on", 0, OPT_BOOL, 0, NULL, "on unless --no-flag-default-on"},
    {"token", 0, OPT_STRING, OPT_SECRET, "T", "a secret"},
    {"local-only", 0, OPT_STRING, OPT_NO_ENV, "X", "not from the environment"},
    OPT_END,
};
static const struct opt_def *const tables[] = {opts_common, test_table, NULL};

static char tmpdir[64];

static char *
write_file(const char *name, int mode, const char *text)
{
    char *path = xasprintf("%s/%s", tmpdir, name);
    int fd;

    unlink(path);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
        printf("# could not write %s\n", path);
    if (fd >= 0) {
        fchmod(fd, (mode_t)mode);
        close(fd);
    }
    return path;
}

/* argv built from a NULL-terminated list, in writable memory (parsing may scrub it). */
struct argv {
    int argc;
    char *argv[32];
};

static struct argv *
mkargv(const char *first, ...)
{
    struct argv *a = xcalloc(1, sizeof(*a));
    va_list ap;
    const char *s = first;

    va_start(ap, first);
    while (s && a->argc < 31) {
        a->argv[a->argc++] = xstrdup(s);
        s = va_arg(ap, const char *);
    }
    va_end(ap);
    return a;
}

static void
argv_free(struct argv *a)
{
    for (int i = 0; i < a->argc; i++)
        free(a->argv[i]);
    free(a);
}

static void
clean_env(void)
{
    unsetenv("FERRY_REPO");
    unsetenv("FERRY_CONFIG");
    unsetenv("FERRY_COUNT");
    unsetenv("FERRY_LONG");
    unsetenv("FERRY_TOKEN");
    unsetenv("FERRY_LOCAL_ONLY");
    unsetenv("FERRY_S3_REGION");
    unsetenv("FERRY_S3_PART_SIZE");
    unsetenv("FERRY_LOG_LEVEL");
    unsetenv("FERRY_ENCRYPTION_PASSPHRASE");
    config_default_path = "/nonexistent/ferry-test.conf";
    log_set_level(LOG_NOTICE);
}

static struct opts *
parse_ok(struct argv *a)
{
    struct opts *o = NULL;
    struct err err;

    err_clear(&err);
    CHECK_OK(opts_parse(&o, tables, a->argc, a->argv, &err), &err);
    return o;
}

static void
expect_fail(struct argv *a, enum err_kind kind, const char *msg)
{
    struct opts *o = NULL;
    struct err err;

    CHECK_FAIL(opts_parse(&o, tables, a->argc, a->argv, &err), &err, kind, msg);
    CHECK(o == NULL);
    argv_free(a);
}

static void
test_precedence_flag_env_file(void)
{
    char *conf;
    struct argv *a;
    struct opts *o;

    clean_env();
    conf = write_file("p.conf", 0644,
                      "repo = file:///from-file\ns3-region = file-region\ncount = 3\n");
    setenv("FERRY_CONFIG", conf, 1);
    setenv("FERRY_REPO", "file:///from-env", 1);
    setenv("FERRY_S3_REGION", "env-region", 1);
    a = mkargv("prog", "--repo", "file:///from-flag", NULL);
    o = parse_ok(a);
    if (o) {
        CHECK_STR(opts_get(o, "repo"), "file:///from-flag");
        CHECK_STR(opts_source(o, "repo"), "command line");
        CHECK_STR(opts_get(o, "s3-region"), "env-region");
        CHECK_STR(opts_source(o, "s3-region"), "environment (FERRY_S3_REGION)");
        CHECK_STR(opts_get(o, "count"), "3");
        char *want = xasprintf("config file (%s:3)", conf);
        CHECK_STR(opts_source(o, "count"), want);
        free(want);
        CHECK(opts_get(o, "delimiter") == NULL);
        CHECK_STR(opts_source(o, "delimiter"), "default");
        CHECK_STR(opts_source(o, "config"), "environment (FERRY_CONFIG)");
    }
    opts_free(o);
    argv_free(a);
    free(conf);
    clean_env();
}

static void
test_flag_forms_and_args(void)
{
    struct argv *a;
    struct opts *o;
    char **args;
    int n;

    clean_env();
    a = mkargv("prog", "ls", "--delimiter=/", "-n", "7", "x", "-l", "--", "--repo", "-", NULL);
    o = parse_ok(a);
    if (o) {
        CHECK_STR(opts_get(o, "delimiter"), "/");
        CHECK_STR(opts_get(o, "count"), "7");
        CHECK(opts_get_bool(o, "long", false));
        CHECK(opts_get(o, "repo") == NULL);
        args = opts_args(o, &n);
        CHECK_INT(n, 4);
        if (n == 4) {
            CHECK_STR(args[0], "ls");
            CHECK_STR(args[1], "x");
            CHECK_STR(args[2], "--repo");
            CHECK_STR(args[3], "-");
        }
    }
    opts_free(o);
    argv_free(a);

    a = mkargv("prog", "--delimiter", "=", "-d", ":", "-n5", NULL);
    o = parse_ok(a);
    if (o) {
        CHECK_STR(opts_get(o, "delimiter"), ":"); /* the last one wins */
        CHECK_STR(opts_get(o, "count"), "5");
    }
    opts_free(o);
    argv_free(a);
}

static void
test_bools(void)
{
    struct argv *a;
    struct opts *o;

    clean_env();
    a = mkargv("prog", "--no-flag-default-on", "--no-long", NULL);
    o = parse_ok(a);
    if (o) {
        CHECK(!opts_get_bool(o, "flag-default-on", true));
        CHECK(!opts_get_bool(o, "long", true));
        CHECK(opts_get_bool(o, "s3-no-verify-tls", true)); /* unset: the default */
        CHECK(!opts_get_bool(o, "s3-no-verify-tls", false));
    }
    opts_free(o);
    argv_free(a);

    a = mkargv("prog", "--long=no", "--flag-default-on", NULL);
    o = parse_ok(a);
    if (o) {
        CHECK(!opts_get_bool(o, "long", true));
        CHECK(opts_get_bool(o, "flag-default-on", false));
    }
    opts_free(o);
    argv_free(a);

    setenv("FERRY_LONG", "on", 1);
    a = mkargv("prog", NULL);
    o = parse_ok(a);
    if (o)
        CHECK(opts_get_bool(o, "long", false));
    opts_free(o);
    argv_free(a);

    setenv("FERRY_LONG", "maybe", 1);
    expect_fail(mkargv("prog", NULL), ERR_CONFIG,
                "invalid value \"maybe\" for \"FERRY_LONG\": expected true or false");
    clean_env();
    expect_fail(mkargv("prog", "--long=maybe", NULL), ERR_USAGE,
                "invalid value \"maybe\" for \"--long\": expected true or false");
    expect_fail(mkargv("prog", "--no-repo", NULL), ERR_USAGE, "unknown option \"--no-repo\"");
    expect_fail(mkargv("prog", "--no-long=1", NULL), ERR_USAGE, "unknown option \"--no-long\"");
}

static void
test_unknown_and_missing_value(void)
{
    clean_env();
    expect_fail(mkargv("prog", "--frobnicate", NULL), ERR_USAGE, "unknown option \"--frobnicate\"");
    expect_fail(mkargv("prog", "--frobnicate=3", NULL), ERR_USAGE,
                "unknown option \"--frobnicate\"");
    expect_fail(mkargv("prog", "-lz", NULL), ERR_USAGE, "unknown option \"-z\"");
    expect_fail(mkargv("prog", "ls", "--repo", NULL), ERR_USAGE,
                "option \"--repo\" requires a value");
    expect_fail(mkargv("prog", "-d", NULL), ERR_USAGE, "option \"-d\" requires a value");
    expect_fail(mkargv("prog", "--count", "x1", NULL), ERR_USAGE,
                "invalid value \"x1\" for \"--count\": expected an integer");
    expect_fail(mkargv("prog", "--count= 1", NULL), ERR_USAGE,
                "invalid value \" 1\" for \"--count\": expected an integer");
    expect_fail(mkargv("prog", "--count=99999999999999999999", NULL), ERR_USAGE,
                "invalid value \"99999999999999999999\" for \"--count\": expected an integer");
}

static void
test_sizes(void)
{
    static const struct {
        const char *in;
        unsigned long long want;
    } ok[] = {
        {"0", 0},
        {"512", 512},
        {"64K", 65536},
        {"64k", 65536},
        {"16M", 16ull << 20},
        {"16MiB", 16ull << 20},
        {"16MB", 16ull << 20},
        {"1G", 1ull << 30},
        {"2T", 2ull << 40},
        {"100B", 100},
    };
    static const char *const bad[] = {"", "M", "1.5M", "-1", "1X", "1MM", "16 M", "99999999999T"};
    struct err err;

    clean_env();
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        struct argv *a = mkargv("prog", "--s3-part-size", ok[i].in, NULL);
        struct opts *o = parse_ok(a);
        unsigned long long v = 1;

        if (o) {
            err_clear(&err);
            CHECK_OK(opts_get_size(o, "s3-part-size", 7, &v, &err), &err);
            CHECK_INT(v, ok[i].want);
        }
        opts_free(o);
        argv_free(a);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *msg = xasprintf("invalid value \"%s\" for \"--s3-part-size\": expected a size such "
                              "as 512, 64K, 16M or 1G",
                              bad[i]);

        expect_fail(mkargv("prog", "--s3-part-size", bad[i], NULL), ERR_USAGE, msg);
        free(msg);
    }
    {
        struct argv *a = mkargv("prog", NULL);
        struct opts *o = parse_ok(a);
        unsigned long long v = 1;

        if (o) {
            CHECK_OK(opts_get_size(o, "s3-part-size", 7, &v, &err), &err);
            CHECK_INT(v, 7);
        }
        opts_free(o);
        argv_free(a);
    }
    setenv("FERRY_S3_PART_SIZE", "lots", 1);
    expect_fail(mkargv("prog", NULL), ERR_CONFIG,
                "invalid value \"lots\" for \"FERRY_S3_PART_SIZE\": expected a size such as 512, "
                "64K, 16M or 1G");
    clean_env();
}

static void
test_int_ranges(void)
{
    struct argv *a;
    struct opts *o;
    struct err err;
    long v = 0;

    clean_env();
    a = mkargv("prog", "--count", "65", "--s3-parallel=-3", NULL);
    o = parse_ok(a);
    if (o) {
        CHECK_FAIL(opts_get_int(o, "count", 4, 1, 64, &v, &err), &err, ERR_USAGE,
                   "invalid value \"65\" for \"--count\": must be between 1 and 64");
        CHECK_OK(opts_get_int(o, "count", 4, 1, 65, &v, &err), &err);
        CHECK_INT(v, 65);
        CHECK_OK(opts_get_int(o, "s3-parallel", 4, -3, 64, &v, &err), &err);
        CHECK_INT(v, -3);
        CHECK_OK(opts_get_int(o, "s3-retries", 4, 0, 100, &v, &err), &err);
        CHECK_INT(v, 4);
    }
    opts_free(o);
    argv_free(a);

    setenv("FERRY_COUNT", "0", 1);
    a = mkargv("prog", NULL);
    o = parse_ok(a);
    if (o)
        CHECK_FAIL(opts_get_int(o, "count", 4, 1, 64, &v, &err), &err, ERR_USAGE,
                   "invalid value \"0\" for \"FERRY_COUNT\": must be between 1 and 64");
    opts_free(o);
    argv_free(a);
    clean_env();
}

static void
test_secret_flags_are_scrubbed_from_argv(void)
{
    struct argv *a;
    struct opts *o;
    const char *want = "--encryption-passphrase=";

    clean_env();
    log_set_level(LOG_ERROR); /* the warning is expected; keep the TAP output clean */
    a = mkargv("prog", "--encryption-passphrase=hunter2", "--token", "s3cr3t", "--repo", "r", NULL);
    o = parse_ok(a);
    if (o) {
        CHECK_STR(opts_get(o, "encryption-passphrase"), "hunter2");
        CHECK_STR(opts_get(o, "token"), "s3cr3t");
        /* the option names stay, the values are zeroed in place */
        CHECK(memcmp(a->argv[1], want, strlen(want)) == 0);
        CHECK(memcmp(a->argv[1] + strlen(want), "\0\0\0\0\0\0\0", 7) == 0);
        CHECK_STR(a->argv[2], "--token");
        CHECK(memcmp(a->argv[3], "\0\0\0\0\0\0", 6) == 0);
        CHECK_STR(a->argv[5], "r");
    }
    opts_free(o);
    argv_free(a);
    clean_env();
}

static void
test_config_file_with_secret_must_be_private(void)
{
    char *conf, *msg;
    struct argv *a;
    struct opts *o;

    clean_env();
    conf = write_file("s.conf", 0644, "repo = file:///r\nencryption-passphrase = pw\n");
    msg = xasprintf("config file \"%s\" holds secrets and must not be accessible by group or "
                    "others (mode 0644): run chmod 600 \"%s\"",
                    conf, conf);
    expect_fail(mkargv("prog", "--config", conf, NULL), ERR_CONFIG, msg);
    free(msg);
    chmod(conf, 0640);
    msg = xasprintf("config file \"%s\" holds secrets and must not be accessible by group or "
                    "others (mode 0640): run chmod 600 \"%s\"",
                    conf, conf);
    setenv("FERRY_CONFIG", conf, 1);
    expect_fail(mkargv("prog", NULL), ERR_CONFIG, msg);
    free(msg);
    chmod(conf, 0600);
    a = mkargv("prog", NULL);
    o = parse_ok(a);
    if (o)
        CHECK_STR(opts_get(o, "encryption-passphrase"), "pw");
    opts_free(o);
    argv_free(a);
    free(conf);

    /* without a secret any mode is fine */
    conf = write_file("n.conf", 0644, "repo = file:///r\n");
    setenv("FERRY_CONFIG", conf, 1);
    a = mkargv("prog", NULL);
    o = parse_ok(a);
    if (o)
        CHECK_STR(opts_get(o, "repo"), "file:///r");
    opts_free(o);
    argv_free(a);
    free(conf);
    clean_env();
}

static void
test_config_file_errors(void)
{
    char *conf, *msg;

    clean_env();
    conf = write_file("u.conf", 0600, "repo = x\n\n# c\nrepo-url = y\n");
    msg = xasprintf("unknown option \"repo-url\" in \"%s\" line 4 (an option of one program "
                    "goes in its section, e.g. [wal-push])",
                    conf);
    expect_fail(mkargv("prog", "--config", conf, NULL), ERR_CONFIG, msg);
    free(msg);
    free(conf);

    /* sections: another program's options are skipped, this program's win over common lines */
    struct opts *so;
    struct argv *sa;
    conf = write_file("s.conf", 0600,
                      "repo = file:///common\n[other]\nnot-ours = 1\n[prog]\nrepo = file:///own\n");
    opts_set_section("prog");
    sa = mkargv("prog", "--config", conf, NULL);
    so = parse_ok(sa);
    CHECK_STR(so ? opts_get(so, "repo") : NULL, "file:///own");
    opts_free(so);
    argv_free(sa);
    opts_set_section("else");
    sa = mkargv("prog", "--config", conf, NULL);
    so = parse_ok(sa);
    CHECK_STR(so ? opts_get(so, "repo") : NULL, "file:///common");
    opts_free(so);
    argv_free(sa);
    opts_set_section(NULL);
    free(conf);
    conf = write_file("t.conf", 0600, "[prog]\nnot-ours = 1\n");
    opts_set_section("prog");
    msg = xasprintf("unknown option \"not-ours\" in \"%s\" line 2", conf);
    expect_fail(mkargv("prog", "--config", conf, NULL), ERR_CONFIG, msg);
    opts_set_section(NULL);
    free(msg);
    free(conf);

    conf = write_file("c.conf", 0600, "config = /other\n");
    msg = xasprintf("option \"config\" is not allowed in \"%s\" line 1", conf);
    expect_fail(mkargv("prog", "--config", conf, NULL), ERR_CONFIG, msg);
    free(msg);
    free(conf);

    /* overridden by a flag, a bad value in the file is still an error */
    conf = write_file("b.conf", 0600, "count = many\n");
    msg = xasprintf("invalid value \"many\" for \"count\" in \"%s\" line 1: expected an integer",
                    conf);
    expect_fail(mkargv("prog", "--config", conf, "--count", "2", NULL), ERR_CONFIG, msg);
    free(msg);
    free(conf);

    conf = write_file("x.conf", 0600, "repo\n");
    msg = xasprintf("syntax error in \"%s\" line 1: expected \"name = value\"", conf);
    expect_fail(mkargv("prog", "--config", conf, NULL), ERR_CONFIG, msg);
    free(msg);
    free(conf);

    conf = xasprintf("%s/missing.conf", tmpdir);
    msg = xasprintf("could not open config file \"%s\": No such file or directory", conf);
    expect_fail(mkargv("prog", "--config", conf, NULL), ERR_CONFIG, msg);
    setenv("FERRY_CONFIG", conf, 1);
    expect_fail(mkargv("prog", NULL), ERR_CONFIG, msg);
    free(msg);
    free(conf);
    clean_env();

    /* /dev/null: no config file at all */
    {
        struct argv *a = mkargv("prog", "--config", "/dev/null", NULL);
        struct opts *o = parse_ok(a);

        if (o)
            CHECK_STR(opts_source(o, "config"), "command line");
        opts_free(o);
        argv_free(a);
    }
    /* the default file may be missing */
    {
        struct argv *a = mkargv("prog", NULL);
        struct opts *o = parse_ok(a);

        opts_free(o);
        argv_free(a);
    }
    /* the default file is read when present */
    conf = write_file("default.conf", 0600, "s3-region = default-file\n");
    config_default_path = conf;
    {
        struct argv *a = mkargv("prog", NULL);
        struct opts *o = parse_ok(a);

        if (o)
            CHECK_STR(opts_get(o, "s3-region"), "default-file");
        opts_free(o);
        argv_free(a);
    }
    free(conf);
    clean_env();
}

static void
test_no_env_option(void)
{
    struct argv *a;
    struct opts *o;

    clean_env();
    setenv("FERRY_LOCAL_ONLY", "from-env", 1);
    setenv("FERRY_REPO", "", 1); /* empty counts as unset */
    a = mkargv("prog", NULL);
    o = parse_ok(a);
    if (o) {
        CHECK(opts_get(o, "local-only") == NULL);
        CHECK(opts_get(o, "repo") == NULL);
    }
    opts_free(o);
    argv_free(a);
    clean_env();
}

static void
test_help_version_and_log_level(void)
{
    struct argv *a;
    struct opts *o;

    clean_env();
    setenv("FERRY_COUNT", "broken", 1); /* --help works regardless */
    a = mkargv("prog", "--help", NULL);
    o = parse_ok(a);
    if (o) {
        CHECK(opts_is_help(o));
        CHECK(!opts_is_version(o));
    }
    opts_free(o);
    argv_free(a);
    a = mkargv("prog", "--version", NULL);
    o = parse_ok(a);
    if (o)
        CHECK(opts_is_version(o));
    opts_free(o);
    argv_free(a);
    clean_env();

    a = mkargv("prog", "--log-level", "debug", NULL);
    o = parse_ok(a);
    CHECK_INT(log_get_level(), LOG_DEBUG);
    opts_free(o);
    argv_free(a);
    setenv("FERRY_LOG_LEVEL", "warning", 1);
    a = mkargv("prog", NULL);
    o = parse_ok(a);
    CHECK_INT(log_get_level(), LOG_WARNING);
    opts_free(o);
    argv_free(a);
    expect_fail(mkargv("prog", "--log-level=loud", NULL), ERR_USAGE,
                "invalid value \"loud\" for \"--log-level\": expected error, warning, notice, "
                "info or debug");
    clean_env();
}

static void
test_help_lists_every_option(void)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    opts_print_help(f, tables);
    fclose(f);
    CHECK(strstr(text, "  -l, --long ") != NULL);
    CHECK(strstr(text, "      --repo URL ") != NULL);
    CHECK(strstr(text, "      --s3-sse-customer-key-file FILE") != NULL);
    CHECK(strstr(text, "  -h, --help ") != NULL);
    for (const struct opt_def *d = opts_common; d->name; d++) {
        char *needle = xasprintf("--%s", d->name);

        CHECK(strstr(text, needle) != NULL);
        free(needle);
    }
    free(text);
}

int
main(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/ferry-test-options-XXXXXX");
    if (!mkdtemp(tmpdir))
        return 1;
    RUN(test_precedence_flag_env_file);
    RUN(test_flag_forms_and_args);
    RUN(test_bools);
    RUN(test_unknown_and_missing_value);
    RUN(test_sizes);
    RUN(test_int_ranges);
    RUN(test_secret_flags_are_scrubbed_from_argv);
    RUN(test_config_file_with_secret_must_be_private);
    RUN(test_config_file_errors);
    RUN(test_no_env_option);
    RUN(test_help_version_and_log_level);
    RUN(test_help_lists_every_option);
    {
        char *cmd = xasprintf("rm -rf %s", tmpdir);

        if (system(cmd) != 0)
            printf("# could not remove %s\n", tmpdir);
        free(cmd);
    }
    return check_done();
}
