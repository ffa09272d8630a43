/* SPDX-License-Identifier: MIT */
/*
 * The S3 credential chain and region, in the order the AWS CLI uses:
 * explicit options, the AWS_* environment, the shared credentials and config
 * files (one profile), then IMDSv2 instance credentials. Only static keys
 * are read from profiles (no role_arn, sso or credential_process).
 *
 * Secrets (keys, tokens, the IMDS session token) never reach err or the
 * log, and buffers that held them are wiped before they are freed.
 */
#include "storage/s3/creds.h"

#include "base/buf.h"
#include "base/xmalloc.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/crypto.h>

#define CREDS_NOT_FOUND_MSG                                                                        \
    "no S3 credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile in "      \
    "~/.aws/credentials, or run on an instance with a role"

#define IMDS_DEFAULT_ENDPOINT "http://169.254.169.254"
#define IMDS_TOKEN_TTL "21600"
#define IMDS_CONNECT_TIMEOUT_MS 1000L
/* For the whole exchange (token, role, keys): a machine without IMDS must not wait long. */
#define IMDS_TOTAL_TIMEOUT_MS 3000L
#define IMDS_MAX_RESPONSE 65536
#define INI_MAX_FILE (1024 * 1024)

static const char *
env_nonempty(const char *name)
{
    const char *v = getenv(name);

    return v && *v ? v : NULL;
}

static void
wipe_free(char *s)
{
    if (s)
        OPENSSL_clear_free(s, strlen(s));
}

/* ---- INI files ---- */

static char *
trim(char *s)
{
    char *end;

    while (*s == ' ' || *s == '\t')
        s++;
    end = s + strlen(s);
    while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
        end--;
    *end = '\0';
    return s;
}

/* Whole file in memory (small), or NULL if it cannot be read. Caller wipes and frees. */
static char *
slurp(const char *path, size_t *len_out)
{
    FILE *f = fopen(path, "rb");
    struct buf b = BUF_INIT;
    char chunk[4096];
    size_t n;

    if (!f)
        return NULL;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0 && b.len <= INI_MAX_FILE)
        buf_append(&b, chunk, n);
    OPENSSL_cleanse(chunk, sizeof(chunk));
    fclose(f);
    *len_out = b.len;
    return buf_detach(&b);
}

/*
 * Look key up in [section] (a later repeated section continues it). With
 * key NULL, only report whether the section exists (*found). Indented lines
 * after a key continue its value (as in Python's configparser, which the AWS
 * CLI uses) and are never keys themselves. Keys compare case-insensitively.
 */
static char *
ini_find(const char *path, const char *section, const char *key, bool *section_found)
{
    size_t len = 0;
    char *text = path ? slurp(path, &len) : NULL;
    char *result = NULL;
    bool in_section = false;
    bool after_key = false;

    if (section_found)
        *section_found = false;
    if (!text)
        return NULL;
    for (char *line = text; line && *line;) {
        char *next = strchr(line, '\n');
        bool indented = *line == ' ' || *line == '\t';

        if (next)
            *next++ = '\0';
        char *s = trim(line);

        if (*s == '\0' || *s == '#' || *s == ';') {
            /* blank or comment: a continuation may still follow */
        } else if (*s == '[') {
            char *close = strrchr(s, ']');

            after_key = false;
            if (close) {
                *close = '\0';
                in_section = strcmp(trim(s + 1), section) == 0;
                if (in_section && section_found)
                    *section_found = true;
            } else {
                in_section = false;
            }
        } else if (indented && after_key) {
            /* continuation of the previous value (e.g. nested "s3 =" settings) */
        } else {
            char *eq = strchr(s, '=');

            after_key = true;
            if (eq && in_section && key && !result) {
                *eq = '\0';
                if (strcasecmp(trim(s), key) == 0)
                    result = xstrdup(trim(eq + 1));
            }
        }
        line = next;
    }
    OPENSSL_cleanse(text, len);
    free(text);
    return result;
}

