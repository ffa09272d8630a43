/* SPDX-License-Identifier: MIT */
/*
 * `ferry repo ls|get|put|rm|stat`: the repository by hand. get and put go
 * through the object format by default (decode and verify; compress and
 * encrypt) and store or write nothing partial: put goes through the
 * backend's atomic put sink, get to a file through an atomic file sink.
 * --raw moves the stored bytes unchanged.
 */
#include "repo_cmd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "base/buf.h"
#include "base/log.h"
#include "base/options.h"
#include "base/xmalloc.h"
#include "storage/repo.h"
#include "storage/repo_config.h"
#include "stream/object.h"
#include "stream/object_config.h"
#include "stream/stages.h"

/* Per-invocation flags: neither from the environment nor the shared config file. */
#define CMD_ONLY (OPT_NO_ENV | OPT_NO_FILE)

static const struct opt_def repo_cmd_opts[] = {
    {"long", 'l', OPT_BOOL, CMD_ONLY, NULL, "ls: size, date (UTC) and key"},
    {"json", 0, OPT_BOOL, CMD_ONLY, NULL, "ls, stat: JSON output"},
    {"delimiter", 0, OPT_STRING, CMD_ONLY, "SEP",
     "ls: group keys below the next SEP (e.g. /) into one entry"},
    {"raw", 0, OPT_BOOL, CMD_ONLY, NULL, "get, put: the stored bytes as they are (no decoding)"},
    {"force", 'f', OPT_BOOL, CMD_ONLY, NULL, "put: overwrite an existing key"},
    OPT_END,
};

static const struct opt_def *const repo_cmd_tables[] = {opts_common, repo_cmd_opts, NULL};

static const char usage_text[] =
    "usage: ferry repo [OPTIONS] ls [PREFIX] [-l|--long] [--json] [--delimiter SEP]\n"
    "       ferry repo [OPTIONS] get KEY [FILE|-] [--raw]\n"
    "       ferry repo [OPTIONS] put KEY [FILE|-] [--raw] [--force]\n"
    "       ferry repo [OPTIONS] rm KEY...\n"
    "       ferry repo [OPTIONS] stat KEY [--json]\n"
    "\n"
    "List, read, write, delete and describe the objects of the repository (--repo).\n"
    "get decodes ferry objects (checksum verified, decrypted with the configured key) and\n"
    "writes FILE atomically, or stdout without FILE or with -. put compresses (zstd unless\n"
    "--compress says otherwise) and encrypts when a key is configured, reading FILE or\n"
    "stdin, and refuses to replace an existing key unless --force. Options may come\n"
    "before or after the command; -- ends them (for keys starting with -).\n"
    "\n"
    "Exit status: 0 ok, 1 error, 2 usage or configuration error, 3 not found,\n"
    "4 already exists, 5 corrupt object, not a ferry object, or wrong/missing key.\n"
    "\n"
    "Options:\n";

static int
exit_code(const struct err *err)
{
    switch (err->kind) {
    case ERR_USAGE:
    case ERR_CONFIG:
        return REPO_EXIT_USAGE;
    case ERR_NOT_FOUND:
        return REPO_EXIT_NOT_FOUND;
    case ERR_EXISTS:
        return REPO_EXIT_EXISTS;
    case ERR_CORRUPT:
    case ERR_KEY:
        return REPO_EXIT_CORRUPT;
    default:
        return REPO_EXIT_ERROR;
    }
}

static void
format_time(char out[32], int64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (!gmtime_r(&tt, &tm) || strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, 32, "%lld", (long long)t);
}

/* A JSON string from bytes that may not be UTF-8 (file names): invalid bytes become '?'. */
static json_t *
json_str(const char *s)
{
    json_t *j = json_string(s);
    char *copy;

    if (j)
        return j;
    copy = xstrdup(s);
    for (char *p = copy; *p; p++)
        if ((unsigned char)*p >= 0x80)
            *p = '?';
    j = json_string(copy);
    free(copy);
    return j;
}

static int
print_json(json_t *j, struct err *err)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII);

    json_decref(j);
    if (!s)
        return err_set(err, ERR_INTERNAL, "could not format JSON");
    fputs(s, stdout);
    free(s);
    return 0;
}

/* ---- ls ---- */

struct ls_state {
    bool lng, json;
    size_t n;
    struct err *err;
};

