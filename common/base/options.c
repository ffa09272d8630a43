/* SPDX-License-Identifier: MIT */
/*
 * Options from three sources, resolved once in opts_parse(): the command line
 * wins over the environment (FERRY_FOO_BAR), which wins over the config file
 * ("foo-bar = ..."). Every value remembers where it came from, so messages
 * and opts_source() can say which of the three to fix. Secrets: scrubbed
 * from argv after copying, wiped from memory at opts_free(), refused from a
 * config file that others could read.
 */
#include "base/options.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/config.h"
#include "base/log.h"
#include "base/xmalloc.h"

/* A config file is small; anything bigger is a mistake (or not a config file). */
#define CONFIG_MAX_BYTES (1024 * 1024)

enum opt_src { SRC_DEFAULT = 0, SRC_FLAG, SRC_ENV, SRC_FILE };

struct opt_val {
    const struct opt_def *def;
    char *value; /* NULL = unset */
    enum opt_src src;
    char *source; /* for opts_source(): "command line", "environment (FERRY_X)", ... */
    char *where;  /* for messages: "--x", "FERRY_X", "x" in "FILE" line N */
};

struct opts {
    struct opt_val *vals;
    size_t n;
    char **args;
    int n_args;
    bool help;
    bool version;
};

static const char *opts_section;

void
opts_set_section(const char *name)
{
    opts_section = name;
}

const struct opt_def opts_common[] = {
    {"repo", 0, OPT_STRING, 0, "URL", "repository: s3://bucket/prefix or file:///path"},
    {"config", 0, OPT_STRING, OPT_NO_FILE, "FILE", "config file (default /etc/ferry.conf)"},
    {"log-level", 0, OPT_STRING, 0, "LEVEL", "error, warning, notice (default), info or debug"},
    {"s3-endpoint", 0, OPT_STRING, 0, "URL",
     "S3 endpoint, e.g. https://minio:9000 (else AWS_ENDPOINT_URL; default AWS)"},
    {"s3-region", 0, OPT_STRING, 0, "REGION", "S3 region (else AWS_REGION; default us-east-1)"},
    {"s3-uri-style", 0, OPT_STRING, 0, "STYLE",
     "path or host (default host for AWS, path for a custom endpoint)"},
    {"s3-ca-file", 0, OPT_STRING, 0, "FILE", "CA bundle to verify the S3 server"},
    {"s3-ca-path", 0, OPT_STRING, 0, "DIR", "CA directory to verify the S3 server"},
    {"s3-no-verify-tls", 0, OPT_BOOL, 0, NULL,
     "do not verify the S3 server's certificate (tests only)"},
    {"s3-access-key-id", 0, OPT_STRING, 0, "ID",
     "S3 access key id (else AWS_ACCESS_KEY_ID, profile)"},
    {"s3-secret-access-key", 0, OPT_STRING, OPT_SECRET, "KEY",
     "S3 secret key (secret; else AWS_SECRET_ACCESS_KEY, profile)"},
    {"s3-session-token", 0, OPT_STRING, OPT_SECRET, "TOKEN",
     "S3 session token (secret; else AWS_SESSION_TOKEN)"},
    {"s3-profile", 0, OPT_STRING, 0, "NAME", "profile in ~/.aws/credentials (else AWS_PROFILE)"},
    {"s3-sse", 0, OPT_STRING, 0, "MODE", "server-side encryption: AES256 or aws:kms"},
    {"s3-sse-kms-key-id", 0, OPT_STRING, 0, "ID", "KMS key id for --s3-sse aws:kms"},
    {"s3-sse-customer-key-file", 0, OPT_STRING, 0, "FILE",
     "SSE-C: file with a 32-byte key, raw or base64 (mode 0600)"},
    {"s3-part-size", 0, OPT_SIZE, 0, "SIZE", "multipart part size, 5M to 5G (default 8M)"},
    {"s3-parallel", 0, OPT_INT, 0, "N", "concurrent transfers, 1 to 64 (default 4)"},
    {"s3-retries", 0, OPT_INT, 0, "N", "retries after a failed request, 0 to 100 (default 4)"},
    {"s3-timeout", 0, OPT_INT, 0, "SECONDS", "deadline of one request attempt (default 60)"},
    {"s3-connect-timeout", 0, OPT_INT, 0, "SECONDS", "deadline of a connection (default 10)"},
    {"s3-no-imds", 0, OPT_BOOL, 0, NULL, "never ask EC2 instance metadata for credentials"},
    {"s3-imds-endpoint", 0, OPT_STRING, 0, "URL", "instance metadata endpoint (tests)"},
    {"compress", 0, OPT_STRING, 0, "ALGO", "zstd (default), gzip or none"},
    {"compress-level", 0, OPT_INT, 0, "N", "compression level (zstd 1-19, gzip 1-9; 0 = default)"},
    {"encryption-key-file", 0, OPT_STRING, 0, "FILE",
     "client-side encryption key: 32 bytes raw, hex or base64 (mode 0600)"},
    {"encryption-passphrase", 0, OPT_STRING, OPT_SECRET, "PASSPHRASE",
     "client-side encryption passphrase (secret; prefer the environment or config file)"},
    OPT_END,
};

