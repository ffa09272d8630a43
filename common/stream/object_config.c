/* SPDX-License-Identifier: MIT */
/* The object options (compression, client-side encryption) from the common options. */
#include "stream/object_config.h"

#include <string.h>

int
object_opts_load(struct object_opts *out, struct crypt_key **key_out, const struct opts *o,
                 struct err *err)
{
    const char *s = opts_get(o, "compress");
    const char *key_file = opts_get(o, "encryption-key-file");
    const char *pass = opts_get(o, "encryption-passphrase");
    long level;
    long max = 0;

    memset(out, 0, sizeof(*out));
    *key_out = NULL;
    out->compress = OBJECT_COMPRESS_ZSTD;
    if (s && object_compress_parse(s, &out->compress, err) < 0)
        return -1;
    if (out->compress == OBJECT_COMPRESS_ZSTD)
        max = 19; /* 20-22 ("ultra") need much more memory to decode: not worth it here */
    else if (out->compress == OBJECT_COMPRESS_GZIP)
        max = 9;
    if (out->compress == OBJECT_COMPRESS_NONE) {
        level = 0;
    } else if (opts_get_int(o, "compress-level", 0, 0, max, &level, err) < 0) {
        return -1;
    }
    out->level = (int)level;
    if (key_file && pass)
        return err_set(err, ERR_USAGE,
                       "--encryption-key-file and --encryption-passphrase cannot be used together "
                       "(from %s and %s)",
                       opts_source(o, "encryption-key-file"),
                       opts_source(o, "encryption-passphrase"));
    if (key_file && crypt_key_from_file(key_out, key_file, err) < 0)
        return -1;
    if (pass && crypt_key_from_passphrase(key_out, pass, err) < 0)
        return -1;
    out->key = *key_out;
    return 0;
}
