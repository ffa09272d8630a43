/* SPDX-License-Identifier: MIT */
/* `ferry repo`: list, read, write, delete and describe repository objects. */
#ifndef FERRY_REPO_CMD_H
#define FERRY_REPO_CMD_H

/* Exit codes of `ferry repo` (docs/ferry-repo.md; scripts rely on them). */
enum repo_exit {
    REPO_EXIT_OK = 0,
    REPO_EXIT_ERROR = 1,     /* anything else: I/O, network, server, disk full */
    REPO_EXIT_USAGE = 2,     /* bad option, argument or configuration */
    REPO_EXIT_NOT_FOUND = 3, /* the key (or the repository) does not exist */
    REPO_EXIT_EXISTS = 4,    /* put without --force: the key exists */
    REPO_EXIT_CORRUPT = 5,   /* not a ferry object, damaged, or wrong/missing key */
};

/* argv[0] is "repo"; returns the exit status. */
int repo_cmd_main(int argc, char **argv);

#endif
