/* SPDX-License-Identifier: MIT */
/* Notes, busy locks and look-ahead candidates of ferry-wal-push: see note.h. */
#include "note.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "archive/archive.h"
#include "base/xmalloc.h"
#include "cli/front.h"
#include "format/walname.h"

const struct opt_def push_opts[] = {
    {"lookahead", 0, OPT_INT, 0, "N",
     "push ahead among the N oldest .ready files, 0-64 (default 16; 0: off)"},
    {"lookahead-bytes", 0, OPT_SIZE, 0, "SIZE",
     "and among the oldest within SIZE bytes (default 256M)"},
    {"lookahead-jobs", 0, OPT_INT, 0, "N", "files pushed ahead at once, 1-16 (default 4)"},
    OPT_END,
};

char *
status_dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? xasprintf("%.*s/archive_status", (int)(slash - path), path)
                      : xstrdup("archive_status");
    struct stat st;

    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
        free(dir);
        return NULL;
    }
    return dir;
}

enum note_state
note_read(const char *status_dir, const char *name, const char *path, const char *repo_url,
          char want_hex[65], uint64_t *want_size)
{
    char *npath = xasprintf("%s/%s%s", status_dir, name, NOTE_SUFFIX);
    char url[4096];
    unsigned long long size, dev, ino;
    long long msec;
    long mnsec;
    struct stat st;
    enum note_state state = NOTE_NONE;
    FILE *f = fopen(npath, "r");

    if (!f)
        goto out;
    if (fscanf(f, "%64s %llu %llu %llu %lld %ld\n", want_hex, &size, &dev, &ino, &msec, &mnsec) !=
            6 ||
        !fgets(url, sizeof(url), f)) {
        fclose(f);
        unlink(npath);
        goto out;
    }
    fclose(f);
    url[strcspn(url, "\n")] = '\0';
    if (strcmp(url, repo_url) != 0 || stat(path, &st) < 0) {
        unlink(npath); /* another repository's, or for a file gone */
        goto out;
    }
    *want_size = size;
    state = (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino &&
                    (unsigned long long)st.st_size == size &&
                    (long long)st.st_mtim.tv_sec == msec && (long)st.st_mtim.tv_nsec == mnsec
                ? NOTE_SAME_FILE
                : NOTE_CHECK;
out:
    free(npath);
    return state;
}

/*
 * Written atomically, best effort, only once the file is stored. The
 * identity (device, inode, size, modification time) lets PostgreSQL's later
 * call trust the note without reading the file: a WAL file does not change
 * once it is .ready.
 */
void
note_write(const char *status_dir, const char *name, const char *path, const unsigned char sha[32],
           uint64_t size, const char *repo_url)
{
    char hex[65];
    char *npath = xasprintf("%s/%s%s", status_dir, name, NOTE_SUFFIX);
    char *tmp = xasprintf("%s.tmp.%ld", npath, (long)getpid());
    struct stat st;
    FILE *f;

    if (stat(path, &st) < 0 || (uint64_t)st.st_size != size)
        goto out;
    f = fopen(tmp, "w");
    archive_sha256_hex(hex, sha);
    if (f) {
        int ok = fprintf(f, "%s %llu %llu %llu %lld %ld\n%s\n", hex, (unsigned long long)size,
                         (unsigned long long)st.st_dev, (unsigned long long)st.st_ino,
                         (long long)st.st_mtim.tv_sec, (long)st.st_mtim.tv_nsec, repo_url) > 0;

        if (fclose(f) == 0 && ok && rename(tmp, npath) == 0)
            tmp[0] = '\0';
    }
    if (tmp[0])
        unlink(tmp);
out:
    free(tmp);
    free(npath);
}

void
note_remove(const char *status_dir, const char *name)
{
    char *npath = xasprintf("%s/%s%s", status_dir, name, NOTE_SUFFIX);

    unlink(npath);
    free(npath);
}

int
busy_take(const char *status_dir, const char *name)
{
    char *path = xasprintf("%s/%s%s", status_dir, name, BUSY_SUFFIX);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

    free(path);
    if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) < 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

void
busy_release(int fd, const char *status_dir, const char *name)
{
    char *path = xasprintf("%s/%s%s", status_dir, name, BUSY_SUFFIX);

    if (fd >= 0) {
        unlink(path); /* while still locked: whoever takes it next sees the note */
        close(fd);
    }
    free(path);
}

void
busy_wait(const char *status_dir, const char *name)
{
    char *path = xasprintf("%s/%s%s", status_dir, name, BUSY_SUFFIX);

    /* at most about two minutes: one file's upload with its retries */
    front_lock_wait(path, 120);
    free(path);
}

static int
cmp_names(const void *x, const void *y)
{
    const char *a = *(char *const *)x, *b = *(char *const *)y;
    bool ha = strstr(a, ".history") != NULL, hb = strstr(b, ".history") != NULL;

    /* PostgreSQL archives history files first, then the oldest segment */
    if (ha != hb)
        return ha ? -1 : 1;
    return strcmp(a, b);
}

void
names_free(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

size_t
ahead_candidates(const char *status_dir, const char *wal_dir, const char *except, long max_files,
                 unsigned long long max_bytes, char ***out)
{
    DIR *d = opendir(status_dir);
    struct dirent *de;
    char **names = NULL;
    size_t n = 0, cap = 0, keep = 0;
    unsigned long long bytes = 0;

    *out = NULL;
    if (!d)
        return 0;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        size_t nlen = strlen(NOTE_SUFFIX);
        struct walname w;
        struct err err;

        if (len > nlen && strcmp(de->d_name + len - nlen, NOTE_SUFFIX) == 0) {
            /* a note outlives its use once PostgreSQL marked the file .done: remove it */
            char *ready = xasprintf("%s/%.*s.ready", status_dir, (int)(len - nlen), de->d_name);

            if (access(ready, F_OK) != 0 && errno == ENOENT) {
                char *note = xasprintf("%s/%s", status_dir, de->d_name);

                unlink(note);
                free(note);
            }
            free(ready);
            continue;
        }
        if (len < 7 || strcmp(de->d_name + len - 6, ".ready") != 0)
            continue;
        char *name = xstrndup(de->d_name, len - 6);
        if ((except && strcmp(name, except) == 0) || walname_parse(&w, name, &err) < 0) {
            free(name);
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 32;
            names = xrealloc(names, cap * sizeof(*names));
        }
        names[n++] = name;
    }
    closedir(d);
    if (n > 1)
        qsort(names, n, sizeof(*names), cmp_names);
    for (size_t i = 0; i < n; i++) {
        char *p = xasprintf("%s/%s", wal_dir, names[i]);
        char *note = xasprintf("%s/%s%s", status_dir, names[i], NOTE_SUFFIX);
        struct stat st;
        bool in_window = (long)i < max_files && stat(p, &st) == 0 &&
                         bytes + (unsigned long long)st.st_size <= max_bytes;

        if (in_window)
            bytes += (unsigned long long)st.st_size;
        if (in_window && access(note, F_OK) != 0)
            names[keep++] = names[i];
        else
            free(names[i]);
        free(p);
        free(note);
    }
    if (keep == 0) {
        free(names);
        names = NULL;
    }
    *out = names;
    return keep;
}
