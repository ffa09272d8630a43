/* SPDX-License-Identifier: MIT */
/*
 * ferry-wal-push, the front (cli/front.h): answers PostgreSQL's call for a
 * file the look-ahead already pushed (its note matches), keeps the
 * look-ahead going, and hands every other call to ferry-wal-push-core.
 */
#include <stdlib.h>
#include <string.h>

#include "archive/archive.h"
#include "base/log.h"
#include "base/xmalloc.h"
#include "cli/front.h"
#include "note.h"

/* Start a look-ahead process when none is at work and there is work for one. */
static void
ahead_nudge(const struct opts *o, const char *status_dir, const char *path, char **argv)
{
    long files, jobs;
    unsigned long long bytes;
    struct err err;
    char **names;
    size_t n;

    if (opts_get_int(o, "lookahead", LOOKAHEAD_DEFAULT, 0, 64, &files, &err) < 0 ||
        opts_get_int(o, "lookahead-jobs", LOOKAHEAD_JOBS_DEFAULT, 1, 16, &jobs, &err) < 0 ||
        opts_get_size(o, "lookahead-bytes", LOOKAHEAD_BYTES_DEFAULT, &bytes, &err) < 0 ||
        files == 0)
        return;
    char *lock = xasprintf("%s/%s", status_dir, LOOKAHEAD_LOCK);
    const char *slash = strrchr(path, '/');
    char *wal_dir = slash ? xstrndup(path, (size_t)(slash - path)) : xstrdup(".");

    if (front_lock_free(lock)) {
        n = ahead_candidates(status_dir, wal_dir, NULL, files, bytes, &names);
        names_free(names, n);
        if (n > 0)
            front_spawn_core(CORE_NAME, argv, ROLE_LOOKAHEAD);
    }
    free(lock);
    free(wal_dir);
}

int
main(int argc, char **argv)
{
    struct opts *o = front_parse("ferry-wal-push", push_opts, argc, argv);
    char **args;
    int n_args;
    char *status_dir = NULL;
    const char *repo_url;
    struct walname w;
    struct walheader h;
    bool has_header;
    struct err err;
    char name[WALNAME_MAX], want[65];
    uint64_t want_size;

    if (!o)
        goto core;
    args = opts_args(o, &n_args);
    repo_url = opts_get(o, "repo");
    if (n_args != 1 || !repo_url || !(status_dir = status_dir_of(args[0])) ||
        archive_check_local(args[0], &w, &h, &has_header, &err) < 0)
        goto core;
    walname_format(name, &w);
    busy_wait(status_dir, name);
    if (note_read(status_dir, name, args[0], repo_url, want, &want_size) != NOTE_SAME_FILE)
        goto core;
    /* the note stays until NAME is .done: the look-ahead must not push it again meanwhile */
    log_info("\"%s\" was already pushed ahead", name);
    ahead_nudge(o, status_dir, args[0], argv);
    free(status_dir);
    opts_free(o);
    return 0;
core:
    free(status_dir);
    opts_free(o);
    front_exec_core(CORE_NAME, argv);
    return 1;
}
