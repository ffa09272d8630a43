/* SPDX-License-Identifier: MIT */
/* Unit tests for storage/s3/xml: S3 response parsers and request body builders. */
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/err.h"
#include "check.h"
#include "storage/s3/xml.h"

#define S(lit) lit, sizeof(lit) - 1

static void
test_error_full(void)
{
    struct s3_xml_error e;
    struct err err;

    CHECK_OK(s3_xml_parse_error(&e,
                                S("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                                  "<Error><Code>NoSuchKey</Code>"
                                  "<Message>The specified key does not exist.</Message>"
                                  "<Key>wal/a&amp;b</Key><RequestId>4442587FB7D0A2F9</RequestId>"
                                  "</Error>"),
                                &err),
             &err);
    CHECK_STR(e.code, "NoSuchKey");
    CHECK_STR(e.message, "The specified key does not exist.");
    CHECK_STR(e.key, "wal/a&b");
    CHECK_STR(e.request_id, "4442587FB7D0A2F9");
    s3_xml_error_free(&e);
}

static void
test_error_empty_or_missing_message(void)
{
    struct s3_xml_error e;
    struct err err;

    /* RGW 16 sends an empty Message */
    CHECK_OK(s3_xml_parse_error(
                 &e,
                 S("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SignatureDoesNotMatch"
                   "</Code><Message></Message><BucketName>b</BucketName>"
                   "<RequestId>tx00000</RequestId><HostId>x-default</HostId></Error>"),
                 &err),
             &err);
    CHECK_STR(e.code, "SignatureDoesNotMatch");
    CHECK_STR(e.message, "");
    CHECK(e.key == NULL);
    s3_xml_error_free(&e);

    CHECK_OK(s3_xml_parse_error(&e, S("<Error><Code>AccessDenied</Code></Error>"), &err), &err);
    CHECK_STR(e.code, "AccessDenied");
    CHECK_STR(e.message, "");
    s3_xml_error_free(&e);

    CHECK_OK(s3_xml_parse_error(&e, S("<Error/>"), &err), &err);
    CHECK_STR(e.code, "");
    CHECK_STR(e.message, "");
    s3_xml_error_free(&e);
}

static void
test_error_bad_documents(void)
{
    struct s3_xml_error e;
    struct err err;

    CHECK_FAIL(s3_xml_parse_error(&e, "", 0, &err), &err, ERR_REMOTE,
               "empty S3 response where <Error> was expected");
    s3_xml_error_free(&e);
    CHECK_FAIL(s3_xml_parse_error(&e, S("<Error><Code>NoSuchKey</Code><Mess"), &err), &err,
               ERR_REMOTE, "malformed XML in S3 response at line 1");
    s3_xml_error_free(&e);
    CHECK_FAIL(s3_xml_parse_error(&e, S("<html>\n<body>502 Bad Gateway</body></html>"), &err), &err,
               ERR_REMOTE, "unexpected XML in S3 response: <html> where <Error> was expected");
    s3_xml_error_free(&e);
    CHECK_FAIL(s3_xml_parse_error(&e, S("\x00\x01garbage\xff"), &err), &err, ERR_REMOTE,
               "malformed XML in S3 response at line 1");
    s3_xml_error_free(&e);
    CHECK_FAIL(s3_xml_parse_error(&e, S("Service Unavailable"), &err), &err, ERR_REMOTE,
               "malformed XML in S3 response at line 1");
    s3_xml_error_free(&e);
}

static void
test_error_refuses_entities(void)
{
    struct s3_xml_error e;
    struct err err;

    /* no DTD, so no entity expansion and no external fetch */
    CHECK_FAIL(s3_xml_parse_error(&e,
                                  S("<?xml version=\"1.0\"?>\n"
                                    "<!DOCTYPE Error [<!ENTITY a \"aaaaaaaaaa\">"
                                    "<!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">]>\n"
                                    "<Error><Code>&b;</Code></Error>"),
                                  &err),
               &err, ERR_REMOTE, "unexpected DTD in S3 response");
    s3_xml_error_free(&e);
    CHECK_FAIL(s3_xml_parse_error(&e,
                                  S("<?xml version=\"1.0\"?>\n"
                                    "<!DOCTYPE Error SYSTEM \"http://127.0.0.1:1/x.dtd\">\n"
                                    "<Error><Code>X</Code></Error>"),
                                  &err),
               &err, ERR_REMOTE, "unexpected DTD in S3 response");
    s3_xml_error_free(&e);
}

