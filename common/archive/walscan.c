/* SPDX-License-Identifier: MIT */
/*
 * What the WAL archive holds (see walscan.h): one listing of pg/wal/, the
 * .history files read and parsed, then per timeline the range of segments it
 * must hold and the holes in it.
 *
 * The range a timeline T must hold runs from the lowest segment archived on
 * any timeline of T's history (older WAL may have been expired) or T's
 * switch-in segment, whichever is later, to the segment before T's latest
 * switch-out point (known from the children's .history files) or T's last
 * archived segment, whichever is later. The segment holding a switch point
 * is read from the new timeline (history_tli_for_segno), so the old
 * timeline's .partial copy of it is never required.
 */
#include "archive/walscan.h"

#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/xmalloc.h"
#include "stream/stages.h"

#define WALSCAN_HISTORY_MAX (4u << 20)

struct collect {
    struct walscan *s;
    size_t cap;
    struct buf expect;
};

/* Keep entries whose name parses and whose key is exactly where archive_wal_key puts it. */
static int
collect_cb(const struct repo_entry *e, void *arg)
{
    struct collect *c = arg;
    const char *slash = strrchr(e->key, '/');
    const char *base = slash ? slash + 1 : e->key;
    struct walname w;
    struct err lerr;
    uint64_t segno = 0;

    if (e->is_prefix || walname_parse(&w, base, &lerr) < 0)
        return 0;
    buf_reset(&c->expect);
    archive_wal_key(&c->expect, &w);
    if (strcmp(buf_str(&c->expect), e->key) != 0)
        return 0;
    if (w.kind != WALNAME_HISTORY && walname_segno(&segno, &w, c->s->seg_size) < 0)
        return 0;
    if (c->s->n_files == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 256;
        c->s->files = xrealloc(c->s->files, c->cap * sizeof(*c->s->files));
    }
    struct walscan_file *f = &c->s->files[c->s->n_files++];
    f->name = w;
    f->key = xstrdup(e->key);
    f->stored_size = e->size;
    f->mtime = e->mtime;
    f->segno = segno;
    return 0;
}

static int
cmp_files(const void *x, const void *y)
{
    const struct walscan_file *a = x, *b = y;

    return strcmp(a->key, b->key);
}

static int
cmp_u32(const void *x, const void *y)
{
    uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;

    return a < b ? -1 : a > b;
}