static void
wipe(char *s)
{
    if (s) {
        volatile char *v = s;

        while (*v)
            *v++ = 0;
    }
}

static char *
env_name(const char *name)
{
    char *e = xasprintf("FERRY_%s", name);

    for (char *p = e + 6; *p; p++)
        *p = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
    return e;
}

static struct opt_val *
find_val(const struct opts *o, const char *name)
{
    for (size_t i = 0; i < o->n; i++)
        if (strcmp(o->vals[i].def->name, name) == 0)
            return &o->vals[i];
    return NULL;
}

static struct opt_val *
find_short(const struct opts *o, char c)
{
    for (size_t i = 0; i < o->n; i++)
        if (o->vals[i].def->short_name == c)
            return &o->vals[i];
    return NULL;
}

static void
set_val(struct opt_val *v, const char *value, enum opt_src src, char *source, char *where)
{
    if (v->def->flags & OPT_SECRET)
        wipe(v->value);
    free(v->value);
    free(v->source);
    free(v->where);
    v->value = xstrdup(value);
    v->src = src;
    v->source = source;
    v->where = where;
}

static int
parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};

    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

static int
parse_long(const char *s, long *out)
{
    char *end;

    if (!*s || isspace((unsigned char)*s))
        return -1;
    errno = 0;
    *out = strtol(s, &end, 10);
    if (errno || *end)
        return -1;
    return 0;
}

static int
parse_size(const char *s, unsigned long long *out)
{
    unsigned long long n = 0;
    unsigned shift = 0;
    const char *p = s;

    if (!isdigit((unsigned char)*p))
        return -1;
    for (; isdigit((unsigned char)*p); p++) {
        if (n > (ULLONG_MAX - 9) / 10)
            return -1;
        n = n * 10 + (unsigned)(*p - '0');
    }
    switch (toupper((unsigned char)*p)) {
    case 'K':
        shift = 10;
        break;
    case 'M':
        shift = 20;
        break;
    case 'G':
        shift = 30;
        break;
    case 'T':
        shift = 40;
        break;
    case 'B':
        break;
    case '\0':
        break;
    default:
        return -1;
    }
    if (*p) {
        p++;
        if (shift && (strcasecmp(p, "B") == 0 || strcasecmp(p, "iB") == 0))
            p += strlen(p);
        if (*p)
            return -1;
    }
    if (shift && n > (ULLONG_MAX >> shift))
        return -1;
    *out = n << shift;
    return 0;
}

/* Check the syntax of a value for its type; kind is ERR_USAGE on the command line, else ERR_CONFIG.
 */
static int
check_value(const struct opt_val *v, enum err_kind kind, struct err *err)
{
    const char *s = v->value;
    bool b;
    long l;
    unsigned long long ull;

    switch (v->def->type) {
    case OPT_STRING:
        return 0;
    case OPT_BOOL:
        if (parse_bool(s, &b) == 0)
            return 0;
        return err_set(err, kind, "invalid value \"%s\" for %s: expected true or false", s,
                       v->where);
    case OPT_INT:
        if (parse_long(s, &l) == 0)
            return 0;
        return err_set(err, kind, "invalid value \"%s\" for %s: expected an integer", s, v->where);
    case OPT_SIZE:
        if (parse_size(s, &ull) == 0)
            return 0;
        return err_set(err, kind,
                       "invalid value \"%s\" for %s: expected a size such as 512, 64K, 16M or 1G",
                       s, v->where);
    }
    return 0;
}

/* A value that failed check_value must not be echoed when it is a secret. */
static int
check_value_safe(const struct opt_val *v, enum err_kind kind, struct err *err)
{
    if (check_value(v, kind, err) == 0)
        return 0;
    if (v->def->flags & OPT_SECRET)
        err_set(err, kind, "invalid value for %s", v->where);
    return -1;
}

