/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target for the object decoder and object_inspect: the input is fed
 * to the decoder without a key and with a fixed raw test key, in chunks
 * whose sizes come from the input itself, and inspected as `ferry repo
 * stat` would (head and tail). Must never crash, hang or leak.
 *
 * The test key is bytes 0x00..0x1f (tests/unit/stream/gen_object_corpus.c
 * encrypts the seed objects with it).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stream/object.h"
#include "stream/stages.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct crypt_key *
test_key(void)
{
    static struct crypt_key *key;
    char path[] = "/tmp/ferry-fuzz-key-XXXXXX";
    unsigned char raw[32];
    struct err err;
    int fd;

    if (key)
        return key;
    for (int i = 0; i < 32; i++)
        raw[i] = (unsigned char)i;
    fd = mkstemp(path);
    if (fd < 0 || write(fd, raw, sizeof(raw)) != (ssize_t)sizeof(raw))
        abort();
    close(fd);
    if (crypt_key_from_file(&key, path, &err) < 0)
        abort();
    unlink(path);
    return key;
}

static void
decode(const uint8_t *data, size_t size, const struct crypt_key *key)
{
    struct object_info info;
    struct err err;
    uint64_t count = 0;
    struct sink *s = object_decode_sink_new(count_sink_new(null_sink_new(), &count), key, &info);
    /* chunk sizes from the input: a cheap generator seeded by its length and first bytes */
    uint32_t state = (uint32_t)size * 2654435761u ^ (size ? data[0] : 0) ^
                     (size > 1 ? (uint32_t)data[size - 1] << 8 : 0);
    size_t pos = 0;
    int failed = 0;

    while (pos < size && !failed) {
        size_t n;

        state = state * 1103515245u + 12345u;
        n = 1 + (state >> 16) % ((state & 1) ? 17 : 4099);
        if (n > size - pos)
            n = size - pos;
        failed = sink_write(s, data + pos, n, &err) < 0;
        pos += n;
    }
    if (!failed)
        sink_finish(s, &err);
    sink_free(s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct object_info info;
    struct err err;
    size_t head = size < OBJECT_HEAD_MAX ? size : OBJECT_HEAD_MAX;
    size_t tail = size < OBJECT_TAIL_SIZE ? size : OBJECT_TAIL_SIZE;

    decode(data, size, NULL);
    decode(data, size, test_key());
    object_inspect(&info, data, head, data + size - tail, tail, size, &err);
    (void)object_is_ferry(data, size);
    return 0;
}
