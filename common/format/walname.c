/* SPDX-License-Identifier: MIT */
/* WAL file names: see walname.h. */
#include "format/walname.h"

#include <stdio.h>
#include <string.h>

/* Exactly n upper-case hex digits. */
static bool
hex_field(const char *s, size_t n, uint32_t *out)
{
    uint32_t v = 0;

    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int d;

        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return false;
        v = (v << 4) | (uint32_t)d;
    }
    *out = v;
    return true;
}

int
walname_parse(struct walname *out, const char *name, struct err *err)
{
    size_t len = strlen(name);
    struct walname w;

    memset(&w, 0, sizeof(w));
    if (len == 16 && strcmp(name + 8, ".history") == 0 && hex_field(name, 8, &w.tli)) {
        w.kind = WALNAME_HISTORY;
    } else if (len >= WALNAME_SEGMENT_LEN && hex_field(name, 8, &w.tli) &&
               hex_field(name + 8, 8, &w.log) && hex_field(name + 16, 8, &w.seg)) {
        const char *rest = name + WALNAME_SEGMENT_LEN;

        if (*rest == '\0')
            w.kind = WALNAME_SEGMENT;
        else if (strcmp(rest, ".partial") == 0)
            w.kind = WALNAME_PARTIAL;
        else if (len == WALNAME_SEGMENT_LEN + 16 && rest[0] == '.' &&
                 hex_field(rest + 1, 8, &w.offset) && strcmp(rest + 9, ".backup") == 0)
            w.kind = WALNAME_BACKUP;
    }
    if (w.kind == 0 || w.tli == 0)
        return err_set(err, ERR_USAGE, "\"%.64s\" is not a WAL file name", name);
    *out = w;
    return 0;
}

void
walname_format(char *buf, const struct walname *w)
{
    switch (w->kind) {
    case WALNAME_HISTORY:
        snprintf(buf, WALNAME_MAX, "%08X.history", w->tli);
        break;
    case WALNAME_PARTIAL:
        snprintf(buf, WALNAME_MAX, "%08X%08X%08X.partial", w->tli, w->log, w->seg);
        break;
    case WALNAME_BACKUP:
        snprintf(buf, WALNAME_MAX, "%08X%08X%08X.%08X.backup", w->tli, w->log, w->seg, w->offset);
        break;
    case WALNAME_SEGMENT:
    default:
        snprintf(buf, WALNAME_MAX, "%08X%08X%08X", w->tli, w->log, w->seg);
        break;
    }
}

bool
walname_seg_size_valid(uint32_t seg_size)
{
    return seg_size >= (1u << 20) && seg_size <= (1u << 30) && (seg_size & (seg_size - 1)) == 0;
}

int
walname_segno(uint64_t *out, const struct walname *w, uint32_t seg_size)
{
    uint64_t per_log = UINT64_C(0x100000000) / seg_size;

    if (w->kind == WALNAME_HISTORY || !walname_seg_size_valid(seg_size) || w->seg >= per_log)
        return -1;
    *out = (uint64_t)w->log * per_log + w->seg;
    return 0;
}

void
walname_from_segno(struct walname *out, uint32_t tli, uint64_t segno, uint32_t seg_size)
{
    uint64_t per_log = UINT64_C(0x100000000) / seg_size;

    memset(out, 0, sizeof(*out));
    out->kind = WALNAME_SEGMENT;
    out->tli = tli;
    out->log = (uint32_t)(segno / per_log);
    out->seg = (uint32_t)(segno % per_log);
}

uint64_t
walname_segno_lsn(uint64_t segno, uint32_t seg_size)
{
    return segno * seg_size;
}

/* One hex digit of either case, or -1. */
static int
hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* 1 to 8 hex digits up to stop; advances *pos. */
static bool
lsn_half(const char *s, size_t *pos, char stop, uint32_t *out)
{
    uint32_t v = 0;
    size_t nd = 0;

    while (s[*pos] && s[*pos] != stop) {
        int d = hex_digit(s[*pos]);

        if (d < 0 || ++nd > 8)
            return false;
        v = (v << 4) | (uint32_t)d;
        (*pos)++;
    }
    *out = v;
    return nd > 0 && s[*pos] == stop;
}

int
walname_lsn_parse(uint64_t *out, const char *s, struct err *err)
{
    uint32_t hi, lo;
    size_t i = 0;

    if (!lsn_half(s, &i, '/', &hi))
        goto bad;
    i++;
    if (!lsn_half(s, &i, '\0', &lo))
        goto bad;
    *out = ((uint64_t)hi << 32) | lo;
    return 0;
bad:
    return err_set(err, ERR_USAGE, "\"%.64s\" is not a valid LSN (expected e.g. \"0/16B3748\")", s);
}

void
walname_lsn_format(char *buf, uint64_t lsn)
{
    snprintf(buf, 18, "%X/%X", (uint32_t)(lsn >> 32), (uint32_t)lsn);
}