/* Overwrite a secret in argv so the process title and /proc/PID/cmdline lose it. */
static void
scrub(char *s)
{
    memset(s, 0, strlen(s));
}

static int
take_flag(struct opts *o, struct opt_val *v, const char *shown, const char *value, bool negated,
          const char **secret_flag, struct err *err)
{
    char *joined = NULL;

    if (v->def->type == OPT_BOOL && !value)
        value = negated ? "false" : "true";
    if ((v->def->flags & OPT_REPEAT) && v->value && v->src == SRC_FLAG)
        value = joined = xasprintf("%s,%s", v->value, value);
    set_val(v, value, SRC_FLAG, xstrdup("command line"), xasprintf("\"%s\"", shown));
    free(joined);
    if (v->def->flags & OPT_SECRET && !*secret_flag)
        *secret_flag = v->def->name;
    (void)o;
    return check_value_safe(v, ERR_USAGE, err);
}

static int
parse_argv(struct opts *o, int argc, char **argv, const char **secret_flag, struct err *err)
{
    bool only_args = false;

    for (int i = 1; i < argc; i++) {
        char *a = argv[i];

        if (only_args || a[0] != '-' || a[1] == '\0') {
            o->args[o->n_args++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_args = true;
            continue;
        }
        if (a[1] == '-') {
            const char *name = a + 2;
            char *eq = strchr(name, '=');
            size_t name_len = eq ? (size_t)(eq - name) : strlen(name);
            char *nm = xstrndup(name, name_len);
            char *shown = xasprintf("--%s", nm);
            struct opt_val *v = find_val(o, nm);
            bool negated = false;
            int rc;

            if (!v && strncmp(nm, "no-", 3) == 0) {
                v = find_val(o, nm + 3);
                if (v && v->def->type == OPT_BOOL && !eq)
                    negated = true;
                else
                    v = NULL;
            }
            if (!v && (strcmp(nm, "help") == 0 || strcmp(nm, "version") == 0) && !eq) {
                if (nm[0] == 'h')
                    o->help = true;
                else
                    o->version = true;
                free(nm);
                free(shown);
                continue;
            }
            free(nm);
            if (!v) {
                err_set(err, ERR_USAGE, "unknown option \"%s\"", shown);
                free(shown);
                return -1;
            }
            if (eq) {
                rc = take_flag(o, v, shown, eq + 1, false, secret_flag, err);
                if (v->def->flags & OPT_SECRET)
                    scrub(eq + 1);
            } else if (v->def->type == OPT_BOOL) {
                rc = take_flag(o, v, shown, NULL, negated, secret_flag, err);
            } else if (i + 1 < argc) {
                i++;
                rc = take_flag(o, v, shown, argv[i], false, secret_flag, err);
                if (v->def->flags & OPT_SECRET)
                    scrub(argv[i]);
            } else {
                rc = err_set(err, ERR_USAGE, "option \"%s\" requires a value", shown);
            }
            free(shown);
            if (rc < 0)
                return -1;
            continue;
        }
        /* short options: -x, -xVALUE, -x VALUE, clusters of booleans -lr */
        for (char *p = a + 1; *p; p++) {
            struct opt_val *v = find_short(o, *p);
            char shown[3] = {'-', *p, '\0'};
            int rc;

            if (!v && *p == 'h') {
                o->help = true;
                continue;
            }
            if (!v) {
                if (!isprint((unsigned char)*p))
                    return err_set(err, ERR_USAGE, "unknown option \"%s\"", a);
                return err_set(err, ERR_USAGE, "unknown option \"%s\"", shown);
            }
            if (v->def->type == OPT_BOOL) {
                if (take_flag(o, v, shown, NULL, false, secret_flag, err) < 0)
                    return -1;
                continue;
            }
            if (p[1]) {
                rc = take_flag(o, v, shown, p + 1, false, secret_flag, err);
                if (v->def->flags & OPT_SECRET)
                    scrub(p + 1);
            } else if (i + 1 < argc) {
                i++;
                rc = take_flag(o, v, shown, argv[i], false, secret_flag, err);
                if (v->def->flags & OPT_SECRET)
                    scrub(argv[i]);
            } else {
                rc = err_set(err, ERR_USAGE, "option \"%s\" requires a value", shown);
            }
            if (rc < 0)
                return -1;
            break;
        }
    }
    return 0;
}

static int
read_env(struct opts *o, struct err *err)
{
    for (size_t i = 0; i < o->n; i++) {
        struct opt_val *v = &o->vals[i];
        char *name;
        const char *e;

        if (v->value || (v->def->flags & OPT_NO_ENV))
            continue;
        name = env_name(v->def->name);
        e = getenv(name);
        if (e && *e) {
            set_val(v, e, SRC_ENV, xasprintf("environment (%s)", name), xasprintf("\"%s\"", name));
            if (check_value_safe(v, ERR_CONFIG, err) < 0) {
                free(name);
                return -1;
            }
        }
        free(name);
    }
    return 0;
}

static int
read_config(struct opts *o, struct err *err)
{
    struct opt_val *cv = find_val(o, "config");
    const char *path;
    bool explicit = true;
    char *text = NULL;
    size_t len;
    struct stat st;
    struct config *c = NULL;
    bool has_secret = false;
    int rc = -1;

    if (cv && cv->value) {
        path = cv->value;
    } else if (!cv && getenv("FERRY_CONFIG") && *getenv("FERRY_CONFIG")) {
        path = getenv("FERRY_CONFIG");
    } else {
        path = config_default_path;
        explicit = false;
    }
    if (config_read_file(&text, &len, &st, path, "config file", CONFIG_MAX_BYTES, err) < 0) {
        if (err->kind == ERR_NOT_FOUND && !explicit) {
            err_clear(err);
            return 0;
        }
        if (err->kind == ERR_NOT_FOUND)
            err->kind = ERR_CONFIG;
        return -1;
    }
    if (config_parse(&c, text, len, path, err) < 0)
        goto out;
    /* this program's section first, so that it wins over the common lines */
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < c->n; i++) {
            const struct config_entry *e = &c->entries[i];
            bool own = e->section && opts_section && strcmp(e->section, opts_section) == 0;

            if ((pass == 0) != own || (e->section && !own))
                continue; /* another program's section, or not this pass */
            struct opt_val *v = find_val(o, e->name);

            if (!v) {
                if (e->section)
                    err_set(err, ERR_CONFIG, "unknown option \"%s\" in \"%s\" line %d", e->name,
                            path, e->line);
                else
                    err_set(err, ERR_CONFIG,
                            "unknown option \"%s\" in \"%s\" line %d (an option of one program "
                            "goes in its section, e.g. [wal-push])",
                            e->name, path, e->line);
                goto out;
            }
            if (v->def->flags & OPT_NO_FILE) {
                err_set(err, ERR_CONFIG, "option \"%s\" is not allowed in \"%s\" line %d", e->name,
                        path, e->line);
                goto out;
            }
            if (v->def->flags & OPT_SECRET)
                has_secret = true;
            if (v->value) {
                /* overridden, but still checked: a bad line is a bad line */
                struct opt_val tmp = {v->def, e->value, SRC_FILE, NULL, NULL};

                tmp.where = xasprintf("\"%s\" in \"%s\" line %d", e->name, path, e->line);
                rc = check_value_safe(&tmp, ERR_CONFIG, err);
                free(tmp.where);
                if (rc < 0)
                    goto out;
                rc = -1;
                continue;
            }
            set_val(v, e->value, SRC_FILE, xasprintf("config file (%s:%d)", path, e->line),
                    xasprintf("\"%s\" in \"%s\" line %d", e->name, path, e->line));
            if (check_value_safe(v, ERR_CONFIG, err) < 0)
                goto out;
        }
    if (has_secret && config_check_private(&st, path, "config file", err) < 0)
        goto out;
    rc = 0;
out:
    config_free(c);
    if (text) {
        wipe(text);
        free(text);
    }
    return rc;
}