static int
ls_cb(const struct repo_entry *e, void *arg)
{
    struct ls_state *st = arg;
    char when[32];

    if (st->json) {
        json_t *j = json_object();

        json_object_set_new(j, "key", json_str(e->key));
        if (e->is_prefix) {
            json_object_set_new(j, "prefix", json_true());
        } else {
            format_time(when, e->mtime);
            json_object_set_new(j, "size", json_integer((json_int_t)e->size));
            json_object_set_new(j, "mtime", json_string(when));
        }
        fputs(st->n ? ",\n" : "[\n", stdout);
        if (print_json(j, st->err) < 0)
            return 1;
    } else if (st->lng) {
        if (e->is_prefix) {
            printf("%12s  %20s  %s\n", "PRE", "-", e->key);
        } else {
            format_time(when, e->mtime);
            printf("%12llu  %20s  %s\n", (unsigned long long)e->size, when, e->key);
        }
    } else {
        printf("%s\n", e->key);
    }
    st->n++;
    return 0;
}

static int
cmd_ls(struct repo *r, const struct opts *o, char **args, int n, struct err *err)
{
    struct ls_state st = {opts_get_bool(o, "long", false), opts_get_bool(o, "json", false), 0, err};

    err_clear(err);
    if (repo_list(r, n > 1 ? args[1] : "", opts_get(o, "delimiter"), ls_cb, &st, err) < 0)
        return -1;
    if (err->kind != ERR_NONE)
        return -1;
    if (st.json)
        fputs(st.n ? "\n]\n" : "[]\n", stdout);
    return 0;
}

/* ---- get ---- */

/*
 * Holds back the first bytes until it knows whether they start a ferry
 * object: then passes everything to the decoder, or fails suggesting --raw
 * before a byte reaches the destination.
 */
#define SNIFF_BYTES 16

struct sniff_sink {
    struct sink base;
    unsigned char head[SNIFF_BYTES];
    size_t n;
    bool decided;
    const char *key;
};

static int
sniff_decide(struct sniff_sink *s, struct err *err)
{
    s->decided = true;
    if (!object_is_ferry(s->head, s->n))
        return err_set(err, ERR_CORRUPT,
                       "object \"%s\" is not a ferry object: use --raw to get its stored bytes",
                       s->key);
    return sink_next_write(&s->base, s->head, s->n, err);
}

static int
sniff_write(struct sink *sk, const void *data, size_t len, struct err *err)
{
    struct sniff_sink *s = (struct sniff_sink *)sk;

    if (!s->decided) {
        size_t take = len < SNIFF_BYTES - s->n ? len : SNIFF_BYTES - s->n;

        memcpy(s->head + s->n, data, take);
        s->n += take;
        data = (const char *)data + take;
        len -= take;
        if (s->n < SNIFF_BYTES)
            return 0;
        if (sniff_decide(s, err) < 0)
            return -1;
    }
    return sink_next_write(&s->base, data, len, err);
}

static int
sniff_finish(struct sink *sk, struct err *err)
{
    struct sniff_sink *s = (struct sniff_sink *)sk;

    if (!s->decided && sniff_decide(s, err) < 0)
        return -1;
    return sink_next_finish(&s->base, err);
}

static void
sniff_free(struct sink *sk)
{
    free(sk);
}

static const struct sink_ops sniff_ops = {"sniff", sniff_write, sniff_finish, sniff_free};

static struct sink *
sniff_sink_new(struct sink *next, const char *key)
{
    struct sniff_sink *s = xcalloc(1, sizeof(*s));

    sink_init(&s->base, &sniff_ops, next);
    s->key = key;
    return &s->base;
}

