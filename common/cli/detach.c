/* SPDX-License-Identifier: MIT */
/* cli_detach (cli.h), apart so that the front programs (front.h) link it alone. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"

bool
cli_detach(void)
{
    pid_t pid;
    int fd;

    fflush(NULL);
    pid = fork();
    if (pid != 0) {
        if (pid > 0)
            waitpid(pid, NULL, 0); /* the middle process exits at once */
        return false;
    }
    setsid();
    if (fork() != 0)
        _exit(0);
    fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, 0);
        dup2(fd, 1);
        if (fd > 2)
            close(fd);
    }
    return true;
}