static int
apply_log_level(struct opts *o, struct err *err)
{
    struct opt_val *v = find_val(o, "log-level");
    enum log_level level;

    if (!v || !v->value)
        return 0;
    if (log_level_parse(v->value, &level) < 0)
        return err_set(err, v->src == SRC_FLAG ? ERR_USAGE : ERR_CONFIG,
                       "invalid value \"%s\" for %s: expected error, warning, notice, info or "
                       "debug",
                       v->value, v->where);
    log_set_level(level);
    return 0;
}

int
opts_parse(struct opts **out, const struct opt_def *const *tables, int argc, char **argv,
           struct err *err)
{
    struct opts *o = xcalloc(1, sizeof(*o));
    const char *secret_flag = NULL;
    size_t n = 0;

    *out = NULL;
    for (size_t t = 0; tables[t]; t++)
        for (size_t i = 0; tables[t][i].name; i++)
            n++;
    o->vals = xcalloc(n ? n : 1, sizeof(*o->vals));
    for (size_t t = 0; tables[t]; t++) {
        for (size_t i = 0; tables[t][i].name; i++) {
            /* a name defined twice is a bug in the program's tables */
            assert(!find_val(o, tables[t][i].name));
            o->vals[o->n++].def = &tables[t][i];
        }
    }
    o->args = xcalloc(argc > 0 ? (size_t)argc : 1, sizeof(*o->args));
    if (parse_argv(o, argc, argv, &secret_flag, err) < 0)
        goto fail;
    if (o->help || o->version) {
        /* --help works even with a broken environment or config file */
        *out = o;
        return 0;
    }
    if (read_env(o, err) < 0 || read_config(o, err) < 0 || apply_log_level(o, err) < 0)
        goto fail;
    if (secret_flag) {
        char *e = env_name(secret_flag);

        log_warning("secret given on the command line (--%s): other local users may see it; use "
                    "%s or the config file",
                    secret_flag, e);
        free(e);
    }
    *out = o;
    return 0;
fail:
    opts_free(o);
    return -1;
}

