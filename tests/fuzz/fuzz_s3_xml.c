/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: every S3 XML parser on the same input (a response body from
 * an untrusted server), plus a build/parse round trip of the Delete body
 * with the input's lines as keys. Parsers must not crash, leak or return
 * half-filled results; on failure the kind is ERR_REMOTE.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/xmalloc.h"
#include "storage/s3/xml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_failure(int rc, const struct err *err)
{
    if (rc < 0 && (err->kind != ERR_REMOTE || err->msg[0] == '\0'))
        abort();
}

/* Keys we can expect back unchanged: printable ASCII (XML 1.0 cannot carry controls). */
static bool
plain(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            return false;
    return true;
}

static void
round_trip(const uint8_t *data, size_t size)
{
    char *copy = xstrndup((const char *)data, size);
    const char *keys[16];
    size_t n = 0;
    struct buf b = BUF_INIT;
    struct s3_xml_delete_result d;
    struct err err;
    char *save = copy;

    for (char *line = copy; line && n < 16;) {
        char *nl = strchr(line, '\n');

        if (nl)
            *nl = '\0';
        if (plain(line))
            keys[n++] = line;
        line = nl ? nl + 1 : NULL;
    }
    if (n > 0) {
        s3_xml_build_delete(&b, keys, n, true);
        /* our own body must be well-formed XML */
        buf_reset(&b);
        buf_puts(&b, "<DeleteResult>");
        for (size_t i = 0; i < n; i++) {
            buf_puts(&b, "<Deleted><Key>");
            s3_xml_escape(&b, keys[i]);
            buf_puts(&b, "</Key></Deleted>");
        }
        buf_puts(&b, "</DeleteResult>");
        if (s3_xml_parse_delete(&d, b.data, b.len, &err) < 0 || d.n_deleted != n)
            abort();
        for (size_t i = 0; i < n; i++)
            if (strcmp(d.deleted[i], keys[i]) != 0)
                abort();
        s3_xml_delete_result_free(&d);
    }
    buf_free(&b);
    free(save);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    struct err err;
    struct s3_xml_error e;
    struct s3_xml_list l;
    struct s3_xml_uploads u;
    struct s3_xml_complete c;
    struct s3_xml_delete_result d;
    char *id = NULL;
    int rc;

    rc = s3_xml_parse_error(&e, s, size, &err);
    check_failure(rc, &err);
    if (rc == 0 && !e.message)
        abort();
    s3_xml_error_free(&e);

    rc = s3_xml_parse_list(&l, s, size, &err);
    check_failure(rc, &err);
    if (rc == 0) {
        for (size_t i = 0; i < l.n_objects; i++)
            if (!l.objects[i].key || !l.objects[i].key[0] || !l.objects[i].etag)
                abort();
        if (l.truncated && !l.next_token)
            abort();
    }
    s3_xml_list_free(&l);

    rc = s3_xml_parse_uploads(&u, s, size, &err);
    check_failure(rc, &err);
    if (rc == 0) {
        /* an upload is aborted by its age: never one without a key, an ID and a date */
        for (size_t i = 0; i < u.n_uploads; i++)
            if (!u.uploads[i].key || !u.uploads[i].key[0] || !u.uploads[i].upload_id ||
                !u.uploads[i].upload_id[0] || u.uploads[i].initiated <= 0)
                abort();
        if (u.truncated && !u.next_key_marker)
            abort();
    } else if (u.uploads || u.n_uploads || u.next_key_marker || u.next_upload_id_marker) {
        abort(); /* a failed parse leaves nothing behind */
    }
    s3_xml_uploads_free(&u);

    rc = s3_xml_parse_initiate(&id, s, size, &err);
    check_failure(rc, &err);
    if (rc == 0 && (!id || !id[0]))
        abort();
    free(id);

    rc = s3_xml_parse_complete(&c, s, size, &err);
    check_failure(rc, &err);
    if (rc == 0 && !c.is_error && !c.etag)
        abort();
    if (rc == 0 && c.is_error && !c.error.message)
        abort();
    s3_xml_complete_free(&c);

    rc = s3_xml_parse_delete(&d, s, size, &err);
    check_failure(rc, &err);
    s3_xml_delete_result_free(&d);

    round_trip(data, size);
    return 0;
}
