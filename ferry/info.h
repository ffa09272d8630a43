/* SPDX-License-Identifier: MIT */
/*
 * `ferry info`: the repository at a glance (cluster, backups, WAL archive per
 * timeline, recovery point age) as a table, as JSON, and as a Prometheus
 * textfile for node_exporter. docs/info.md describes the formats.
 */
#ifndef FERRY_INFO_H
#define FERRY_INFO_H

#include <stdint.h>

/* argv[0] is "info"; returns the exit status (0 ok, 1 error, 2 usage). */
int info_main(int argc, char **argv);

/* "512 B", "1.5 KiB", "30.1 MiB": binary units, one decimal above bytes. */
void info_fmt_bytes(char out[32], uint64_t n);

/* "45 s", "12 min", "3 h 5 min", "2 d 4 h": a rounded-down duration. */
void info_fmt_age(char out[32], int64_t seconds);

#endif
