/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target for the config file parser (base/config.c): any bytes either
 * parse into entries whose names are valid and unique within their section,
 * or fail with a message naming the file and a line.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct config *c = NULL;
    struct err err;

    err_clear(&err);
    if (config_parse(&c, (const char *)data, size, "fuzz.conf", &err) < 0) {
        if (err.kind != ERR_CONFIG || !strstr(err.msg, "\"fuzz.conf\""))
            abort();
        if (c)
            abort();
        return 0;
    }
    for (size_t i = 0; i < c->n; i++) {
        const char *n = c->entries[i].name;

        if (!*n || strspn(n, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(n))
            abort();
        if (c->entries[i].line < 1 || !c->entries[i].value)
            abort();
        /* a name appears once per section ([program] sections may repeat it) */
        const char *sec = c->entries[i].section;
        for (size_t j = 0; j < i; j++) {
            const char *sj = c->entries[j].section;
            bool same = sj == sec || (sj && sec && strcmp(sj, sec) == 0);
            if (same && strcmp(c->entries[j].name, n) == 0)
                abort();
        }
    }
    config_free(c);
    return 0;
}
