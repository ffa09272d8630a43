/* SPDX-License-Identifier: MIT */
/* Fuzz target: the WAL long page header parser and its name check. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "format/walheader.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct walheader h;
    struct walname w;
    struct err err;

    /* a copy of exactly size bytes, so reads past the end are caught by ASan */
    uint8_t *copy = malloc(size ? size : 1);

    memcpy(copy, data, size);
    if (walheader_parse(&h, copy, size, &err) == 0) {
        walname_from_segno(&w, h.tli, h.pageaddr / h.seg_size, h.seg_size);
        if (walheader_check_name(&h, &w, &err) != 0)
            abort(); /* the name made from the header must match it */
    }
    free(copy);
    return 0;
}