static const char list_page[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
    "<Name>bucket</Name><Prefix>repo/</Prefix><KeyCount>3</KeyCount><MaxKeys>1000</MaxKeys>"
    "<Delimiter>/</Delimiter><IsTruncated>true</IsTruncated>"
    "<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>"
    "<Contents><Key>repo/a&amp;b&lt;c</Key><LastModified>2009-10-12T17:50:30.000Z</LastModified>"
    "<ETag>&quot;fba9dede5f27731c9771645a39863328&quot;</ETag><Size>434234</Size>"
    "<StorageClass>STANDARD</StorageClass></Contents>"
    "<Contents><Key>repo/\xc3\xa9t\xc3\xa9</Key><LastModified>2026-01-02T03:04:05Z</LastModified>"
    "<ETag>\"d41d8cd98f00b204e9800998ecf8427e-2\"</ETag><Size>0</Size></Contents>"
    "<CommonPrefixes><Prefix>repo/wal/</Prefix></CommonPrefixes>"
    "<CommonPrefixes><Prefix>repo/base/</Prefix></CommonPrefixes>"
    "</ListBucketResult>";

static void
test_list_page(void)
{
    struct s3_xml_list l;
    struct err err;

    CHECK_OK(s3_xml_parse_list(&l, list_page, sizeof(list_page) - 1, &err), &err);
    CHECK_INT(l.n_objects, 2);
    CHECK_STR(l.objects[0].key, "repo/a&b<c");
    CHECK_INT(l.objects[0].size, 434234);
    CHECK_INT(l.objects[0].mtime, 1255369830);
    CHECK_STR(l.objects[0].etag, "fba9dede5f27731c9771645a39863328");
    CHECK_STR(l.objects[1].key, "repo/\xc3\xa9t\xc3\xa9");
    CHECK_INT(l.objects[1].size, 0);
    CHECK_INT(l.objects[1].mtime, 1767323045);
    CHECK_STR(l.objects[1].etag, "d41d8cd98f00b204e9800998ecf8427e-2");
    CHECK_INT(l.n_prefixes, 2);
    CHECK_STR(l.prefixes[0], "repo/wal/");
    CHECK_STR(l.prefixes[1], "repo/base/");
    CHECK(l.truncated);
    CHECK_STR(l.next_token, "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=");
    s3_xml_list_free(&l);
}

static void
test_list_last_and_empty(void)
{
    struct s3_xml_list l;
    struct err err;

    CHECK_OK(s3_xml_parse_list(&l,
                               S("<ListBucketResult><Name>b</Name><Prefix></Prefix>"
                                 "<KeyCount>0</KeyCount><IsTruncated>false</IsTruncated>"
                                 "</ListBucketResult>"),
                               &err),
             &err);
    CHECK_INT(l.n_objects, 0);
    CHECK_INT(l.n_prefixes, 0);
    CHECK(!l.truncated);
    CHECK(l.next_token == NULL);
    s3_xml_list_free(&l);

    /* missing LastModified and ETag are tolerated */
    CHECK_OK(s3_xml_parse_list(&l,
                               S("<ListBucketResult><Contents><Key>k</Key><Size>7</Size>"
                                 "</Contents></ListBucketResult>"),
                               &err),
             &err);
    CHECK_INT(l.n_objects, 1);
    CHECK_INT(l.objects[0].mtime, 0);
    CHECK_STR(l.objects[0].etag, "");
    CHECK(!l.truncated);
    s3_xml_list_free(&l);
}

static void
test_list_bad(void)
{
    struct s3_xml_list l;
    struct err err;

    CHECK_FAIL(s3_xml_parse_list(&l,
                                 S("<ListBucketResult><IsTruncated>true</IsTruncated>"
                                   "</ListBucketResult>"),
                                 &err),
               &err, ERR_REMOTE,
               "invalid S3 listing: truncated page without <NextContinuationToken>");
    CHECK_FAIL(s3_xml_parse_list(&l,
                                 S("<ListBucketResult><Contents><Size>1</Size></Contents>"
                                   "</ListBucketResult>"),
                                 &err),
               &err, ERR_REMOTE, "invalid S3 listing: <Contents> without <Key>");
    CHECK_FAIL(s3_xml_parse_list(&l,
                                 S("<ListBucketResult><Contents><Key>k</Key><Size>-1</Size>"
                                   "</Contents></ListBucketResult>"),
                                 &err),
               &err, ERR_REMOTE, "invalid S3 listing: bad <Size> for \"k\"");
    CHECK_FAIL(s3_xml_parse_list(&l,
                                 S("<ListBucketResult><Contents><Key>k</Key><Size>1</Size>"
                                   "</Contents>"),
                                 &err),
               &err, ERR_REMOTE, "malformed XML in S3 response at line 1");
    CHECK_FAIL(s3_xml_parse_list(&l,
                                 S("<?xml version=\"1.0\"?>\n<Error><Code>AccessDenied</Code>"
                                   "</Error>"),
                                 &err),
               &err, ERR_REMOTE,
               "unexpected XML in S3 response: <Error> where <ListBucketResult> was expected");
    CHECK_FAIL(s3_xml_parse_list(&l,
                                 S("<ListBucketResult><CommonPrefixes></CommonPrefixes>"
                                   "</ListBucketResult>"),
                                 &err),
               &err, ERR_REMOTE, "invalid S3 listing: <CommonPrefixes> without <Prefix>");
}

/* AWS's documented example, shortened (namespace, Initiator, Owner kept) */
static const char uploads_page[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<ListMultipartUploadsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
    "<Bucket>bucket</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker>"
    "<NextKeyMarker>repo/pg/b&amp;c</NextKeyMarker>"
    "<NextUploadIdMarker>2~YW55IGlkZWE</NextUploadIdMarker><MaxUploads>2</MaxUploads>"
    "<IsTruncated>true</IsTruncated>"
    "<Upload><Key>repo/pg/a</Key><UploadId>XMgbGlrZSBlbHZpbmcncyBub3Q</UploadId>"
    "<Initiator><ID>arn:aws:iam::111122223333:user/x</ID><DisplayName>x</DisplayName></Initiator>"
    "<Owner><ID>75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a</ID>"
    "<DisplayName>o</DisplayName></Owner><StorageClass>STANDARD</StorageClass>"
    "<Initiated>2010-11-10T20:48:33.000Z</Initiated></Upload>"
    "<Upload><Key>repo/pg/b&amp;c</Key><UploadId>2~YW55IGlkZWE</UploadId>"
    "<StorageClass>STANDARD</StorageClass><Initiated>2026-01-02T03:04:05Z</Initiated></Upload>"
    "</ListMultipartUploadsResult>";

static void
test_uploads_page(void)
{
    struct s3_xml_uploads u;
    struct err err;

    CHECK_OK(s3_xml_parse_uploads(&u, uploads_page, sizeof(uploads_page) - 1, &err), &err);
    CHECK_INT(u.n_uploads, 2);
    CHECK_STR(u.uploads[0].key, "repo/pg/a");
    CHECK_STR(u.uploads[0].upload_id, "XMgbGlrZSBlbHZpbmcncyBub3Q");
    CHECK_INT(u.uploads[0].initiated, 1289422113);
    CHECK_STR(u.uploads[1].key, "repo/pg/b&c");
    CHECK_STR(u.uploads[1].upload_id, "2~YW55IGlkZWE");
    CHECK_INT(u.uploads[1].initiated, 1767323045);
    CHECK(u.truncated);
    CHECK_STR(u.next_key_marker, "repo/pg/b&c");
    CHECK_STR(u.next_upload_id_marker, "2~YW55IGlkZWE");
    s3_xml_uploads_free(&u);

    /* the last page, and an empty one (RGW leaves the markers empty) */
    CHECK_OK(s3_xml_parse_uploads(&u,
                                  S("<ListMultipartUploadsResult><Bucket>b</Bucket>"
                                    "<NextKeyMarker></NextKeyMarker><NextUploadIdMarker/>"
                                    "<IsTruncated>false</IsTruncated>"
                                    "</ListMultipartUploadsResult>"),
                                  &err),
             &err);
    CHECK_INT(u.n_uploads, 0);
    CHECK(!u.truncated);
    CHECK(u.next_key_marker == NULL);
    CHECK(u.next_upload_id_marker == NULL);
    s3_xml_uploads_free(&u);

    /* a truncated page may lack NextUploadIdMarker: paging goes on by key */
    CHECK_OK(s3_xml_parse_uploads(&u,
                                  S("<ListMultipartUploadsResult><IsTruncated>true</IsTruncated>"
                                    "<NextKeyMarker>k</NextKeyMarker>"
                                    "</ListMultipartUploadsResult>"),
                                  &err),
             &err);
    CHECK(u.truncated);
    CHECK_STR(u.next_key_marker, "k");
    CHECK(u.next_upload_id_marker == NULL);
    s3_xml_uploads_free(&u);
}

static void
test_uploads_bad(void)
{
    struct s3_xml_uploads u;
    struct err err;

    CHECK_FAIL(s3_xml_parse_uploads(&u,
                                    S("<ListMultipartUploadsResult><IsTruncated>true"
                                      "</IsTruncated></ListMultipartUploadsResult>"),
                                    &err),
               &err, ERR_REMOTE,
               "invalid S3 upload listing: truncated page without <NextKeyMarker>");
    CHECK_FAIL(s3_xml_parse_uploads(&u,
                                    S("<ListMultipartUploadsResult><Upload><UploadId>x</UploadId>"
                                      "<Initiated>2026-01-02T03:04:05Z</Initiated></Upload>"
                                      "</ListMultipartUploadsResult>"),
                                    &err),
               &err, ERR_REMOTE, "invalid S3 upload listing: <Upload> without <Key>");
    CHECK_FAIL(s3_xml_parse_uploads(&u,
                                    S("<ListMultipartUploadsResult><Upload><Key>k</Key>"
                                      "<Initiated>2026-01-02T03:04:05Z</Initiated></Upload>"
                                      "</ListMultipartUploadsResult>"),
                                    &err),
               &err, ERR_REMOTE, "invalid S3 upload listing: no <UploadId> for \"k\"");
    /* without a readable date an upload could look old: refused, never aborted */
    CHECK_FAIL(s3_xml_parse_uploads(&u,
                                    S("<ListMultipartUploadsResult><Upload><Key>k</Key>"
                                      "<UploadId>x</UploadId></Upload>"
                                      "</ListMultipartUploadsResult>"),
                                    &err),
               &err, ERR_REMOTE, "invalid S3 upload listing: bad <Initiated> for \"k\"");
    CHECK_FAIL(s3_xml_parse_uploads(&u,
                                    S("<ListMultipartUploadsResult><Upload><Key>k</Key>"
                                      "<UploadId>x</UploadId><Initiated>yesterday</Initiated>"
                                      "</Upload></ListMultipartUploadsResult>"),
                                    &err),
               &err, ERR_REMOTE, "invalid S3 upload listing: bad <Initiated> for \"k\"");
    CHECK_FAIL(s3_xml_parse_uploads(&u,
                                    S("<Error><Code>NotImplemented</Code><Message>A parameter "
                                      "you provided implies functionality that is not "
                                      "implemented</Message></Error>"),
                                    &err),
               &err, ERR_REMOTE,
               "unexpected XML in S3 response: <Error> where <ListMultipartUploadsResult> was "
               "expected");
    CHECK_FAIL(s3_xml_parse_uploads(&u, S("<ListMultipartUploadsResult><Upload>"), &err), &err,
               ERR_REMOTE, "malformed XML in S3 response at line 1");
    CHECK(u.n_uploads == 0 && u.uploads == NULL);
}

/* fed one byte short at every length: never a success with half an upload */
static void
test_uploads_every_prefix(void)
{
    for (size_t len = 0; len < sizeof(uploads_page) - 1; len++) {
        struct s3_xml_uploads u;
        struct err err;
        char *copy = malloc(len ? len : 1);
        int rc;

        memcpy(copy, uploads_page, len);
        rc = s3_xml_parse_uploads(&u, copy, len, &err);
        CHECK(rc < 0);
        CHECK(err.kind == ERR_REMOTE);
        s3_xml_uploads_free(&u);
        free(copy);
    }
}

static void
test_initiate(void)
{
    char *id = NULL;
    struct err err;

    CHECK_OK(s3_xml_parse_initiate(
                 &id,
                 S("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                   "<InitiateMultipartUploadResult "
                   "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Bucket>b</Bucket>"
                   "<Key>repo/base/x</Key><UploadId>2~iCw_lDY8VoNDYgaVL6cS2EXr0Jr7jbX</UploadId>"
                   "</InitiateMultipartUploadResult>"),
                 &err),
             &err);
    CHECK_STR(id, "2~iCw_lDY8VoNDYgaVL6cS2EXr0Jr7jbX");
    free(id);
    CHECK_FAIL(s3_xml_parse_initiate(&id,
                                     S("<InitiateMultipartUploadResult><UploadId></UploadId>"
                                       "</InitiateMultipartUploadResult>"),
                                     &err),
               &err, ERR_REMOTE,
               "invalid S3 response: <InitiateMultipartUploadResult> without <UploadId>");
    CHECK(id == NULL);
    CHECK_FAIL(s3_xml_parse_initiate(&id, S("<InitiateMultipartUploadResult><Upload"), &err), &err,
               ERR_REMOTE, "malformed XML in S3 response at line 1");
}

static void
test_complete(void)
{
    struct s3_xml_complete c;
    struct err err;

    CHECK_OK(
        s3_xml_parse_complete(&c,
                              S("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                                "<CompleteMultipartUploadResult "
                                "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                                "<Location>http://b.s3.amazonaws.com/k</Location><Bucket>b</Bucket>"
                                "<Key>k</Key><ETag>\"3858f62230ac3c915f300c664312c11f-9\"</ETag>"
                                "</CompleteMultipartUploadResult>"),
                              &err),
        &err);
    CHECK(!c.is_error);
    CHECK_STR(c.etag, "3858f62230ac3c915f300c664312c11f-9");
    s3_xml_complete_free(&c);

    /* the 200-with-an-error answer, sent after whitespace keep-alives */
    CHECK_OK(s3_xml_parse_complete(&c,
                                   S("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n     \n"
                                     "<Error><Code>InternalError</Code><Message>We encountered "
                                     "an internal error. Please try again.</Message>"
                                     "<RequestId>656c76696e6727732072657175657374</RequestId>"
                                     "</Error>"),
                                   &err),
             &err);
    CHECK(c.is_error);
    CHECK_STR(c.error.code, "InternalError");
    CHECK_STR(c.error.message, "We encountered an internal error. Please try again.");
    s3_xml_complete_free(&c);

    CHECK_FAIL(s3_xml_parse_complete(&c, S("<CompleteMultipartUploadResult><ETag>"), &err), &err,
               ERR_REMOTE, "malformed XML in S3 response at line 1");
    s3_xml_complete_free(&c);
    CHECK_FAIL(s3_xml_parse_complete(&c, S("<Other/>"), &err), &err, ERR_REMOTE,
               "unexpected XML in S3 response: neither <CompleteMultipartUploadResult> nor "
               "<Error>");
    s3_xml_complete_free(&c);
    CHECK_FAIL(s3_xml_parse_complete(&c, "", 0, &err), &err, ERR_REMOTE,
               "empty S3 response where <CompleteMultipartUploadResult> was expected");
    s3_xml_complete_free(&c);
}

static void
test_delete_result(void)
{
    struct s3_xml_delete_result d;
    struct err err;

    CHECK_OK(
        s3_xml_parse_delete(&d,
                            S("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                              "<DeleteResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                              "<Deleted><Key>r/a</Key></Deleted>"
                              "<Error><Key>r/b&amp;c</Key><Code>AccessDenied</Code>"
                              "<Message>Access Denied</Message></Error>"
                              "<Error><Key>r/d</Key><Code>InternalError</Code></Error>"
                              "</DeleteResult>"),
                            &err),
        &err);
    CHECK_INT(d.n_deleted, 1);
    CHECK_STR(d.deleted[0], "r/a");
    CHECK_INT(d.n_errors, 2);
    CHECK_STR(d.errors[0].key, "r/b&c");
    CHECK_STR(d.errors[0].code, "AccessDenied");
    CHECK_STR(d.errors[0].message, "Access Denied");
    CHECK_STR(d.errors[1].key, "r/d");
    CHECK_STR(d.errors[1].code, "InternalError");
    CHECK_STR(d.errors[1].message, "");
    s3_xml_delete_result_free(&d);

    /* Quiet mode with no failure: an empty result */
    CHECK_OK(s3_xml_parse_delete(&d, S("<DeleteResult/>"), &err), &err);
    CHECK_INT(d.n_deleted, 0);
    CHECK_INT(d.n_errors, 0);
    s3_xml_delete_result_free(&d);

    CHECK_FAIL(s3_xml_parse_delete(&d, S("<DeleteResult><Error>"), &err), &err, ERR_REMOTE,
               "malformed XML in S3 response at line 1");
}

static void
test_build_complete(void)
{
    struct buf b = BUF_INIT;
    struct s3_xml_part parts[] = {{1, "\"a54357aff0632cce46d942af68356b38\""},
                                  {2, "0c78aef83f66abc1fa1e8477f296d394"}};

    s3_xml_build_complete(&b, parts, 2);
    CHECK_STR(buf_str(&b),
              "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
              "<Part><PartNumber>1</PartNumber>"
              "<ETag>&quot;a54357aff0632cce46d942af68356b38&quot;</ETag></Part>"
              "<Part><PartNumber>2</PartNumber>"
              "<ETag>&quot;0c78aef83f66abc1fa1e8477f296d394&quot;</ETag></Part>"
              "</CompleteMultipartUpload>");
    buf_free(&b);
}

static void
test_build_delete_escapes(void)
{
    struct buf b = BUF_INIT;
    const char *keys[] = {"r/a&b", "r/<x>\"'", "r/\xc3\xa9t\xc3\xa9", "r/tab\tnl\n"};
    struct s3_xml_delete_result d;
    struct err err;

    s3_xml_build_delete(&b, keys, 4, true);
    CHECK_STR(buf_str(&b), "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                           "<Quiet>true</Quiet>"
                           "<Object><Key>r/a&amp;b</Key></Object>"
                           "<Object><Key>r/&lt;x&gt;&quot;&apos;</Key></Object>"
                           "<Object><Key>r/\xc3\xa9t\xc3\xa9</Key></Object>"
                           "<Object><Key>r/tab\tnl&#xA;</Key></Object>"
                           "</Delete>");
    buf_reset(&b);
    s3_xml_build_delete(&b, keys, 1, false);
    CHECK_STR(buf_str(&b), "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                           "<Object><Key>r/a&amp;b</Key></Object></Delete>");
    buf_free(&b);

    /* what we build, libxml2 reads back to the same keys */
    buf_reset(&b);
    buf_puts(&b, "<DeleteResult>");
    for (int i = 0; i < 4; i++) {
        buf_puts(&b, "<Deleted><Key>");
        s3_xml_escape(&b, keys[i]);
        buf_puts(&b, "</Key></Deleted>");
    }
    buf_puts(&b, "</DeleteResult>");
    CHECK_OK(s3_xml_parse_delete(&d, b.data, b.len, &err), &err);
    CHECK_INT(d.n_deleted, 4);
    for (size_t i = 0; i < d.n_deleted && i < 4; i++)
        CHECK_STR(d.deleted[i], keys[i]);
    s3_xml_delete_result_free(&d);
    buf_free(&b);
}

/* Every parser gives the same answer when the document comes from a copy of exact size. */
static void
test_exact_length_no_overread(void)
{
    static const char doc[] = "<Error><Code>SlowDown</Code><Message>Reduce your request rate."
                              "</Message></Error>";
    char *copy = malloc(sizeof(doc) - 1);
    struct s3_xml_error e;
    struct err err;

    memcpy(copy, doc, sizeof(doc) - 1);
    CHECK_OK(s3_xml_parse_error(&e, copy, sizeof(doc) - 1, &err), &err);
    CHECK_STR(e.code, "SlowDown");
    CHECK_STR(e.message, "Reduce your request rate.");
    s3_xml_error_free(&e);
    free(copy);
}

int
main(void)
{
    RUN(test_error_full);
    RUN(test_error_empty_or_missing_message);
    RUN(test_error_bad_documents);
    RUN(test_error_refuses_entities);
    RUN(test_list_page);
    RUN(test_list_last_and_empty);
    RUN(test_list_bad);
    RUN(test_uploads_page);
    RUN(test_uploads_bad);
    RUN(test_uploads_every_prefix);
    RUN(test_initiate);
    RUN(test_complete);
    RUN(test_delete_result);
    RUN(test_build_complete);
    RUN(test_build_delete_escapes);
    RUN(test_exact_length_no_overread);
    return check_done();
}
