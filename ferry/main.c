/* SPDX-License-Identifier: MIT */
/*
 * ferry: the front door. `ferry repo ...` is built in; `ferry TOOL args...`
 * runs ferry-TOOL (git style), looked up first beside this executable
 * (/proc/self/exe; in a build tree also ../TOOL/ferry-TOOL), then in PATH.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "base/log.h"
#include "base/xmalloc.h"
#include "expire.h"
#include "info.h"
#include "repo_cmd.h"

static const struct {
    const char *name;
    const char *what;
} tools[] = {
    {"repo", "list, read, write, delete and describe repository objects (built in)"},
    {"info", "the repository at a glance: backups, WAL, recovery point age (built in)"},
    {"expire", "delete backups and WAL beyond the retention policy (built in)"},
    {"wal-push", "archive one WAL file (PostgreSQL archive_command)"},
    {"wal-fetch", "restore one WAL file (PostgreSQL restore_command)"},
    {"basebackup", "stream a PostgreSQL base backup into the repository"},
    {"restore", "restore a PostgreSQL base backup and write the recovery settings"},
    {"verify", "check that backups and WAL archives are complete and intact"},
    {"qdrant", "snapshot, restore and expire Qdrant collections"},
    {"redis", "ship Redis RDB and AOF; restore; expire"},
};

static void
usage(FILE *f)
{
    fputs("usage: ferry COMMAND [ARGS...]\n"
          "       ferry --help | --version\n"
          "\n"
          "Back up and restore PostgreSQL, Redis and Qdrant to S3 or a directory.\n"
          "\n"
          "Commands:\n",
          f);
    for (size_t i = 0; i < sizeof(tools) / sizeof(tools[0]); i++)
        fprintf(f, "  %-12s %s\n", tools[i].name, tools[i].what);
    fputs("\n"
          "`ferry COMMAND ARGS...` runs ferry-COMMAND ARGS... (found beside ferry, then in\n"
          "PATH); `ferry COMMAND --help` describes its options.\n"
          "\n"
          "Exit status of ferry itself: 2 for an unknown command; otherwise the command's own\n"
          "(ferry repo: 0 ok, 1 error, 2 usage, 3 not found, 4 already exists, 5 corrupt).\n",
          f);
}

static bool
valid_tool_name(const char *s)
{
    if (!*s || *s == '-')
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' || *s == '_'))
            return false;
    return true;
}

/* Directory of the running executable, or NULL. */
static char *
self_dir(void)
{
    char path[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
    char *slash;

    if (n <= 0)
        return NULL;
    path[n] = '\0';
    slash = strrchr(path, '/');
    if (!slash)
        return NULL;
    *slash = '\0';
    return xstrdup(path);
}

/* exec ferry-TOOL; returns only on failure, with the exit status to use. */
static int
run_tool(const char *tool, int argc, char **argv)
{
    char *name = xasprintf("ferry-%s", tool);
    char *dir = self_dir();
    char **nargv = xcalloc((size_t)argc + 1, sizeof(*nargv));
    int saved = ENOENT;

    nargv[0] = name;
    for (int i = 1; i < argc; i++)
        nargv[i] = argv[i];
    if (dir) {
        char *cand[2];

        cand[0] = xasprintf("%s/%s", dir, name);
        cand[1] = xasprintf("%s/../%s/%s", dir, tool, name); /* build tree */
        for (int i = 0; i < 2; i++) {
            if (access(cand[i], X_OK) == 0) {
                execv(cand[i], nargv);
                saved = errno;
                log_error("could not run \"%s\": %s", cand[i], strerror(saved));
                return 1;
            }
        }
        free(cand[0]);
        free(cand[1]);
        free(dir);
    }
    execvp(name, nargv);
    saved = errno;
    if (saved == ENOENT || saved == ENOTDIR) {
        log_error("unknown command \"%s\"", tool);
        return 2;
    }
    log_error("could not run \"%s\": %s", name, strerror(saved));
    return 1;
}

int
main(int argc, char **argv)
{
    const char *cmd;

    log_init("ferry");
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("ferry %s\n", FERRY_VERSION);
        return 0;
    }
    if (strcmp(cmd, "repo") == 0)
        return repo_cmd_main(argc - 1, argv + 1);
    if (strcmp(cmd, "info") == 0)
        return info_main(argc - 1, argv + 1);
    if (strcmp(cmd, "expire") == 0)
        return expire_main(argc - 1, argv + 1);
    if (!valid_tool_name(cmd)) {
        log_error("unknown command \"%s\"", cmd);
        return 2;
    }
    return run_tool(cmd, argc - 1, argv + 1);
}
