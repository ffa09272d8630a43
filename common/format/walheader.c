/* SPDX-License-Identifier: MIT */
/* WAL segment long page header: see walheader.h for the layout. */
#include "format/walheader.h"

#include <inttypes.h>
#include <string.h>

/* XLOG_PAGE_MAGIC of each supported major version (if you add one, update docs too). */
static const struct {
    uint16_t magic;
    int version;
} wal_magics[] = {
    {0xD097, 10}, {0xD098, 11}, {0xD101, 12}, {0xD106, 13}, {0xD10D, 14},
    {0xD110, 15}, {0xD113, 16}, {0xD116, 17}, {0xD118, 18},
};

static uint16_t
le16(const unsigned char *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t
le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t
le64(const unsigned char *p)
{
    return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

int
walheader_version_of_magic(uint16_t magic)
{
    for (size_t i = 0; i < sizeof(wal_magics) / sizeof(wal_magics[0]); i++)
        if (wal_magics[i].magic == magic)
            return wal_magics[i].version;
    return 0;
}

int
walheader_parse(struct walheader *out, const void *buf, size_t len, struct err *err)
{
    const unsigned char *p = buf;
    struct walheader h;

    if (len < WALHEADER_SIZE)
        return err_set(err, ERR_CORRUPT,
                       "not a WAL segment: %zu bytes, too short for a page header", len);
    memset(&h, 0, sizeof(h));
    h.magic = le16(p);
    h.info = le16(p + 2);
    h.tli = le32(p + 4);
    h.pageaddr = le64(p + 8);
    h.rem_len = le32(p + 16);
    h.sysid = le64(p + 24);
    h.seg_size = le32(p + 32);
    h.blcksz = le32(p + 36);
    h.pg_version = walheader_version_of_magic(h.magic);
    if (h.pg_version == 0) {
        uint16_t swapped = (uint16_t)(h.magic >> 8 | h.magic << 8);

        if (walheader_version_of_magic(swapped))
            return err_set(err, ERR_CORRUPT,
                           "not supported: WAL from a big-endian server (page magic 0x%04X)",
                           swapped);
        return err_set(err, ERR_CORRUPT, "not a WAL segment: unknown page magic 0x%04X", h.magic);
    }
    if (!(h.info & WALHEADER_XLP_LONG_HEADER) || (h.info & ~WALHEADER_XLP_ALL_FLAGS))
        return err_set(err, ERR_CORRUPT,
                       "not a WAL segment: first page has flags 0x%04X, not a long header", h.info);
    if (h.tli == 0)
        return err_set(err, ERR_CORRUPT, "not a WAL segment: timeline 0 in the page header");
    if (!walname_seg_size_valid(h.seg_size))
        return err_set(err, ERR_CORRUPT, "not a WAL segment: invalid segment size %" PRIu32,
                       h.seg_size);
    if (h.blcksz < 1024 || h.blcksz > 65536 || (h.blcksz & (h.blcksz - 1)) != 0)
        return err_set(err, ERR_CORRUPT, "not a WAL segment: invalid WAL block size %" PRIu32,
                       h.blcksz);
    if (h.pageaddr % h.seg_size != 0)
        return err_set(err, ERR_CORRUPT,
                       "not a WAL segment: page address %" PRIX64 " is not a segment start",
                       h.pageaddr);
    *out = h;
    return 0;
}

int
walheader_check_name(const struct walheader *h, const struct walname *w, struct err *err)
{
    char name[WALNAME_MAX], lsn[18];
    uint64_t segno;

    walname_format(name, w);
    if (walname_segno(&segno, w, h->seg_size) < 0)
        return err_set(err, ERR_CORRUPT, "\"%s\" is not a valid name for %" PRIu32 "-byte segments",
                       name, h->seg_size);
    if (h->pageaddr != walname_segno_lsn(segno, h->seg_size)) {
        walname_lsn_format(lsn, h->pageaddr);
        return err_set(
            err, ERR_CORRUPT,
            "WAL file \"%s\" holds the segment starting at %s, not the one its name says", name,
            lsn);
    }
    if (h->tli > w->tli)
        return err_set(err, ERR_CORRUPT,
                       "WAL file \"%s\" has timeline %" PRIu32 " in its header, above the %" PRIu32
                       " of its name",
                       name, h->tli, w->tli);
    return 0;
}