char *
creds_ini_lookup(const char *path, const char *section, const char *key)
{
    return ini_find(path, section, key, NULL);
}

/* ---- profiles ---- */

struct profile {
    const char *name;
    bool explicit_name; /* named (options or AWS_PROFILE) and not "default" */
    char *credentials_path;
    char *config_path;
    char *config_section; /* "default" or "profile NAME" */
};

static void
profile_init(struct profile *p, const struct repo_opts *opts)
{
    const char *home = env_nonempty("HOME");
    const char *v;

    memset(p, 0, sizeof(*p));
    if (opts && opts->s3_profile && *opts->s3_profile)
        p->name = opts->s3_profile;
    else
        p->name = env_nonempty("AWS_PROFILE");
    if (!p->name)
        p->name = "default";
    /* As in the AWS CLI, a missing "default" is never an error, even when named. */
    p->explicit_name = strcmp(p->name, "default") != 0;
    if ((v = env_nonempty("AWS_SHARED_CREDENTIALS_FILE")) != NULL)
        p->credentials_path = xstrdup(v);
    else if (home)
        p->credentials_path = xasprintf("%s/.aws/credentials", home);
    if ((v = env_nonempty("AWS_CONFIG_FILE")) != NULL)
        p->config_path = xstrdup(v);
    else if (home)
        p->config_path = xasprintf("%s/.aws/config", home);
    p->config_section =
        strcmp(p->name, "default") == 0 ? xstrdup("default") : xasprintf("profile %s", p->name);
}

static void
profile_free(struct profile *p)
{
    free(p->credentials_path);
    free(p->config_path);
    free(p->config_section);
}

/* A value from the config file's section for the profile ([default] may also be [profile default]).
 */
static char *
config_lookup(const struct profile *p, const char *key, bool *found)
{
    bool f1 = false, f2 = false;
    char *v = ini_find(p->config_path, p->config_section, key, &f1);

    if (!v && strcmp(p->name, "default") == 0)
        v = ini_find(p->config_path, "profile default", key, &f2);
    if (found)
        *found = f1 || f2;
    return v;
}

static const char *
path_or_none(const char *path)
{
    return path ? path : "(no HOME)";
}

/*
 * Static keys of the profile: the credentials file wins over the config
 * file. 1 = found, 0 = none (and the profile may be absent), -1 = error.
 */
static int
profile_keys(struct s3_credentials *out, const struct profile *p, struct err *err)
{
    struct {
        const char *path;
        bool is_config;
    } files[2] = {{p->credentials_path, false}, {p->config_path, true}};
    bool exists = false;

    for (int i = 0; i < 2; i++) {
        bool found = false;
        char *id, *secret, *token;

        if (!files[i].path)
            continue;
        if (files[i].is_config) {
            id = config_lookup(p, "aws_access_key_id", &found);
            secret = config_lookup(p, "aws_secret_access_key", NULL);
            token = config_lookup(p, "aws_session_token", NULL);
        } else {
            id = ini_find(files[i].path, p->name, "aws_access_key_id", &found);
            secret = ini_find(files[i].path, p->name, "aws_secret_access_key", NULL);
            token = ini_find(files[i].path, p->name, "aws_session_token", NULL);
        }
        exists = exists || found;
        if (id && *id && secret && *secret) {
            out->access_key_id = id;
            out->secret_access_key = secret;
            if (token && *token) {
                out->session_token = token;
            } else {
                free(token);
            }
            return 1;
        }
        bool partial = (id && *id) || (secret && *secret);
        free(id);
        wipe_free(secret);
        wipe_free(token);
        if (partial)
            return err_set(err, ERR_CONFIG,
                           "profile \"%s\" in \"%s\" needs both aws_access_key_id and "
                           "aws_secret_access_key",
                           p->name, files[i].path);
    }
    if (p->explicit_name && !exists)
        return err_set(err, ERR_AUTH, "profile \"%s\" not found in \"%s\" or \"%s\"", p->name,
                       path_or_none(p->credentials_path), path_or_none(p->config_path));
    if (p->explicit_name)
        return err_set(err, ERR_AUTH,
                       "profile \"%s\" has no aws_access_key_id and aws_secret_access_key in "
                       "\"%s\" or \"%s\" (only static keys are supported)",
                       p->name, path_or_none(p->credentials_path), path_or_none(p->config_path));
    return 0;
}