void
opts_free(struct opts *o)
{
    if (!o)
        return;
    for (size_t i = 0; i < o->n; i++) {
        if (o->vals[i].def->flags & OPT_SECRET)
            wipe(o->vals[i].value);
        free(o->vals[i].value);
        free(o->vals[i].source);
        free(o->vals[i].where);
    }
    free(o->vals);
    free(o->args);
    free(o);
}

char **
opts_args(const struct opts *o, int *n)
{
    *n = o->n_args;
    return o->args;
}

const char *
opts_get(const struct opts *o, const char *name)
{
    const struct opt_val *v = find_val(o, name);

    return v ? v->value : NULL;
}

bool
opts_get_bool(const struct opts *o, const char *name, bool dflt)
{
    const struct opt_val *v = find_val(o, name);
    bool b;

    if (!v || !v->value || parse_bool(v->value, &b) < 0)
        return dflt;
    return b;
}

int
opts_get_int(const struct opts *o, const char *name, long dflt, long min, long max, long *out,
             struct err *err)
{
    const struct opt_val *v = find_val(o, name);
    long l;

    *out = dflt;
    if (!v || !v->value)
        return 0;
    if (parse_long(v->value, &l) < 0)
        return err_set(err, ERR_USAGE, "invalid value \"%s\" for %s: expected an integer", v->value,
                       v->where);
    if (l < min || l > max)
        return err_set(err, ERR_USAGE, "invalid value \"%s\" for %s: must be between %ld and %ld",
                       v->value, v->where, min, max);
    *out = l;
    return 0;
}

int
opts_get_size(const struct opts *o, const char *name, unsigned long long dflt,
              unsigned long long *out, struct err *err)
{
    const struct opt_val *v = find_val(o, name);

    *out = dflt;
    if (!v || !v->value)
        return 0;
    if (parse_size(v->value, out) < 0) {
        *out = dflt;
        return err_set(err, ERR_USAGE,
                       "invalid value \"%s\" for %s: expected a size such as 512, 64K, 16M or 1G",
                       v->value, v->where);
    }
    return 0;
}

const char *
opts_source(const struct opts *o, const char *name)
{
    const struct opt_val *v = find_val(o, name);

    return v && v->value ? v->source : "default";
}

bool
opts_is_help(const struct opts *o)
{
    return o->help;
}

bool
opts_is_version(const struct opts *o)
{
    return o->version;
}

void
opts_print_help(FILE *f, const struct opt_def *const *tables)
{
    bool h_taken = false; /* e.g. ferry-basebackup's -h HOST, as in PostgreSQL's tools */

    for (size_t t = 0; tables[t]; t++) {
        for (const struct opt_def *d = tables[t]; d->name; d++) {
            char left[80];

            if (d->short_name)
                snprintf(left, sizeof(left), "-%c, --%s%s%s", d->short_name, d->name,
                         d->arg_name ? " " : "", d->arg_name ? d->arg_name : "");
            else
                snprintf(left, sizeof(left), "    --%s%s%s", d->name, d->arg_name ? " " : "",
                         d->arg_name ? d->arg_name : "");
            fprintf(f, "  %-32s %s\n", left, d->help ? d->help : "");
            h_taken |= d->short_name == 'h';
        }
    }
    fprintf(f, "  %-32s %s\n", h_taken ? "    --help" : "-h, --help", "show this help and exit");
    fprintf(f, "  %-32s %s\n", "    --version", "show the version and exit");
}
