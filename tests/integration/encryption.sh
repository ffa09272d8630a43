#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Client-side encryption end to end on file:// (AES-256-GCM in the object format):
# the stored bytes are not the plaintext, the right key gets the bytes back, another key is
# refused with exit 5 "wrong encryption key", a flipped byte in the stored object is exit 5
# with no output file, and an unencrypted object with a flipped byte is exit 5 too.
. "$(dirname "$0")/lib.sh"

R="$T/repo"
mkdir -p "$R"
REPO_OPTS=(--repo "file://$R")
head -c 32 /dev/urandom >"$T/key1"
head -c 32 /dev/urandom >"$T/key2"
chmod 600 "$T/key1" "$T/key2"

# plaintext with a recognisable marker, compressible and random parts
{
    for _ in $(seq 1 2000); do echo "FERRY-PLAINTEXT-MARKER line"; done
    head -c $((3 * 1024 * 1024)) /dev/urandom
} >"$T/plain"

section "encrypt and decrypt"
for c in zstd none; do
    ferry_run put "enc/$c" "$T/plain" --compress "$c" --encryption-key-file "$T/key1"
    expect_ok "put --encryption-key-file (--compress $c)"
    ferry_run get "enc/$c" "$T/raw" --raw
    expect_ok "get --raw of the encrypted object"
    expect_files_differ "$T/raw" "$T/plain" "stored bytes differ from the plaintext ($c)"
    n=$(grep -c "FERRY-PLAINTEXT-MARKER" "$T/raw")
    expect_eq "$n" "0" "the plaintext marker does not appear in the stored bytes ($c)"
    rm -f "$T/got"
    ferry_run get "enc/$c" "$T/got" --encryption-key-file "$T/key1"
    expect_ok "get with the key (--compress $c)"
    expect_same_file "$T/got" "$T/plain" "decrypted bytes are the original ($c)"
done

section "wrong or missing key"
rm -f "$T/got"
ferry_run get enc/zstd "$T/got" --encryption-key-file "$T/key2"
expect_error 5 "wrong encryption key" "get with another key: exit 5, wrong encryption key"
expect_file_absent "$T/got" "no output file with the wrong key"
ferry_run get enc/zstd "$T/got"
expect_rc 5 "get of an encrypted object without a key: exit 5"
expect_file_absent "$T/got" "no output file without a key"

section "tampering"
obj=$(find "$R" -type f -path "*enc/zstd*" | head -1)
expect_ne "$obj" "" "the stored object is a file in the repository"
size=$(stat -c %s "$obj")
cp "$obj" "$T/orig.obj"
# flip one byte in the middle of the ciphertext
python3 -c '
import sys
p, off = sys.argv[1], int(sys.argv[2])
with open(p, "r+b") as f:
    f.seek(off); b = f.read(1); f.seek(off); f.write(bytes([b[0] ^ 0x01]))' "$obj" $((size / 2))
expect_files_differ "$obj" "$T/orig.obj" "one byte of the stored object flipped"
rm -f "$T/got"
ferry_run get enc/zstd "$T/got" --encryption-key-file "$T/key1"
expect_rc 5 "get of the tampered encrypted object: exit 5"
expect_file_absent "$T/got" "no output file for the tampered object"
ferry_run get enc/zstd - --encryption-key-file "$T/key1"
expect_rc 5 "get of the tampered object to stdout: exit 5"

section "corruption of an unencrypted object"
ferry_run put plain/zstd "$T/plain"
obj=$(find "$R" -type f -path "*plain/zstd*" | head -1)
size=$(stat -c %s "$obj")
python3 -c '
import sys
p, off = sys.argv[1], int(sys.argv[2])
with open(p, "r+b") as f:
    f.seek(off); b = f.read(1); f.seek(off); f.write(bytes([b[0] ^ 0x80]))' "$obj" $((size - 100))
rm -f "$T/got"
ferry_run get plain/zstd "$T/got"
expect_rc 5 "get of a corrupted (unencrypted) object: exit 5"
expect_file_absent "$T/got" "no output file for the corrupted object"

done_testing
