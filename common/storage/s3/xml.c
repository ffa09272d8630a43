/* SPDX-License-Identifier: MIT */
/*
 * S3 XML responses and request bodies (see xml.h). libxml2 reads each
 * document into a tree with no entity substitution, no DTD loading and no
 * network access; we then walk the elements by local name. Errors about a
 * response say what was wrong with it without quoting it (bodies may be large
 * or binary).
 */
#include "storage/s3/xml.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "base/xmalloc.h"

/* No entity substitution (no XML_PARSE_NOENT), no DTD, no network, quiet. */
#define XML_OPTIONS (XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_NOCDATA)

static int
xml_read(xmlDocPtr *out, const char *data, size_t len, const char *root, struct err *err)
{
    xmlParserCtxtPtr ctxt;
    xmlDocPtr doc;
    xmlNodePtr top;

    *out = NULL;
    if (len == 0)
        return err_set(err, ERR_REMOTE, "empty S3 response where <%s> was expected", root);
    if (len > INT_MAX)
        return err_set(err, ERR_REMOTE, "S3 response too large where <%s> was expected", root);
    ctxt = xmlNewParserCtxt();
    if (!ctxt)
        return err_set(err, ERR_INTERNAL, "could not create an XML parser");
    doc = xmlCtxtReadMemory(ctxt, data, (int)len, NULL, NULL, XML_OPTIONS);
    if (!doc || !ctxt->wellFormed) {
        int line = ctxt->lastError.line;

        if (doc)
            xmlFreeDoc(doc);
        xmlFreeParserCtxt(ctxt);
        return err_set(err, ERR_REMOTE, "malformed XML in S3 response at line %d", line);
    }
    xmlFreeParserCtxt(ctxt);
    if (doc->intSubset || doc->extSubset) {
        xmlFreeDoc(doc);
        return err_set(err, ERR_REMOTE, "unexpected DTD in S3 response");
    }
    top = xmlDocGetRootElement(doc);
    if (!top || strcmp((const char *)top->name, root) != 0) {
        err_set(err, ERR_REMOTE, "unexpected XML in S3 response: <%s> where <%s> was expected",
                top ? (const char *)top->name : "", root);
        xmlFreeDoc(doc);
        return -1;
    }
    *out = doc;
    return 0;
}

static bool
is_elem(xmlNodePtr n, const char *name)
{
    return n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0;
}

static xmlNodePtr
child(xmlNodePtr parent, const char *name)
{
    for (xmlNodePtr n = parent->children; n; n = n->next)
        if (is_elem(n, name))
            return n;
    return NULL;
}

/*
 * Text content of an element (malloc'd, "" when empty): its direct text and
 * CDATA children only, so an entity reference is never expanded.
 */
static char *
text_of(xmlNodePtr n)
{
    struct buf b = BUF_INIT;

    for (xmlNodePtr c = n->children; c; c = c->next)
        if ((c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) && c->content)
            buf_puts(&b, (const char *)c->content);
    return buf_detach(&b);
}

/* Text of the named child, or NULL if there is no such child. */
static char *
child_text(xmlNodePtr parent, const char *name)
{
    xmlNodePtr c = child(parent, name);

    return c ? text_of(c) : NULL;
}

static void
child_text_fixed(char *out, size_t cap, xmlNodePtr parent, const char *name)
{
    char *s = child_text(parent, name);

    out[0] = '\0';
    if (s) {
        size_t n = strlen(s);

        if (n >= cap)
            n = cap - 1;
        memcpy(out, s, n);
        out[n] = '\0';
        free(s);
    }
}

/* ETag without surrounding quotes (S3 sends "..." or &quot;...&quot;). */
static char *
etag_unquote(char *s)
{
    size_t n = strlen(s);

    if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
        memmove(s, s + 1, n - 2);
        s[n - 2] = '\0';
    }
    return s;
}

static int
parse_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;

    if (!*s)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return 0;
}

static int
digits(const char *s, int n)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* "2009-10-12T17:50:30.000Z" (fraction optional) to seconds since the epoch; 0 if unreadable. */
static int64_t
parse_iso8601(const char *s)
{
    struct tm tm;

    if (strlen(s) < 19 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
        s[16] != ':')
        return 0;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = digits(s, 4) - 1900;
    tm.tm_mon = digits(s + 5, 2) - 1;
    tm.tm_mday = digits(s + 8, 2);
    tm.tm_hour = digits(s + 11, 2);
    tm.tm_min = digits(s + 14, 2);
    tm.tm_sec = digits(s + 17, 2);
    if (tm.tm_year < 0 || tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_hour < 0 ||
        tm.tm_min < 0 || tm.tm_sec < 0)
        return 0;
    return (int64_t)timegm(&tm);
}

