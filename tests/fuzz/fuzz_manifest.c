/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the backup_manifest parser. Invariants of an accepted
 * manifest: files sorted and unique, every path relative and findable,
 * checksum lengths match their algorithm, version 2 has a system identifier.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "format/manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct manifest m;
    struct err err;
    char *copy = malloc(size ? size : 1);

    memcpy(copy, data, size);
    if (manifest_parse(&m, copy, size, &err) == 0) {
        if ((m.version == 2) != m.has_sysid || m.n_wal == 0)
            abort();
        for (size_t i = 0; i < m.n_files; i++) {
            const struct manifest_file *f = &m.files[i];
            unsigned char d[MANIFEST_DIGEST_MAX];
            struct manifest_hash *h;

            if (!f->path[0] || f->path[0] == '/' || f->checksum_len != manifest_algo_len(f->algo))
                abort();
            if (i && strcmp(m.files[i - 1].path, f->path) >= 0)
                abort();
            if (manifest_find(&m, f->path) != f)
                abort();
            h = manifest_hash_new(f->algo);
            manifest_hash_update(h, f->path, strlen(f->path));
            manifest_hash_end(h, d);
            manifest_hash_free(h);
            (void)manifest_file_check(f, f->size, d, &err);
        }
        manifest_free(&m);
    }
    free(copy);
    return 0;
}