static int
cmd_get(struct repo *r, const struct opts *o, char **args, int n, struct err *err)
{
    const char *key = args[1];
    const char *dest = n > 2 ? args[2] : "-";
    bool to_stdout = strcmp(dest, "-") == 0;
    bool raw = opts_get_bool(o, "raw", false);
    struct object_opts oo;
    struct crypt_key *ckey = NULL;
    struct object_info info;
    struct sink *chain;
    int rc = -1;

    if (!raw && object_opts_load(&oo, &ckey, o, err) < 0)
        return -1;
    chain = to_stdout ? fd_sink_new(STDOUT_FILENO, "stdout") : atomic_file_sink_new(dest, 0600);
    if (!raw) {
        chain = object_decode_sink_new(chain, ckey, &info);
        chain = sniff_sink_new(chain, key);
    }
    if (repo_get(r, key, 0, 0, chain, err) < 0 || sink_finish(chain, err) < 0) {
        if ((err->kind == ERR_CORRUPT || err->kind == ERR_KEY) && !strstr(err->msg, key))
            err_prefix(err, "could not decode \"%s\"", key);
        goto out;
    }
    if (!raw)
        log_info("got \"%s\": %llu bytes (%llu stored)", key, (unsigned long long)info.plain_size,
                 (unsigned long long)info.stored_size);
    rc = 0;
out:
    sink_free(chain);
    crypt_key_free(ckey);
    return rc;
}

/* ---- put ---- */

static int
cmd_put(struct repo *r, const struct opts *o, char **args, int n, struct err *err)
{
    const char *key = args[1];
    const char *src = n > 2 ? args[2] : "-";
    bool from_stdin = strcmp(src, "-") == 0;
    bool raw = opts_get_bool(o, "raw", false);
    bool force = opts_get_bool(o, "force", false);
    struct object_opts oo;
    struct crypt_key *ckey = NULL;
    struct object_info info;
    struct repo_stat st;
    struct sink *chain = NULL;
    int fd = STDIN_FILENO;
    int rc = -1;

    memset(&info, 0, sizeof(info));
    if (!raw && object_opts_load(&oo, &ckey, o, err) < 0)
        return -1;
    if (!from_stdin) {
        fd = open(src, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
            err_sys(err, ERR_IO, "could not open \"%s\"", src);
            goto out;
        }
    }
    /* fail fast; the put itself is still conditional, so a racing writer is caught at finish */
    if (!force) {
        if (repo_stat(r, key, &st, err) == 0) {
            err_set(err, ERR_EXISTS, "object \"%s\" already exists", key);
            goto out;
        }
        if (err->kind != ERR_NOT_FOUND)
            goto out;
        err_clear(err);
    }
    chain = repo_put_sink_new(r, key, force ? 0 : REPO_PUT_IF_ABSENT);
    if (!raw)
        chain = object_encode_sink_new(chain, &oo, &info);
    if (sink_pump_fd(chain, fd, from_stdin ? "stdin" : src, err) < 0 || sink_finish(chain, err) < 0)
        goto out;
    if (!raw)
        log_info("stored \"%s\": %llu bytes (%llu stored, %s%s)", key,
                 (unsigned long long)info.plain_size, (unsigned long long)info.stored_size,
                 object_compress_name(oo.compress), oo.key ? ", encrypted" : "");
    rc = 0;
out:
    sink_free(chain);
    if (!from_stdin && fd >= 0)
        close(fd);
    crypt_key_free(ckey);
    return rc;
}

/* ---- rm ---- */

static int
cmd_rm(struct repo *r, char **args, int n, struct err *err)
{
    return repo_delete_many(r, (const char *const *)(args + 1), (size_t)(n - 1), err);
}

/* ---- stat ---- */

static int
read_range(struct repo *r, const char *key, uint64_t off, uint64_t len, struct buf *out,
           struct err *err)
{
    struct sink *s = buf_sink_new(out, 0);
    int rc = repo_get(r, key, off, len, s, err) < 0 || sink_finish(s, err) < 0 ? -1 : 0;

    sink_free(s);
    return rc;
}

static const char *
sse_text(const struct repo_stat *st, char *tmp, size_t tmplen)
{
    if (st->sse_customer)
        return "customer key (SSE-C)";
    if (!st->sse[0])
        return "none";
    if (st->sse_kms_key_id[0]) {
        snprintf(tmp, tmplen, "%s (key %s)", st->sse, st->sse_kms_key_id);
        return tmp;
    }
    return st->sse;
}

static const char *
client_enc_text(const struct object_info *info)
{
    if (!info->encrypted)
        return "none";
    if (strcmp(info->kdf, "scrypt") == 0)
        return "aes-256-gcm (passphrase, scrypt)";
    return "aes-256-gcm (key file)";
}