static void
error_from_node(struct s3_xml_error *out, xmlNodePtr top)
{
    child_text_fixed(out->code, sizeof(out->code), top, "Code");
    out->message = child_text(top, "Message");
    if (!out->message)
        out->message = xstrdup("");
    out->key = child_text(top, "Key");
    out->request_id = child_text(top, "RequestId");
}

int
s3_xml_parse_error(struct s3_xml_error *out, const char *data, size_t len, struct err *err)
{
    xmlDocPtr doc;

    memset(out, 0, sizeof(*out));
    if (xml_read(&doc, data, len, "Error", err) < 0)
        return -1;
    error_from_node(out, xmlDocGetRootElement(doc));
    xmlFreeDoc(doc);
    return 0;
}

void
s3_xml_error_free(struct s3_xml_error *e)
{
    if (!e)
        return;
    free(e->message);
    free(e->key);
    free(e->request_id);
    memset(e, 0, sizeof(*e));
}

static int
list_contents(struct s3_xml_list *out, xmlNodePtr n, size_t *cap, struct err *err)
{
    struct s3_xml_object *o;
    char *size;
    char *mtime;

    if (out->n_objects == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        out->objects = xrealloc(out->objects, *cap * sizeof(*out->objects));
    }
    o = &out->objects[out->n_objects];
    memset(o, 0, sizeof(*o));
    o->key = child_text(n, "Key");
    if (!o->key || !*o->key) {
        free(o->key);
        return err_set(err, ERR_REMOTE, "invalid S3 listing: <Contents> without <Key>");
    }
    out->n_objects++;
    size = child_text(n, "Size");
    if (!size || parse_u64(size, &o->size) < 0) {
        free(size);
        return err_set(err, ERR_REMOTE, "invalid S3 listing: bad <Size> for \"%s\"", o->key);
    }
    free(size);
    mtime = child_text(n, "LastModified");
    o->mtime = mtime ? parse_iso8601(mtime) : 0;
    free(mtime);
    o->etag = child_text(n, "ETag");
    o->etag = etag_unquote(o->etag ? o->etag : xstrdup(""));
    return 0;
}

int
s3_xml_parse_list(struct s3_xml_list *out, const char *data, size_t len, struct err *err)
{
    xmlDocPtr doc;
    xmlNodePtr top;
    size_t cap = 0;
    size_t pcap = 0;
    int rc = -1;
    char *s;

    memset(out, 0, sizeof(*out));
    if (xml_read(&doc, data, len, "ListBucketResult", err) < 0)
        return -1;
    top = xmlDocGetRootElement(doc);
    for (xmlNodePtr n = top->children; n; n = n->next) {
        if (is_elem(n, "Contents")) {
            if (list_contents(out, n, &cap, err) < 0)
                goto out;
        } else if (is_elem(n, "CommonPrefixes")) {
            char *p = child_text(n, "Prefix");

            if (!p || !*p) {
                free(p);
                err_set(err, ERR_REMOTE, "invalid S3 listing: <CommonPrefixes> without <Prefix>");
                goto out;
            }
            if (out->n_prefixes == pcap) {
                pcap = pcap ? pcap * 2 : 16;
                out->prefixes = xrealloc(out->prefixes, pcap * sizeof(*out->prefixes));
            }
            out->prefixes[out->n_prefixes++] = p;
        }
    }
    s = child_text(top, "IsTruncated");
    out->truncated = s && strcmp(s, "true") == 0;
    free(s);
    out->next_token = child_text(top, "NextContinuationToken");
    if (out->next_token && !*out->next_token) {
        free(out->next_token);
        out->next_token = NULL;
    }
    if (out->truncated && !out->next_token) {
        err_set(err, ERR_REMOTE,
                "invalid S3 listing: truncated page without <NextContinuationToken>");
        goto out;
    }
    rc = 0;
out:
    xmlFreeDoc(doc);
    if (rc < 0)
        s3_xml_list_free(out);
    return rc;
}

void
s3_xml_list_free(struct s3_xml_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n_objects; i++) {
        free(l->objects[i].key);
        free(l->objects[i].etag);
    }
    free(l->objects);
    for (size_t i = 0; i < l->n_prefixes; i++)
        free(l->prefixes[i]);
    free(l->prefixes);
    free(l->next_token);
    memset(l, 0, sizeof(*l));
}

