/* SPDX-License-Identifier: MIT */
/*
 * From parsed options (base/options.h) to struct repo_opts. Here rather than
 * in base/ because base/ must not know storage/.
 */
#ifndef STORAGE_REPO_CONFIG_H
#define STORAGE_REPO_CONFIG_H

#include "base/err.h"
#include "base/options.h"
#include "storage/repo.h"

/*
 * Fill out from the opts_common options: --s3-* (AWS_ENDPOINT_URL when no
 * --s3-endpoint is set anywhere), reading and checking the SSE-C key file
 * (32 bytes raw or base64; it must be private). The strings in out point
 * into o: keep o alive as long as out. ERR_USAGE for a bad value, ERR_CONFIG
 * for a bad key file. Logs a warning when TLS verification is turned off.
 */
int repo_opts_load(struct repo_opts *out, const struct opts *o, struct err *err);

#endif
