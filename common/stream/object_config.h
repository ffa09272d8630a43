/* SPDX-License-Identifier: MIT */
/*
 * From parsed options (base/options.h) to struct object_opts: --compress,
 * --compress-level, --encryption-key-file, --encryption-passphrase.
 */
#ifndef STREAM_OBJECT_CONFIG_H
#define STREAM_OBJECT_CONFIG_H

#include "base/err.h"
#include "base/options.h"
#include "stream/object.h"

/*
 * Fill out (compression zstd unless --compress says otherwise) and make the
 * client-side key if one is configured: *key_out (caller frees with
 * crypt_key_free; NULL when none) and out->key point to it. ERR_USAGE for a
 * bad value or both a key file and a passphrase; ERR_CONFIG for a bad key
 * file (see crypt_key_from_file).
 */
int object_opts_load(struct object_opts *out, struct crypt_key **key_out, const struct opts *o,
                     struct err *err);

#endif
