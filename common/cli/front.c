/* SPDX-License-Identifier: MIT */
/* The front programs' start-up and hand-over to the core: see front.h. */
#include "cli/front.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "base/log.h"
#include "base/xmalloc.h"
#include "cli/cli.h"

/* A copy of argv for the parser (it scrubs secrets; the core must get them whole). */
static char **argv_copy;

struct opts *
front_parse(const char *progname, const struct opt_def *own, int argc, char **argv)
{
    const struct opt_def *tables[3] = {opts_common, own, NULL};
    struct opts *o = NULL;
    struct err err;
    const char *level;
    enum log_level lv;

    log_init(progname);
    opts_set_section(progname + 6); /* "ferry-wal-push" reads [wal-push] */
    argv_copy = xcalloc((size_t)argc + 1, sizeof(*argv_copy));
    for (int i = 0; i < argc; i++)
        argv_copy[i] = xstrdup(argv[i]);
    if (opts_parse(&o, tables, argc, argv_copy, &err) < 0)
        return NULL;
    level = opts_get(o, "log-level");
    if (opts_is_help(o) || opts_is_version(o) || (level && log_level_parse(level, &lv) < 0)) {
        opts_free(o);
        return NULL;
    }
    if (level)
        log_set_level(lv);
    return o;
}

/* The core's path, or NULL (errno set) when none of the places has it. */
static char *
core_path(const char *core)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    char *p;

    if (n > 0) {
        self[n] = '\0';
        char *slash = strrchr(self, '/');

        if (slash) {
            *slash = '\0';
            p = xasprintf("%s/%s", self, core);
            if (access(p, X_OK) == 0)
                return p;
            free(p);
        }
    }
    p = xasprintf("%s/%s", FERRY_LIBEXECDIR, core);
    if (access(p, X_OK) == 0)
        return p;
    free(p);
    if (n > 0) {
        p = xasprintf("%s/../libexec/ferry/%s", self, core);
        if (access(p, X_OK) == 0)
            return p;
        free(p);
    }
    errno = ENOENT;
    return NULL;
}

void
front_exec_core(const char *core, char **argv)
{
    char *path = core_path(core);

    if (path) {
        char *arg0 = argv[0];

        argv[0] = path;
        execv(path, argv);
        argv[0] = arg0;
    }
    log_error("cannot run %s (looked beside this program and in %s): %s", core, FERRY_LIBEXECDIR,
              strerror(errno));
    free(path);
}

void
front_spawn_core(const char *core, char **argv, const char *role)
{
    if (!cli_detach())
        return;
    setenv(FRONT_ROLE_ENV, role, 1);
    front_exec_core(core, argv);
    _exit(1);
}

bool
front_lock_free(const char *path)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    bool free_ = false;

    if (fd < 0)
        return false;
    if (flock(fd, LOCK_EX | LOCK_NB) == 0)
        free_ = true;
    close(fd);
    return free_;
}

static void
on_alarm(int sig)
{
    (void)sig; /* only interrupts the blocking flock */
}

bool
front_lock_wait(const char *path, unsigned seconds)
{
    struct sigaction sa, old;
    unsigned before;
    bool got;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return true;
    if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
        close(fd);
        return true;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_alarm; /* no SA_RESTART: flock returns EINTR */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, &old);
    before = alarm(seconds);
    got = flock(fd, LOCK_SH) == 0;
    alarm(0);
    sigaction(SIGALRM, &old, NULL);
    if (before)
        alarm(before > seconds ? before - seconds : 1);
    close(fd);
    return got;
}
