/* SPDX-License-Identifier: MIT */
/* Timeline history files: see history.h. */
#include "format/history.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/xmalloc.h"
#include "format/walname.h"

#define HISTORY_MAX_LINES 100000

void
history_free(struct history *h)
{
    free(h->entries);
    h->entries = NULL;
    h->n = 0;
}

/* Parse an unsigned decimal of at most 10 digits; advance *p. */
static int
parse_u32(const char **p, const char *end, uint32_t *out)
{
    uint64_t v = 0;
    int nd = 0;

    while (*p < end && **p >= '0' && **p <= '9' && nd < 11) {
        v = v * 10 + (uint64_t)(**p - '0');
        (*p)++;
        nd++;
    }
    if (nd == 0 || v > UINT32_MAX)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

int
history_parse(struct history *out, uint32_t tli, const char *text, size_t len, struct err *err)
{
    struct history h = {NULL, 0};
    size_t cap = 0;
    const char *p = text, *end = text + len;
    int lineno = 0;
    uint64_t prev_end = 0;

    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *q = p;
        uint32_t parent;
        uint64_t sw;
        char lsn[32];
        size_t n;
        struct err lerr;

        if (!eol)
            eol = end;
        if (++lineno > HISTORY_MAX_LINES) {
            err_set(err, ERR_CORRUPT, "timeline history has more than %d lines", HISTORY_MAX_LINES);
            goto fail;
        }
        while (q < eol && (*q == ' ' || *q == '\t' || *q == '\r'))
            q++;
        if (q == eol || *q == '#') {
            p = eol + 1;
            continue;
        }
        if (parse_u32(&q, eol, &parent) < 0 || q == eol || (*q != '\t' && *q != ' '))
            goto bad_line;
        while (q < eol && (*q == ' ' || *q == '\t'))
            q++;
        n = 0;
        while (q < eol && *q != '\t' && *q != ' ' && *q != '\r' && n < sizeof(lsn) - 1)
            lsn[n++] = *q++;
        lsn[n] = '\0';
        if (walname_lsn_parse(&sw, lsn, &lerr) < 0)
            goto bad_line;
        if (parent == 0 || parent >= tli || (h.n > 0 && parent <= h.entries[h.n - 1].tli)) {
            err_set(err, ERR_CORRUPT,
                    "timeline history of %" PRIu32 ", line %d: timeline %" PRIu32 " out of order",
                    tli, lineno, parent);
            goto fail;
        }
        /*
         * Switch points need not increase: a timeline recovered (with target
         * timeline "latest") to a point before its parent's own switch gets a
         * history whose last switch point is below the one before it.
         * PostgreSQL accepts that, and so do we.
         */
        if (h.n + 1 >= cap) {
            cap = cap ? cap * 2 : 8;
            h.entries = xrealloc(h.entries, cap * sizeof(*h.entries));
        }
        h.entries[h.n].tli = parent;
        h.entries[h.n].begin = prev_end;
        h.entries[h.n].end = sw;
        h.n++;
        prev_end = sw;
        p = eol + 1;
        continue;
    bad_line:
        err_set(err, ERR_CORRUPT, "timeline history of %" PRIu32 ", line %d: malformed line", tli,
                lineno);
        goto fail;
    }
    if (h.n + 1 > cap)
        h.entries = xrealloc(h.entries, (h.n + 1) * sizeof(*h.entries));
    h.entries[h.n].tli = tli;
    h.entries[h.n].begin = prev_end;
    h.entries[h.n].end = UINT64_MAX;
    h.n++;
    *out = h;
    return 0;
fail:
    history_free(&h);
    return -1;
}

uint32_t
history_tli_for_segno(const struct history *h, uint64_t segno, uint32_t seg_size)
{
    for (size_t i = h->n; i-- > 0;) {
        if (h->entries[i].begin / seg_size <= segno)
            return h->entries[i].tli;
    }
    return h->entries[0].tli;
}
