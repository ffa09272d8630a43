/* SPDX-License-Identifier: MIT */
/* The monotonic clock, for deadlines and idle times (never the wall clock). */
#ifndef BASE_CLOCK_H
#define BASE_CLOCK_H

#include <stdint.h>

/* Milliseconds of CLOCK_MONOTONIC. */
int64_t clock_ms(void);

#endif