static int
cmd_stat(struct repo *r, const struct opts *o, char **args, struct err *err)
{
    const char *key = args[1];
    bool json = opts_get_bool(o, "json", false);
    struct repo_stat st;
    struct object_info info;
    struct buf head = BUF_INIT, tail = BUF_INIT;
    struct err ierr;
    bool ferry = false, inspected = false;
    char when[32], tmp[300], hex[65];
    int rc = -1;

    err_clear(&ierr);
    if (repo_stat(r, key, &st, err) < 0)
        return -1;
    if (st.size > 0) {
        uint64_t hl = st.size < OBJECT_HEAD_MAX ? st.size : OBJECT_HEAD_MAX;
        uint64_t tl = st.size < OBJECT_TAIL_SIZE ? st.size : OBJECT_TAIL_SIZE;

        if (read_range(r, key, 0, hl, &head, err) < 0)
            goto out;
        ferry = object_is_ferry(head.data, head.len);
        if (ferry) {
            if (read_range(r, key, st.size - tl, tl, &tail, err) < 0)
                goto out;
            inspected = object_inspect(&info, head.data, head.len, tail.data, tail.len, st.size,
                                       &ierr) == 0;
        }
    }
    format_time(when, st.mtime);
    if (json) {
        json_t *j = json_object();

        json_object_set_new(j, "key", json_str(key));
        json_object_set_new(j, "size", json_integer((json_int_t)st.size));
        json_object_set_new(j, "mtime", json_string(when));
        json_object_set_new(j, "etag", st.etag[0] ? json_str(st.etag) : json_null());
        json_object_set_new(j, "sse",
                            st.sse_customer ? json_string("SSE-C")
                            : st.sse[0]     ? json_str(st.sse)
                                            : json_null());
        if (st.sse_kms_key_id[0])
            json_object_set_new(j, "sse_kms_key_id", json_str(st.sse_kms_key_id));
        json_object_set_new(j, "format", json_string(ferry ? "ferry" : "raw"));
        if (inspected) {
            object_sha256_hex(hex, &info);
            json_object_set_new(j, "compression", json_string(object_compress_name(info.compress)));
            json_object_set_new(j, "encrypted", json_boolean(info.encrypted));
            json_object_set_new(j, "kdf", info.kdf[0] ? json_str(info.kdf) : json_null());
            /* encrypted objects keep size and checksum in the encrypted trailer */
            json_object_set_new(j, "plain_size",
                                info.encrypted ? json_null()
                                               : json_integer((json_int_t)info.plain_size));
            json_object_set_new(j, "sha256", info.encrypted ? json_null() : json_string(hex));
        }
        if (print_json(j, err) < 0)
            goto out;
        fputc('\n', stdout);
    } else {
        printf("key: %s\n", key);
        printf("size: %llu\n", (unsigned long long)st.size);
        printf("mtime: %s\n", when);
        if (st.etag[0])
            printf("etag: %s\n", st.etag);
        printf("server-side encryption: %s\n", sse_text(&st, tmp, sizeof(tmp)));
        printf("format: %s\n", ferry ? "ferry" : "raw (not a ferry object)");
        if (inspected) {
            object_sha256_hex(hex, &info);
            printf("compression: %s\n", object_compress_name(info.compress));
            printf("client encryption: %s\n", client_enc_text(&info));
            if (info.encrypted) {
                printf("plaintext size: unknown (encrypted)\n");
                printf("sha256: unknown (encrypted)\n");
            } else {
                printf("plaintext size: %llu\n", (unsigned long long)info.plain_size);
                printf("sha256: %s\n", hex);
            }
        }
    }
    if (ferry && !inspected) {
        *err = ierr;
        err_prefix(err, "object \"%s\"", key);
        goto out;
    }
    rc = 0;
out:
    buf_free(&head);
    buf_free(&tail);
    return rc;
}

/* ---- dispatch ---- */

struct subcmd {
    const char *name;
    int min_args, max_args; /* after the subcommand; -1 = no limit */
    const char *synopsis;
    const char *opts[4]; /* the command's own options that apply */
};

static const struct subcmd subcmds[] = {
    {"ls", 0, 1, "ls [PREFIX]", {"long", "json", "delimiter", NULL}},
    {"get", 1, 2, "get KEY [FILE|-]", {"raw", NULL}},
    {"put", 1, 2, "put KEY [FILE|-]", {"raw", "force", NULL}},
    {"rm", 1, -1, "rm KEY...", {NULL}},
    {"stat", 1, 1, "stat KEY", {"json", NULL}},
};

