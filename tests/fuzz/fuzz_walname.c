/* SPDX-License-Identifier: MIT */
/* Fuzz target: WAL file names and LSN text. A parsed name must format back to itself. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "format/walname.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    struct walname w;
    struct err err;
    char back[WALNAME_MAX];
    uint64_t v;

    memcpy(s, data, size);
    s[size] = '\0';
    if (walname_parse(&w, s, &err) == 0) {
        walname_format(back, &w);
        if (strcmp(back, s) != 0)
            abort();
        (void)walname_segno(&v, &w, 16u << 20);
    }
    if (walname_lsn_parse(&v, s, &err) == 0) {
        char buf[18];

        walname_lsn_format(buf, v);
        if (walname_lsn_parse(&v, buf, &err) != 0)
            abort();
    }
    free(s);
    return 0;
}