static int
uploads_upload(struct s3_xml_uploads *out, xmlNodePtr n, size_t *cap, struct err *err)
{
    struct s3_xml_upload *u;
    char *t;

    if (out->n_uploads == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        out->uploads = xrealloc(out->uploads, *cap * sizeof(*out->uploads));
    }
    u = &out->uploads[out->n_uploads];
    memset(u, 0, sizeof(*u));
    u->key = child_text(n, "Key");
    if (!u->key || !*u->key) {
        free(u->key);
        return err_set(err, ERR_REMOTE, "invalid S3 upload listing: <Upload> without <Key>");
    }
    out->n_uploads++;
    u->upload_id = child_text(n, "UploadId");
    if (!u->upload_id || !*u->upload_id)
        return err_set(err, ERR_REMOTE, "invalid S3 upload listing: no <UploadId> for \"%s\"",
                       u->key);
    t = child_text(n, "Initiated");
    u->initiated = t ? parse_iso8601(t) : 0;
    if (!t || u->initiated <= 0) {
        free(t);
        return err_set(err, ERR_REMOTE, "invalid S3 upload listing: bad <Initiated> for \"%s\"",
                       u->key);
    }
    free(t);
    return 0;
}

/* Text of the named child, NULL when missing or empty. */
static char *
child_text_nonempty(xmlNodePtr parent, const char *name)
{
    char *s = child_text(parent, name);

    if (s && !*s) {
        free(s);
        s = NULL;
    }
    return s;
}

int
s3_xml_parse_uploads(struct s3_xml_uploads *out, const char *data, size_t len, struct err *err)
{
    xmlDocPtr doc;
    xmlNodePtr top;
    size_t cap = 0;
    int rc = -1;
    char *s;

    memset(out, 0, sizeof(*out));
    if (xml_read(&doc, data, len, "ListMultipartUploadsResult", err) < 0)
        return -1;
    top = xmlDocGetRootElement(doc);
    for (xmlNodePtr n = top->children; n; n = n->next)
        if (is_elem(n, "Upload") && uploads_upload(out, n, &cap, err) < 0)
            goto out;
    s = child_text(top, "IsTruncated");
    out->truncated = s && strcmp(s, "true") == 0;
    free(s);
    out->next_key_marker = child_text_nonempty(top, "NextKeyMarker");
    out->next_upload_id_marker = child_text_nonempty(top, "NextUploadIdMarker");
    if (out->truncated && !out->next_key_marker) {
        err_set(err, ERR_REMOTE,
                "invalid S3 upload listing: truncated page without <NextKeyMarker>");
        goto out;
    }
    rc = 0;
out:
    xmlFreeDoc(doc);
    if (rc < 0)
        s3_xml_uploads_free(out);
    return rc;
}

void
s3_xml_uploads_free(struct s3_xml_uploads *u)
{
    if (!u)
        return;
    for (size_t i = 0; i < u->n_uploads; i++) {
        free(u->uploads[i].key);
        free(u->uploads[i].upload_id);
    }
    free(u->uploads);
    free(u->next_key_marker);
    free(u->next_upload_id_marker);
    memset(u, 0, sizeof(*u));
}

int
s3_xml_parse_initiate(char **upload_id, const char *data, size_t len, struct err *err)
{
    xmlDocPtr doc;
    char *id;

    *upload_id = NULL;
    if (xml_read(&doc, data, len, "InitiateMultipartUploadResult", err) < 0)
        return -1;
    id = child_text(xmlDocGetRootElement(doc), "UploadId");
    xmlFreeDoc(doc);
    if (!id || !*id) {
        free(id);
        return err_set(err, ERR_REMOTE,
                       "invalid S3 response: <InitiateMultipartUploadResult> without <UploadId>");
    }
    *upload_id = id;
    return 0;
}

int
s3_xml_parse_complete(struct s3_xml_complete *out, const char *data, size_t len, struct err *err)
{
    xmlDocPtr doc;
    xmlNodePtr top;
    struct err e2;

    memset(out, 0, sizeof(*out));
    if (xml_read(&doc, data, len, "CompleteMultipartUploadResult", &e2) == 0) {
        char *etag = child_text(xmlDocGetRootElement(doc), "ETag");

        out->etag = etag_unquote(etag ? etag : xstrdup(""));
        xmlFreeDoc(doc);
        return 0;
    }
    if (e2.kind == ERR_REMOTE && strncmp(e2.msg, "unexpected XML", 14) != 0) {
        *err = e2;
        return -1;
    }
    if (xml_read(&doc, data, len, "Error", &e2) < 0) {
        return err_set(err, ERR_REMOTE,
                       "unexpected XML in S3 response: neither <CompleteMultipartUploadResult> "
                       "nor <Error>");
    }
    top = xmlDocGetRootElement(doc);
    out->is_error = true;
    error_from_node(&out->error, top);
    xmlFreeDoc(doc);
    return 0;
}