static int
check_subcmd(const struct subcmd *sc, const struct opts *o, char **args, int n, struct err *err)
{
    for (const struct opt_def *d = repo_cmd_opts; d->name; d++) {
        bool ok = false;

        if (!opts_get(o, d->name))
            continue;
        for (size_t i = 0; sc->opts[i]; i++)
            ok = ok || strcmp(sc->opts[i], d->name) == 0;
        if (!ok)
            return err_set(err, ERR_USAGE, "option \"--%s\" does not apply to \"ferry repo %s\"",
                           d->name, sc->name);
    }
    if (opts_get_bool(o, "long", false) && opts_get_bool(o, "json", false))
        return err_set(err, ERR_USAGE, "--long and --json cannot be used together");
    if (opts_get(o, "delimiter") && !*opts_get(o, "delimiter"))
        return err_set(err, ERR_USAGE, "the delimiter must not be empty");
    if (n - 1 < sc->min_args)
        return err_set(err, ERR_USAGE, "missing %s: usage: ferry repo %s",
                       sc->min_args == 1 ? "KEY" : "argument", sc->synopsis);
    if (sc->max_args >= 0 && n - 1 > sc->max_args)
        return err_set(err, ERR_USAGE, "too many arguments: usage: ferry repo %s", sc->synopsis);
    /* keys are checked before anything is opened or read */
    for (int i = 1; i < n && (sc->max_args < 0 || i == 1) && strcmp(sc->name, "ls") != 0; i++)
        if (repo_key_check(args[i], err) < 0)
            return -1;
    return 0;
}

int
repo_cmd_main(int argc, char **argv)
{
    struct opts *o = NULL;
    struct repo_opts ro;
    struct repo *r = NULL;
    const struct subcmd *sc = NULL;
    struct err err;
    char **args;
    int n, rc = -1;

    err_clear(&err);
    if (opts_parse(&o, repo_cmd_tables, argc, argv, &err) < 0)
        goto out;
    if (opts_is_help(o)) {
        fputs(usage_text, stdout);
        opts_print_help(stdout, repo_cmd_tables);
        opts_free(o);
        return REPO_EXIT_OK;
    }
    if (opts_is_version(o)) {
        printf("ferry %s\n", FERRY_VERSION);
        opts_free(o);
        return REPO_EXIT_OK;
    }
    args = opts_args(o, &n);
    if (n == 0) {
        err_set(&err, ERR_USAGE, "missing command: use ls, get, put, rm or stat (see --help)");
        goto out;
    }
    for (size_t i = 0; i < sizeof(subcmds) / sizeof(subcmds[0]); i++)
        if (strcmp(args[0], subcmds[i].name) == 0)
            sc = &subcmds[i];
    if (!sc) {
        err_set(&err, ERR_USAGE, "unknown command \"repo %s\": use ls, get, put, rm or stat",
                args[0]);
        goto out;
    }
    if (check_subcmd(sc, o, args, n, &err) < 0 || repo_opts_load(&ro, o, &err) < 0 ||
        repo_open(&r, opts_get(o, "repo"), &ro, &err) < 0)
        goto out;
    if (strcmp(sc->name, "ls") == 0)
        rc = cmd_ls(r, o, args, n, &err);
    else if (strcmp(sc->name, "get") == 0)
        rc = cmd_get(r, o, args, n, &err);
    else if (strcmp(sc->name, "put") == 0)
        rc = cmd_put(r, o, args, n, &err);
    else if (strcmp(sc->name, "rm") == 0)
        rc = cmd_rm(r, args, n, &err);
    else
        rc = cmd_stat(r, o, args, &err);
    if (fflush(stdout) != 0 && rc == 0)
        rc = err_sys(&err, ERR_IO, "could not write to stdout");
out:
    repo_close(r);
    opts_free(o);
    /* ro holds the SSE-C key: wipe it */
    if (rc < 0)
        log_err(&err);
    {
        volatile unsigned char *v = (volatile unsigned char *)&ro;

        for (size_t i = 0; i < sizeof(ro); i++)
            v[i] = 0;
    }
    return rc < 0 ? exit_code(&err) : REPO_EXIT_OK;
}
