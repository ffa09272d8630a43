/* SPDX-License-Identifier: MIT */
/*
 * ferry-wal-fetch, the front (cli/front.h): answers PostgreSQL's call for a
 * segment the prefetcher already fetched and verified (a rename from the
 * spool), keeps a prefetcher at work, lets a running prefetcher answer the
 * other calls of a recovery (spool_ask), and hands everything else to
 * ferry-wal-fetch-core.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/xmalloc.h"
#include "cli/front.h"
#include "spool.h"

/* How long a call waits for the prefetcher's answer before asking itself. */
#define ASK_SECONDS 30

int
main(int argc, char **argv)
{
    struct opts *o = front_parse("ferry-wal-fetch", fetch_opts, argc, argv);
    char **args;
    int n_args;
    long prefetch;
    struct walname w;
    struct err err;
    char *spool = NULL;
    int rc = 0;

    if (!o)
        goto core;
    args = opts_args(o, &n_args);
    if (n_args != 2 || !opts_get(o, "repo") ||
        opts_get_int(o, "prefetch", PREFETCH_DEFAULT, 0, 64, &prefetch, &err) < 0 ||
        walname_parse(&w, args[0], &err) < 0)
        goto core;
    if ((spool = spool_for(o, &w, args[1], prefetch))) {
        if (!spool_enter(spool, args[0]))
            goto core;
        if (spool_take(spool, args[0], args[1], NULL) ||
            (spool_wait(spool, args[0]) && spool_take(spool, args[0], args[1], NULL))) {
            log_info("restored \"%s\" from the prefetch spool", args[0]);
            char *lock = xasprintf("%s/.lock", spool);
            if (front_lock_free(lock))
                front_spawn_core(CORE_NAME, argv, ROLE_PREFETCH);
            free(lock);
            goto done;
        }
    } else if (!(spool = spool_for_history(o, &w, args[1], prefetch))) {
        goto core;
    }
    /*
     * Not in the spool (the end of the archive, a segment asked again, a
     * timeline history probe): a running prefetcher asks the archive on its
     * open connection, which spares this call the core's start-up and a TLS
     * handshake. Anything but a clear answer goes to the core.
     */
    char reason[512];
    switch (spool_ask(spool, args[0], ASK_SECONDS, reason, sizeof(reason))) {
    case SPOOL_ASK_OK:
        if (!spool_take(spool, args[0], args[1], NULL))
            goto core;
        log_info("restored \"%s\" through the prefetcher", args[0]);
        goto done;
    case SPOOL_ASK_MISSING:
        log_info("%s (asked through the prefetcher)", reason);
        rc = 1;
        goto done;
    case SPOOL_ASK_NONE:
        break;
    }
    goto core;
done:
    free(spool);
    opts_free(o);
    return rc;
core:
    free(spool);
    opts_free(o);
    front_exec_core(CORE_NAME, argv);
    /* cannot run the core: not "not found" (recovery would end early) */
    return standby_mode() ? 1 : FETCH_EXIT_FATAL;
}
