/* SPDX-License-Identifier: MIT */
/* Fuzz target: catalogue entries (JSON through jansson, then our field checks). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "archive/catalog.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct catalog_entry e;
    struct err err;

    if (catalog_parse(&e, (const char *)data, size, &err) == 0) {
        /* what parses must serialise and parse again to the same */
        char *text = catalog_to_json(&e);
        struct catalog_entry back;

        if (catalog_parse(&back, text, strlen(text), &err) != 0 || back.n_parts != e.n_parts ||
            back.start_lsn != e.start_lsn)
            abort();
        catalog_entry_free(&back);
        free(text);
        catalog_entry_free(&e);
    }
    return 0;
}
