/* SPDX-License-Identifier: MIT */
/*
 * The S3 XML documents ferry reads and writes: Error, ListBucketResult (V2),
 * ListMultipartUploadsResult, InitiateMultipartUploadResult, CompleteMultipartUploadResult (or an
 * Error inside a 200 answer), DeleteResult; and the CompleteMultipartUpload and Delete request
 * bodies. Pure functions, no I/O (libxml2, no entity expansion, no network). Elements are matched
 * by local name, so documents with or without the S3 namespace parse alike. Private to storage/s3/.
 */
#ifndef STORAGE_S3_XML_H
#define STORAGE_S3_XML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/err.h"

/* <Error>: code "" and message "" when the element is missing or empty. */
struct s3_xml_error {
    char code[64];
    char *message;    /* never NULL after a successful parse */
    char *key;        /* <Key> or NULL */
    char *request_id; /* <RequestId> or NULL */
};

/*
 * Parse an <Error> document. A body that is not XML or whose root is not
 * <Error>: -1 with ERR_REMOTE. out is always safe to free afterwards.
 */
int s3_xml_parse_error(struct s3_xml_error *out, const char *data, size_t len, struct err *err);
void s3_xml_error_free(struct s3_xml_error *e);

struct s3_xml_object {
    char *key; /* full key as stored (repository prefix included) */
    uint64_t size;
    int64_t mtime; /* seconds since the epoch, from LastModified; 0 if missing */
    char *etag;    /* without quotes; "" if missing */
};

/* One page of ListObjectsV2 (objects and common prefixes in document order). */
struct s3_xml_list {
    struct s3_xml_object *objects;
    size_t n_objects;
    char **prefixes; /* CommonPrefixes/Prefix */
    size_t n_prefixes;
    bool truncated;   /* IsTruncated */
    char *next_token; /* NextContinuationToken or NULL */
};

/*
 * Parse <ListBucketResult>. A truncated page without NextContinuationToken,
 * a Contents without Key or with a bad Size: -1 with ERR_REMOTE.
 */
int s3_xml_parse_list(struct s3_xml_list *out, const char *data, size_t len, struct err *err);
void s3_xml_list_free(struct s3_xml_list *l);

struct s3_xml_upload {
    char *key;         /* full key as stored (repository prefix included) */
    char *upload_id;   /* UploadId */
    int64_t initiated; /* seconds since the epoch, from Initiated */
};

/* One page of ListMultipartUploads (uploads in document order). */
struct s3_xml_uploads {
    struct s3_xml_upload *uploads;
    size_t n_uploads;
    bool truncated;              /* IsTruncated */
    char *next_key_marker;       /* NextKeyMarker or NULL */
    char *next_upload_id_marker; /* NextUploadIdMarker or NULL */
};

/*
 * Parse <ListMultipartUploadsResult>. An <Upload> without Key or UploadId,
 * or whose Initiated date is missing or unreadable (its age decides whether
 * it may be aborted), and a truncated page without NextKeyMarker: -1 with
 * ERR_REMOTE.
 */
int s3_xml_parse_uploads(struct s3_xml_uploads *out, const char *data, size_t len, struct err *err);
void s3_xml_uploads_free(struct s3_xml_uploads *u);

/* <InitiateMultipartUploadResult><UploadId>: *upload_id is malloc'd. */
int s3_xml_parse_initiate(char **upload_id, const char *data, size_t len, struct err *err);

/*
 * The body of a 200 answer to CompleteMultipartUpload: either
 * <CompleteMultipartUploadResult> (is_error false, etag set) or an <Error>
 * (is_error true, error filled) that S3 may send after the 200 status line.
 */
struct s3_xml_complete {
    bool is_error;
    char *etag; /* without quotes; "" if missing */
    struct s3_xml_error error;
};

int s3_xml_parse_complete(struct s3_xml_complete *out, const char *data, size_t len,
                          struct err *err);
void s3_xml_complete_free(struct s3_xml_complete *c);

/* One <Error> entry of a DeleteResult. */
struct s3_xml_delete_error {
    char *key;
    char code[64];
    char *message; /* never NULL */
};

struct s3_xml_delete_result {
    char **deleted; /* <Deleted><Key> (empty in Quiet mode) */
    size_t n_deleted;
    struct s3_xml_delete_error *errors;
    size_t n_errors;
};

int s3_xml_parse_delete(struct s3_xml_delete_result *out, const char *data, size_t len,
                        struct err *err);
void s3_xml_delete_result_free(struct s3_xml_delete_result *d);

struct s3_xml_part {
    int number;
    const char *etag; /* as returned by UploadPart, quotes optional */
};

/* <CompleteMultipartUpload> with parts in the given (ascending) order. Appends to out. */
void s3_xml_build_complete(struct buf *out, const struct s3_xml_part *parts, size_t n);

/* <Delete> with <Quiet>true</Quiet> when quiet. Keys are XML-escaped. Appends to out. */
void s3_xml_build_delete(struct buf *out, const char *const *keys, size_t n, bool quiet);

/* XML-escape s (& < > " ' and characters XML 1.0 cannot carry as &#xN;). Appends to out. */
void s3_xml_escape(struct buf *out, const char *s);

#endif
