#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# file:// repository through `ferry repo`: put/get/ls/stat/rm round trips (0 B, 1 B, 16 MiB
# random; stdin and stdout; each compression; --raw), --if-absent by default (exit 4),
# --force, not found (exit 3), usage errors (exit 2).
. "$(dirname "$0")/lib.sh"

R="$T/repo"
mkdir -p "$R"
REPO_OPTS=(--repo "file://$R")

rand_file "$T/zero" 0
rand_file "$T/one" 1
rand_file "$T/big" $((16 * 1024 * 1024))

section "round trips"
for f in zero one big; do
    for c in zstd gzip none; do
        ferry_run put "rt/$c/$f" "$T/$f" --compress "$c"
        expect_ok "put $f ($(stat -c %s "$T/$f") bytes) --compress $c"
        rm -f "$T/got"
        ferry_run get "rt/$c/$f" "$T/got"
        expect_ok "get $f --compress $c"
        expect_same_file "$T/got" "$T/$f" "$f --compress $c round-trips byte-identical"
    done
    ferry_run put "rt/raw/$f" "$T/$f" --raw
    expect_ok "put --raw $f"
    expect_same_file "$R/rt/raw/$f" "$T/$f" "put --raw $f stores the bytes as given"
    rm -f "$T/got"
    ferry_run get "rt/raw/$f" "$T/got" --raw
    expect_same_file "$T/got" "$T/$f" "get --raw $f returns the bytes as stored"
done

section "stdin and stdout"
ferry_in "$T/big" put rt/stdin/big -
expect_ok "put from stdin ('-')"
ferry_run get rt/stdin/big -
expect_ok "get to stdout ('-')"
expect_same_file "$OUT" "$T/big" "stdin -> stdout round trip byte-identical"
ferry_in "$T/one" put rt/stdin/implicit
expect_ok "put without FILE reads stdin"
ferry_run get rt/stdin/implicit
expect_same_file "$OUT" "$T/one" "get without FILE writes stdout"

section "compression is applied"
yes ferry-compressible-line | head -c $((4 * 1024 * 1024)) >"$T/text"
ferry_run put rt/text "$T/text"
expect_ok "put a compressible 4 MiB file (default compression)"
ferry_run get rt/text "$T/got" --raw
raw_size=$(stat -c %s "$T/got" 2>/dev/null || echo 0)
expect_le "$raw_size" $((256 * 1024)) "stored object is compressed ($raw_size bytes for 4 MiB)"
ferry_run get rt/text "$T/got2"
expect_same_file "$T/got2" "$T/text" "compressed object decodes to the original"

section "ls"
ferry_run ls rt/raw/
expect_ok "ls rt/raw/"
expect_eq "$(cat "$OUT")" "$(printf 'rt/raw/big\nrt/raw/one\nrt/raw/zero')" "ls lists the keys under the prefix, sorted, one per line"
ferry_run ls rt/ --delimiter /
expect_eq "$(cat "$OUT")" "$(printf 'rt/gzip/\nrt/none/\nrt/raw/\nrt/stdin/\nrt/text\nrt/zstd/')" "ls --delimiter / groups by the next /"
ferry_run ls rt/raw/ -l
expect_ok "ls -l"
expect_eq "$(awk '{print $1}' "$OUT" | tr '\n' ' ')" "16777216 1 0 " "ls -l shows sizes first"
expect_eq "$(awk '{print $NF}' "$OUT" | tr '\n' ' ')" "rt/raw/big rt/raw/one rt/raw/zero " "ls -l shows keys last"
ferry_run ls rt/raw/ --json
expect_ok "ls --json"
got=$(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
print(" ".join("%s=%d" % (e["key"], e["size"]) for e in d))' "$OUT" 2>&1)
expect_eq "$got" "rt/raw/big=16777216 rt/raw/one=1 rt/raw/zero=0" "ls --json gives key and size"
ferry_run ls nothing-here/
expect_ok "ls of an empty prefix succeeds"
expect_eq "$(cat "$OUT")" "" "ls of an empty prefix prints nothing"

section "stat"
ferry_run stat rt/raw/big
expect_ok "stat"
expect_contains "$(cat "$OUT")" "16777216" "stat shows the size"
ferry_run stat rt/raw/one --json
expect_ok "stat --json"
got=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["size"])' "$OUT" 2>&1)
expect_eq "$got" "1" "stat --json size"
ferry_run stat no/such/key
expect_error 3 "not found" "stat of a missing key: exit 3, not found"

section "if-absent by default, --force"
rand_file "$T/other" 1000
ferry_run put rt/raw/one "$T/other" --raw
expect_error 4 "already exists" "second put of the same key: exit 4, already exists"
ferry_run get rt/raw/one "$T/got" --raw
expect_same_file "$T/got" "$T/one" "the refused put left the object unchanged"
ferry_run put rt/raw/one "$T/other" --raw --force
expect_ok "put --force overwrites"
rm -f "$T/got"
ferry_run get rt/raw/one "$T/got" --raw
expect_same_file "$T/got" "$T/other" "after --force the new bytes are stored"

section "get errors"
rm -f "$T/got"
ferry_run get no/such/key "$T/got"
expect_error 3 "not found" "get of a missing key: exit 3, not found"
expect_file_absent "$T/got" "get of a missing key creates no output file"

section "rm"
ferry_run rm rt/raw/one rt/raw/zero
expect_ok "rm two keys"
ferry_run ls rt/raw/
expect_eq "$(cat "$OUT")" "rt/raw/big" "rm removed exactly those keys"
ferry_run rm rt/raw/one
expect_ok "rm of an absent key succeeds"

section "usage"
ferry_run frobnicate
expect_rc 2 "unknown subcommand: exit 2"
ferry_run get
expect_rc 2 "get without a key: exit 2"
ferry_run put ../escape "$T/one"
expect_rc 2 "a key with '..' is refused: exit 2"
ferry_run put rt/x "$T/one" --compress lzma
expect_rc 2 "unknown --compress value: exit 2"
ferry_run ls --no-such-option
expect_error 2 "no-such-option" "unknown option: exit 2, names the option"

section "FERRY_REPO"
REPO_OPTS=()
FERRY_REPO="file://$R" ferry_run ls rt/raw/
expect_eq "$(cat "$OUT")" "rt/raw/big" "the repository can come from FERRY_REPO"

done_testing
