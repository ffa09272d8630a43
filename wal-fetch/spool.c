/* SPDX-License-Identifier: MIT */
/* The prefetch spool as the calls see it: see spool.h. */
#include "spool.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
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

    if (f) {
        bool written = fprintf(f, "%s\n", name) > 0;

        /* closed once, whatever happened: a failed fclose has closed the stream too */
        if (fclose(f) == 0 && written)
            rename(tmp, path);
    }
    unlink(tmp);
    free(tmp);
    free(path);
}

/* --spool-path, or DEST's directory/ferry-prefetch, when DEST's name is want. */
static char *
spool_dir(const struct opts *o, const char *dest, const char *want, long prefetch)
{
    const char *base = strrchr(dest, '/');

    base = base ? base + 1 : dest;
    if (strcmp(base, want) != 0 || prefetch <= 0)
        return NULL;
    if (opts_get(o, "spool-path"))
        return xstrdup(opts_get(o, "spool-path"));
    return base == dest ? xstrdup("ferry-prefetch")
                        : xasprintf("%.*s/ferry-prefetch", (int)(base - dest - 1), dest);
}

char *
spool_for(const struct opts *o, const struct walname *w, const char *dest, long prefetch)
{
    return w->kind == WALNAME_SEGMENT ? spool_dir(o, dest, "RECOVERYXLOG", prefetch) : NULL;
}

char *
spool_for_history(const struct opts *o, const struct walname *w, const char *dest, long prefetch)
{
    return w->kind == WALNAME_HISTORY ? spool_dir(o, dest, "RECOVERYHISTORY", prefetch) : NULL;
}

int
spool_sock_addr(const char *spool, struct sockaddr_un *sa)
{
    int dfd = open(spool, O_PATH | O_DIRECTORY | O_CLOEXEC);

    if (dfd < 0)
        return -1;
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    snprintf(sa->sun_path, sizeof(sa->sun_path), "/proc/self/fd/%d/.sock", dfd);
    return dfd;
}

bool
spool_read_line(int fd, char *line, size_t size)
{
    size_t got = 0;

    while (got < size - 1) {
        ssize_t r = read(fd, line + got, size - 1 - got);

        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
        if (memchr(line, '\n', got))
            break;
    }
    line[got] = '\0';
    char *nl = strchr(line, '\n');
    if (!nl)
        return false;
    *nl = '\0';
    return true;
}

enum spool_answer
spool_ask(const char *spool, const char *name, unsigned seconds, char *reason, size_t reason_size)
{
    struct sockaddr_un sa;
    struct timeval send_to = {5, 0}, recv_to = {(time_t)seconds, 0};
    char line[512];
    enum spool_answer ans = SPOOL_ASK_NONE;
    int dfd = spool_sock_addr(spool, &sa);
    int fd = dfd < 0 ? -1 : socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    reason[0] = '\0';
    if (fd < 0)
        goto out;
    /* bounded everywhere: connect (a full backlog) and the wait for the answer */
    if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &send_to, sizeof(send_to)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &recv_to, sizeof(recv_to)) < 0 ||
        connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        goto out; /* no prefetcher at work (ENOENT, ECONNREFUSED): the core asks */
    int n = snprintf(line, sizeof(line), "%s\n", name);
    if (n <= 0 || (size_t)n >= sizeof(line) || write(fd, line, (size_t)n) != n)
        goto out;
    if (!spool_read_line(fd, line, sizeof(line)))
        goto out; /* no whole answer: timeout, or the prefetcher went away */
    if (strcmp(line, "ok") == 0) {
        ans = SPOOL_ASK_OK;
    } else if (strncmp(line, "missing ", 8) == 0) {
        snprintf(reason, reason_size, "%s", line + 8);
        ans = SPOOL_ASK_MISSING;
    }
out:
    if (fd >= 0)
        close(fd);
    if (dfd >= 0)
        close(dfd);
    return ans;
}

bool
standby_mode(void)
{
    return access("standby.signal", F_OK) == 0;
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
