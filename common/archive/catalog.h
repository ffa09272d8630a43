/* SPDX-License-Identifier: MIT */
/*
 * The backup catalogue: one small JSON object per complete base backup,
 * pg/catalog/<ID>.json, written last, so a backup without one is incomplete
 * (verify reports it, expire removes it). The backup's data lives under
 * pg/backups/<ID>/: base.tar, <tablespace oid>.tar, backup_manifest, each a
 * ferry object. IDs are UTC start times, "20261125T143000Z", so names sort
 * in time order; the catalogue's LSNs and times, not object names or dates,
 * decide which backup serves a recovery target.
 */
#ifndef ARCHIVE_CATALOG_H
#define ARCHIVE_CATALOG_H

#include <stdint.h>
#include <time.h>

#include "archive/archive.h"

#define CATALOG_PREFIX "pg/catalog/"
#define BACKUP_PREFIX "pg/backups/"
#define CATALOG_ID_LEN 16 /* "20261125T143000Z" */

/* One stored part of a backup: a tablespace tar stream or the manifest. */
struct catalog_part {
    char *name;           /* "base.tar", "16385.tar", "backup_manifest" */
    char *key;            /* repository key: pg/backups/<ID>/<name> */
    uint32_t tablespace;  /* 0 for base.tar and the manifest */
    char *location;       /* tablespace directory on the source server; NULL for base */
    uint64_t size;        /* plaintext bytes */
    uint64_t stored_size; /* bytes in the repository */
    char sha256[65];      /* of the plaintext */
};

struct catalog_entry {
    char id[CATALOG_ID_LEN + 1];
    char *label;
    uint64_t sysid;
    int pg_version_num; /* server_version_num, e.g. 150020 */
    uint32_t seg_size;
    uint32_t timeline; /* of the start and stop points */
    uint64_t start_lsn;
    uint64_t stop_lsn;
    time_t start_time;
    time_t stop_time;
    char start_wal[WALNAME_MAX]; /* first and last segment needed to make it consistent */
    char stop_wal[WALNAME_MAX];
    struct catalog_part *parts;
    size_t n_parts;
};

/* Make an ID from a time (UTC). */
void catalog_id(char out[CATALOG_ID_LEN + 1], time_t t);

/* Serialise and store pg/catalog/<ID>.json (conditional create). */
int catalog_write(struct archive *a, const struct catalog_entry *e, struct err *err);

/* Parse the JSON text of an entry. ERR_CORRUPT naming the field on bad input. */
int catalog_parse(struct catalog_entry *out, const char *text, size_t len, struct err *err);

/* Read one entry by ID. ERR_NOT_FOUND when there is no complete backup with that ID. */
int catalog_read(struct archive *a, const char *id, struct catalog_entry *out, struct err *err);

/*
 * Every complete backup, oldest first (by start LSN, then start time). An
 * entry that cannot be read or parsed fails the whole call: a damaged
 * catalogue is not silently skipped.
 */
int catalog_list(struct archive *a, struct catalog_entry **out, size_t *n, struct err *err);

/* JSON text of an entry (malloc'd), for --json output and catalog_write. */
char *catalog_to_json(const struct catalog_entry *e);

/* Add a part (strings copied). */
struct catalog_part *catalog_add_part(struct catalog_entry *e, const char *name,
                                      uint32_t tablespace, const char *location);

void catalog_entry_free(struct catalog_entry *e);
void catalog_list_free(struct catalog_entry *list, size_t n);

#endif
