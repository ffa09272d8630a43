/* SPDX-License-Identifier: MIT */
/* The prefetch spool as the calls see it: see spool.h. */
#include "spool.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/xmalloc.h"
#include "cli/front.h"

const struct opt_def fetch_opts[] = {
    {"prefetch", 0, OPT_INT, 0, "N", "segments to fetch ahead during recovery, 0-64 (default 16)"},
    {"prefetch-bytes", 0, OPT_SIZE, 0, "SIZE", "at most SIZE bytes in the spool (default 512M)"},
    {"spool-path", 0, OPT_STRING, 0, "DIR", "prefetch spool (default DEST's dir/ferry-prefetch)"},
    {"on-storage-error", 0, OPT_STRING, 0, "MODE",
     "auto (default: 1 in standby mode, else 200), fatal (200) or retry (1)"},
    OPT_END,
};

/*
 * This boot's identity (Linux: /proc/sys/kernel/random/boot_id), "" if
 * unknown. Spooled files are not fsynced: a note is trusted only in the boot
 * that wrote it (after a crash of the machine the spool is refetched).
 */
void
boot_id(char out[64])
{
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");

    out[0] = '\0';
    if (f) {
        if (!fgets(out, 64, f))
            out[0] = '\0';
        out[strcspn(out, "\n ")] = '\0';
        fclose(f);
    }
}

/*
 * A spooled file with its note: true when it is the file the prefetcher
 * verified (same identity, or else same checksum computed by hash), its
 * page header agrees with its name, and it was moved to dest. Without hash
 * (the front) a file whose identity changed is left as it is.
 */
bool
spool_take(const char *spool, const char *name, const char *dest, spool_hash_fn *hash)
{
    char *file = xasprintf("%s/%s", spool, name);
    char *note = xasprintf("%s/%s.sha256", spool, name);
    char want[65], hex[65], boot[64], now_boot[64];
    unsigned long long want_size, dev, ino;
    long long msec;
    long mnsec;
    unsigned char sha[32];
    uint64_t size;
    struct walname w;
    struct walheader h;
    struct stat st;
    bool has_header, ok = false;
    struct err err;
    FILE *f = fopen(note, "r");

    if (!f)
        goto out;
    if (fscanf(f, "%64s %llu %llu %llu %lld %ld %63s", want, &want_size, &dev, &ino, &msec, &mnsec,
               boot) != 7 ||
        stat(file, &st) < 0) {
        fclose(f);
        goto drop;
    }
    fclose(f);
    boot_id(now_boot);
    /* written before this boot and never synced: the contents may be lost */
    if (strcmp(boot, now_boot[0] ? now_boot : "-") != 0)
        goto drop;
    bool same = (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino &&
                (unsigned long long)st.st_size == want_size &&
                (long long)st.st_mtim.tv_sec == msec && (long)st.st_mtim.tv_nsec == mnsec;
    if (!same) {
        if (!hash)
            goto out; /* for the core to judge */
        if (hash(file, sha, &size, &err) < 0)
            goto drop;
        archive_sha256_hex(hex, sha);
        same = size == want_size && strcmp(hex, want) == 0;
    }
    if (!same || archive_check_local(file, &w, &h, &has_header, &err) < 0) {
        log_warning("prefetched \"%s\" is damaged, fetching it again", name);
        goto drop;
    }
    /*
     * Not fsynced, like the spool: PostgreSQL reads %p and discards it, or
     * keeps it with its own durable rename (fsync of file and directory).
     */
    if (rename(file, dest) < 0) {
        log_warning("could not move prefetched \"%s\" to \"%s\": %s", name, dest, strerror(errno));
        goto drop;
    }
    ok = true;
drop:
    unlink(file);
    unlink(note);
out:
    free(file);
    free(note);
    return ok;
}

/*
 * When the prefetcher is fetching this very file right now, wait for it
 * (bounded) rather than fetch it twice. True when its note appeared.
 */
bool
spool_wait(const char *spool, const char *name)
{
    char *busy = xasprintf("%s/%s.fetching", spool, name);
    char *note = xasprintf("%s/%s.sha256", spool, name);
    bool ready;

    /* the prefetcher holds the marker's flock while it fetches; a dead one holds nothing */
    front_lock_wait(busy, 30);
    ready = access(note, F_OK) == 0;
    free(busy);
    free(note);
    return ready;
}

void
position_write(const char *spool, const char *name)
{
    char *path = xasprintf("%s/.position", spool);
    char *tmp = xasprintf("%s/.position.%ld", spool, (long)getpid());
    FILE *f = fopen(tmp, "w");

    if (f && fprintf(f, "%s\n", name) > 0 && fclose(f) == 0)
        rename(tmp, path);
    else if (f)
        fclose(f);
    unlink(tmp);
    free(tmp);
    free(path);
}

char *
spool_for(const struct opts *o, const struct walname *w, const char *dest, long prefetch)
{
    const char *base = strrchr(dest, '/');

    base = base ? base + 1 : dest;
    if (strcmp(base, "RECOVERYXLOG") != 0 || prefetch <= 0 || w->kind != WALNAME_SEGMENT)
        return NULL;
    if (opts_get(o, "spool-path"))
        return xstrdup(opts_get(o, "spool-path"));
    return base == dest ? xstrdup("ferry-prefetch")
                        : xasprintf("%.*s/ferry-prefetch", (int)(base - dest - 1), dest);
}

bool
spool_enter(const char *spool, const char *name)
{
    if (mkdir(spool, 0700) < 0 && errno != EEXIST) {
        log_info("prefetch disabled: could not create \"%s\": %s", spool, strerror(errno));
        return false;
    }
    position_write(spool, name);
    return true;
}