void
s3_xml_complete_free(struct s3_xml_complete *c)
{
    if (!c)
        return;
    free(c->etag);
    s3_xml_error_free(&c->error);
    memset(c, 0, sizeof(*c));
}

int
s3_xml_parse_delete(struct s3_xml_delete_result *out, const char *data, size_t len, struct err *err)
{
    xmlDocPtr doc;
    size_t dcap = 0;
    size_t ecap = 0;

    memset(out, 0, sizeof(*out));
    if (xml_read(&doc, data, len, "DeleteResult", err) < 0)
        return -1;
    for (xmlNodePtr n = xmlDocGetRootElement(doc)->children; n; n = n->next) {
        if (is_elem(n, "Deleted")) {
            char *k = child_text(n, "Key");

            if (!k)
                continue;
            if (out->n_deleted == dcap) {
                dcap = dcap ? dcap * 2 : 64;
                out->deleted = xrealloc(out->deleted, dcap * sizeof(*out->deleted));
            }
            out->deleted[out->n_deleted++] = k;
        } else if (is_elem(n, "Error")) {
            struct s3_xml_delete_error *e;

            if (out->n_errors == ecap) {
                ecap = ecap ? ecap * 2 : 16;
                out->errors = xrealloc(out->errors, ecap * sizeof(*out->errors));
            }
            e = &out->errors[out->n_errors++];
            e->key = child_text(n, "Key");
            if (!e->key)
                e->key = xstrdup("");
            child_text_fixed(e->code, sizeof(e->code), n, "Code");
            e->message = child_text(n, "Message");
            if (!e->message)
                e->message = xstrdup("");
        }
    }
    xmlFreeDoc(doc);
    return 0;
}

void
s3_xml_delete_result_free(struct s3_xml_delete_result *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n_deleted; i++)
        free(d->deleted[i]);
    free(d->deleted);
    for (size_t i = 0; i < d->n_errors; i++) {
        free(d->errors[i].key);
        free(d->errors[i].message);
    }
    free(d->errors);
    memset(d, 0, sizeof(*d));
}

void
s3_xml_escape(struct buf *out, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;

        switch (c) {
        case '&':
            buf_puts(out, "&amp;");
            break;
        case '<':
            buf_puts(out, "&lt;");
            break;
        case '>':
            buf_puts(out, "&gt;");
            break;
        case '"':
            buf_puts(out, "&quot;");
            break;
        case '\'':
            buf_puts(out, "&apos;");
            break;
        default:
            if (c < 0x20 && c != '\t' && c != '\n')
                buf_printf(out, "&#x%X;", c);
            else if (c == '\n')
                buf_puts(out, "&#xA;");
            else
                buf_putc(out, (char)c);
        }
    }
}

void
s3_xml_build_complete(struct buf *out, const struct s3_xml_part *parts, size_t n)
{
    buf_puts(out, "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
    for (size_t i = 0; i < n; i++) {
        const char *etag = parts[i].etag;
        size_t elen = strlen(etag);

        buf_printf(out, "<Part><PartNumber>%d</PartNumber><ETag>", parts[i].number);
        /* S3 wants the ETag quoted, as UploadPart returned it. */
        if (elen >= 2 && etag[0] == '"' && etag[elen - 1] == '"') {
            s3_xml_escape(out, etag);
        } else {
            buf_puts(out, "&quot;");
            s3_xml_escape(out, etag);
            buf_puts(out, "&quot;");
        }
        buf_puts(out, "</ETag></Part>");
    }
    buf_puts(out, "</CompleteMultipartUpload>");
}

void
s3_xml_build_delete(struct buf *out, const char *const *keys, size_t n, bool quiet)
{
    buf_puts(out, "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
    if (quiet)
        buf_puts(out, "<Quiet>true</Quiet>");
    for (size_t i = 0; i < n; i++) {
        buf_puts(out, "<Object><Key>");
        s3_xml_escape(out, keys[i]);
        buf_puts(out, "</Key></Object>");
    }
    buf_puts(out, "</Delete>");
}
