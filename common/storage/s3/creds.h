/* SPDX-License-Identifier: MIT */
/*
 * Where S3 credentials and region come from, in the AWS CLI's order:
 * explicit options, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN,
 * the shared files (AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials,
 * AWS_CONFIG_FILE or ~/.aws/config; profile from AWS_PROFILE or "default"),
 * then IMDSv2 instance credentials (PUT token, then GET role and keys).
 */
#ifndef STORAGE_S3_CREDS_H
#define STORAGE_S3_CREDS_H

#include "base/err.h"
#include "storage/repo.h"
#include "storage/s3/sign.h"

/*
 * Resolve credentials. ERR_AUTH with a message naming what was tried
 * ("no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, ...")
 * when none are found. Never puts a secret into err.
 */
int creds_resolve(struct s3_credentials *out, const struct repo_opts *opts, struct err *err);

/*
 * Region: opts->s3_region, AWS_REGION, AWS_DEFAULT_REGION, the profile's
 * "region" in the config file, else "us-east-1". Returns a malloc'd string.
 */
char *creds_region(const struct repo_opts *opts);

/* Value of key in [section] of an AWS ini-style file (malloc'd), or NULL. Exposed for tests. */
char *creds_ini_lookup(const char *path, const char *section, const char *key);

#endif