static struct walscan_timeline *
find_timeline(const struct walscan *s, uint32_t tli)
{
    size_t lo = 0, hi = s->n_timelines;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (s->timelines[mid].tli == tli)
            return &s->timelines[mid];
        if (s->timelines[mid].tli < tli)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static void
history_self(struct history *h, uint32_t tli)
{
    h->entries = xcalloc(1, sizeof(*h->entries));
    h->n = 1;
    h->entries[0].tli = tli;
    h->entries[0].begin = 0;
    h->entries[0].end = UINT64_MAX;
}

static int
read_history(struct archive *a, const struct walscan_file *f, struct history *out, struct err *err)
{
    struct buf text = BUF_INIT;
    struct sink *chain =
        object_decode_sink_new(buf_sink_new(&text, WALSCAN_HISTORY_MAX), a->key, NULL);
    int rc = -1;

    if (repo_get(a->repo, f->key, 0, 0, chain, err) < 0 || sink_finish(chain, err) < 0) {
        err_prefix(err, "could not read \"%s\"", f->key);
        goto out;
    }
    if (history_parse(out, f->name.tli, buf_str(&text), text.len, err) < 0) {
        err_prefix(err, "\"%s\"", f->key);
        err->kind = ERR_CORRUPT;
        goto out;
    }
    rc = 0;
out:
    sink_free(chain);
    buf_free(&text);
    return rc;
}

/* Append a one-segment gap, merged with the previous one if adjacent (never below floor). */
static void
add_gap(struct walscan_gap **gaps, size_t *n, size_t floor, uint32_t tli, uint64_t first,
        uint64_t last)
{
    if (*n > floor) {
        struct walscan_gap *g = &(*gaps)[*n - 1];

        if (g->tli == tli && g->last_missing + 1 == first) {
            g->last_missing = last;
            return;
        }
    }
    *gaps = xrealloc(*gaps, (*n + 1) * sizeof(**gaps));
    (*gaps)[*n].tli = tli;
    (*gaps)[*n].first_missing = first;
    (*gaps)[*n].last_missing = last;
    (*n)++;
}

/* Lowest segment (full or partial) archived on any timeline of h. */
static bool
lowest_along(const struct walscan *s, const struct history *h, uint64_t *out)
{
    bool found = false;

    for (size_t i = 0; i < s->n_files; i++) {
        const struct walscan_file *f = &s->files[i];

        if (f->name.kind != WALNAME_SEGMENT && f->name.kind != WALNAME_PARTIAL)
            continue;
        for (size_t j = 0; j < h->n; j++) {
            if (h->entries[j].tli == f->name.tli && (!found || f->segno < *out)) {
                *out = f->segno;
                found = true;
            }
        }
    }
    return found;
}

/* The gaps inside the range each timeline must hold (see the file comment). */
static void
find_gaps(struct walscan *s)
{
    for (size_t i = 0; i < s->n_timelines; i++) {
        struct walscan_timeline *t = &s->timelines[i];
        const struct history_entry *self = &t->history.entries[t->history.n - 1];
        uint64_t lo = 0, hi, switch_in = self->begin / s->seg_size;
        bool has_end = false;
        uint64_t end = 0;

        if (!lowest_along(s, &t->history, &lo))
            continue;
        if (lo < switch_in)
            lo = switch_in;
        /* the latest point where a child timeline left this one */
        for (size_t j = 0; j < s->n_timelines; j++) {
            const struct history *ch = &s->timelines[j].history;

            for (size_t k = 0; k + 1 < ch->n; k++) {
                if (ch->entries[k].tli == t->tli && (!has_end || ch->entries[k].end > end)) {
                    end = ch->entries[k].end;
                    has_end = true;
                }
            }
        }
        hi = t->n_segments > 0 ? t->last_segno : 0;
        if (has_end && end / s->seg_size > 0 && end / s->seg_size - 1 > hi)
            hi = end / s->seg_size - 1;
        if (t->n_segments == 0 && !(has_end && end / s->seg_size > 0))
            continue;
        for (uint64_t segno = lo; segno <= hi; segno++) {
            if (!walscan_find_segment(s, t->tli, segno))
                add_gap(&s->gaps, &s->n_gaps, 0, t->tli, segno, segno);
        }
    }
}

int
walscan_run(struct walscan *out, struct archive *a, uint32_t seg_size, struct err *err)
{
    struct walscan s;
    struct collect c;
    uint32_t *tlis = NULL;
    size_t n_tlis = 0;
    int rc = -1;

    memset(&s, 0, sizeof(s));
    memset(&c, 0, sizeof(c));
    s.seg_size = seg_size;
    c.s = &s;
    if (!walname_seg_size_valid(seg_size)) {
        err_set(err, ERR_USAGE, "invalid WAL segment size %u", seg_size);
        goto out;
    }
    if (repo_list(a->repo, ARCHIVE_WAL_PREFIX, NULL, collect_cb, &c, err) < 0)
        goto out;
    if (s.n_files > 1)
        qsort(s.files, s.n_files, sizeof(*s.files), cmp_files);

    /* the set of timelines, ascending */
    tlis = xcalloc(s.n_files ? s.n_files : 1, sizeof(*tlis));
    for (size_t i = 0; i < s.n_files; i++)
        tlis[i] = s.files[i].name.tli;
    qsort(tlis, s.n_files, sizeof(*tlis), cmp_u32);
    for (size_t i = 0; i < s.n_files; i++) {
        if (n_tlis == 0 || tlis[n_tlis - 1] != tlis[i])
            tlis[n_tlis++] = tlis[i];
    }
    s.timelines = xcalloc(n_tlis ? n_tlis : 1, sizeof(*s.timelines));
    s.n_timelines = n_tlis;
    for (size_t i = 0; i < n_tlis; i++)
        s.timelines[i].tli = tlis[i];

    for (size_t i = 0; i < s.n_files; i++) {
        const struct walscan_file *f = &s.files[i];
        struct walscan_timeline *t = find_timeline(&s, f->name.tli);

        t->stored_bytes += f->stored_size;
        s.stored_bytes += f->stored_size;
        if (f->name.kind == WALNAME_HISTORY) {
            if (read_history(a, f, &t->history, err) < 0)
                goto out;
            t->has_history = true;
        } else if (f->name.kind == WALNAME_SEGMENT) {
            if (t->n_segments == 0 || f->segno < t->first_segno)
                t->first_segno = f->segno;
            if (t->n_segments == 0 || f->segno > t->last_segno)
                t->last_segno = f->segno;
            t->n_segments++;
        }
    }
    for (size_t i = 0; i < s.n_timelines; i++) {
        if (!s.timelines[i].has_history)
            history_self(&s.timelines[i].history, s.timelines[i].tli);
    }
    find_gaps(&s);
    *out = s;
    memset(&s, 0, sizeof(s));
    rc = 0;
out:
    walscan_free(&s);
    buf_free(&c.expect);
    free(tlis);
    return rc;
}

void
walscan_free(struct walscan *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_files; i++)
        free(s->files[i].key);
    free(s->files);
    for (size_t i = 0; i < s->n_timelines; i++)
        history_free(&s->timelines[i].history);
    free(s->timelines);
    free(s->gaps);
    memset(s, 0, sizeof(*s));
}

const struct walscan_file *
walscan_find_segment(const struct walscan *s, uint32_t tli, uint64_t segno)
{
    struct walname w;
    struct buf key = BUF_INIT;
    const struct walscan_file *found = NULL;
    size_t lo = 0, hi = s->n_files;

    if (!walname_seg_size_valid(s->seg_size))
        return NULL;
    walname_from_segno(&w, tli, segno, s->seg_size);
    archive_wal_key(&key, &w);
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(s->files[mid].key, buf_str(&key));

        if (c == 0) {
            found = &s->files[mid];
            break;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    buf_free(&key);
    return found;
}

size_t
walscan_missing(const struct walscan *s, uint32_t tli, uint64_t start_lsn, uint64_t stop_lsn,
                struct walscan_gap **gaps, size_t *n_gaps)
{
    const struct walscan_timeline *t = find_timeline(s, tli);
    struct history self = {NULL, 0};
    const struct history *h;
    uint64_t first, last;
    size_t before = *n_gaps;

    if (!walname_seg_size_valid(s->seg_size))
        return 0;
    if (t) {
        h = &t->history;
    } else {
        history_self(&self, tli);
        h = &self;
    }
    /* the stop point's segment: the one holding the byte before it (as pg_backup_stop waits) */
    first = start_lsn / s->seg_size;
    last = stop_lsn > start_lsn ? (stop_lsn - 1) / s->seg_size : first;
    for (uint64_t segno = first; segno <= last; segno++) {
        uint32_t on = history_tli_for_segno(h, segno, s->seg_size);

        if (!walscan_find_segment(s, on, segno))
            add_gap(gaps, n_gaps, before, on, segno, segno);
    }
    history_free(&self);
    return *n_gaps - before;
}
