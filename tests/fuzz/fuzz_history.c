/* SPDX-License-Identifier: MIT */
/* Fuzz target: timeline history parser. Invariants: ranges are contiguous and increasing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "format/history.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct history h;
    struct err err;
    char *copy = malloc(size ? size : 1);

    memcpy(copy, data, size);
    if (history_parse(&h, 0x7fffffff, copy, size, &err) == 0) {
        for (size_t i = 1; i < h.n; i++)
            if (h.entries[i].begin != h.entries[i - 1].end ||
                h.entries[i].tli <= h.entries[i - 1].tli)
                abort();
        (void)history_tli_for_segno(&h, 12345, 16u << 20);
        history_free(&h);
    }
    free(copy);
    return 0;
}
