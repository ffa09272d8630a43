/* SPDX-License-Identifier: MIT */
/* Lower-case hex of bytes (checksums in messages, notes and catalogues). */
#ifndef BASE_HEX_H
#define BASE_HEX_H

#include <stddef.h>

/* out gets 2 * n hex digits and a NUL. */
void hex_encode(char *out, const unsigned char *in, size_t n);

#endif
