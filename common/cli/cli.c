/* SPDX-License-Identifier: MIT */
/* Program start-up shared by every ferry program: see cli.h. */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "storage/repo_config.h"
#include "stream/object_config.h"

int
cli_init(struct cli *c, const char *progname, const char *usage, const struct opt_def *own,
         int argc, char **argv, struct err *err)
{
    const struct opt_def *tables[3] = {opts_common, own, NULL};
    const char *level;
    enum log_level lv;

    memset(c, 0, sizeof(*c));
    c->progname = progname;
    log_init(progname);
    /* "ferry-wal-push" reads the [wal-push] section of the config file */
    opts_set_section(strncmp(progname, "ferry-", 6) == 0 ? progname + 6 : progname);
    if (opts_parse(&c->opts, tables, argc, argv, err) < 0)
        return -1;
    if (opts_is_help(c->opts)) {
        printf("%s\n\nOptions (each also FERRY_NAME in the environment and name = value in the "
               "config file):\n",
               usage);
        opts_print_help(stdout, tables);
        c->done = true;
        return 0;
    }
    if (opts_is_version(c->opts)) {
        printf("%s (ferry) %s\n", progname, FERRY_VERSION);
        c->done = true;
        return 0;
    }
    level = opts_get(c->opts, "log-level");
    if (level) {
        if (log_level_parse(level, &lv) < 0)
            return err_set(err, ERR_USAGE,
                           "invalid --log-level \"%s\": use error, warning, notice, info or debug",
                           level);
        log_set_level(lv);
    }
    c->args = opts_args(c->opts, &c->n_args);
    return 0;
}

int
cli_load(struct cli *c, struct err *err)
{
    if (c->loaded)
        return 0;
    if (!opts_get(c->opts, "repo"))
        return err_set(err, ERR_USAGE, "no repository given: use --repo URL or FERRY_REPO");
    if (repo_opts_load(&c->ropts, c->opts, err) < 0)
        return -1;
    if (object_opts_load(&c->oopts, &c->key, c->opts, err) < 0)
        return -1;
    c->loaded = true;
    return 0;
}

int
cli_open_repo(struct cli *c, struct err *err)
{
    if (c->repo)
        return 0;
    if (cli_load(c, err) < 0)
        return -1;
    return repo_open(&c->repo, opts_get(c->opts, "repo"), &c->ropts, err);
}

void
cli_free(struct cli *c)
{
    repo_close(c->repo);
    crypt_key_free(c->key);
    opts_free(c->opts);
    memset(c, 0, sizeof(*c));
}