/* ---- IMDSv2 ---- */

struct imds {
    CURL *curl;
    char *endpoint; /* without trailing '/' */
    struct timespec deadline;
    struct buf body;
};

static size_t
imds_write(char *data, size_t size, size_t nmemb, void *arg)
{
    struct buf *b = arg;
    size_t n = size * nmemb;

    if (b->len + n > IMDS_MAX_RESPONSE)
        return 0; /* aborts the transfer */
    buf_append(b, data, n);
    return n;
}

static long
imds_remaining_ms(const struct imds *m)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long)(m->deadline.tv_sec - now.tv_sec) * 1000 +
           (m->deadline.tv_nsec - now.tv_nsec) / 1000000;
}

/*
 * One request; 0 with the body in m->body when HTTP 200, else -1 (reason
 * irrelevant to the caller beyond "no instance credentials").
 */
static int
imds_request(struct imds *m, const char *method, const char *path, const char *header)
{
    struct curl_slist *headers = NULL;
    char *url = xasprintf("%s%s", m->endpoint, path);
    long remaining = imds_remaining_ms(m);
    long status = 0;
    CURLcode rc;

    if (m->body.data)
        OPENSSL_cleanse(m->body.data, m->body.cap);
    buf_reset(&m->body);
    if (remaining <= 0) {
        free(url);
        return -1;
    }
    curl_easy_reset(m->curl);
    if (header)
        headers = curl_slist_append(headers, header);
    if (strcmp(method, "PUT") == 0)
        headers = curl_slist_append(headers, "Content-Type:"); /* none, not a form */
    curl_easy_setopt(m->curl, CURLOPT_URL, url);
    curl_easy_setopt(m->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(m->curl, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(m->curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(m->curl, CURLOPT_CONNECTTIMEOUT_MS,
                     remaining < IMDS_CONNECT_TIMEOUT_MS ? remaining : IMDS_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(m->curl, CURLOPT_TIMEOUT_MS, remaining);
    curl_easy_setopt(m->curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(m->curl, CURLOPT_WRITEFUNCTION, imds_write);
    curl_easy_setopt(m->curl, CURLOPT_WRITEDATA, &m->body);
    if (strcmp(method, "PUT") == 0) {
        /* An empty PUT: "Content-Length: 0" and no read callback for curl to wait on. */
        curl_easy_setopt(m->curl, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(m->curl, CURLOPT_POSTFIELDSIZE, 0L);
        curl_easy_setopt(m->curl, CURLOPT_CUSTOMREQUEST, "PUT");
    }
    rc = curl_easy_perform(m->curl);
    if (rc == CURLE_OK)
        curl_easy_getinfo(m->curl, CURLINFO_RESPONSE_CODE, &status);
    /* The header may carry the IMDS session token. */
    curl_easy_setopt(m->curl, CURLOPT_HTTPHEADER, NULL);
    for (struct curl_slist *h = headers; h; h = h->next)
        OPENSSL_cleanse(h->data, strlen(h->data));
    curl_slist_free_all(headers);
    free(url);
    return rc == CURLE_OK && status == 200 ? 0 : -1;
}

static int
parse_expiration(const char *s, time_t *out)
{
    struct tm tm;
    const char *rest;

    memset(&tm, 0, sizeof(tm));
    rest = s ? strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
    if (!rest)
        return -1;
    if (*rest == '.')
        for (rest++; isdigit((unsigned char)*rest); rest++)
            ;
    if (strcmp(rest, "Z") != 0 && strcmp(rest, "+00:00") != 0)
        return -1;
    *out = timegm(&tm);
    return *out == (time_t)-1 ? -1 : 0;
}

static bool
role_name_ok(const char *s)
{
    if (!*s || strlen(s) > 128)
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("+=,.@_-", *s))
            return false;
    return true;
}

/* 1 = credentials, 0 = no instance metadata or no role, -1 = error (bad answer). */
static int
imds_fetch(struct s3_credentials *out, const struct repo_opts *opts, struct err *err)
{
    struct imds m;
    const char *endpoint = opts && opts->imds_endpoint && *opts->imds_endpoint
                               ? opts->imds_endpoint
                               : env_nonempty("AWS_EC2_METADATA_SERVICE_ENDPOINT");
    char *token_header = NULL;
    char *role = NULL;
    char *path = NULL;
    json_t *doc = NULL;
    int rc = 0;

    memset(&m, 0, sizeof(m));
    m.endpoint = xstrdup(endpoint ? endpoint : IMDS_DEFAULT_ENDPOINT);
    for (size_t n = strlen(m.endpoint); n > 0 && m.endpoint[n - 1] == '/'; n--)
        m.endpoint[n - 1] = '\0';
    clock_gettime(CLOCK_MONOTONIC, &m.deadline);
    m.deadline.tv_sec += IMDS_TOTAL_TIMEOUT_MS / 1000;
    m.deadline.tv_nsec += (IMDS_TOTAL_TIMEOUT_MS % 1000) * 1000000;
    if (m.deadline.tv_nsec >= 1000000000) {
        m.deadline.tv_sec++;
        m.deadline.tv_nsec -= 1000000000;
    }
    m.curl = curl_easy_init();
    if (!m.curl) {
        rc = err_set(err, ERR_INTERNAL, "could not create a libcurl handle");
        goto out;
    }

    if (imds_request(&m, "PUT", "/latest/api/token",
                     "X-aws-ec2-metadata-token-ttl-seconds: " IMDS_TOKEN_TTL) < 0 ||
        m.body.len == 0)
        goto out;
    token_header = xasprintf("X-aws-ec2-metadata-token: %s", trim(m.body.data));

    if (imds_request(&m, "GET", "/latest/meta-data/iam/security-credentials/", token_header) < 0)
        goto out; /* no role attached */
    if (m.body.len == 0)
        goto out;
    m.body.data[strcspn(m.body.data, "\r\n")] = '\0'; /* the first role listed */
    role = xstrdup(trim(m.body.data));
    if (!*role)
        goto out;
    if (!role_name_ok(role)) {
        rc = err_set(err, ERR_AUTH, "instance metadata returned an invalid role name");
        goto out;
    }
    path = xasprintf("/latest/meta-data/iam/security-credentials/%s", role);
    if (imds_request(&m, "GET", path, token_header) < 0) {
        rc = err_set(err, ERR_AUTH, "could not get the credentials of instance role \"%s\"", role);
        goto out;
    }
    doc = json_loadb(buf_str(&m.body), m.body.len, 0, NULL);
    {
        const char *code = json_string_value(json_object_get(doc, "Code"));
        const char *id = json_string_value(json_object_get(doc, "AccessKeyId"));
        const char *secret = json_string_value(json_object_get(doc, "SecretAccessKey"));
        const char *token = json_string_value(json_object_get(doc, "Token"));
        const char *exp = json_string_value(json_object_get(doc, "Expiration"));
        time_t expiration = 0;

        if (!doc || (code && strcmp(code, "Success") != 0) || !id || !*id || !secret || !*secret ||
            !token || !*token || parse_expiration(exp, &expiration) < 0) {
            rc = err_set(err, ERR_AUTH,
                         "instance metadata returned unusable credentials for role \"%s\"", role);
            goto out;
        }
        out->access_key_id = xstrdup(id);
        out->secret_access_key = xstrdup(secret);
        out->session_token = xstrdup(token);
        out->expiration = expiration;
        rc = 1;
    }
out:
    if (doc) {
        /* jansson keeps its own copies of the secret strings. */
        json_t *v;

        if ((v = json_object_get(doc, "SecretAccessKey")) && json_is_string(v))
            OPENSSL_cleanse((char *)json_string_value(v), json_string_length(v));
        if ((v = json_object_get(doc, "Token")) && json_is_string(v))
            OPENSSL_cleanse((char *)json_string_value(v), json_string_length(v));
        json_decref(doc);
    }
    if (m.body.data)
        OPENSSL_cleanse(m.body.data, m.body.cap);
    buf_free(&m.body);
    wipe_free(token_header);
    if (m.curl)
        curl_easy_cleanup(m.curl);
    free(m.endpoint);
    free(role);
    free(path);
    return rc;
}

static bool
imds_disabled(const struct repo_opts *opts)
{
    const char *v = getenv("AWS_EC2_METADATA_DISABLED");

    return (opts && opts->imds_disabled) || (v && strcasecmp(v, "true") == 0);
}

/* ---- the chain ---- */

static int
from_pair(struct s3_credentials *out, const char *id, const char *secret, const char *token)
{
    out->access_key_id = xstrdup(id);
    out->secret_access_key = xstrdup(secret);
    out->session_token = token && *token ? xstrdup(token) : NULL;
    out->expiration = 0;
    return 0;
}

int
creds_resolve(struct s3_credentials *out, const struct repo_opts *opts, struct err *err)
{
    const char *id, *secret;
    struct profile p;
    int rc;

    memset(out, 0, sizeof(*out));

    /* 1. explicit options */
    id = opts && opts->s3_access_key_id && *opts->s3_access_key_id ? opts->s3_access_key_id : NULL;
    secret = opts && opts->s3_secret_access_key && *opts->s3_secret_access_key
                 ? opts->s3_secret_access_key
                 : NULL;
    if (id && secret)
        return from_pair(out, id, secret, opts->s3_session_token);
    if (id)
        return err_set(err, ERR_CONFIG,
                       "\"s3-access-key-id\" is set but \"s3-secret-access-key\" is not");
    if (secret)
        return err_set(err, ERR_CONFIG,
                       "\"s3-secret-access-key\" is set but \"s3-access-key-id\" is not");

    /* 2. environment */
    id = env_nonempty("AWS_ACCESS_KEY_ID");
    secret = env_nonempty("AWS_SECRET_ACCESS_KEY");
    if (id && secret)
        return from_pair(out, id, secret, env_nonempty("AWS_SESSION_TOKEN"));
    if (id)
        return err_set(err, ERR_CONFIG,
                       "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not");
    if (secret)
        return err_set(err, ERR_CONFIG,
                       "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not");

    /* 3. shared files */
    profile_init(&p, opts);
    rc = profile_keys(out, &p, err);
    profile_free(&p);
    if (rc != 0)
        return rc < 0 ? -1 : 0;

    /* 4. instance metadata */
    if (!imds_disabled(opts)) {
        rc = imds_fetch(out, opts, err);
        if (rc != 0)
            return rc < 0 ? -1 : 0;
    }
    return err_set(err, ERR_AUTH, CREDS_NOT_FOUND_MSG);
}

char *
creds_region(const struct repo_opts *opts)
{
    const char *v;
    struct profile p;
    char *region;

    if (opts && opts->s3_region && *opts->s3_region)
        return xstrdup(opts->s3_region);
    if ((v = env_nonempty("AWS_REGION")) != NULL ||
        (v = env_nonempty("AWS_DEFAULT_REGION")) != NULL)
        return xstrdup(v);
    profile_init(&p, opts);
    region = config_lookup(&p, "region", NULL);
    profile_free(&p);
    if (region && *region)
        return region;
    free(region);
    return xstrdup("us-east-1");
}
