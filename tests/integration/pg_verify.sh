#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# ferry-verify on a real repository: PostgreSQL 15 (1 MiB WAL segments) archiving with
# ferry-wal-push, two backups by ferry-basebackup. The clean repository verifies (exit 0, text
# and JSON, --parallel 1, --backup, --wal-only, --since). On copies of it, each kind of damage
# is found and named (exit 2): a deleted segment between the backups (gap) and inside a
# backup's range (missing_wal); a flipped byte in a stored base.tar and in a stored segment
# (corrupt_object); a base.tar re-encoded with one byte of one data file changed and the
# catalogue updated to match, so only the manifest check can catch it (manifest_mismatch
# naming the file); an edited backup_manifest, likewise (its Manifest-Checksum); a missing
# catalogue entry (incomplete_backup); all of them at once (every
# problem, not only the first). An object encrypted with a key not given is unchecked (exit
# 3; 2 when damage is found too). Storage that does not answer and a directory that is no
# repository exit 3; usage errors exit 1.
. "$(dirname "$0")/lib.sh"
. "$HARNESS/pg.sh"
. "$(dirname "$0")/pg_basebackup_lib.sh"
. "$(dirname "$0")/pg_restore_lib.sh"
. "$(dirname "$0")/pg_verify_lib.sh"

section "a repository: two backups and the WAL around them"
vf_primary
vf_backup "$P"
B1="$BID"
pg_marker "$P" 1 one
vf_switch "$P"
MID="$SEG" # between the two backups
pg_marker "$P" 2 two
vf_switch "$P"
sleep 1.1 # backup IDs are start times in seconds
vf_backup "$P"
B2="$BID"
B2_START_WAL=$(jget "$T/$B2.json" 'j["start_wal"]')
B2_START_LSN=$(jget "$T/$B2.json" 'j["start_lsn"]')
pg_marker "$P" 3 three
vf_switch "$P"
pg_wait_no_ready "$P" 30
pg_stop "$P"
pass "backups $B1 and $B2, segment $MID between them, $B2 starts in $B2_START_WAL"
NWAL=$(wal_count "$PGT/repo")
REPO="file://$PGT/repo"

section "the clean repository verifies"
t0=$(now)
vf --repo "$REPO"
expect_vf 0 "exit 0 ($(elapsed "$t0") s)"
expect_eq "$(wc -l <"$OUT")" 1 "one line: the summary"
expect_contains "$(vf_summary)" "intact: checked 2 backups (4 objects, " "2 backups, 4 objects"
expect_contains "$(vf_summary)" "$NWAL WAL files (" "every WAL file ($NWAL) read"
expect_contains "$(vf_summary)" " on 1 timeline in " "one timeline"
files=$(vf_summary | sed -n 's/.* bytes stored, \([0-9]*\) files against their manifests.*/\1/p')
expect_ge "${files:-0}" 1800 "every file of both backups checked against the manifests ($files)"
vf --repo "$REPO" --json
expect_vf 0 "--json: exit 0"
expect_eq "$(vf_json 'j["status"]')" intact "--json: status intact"
expect_eq "$(vf_json 'len(j["problems"])')" 0 "--json: no problem"
expect_eq "$(vf_json 'j["checked"]["backups"]')" 2 "--json: checked.backups 2"
expect_eq "$(vf_json 'j["checked"]["wal_files"]')" "$NWAL" "--json: checked.wal_files $NWAL"
expect_eq "$(vf_json 'j["checked"]["manifest_files"]')" "$files" "--json: checked.manifest_files $files"
vf --repo "$REPO" --parallel 1
expect_vf 0 "--parallel 1: exit 0"
expect_contains "$(vf_summary)" "intact: checked 2 backups (4 objects, " "--parallel 1: the same work"
vf --repo "$REPO" --backup "$B1" --json
expect_vf 0 "--backup $B1: exit 0"
expect_eq "$(vf_json 'j["checked"]["backups"]')" 1 "--backup: one backup"
n=$(vf_json 'j["checked"]["wal_files"]')
expect_eq "$((n > 0 && n < NWAL))" 1 "--backup: only the WAL it needs ($n files)"
vf --repo "$REPO" --wal-only --json
expect_vf 0 "--wal-only: exit 0"
expect_eq "$(vf_json 'j["checked"]["backups"]')-$(vf_json 'j["checked"]["backup_objects"]')-$(vf_json 'j["checked"]["wal_files"]')" "0-0-$NWAL" "--wal-only: no backup object, every WAL file"
vf --repo "$REPO" --since "$B2_START_LSN" --json
expect_vf 0 "--since LSN: exit 0"
n=$(vf_json 'j["checked"]["wal_files"]')
expect_eq "$(vf_json 'j["checked"]["backups"]')-$((n > 0 && n < NWAL))" "1-1" "--since $B2_START_LSN: the second backup and the WAL after it ($n files)"
vf --repo "$REPO" --since 2099-01-01 --json
expect_vf 0 "--since a future time: exit 0"
expect_eq "$(vf_json 'j["checked"]["backups"]')-$(vf_json 'j["checked"]["wal_files"]')" "0-0" "--since a future time: nothing read"

section "a deleted segment between the backups: a gap"
vf_copy gap
rm "$BADDIR/$(wal_key "$MID")"
vf --repo "$BAD"
expect_vf 2 "exit 2"
expect_problem "gap $(wal_key "$MID"): segment $MID is not archived: the WAL chain is broken there" "the gap is named"
expect_contains "$(vf_summary)" "damaged: 1 problem (1 gap); " "one problem"
vf --repo "$BAD" --json
expect_vf 2 "--json: exit 2"
expect_eq "$(vf_json 'j["status"]')" damaged "--json: status damaged"
expect_eq "$(vf_json '[(p["kind"], p["object"]) for p in j["problems"]]')" "[('gap', '$(wal_key "$MID")')]" "--json: kind gap, the segment's key"

section "a deleted segment a backup needs: missing WAL"
vf_copy needed
rm "$BADDIR/$(wal_key "$B2_START_WAL")"
vf --repo "$BAD"
expect_vf 2 "exit 2"
expect_problem "missing_wal $(wal_key "$B2_START_WAL"): segment $B2_START_WAL is not archived: backup $B2 needs it (timeline 1, $B2_START_LSN to $(jget "$T/$B2.json" 'j["stop_lsn"]'))" "named, with the backup that needs it"
expect_eq "$(vf_problems | wc -l)" 1 "and not reported again as a gap"

section "a flipped byte in a stored base.tar"
vf_copy flipped
flip_byte "$BADDIR/pg/backups/$B1/base.tar"
vf --repo "$BAD" --json
expect_vf 2 "exit 2"
expect_eq "$(vf_json '[(p["kind"], p["object"]) for p in j["problems"]]')" "[('corrupt_object', 'pg/backups/$B1/base.tar')]" "corrupt_object naming pg/backups/$B1/base.tar, nothing else"
diag "$(vf_json 'j["problems"][0]["detail"]')"

section "a flipped byte in a stored WAL segment"
vf_copy flipwal
flip_byte "$BADDIR/$(wal_key "$MID")"
vf --repo "$BAD" --json
expect_vf 2 "exit 2"
expect_eq "$(vf_json '[(p["kind"], p["object"]) for p in j["problems"]]')" "[('corrupt_object', '$(wal_key "$MID")')]" "corrupt_object naming the segment"

section "one byte of one data file changed in a re-encoded base.tar, the catalogue updated"
vf_copy manifest
timeout 60 "$FERRY" repo --repo "$BAD" get "pg/backups/$B1/base.tar" "$T/base.tar" >/dev/null 2>&1
victim=$(python3 - "$T/base.tar" <<'EOF'
import sys, tarfile
# the largest file under base/ (a pgbench table): flip one byte in the middle of its data
with tarfile.open(sys.argv[1]) as t:
    m = max((m for m in t.getmembers() if m.isfile() and m.name.startswith("base/")), key=lambda m: m.size)
off = m.offset_data + m.size // 2
with open(sys.argv[1], "r+b") as f:
    f.seek(off)
    b = f.read(1)
    f.seek(off)
    f.write(bytes([b[0] ^ 0xFF]))
print(m.name)
EOF
)
vf_replace_part "$BADDIR" "$B1" base.tar "$T/base.tar" || bail "base.tar replaced" "$victim"
vf --repo "$BAD" --json
expect_vf 2 "exit 2"
expect_eq "$(vf_json '[(p["kind"], p["object"]) for p in j["problems"]]')" "[('manifest_mismatch', 'pg/backups/$B1/base.tar')]" "manifest_mismatch in pg/backups/$B1/base.tar, nothing else (the object and the catalogue agree)"
expect_contains "$(vf_json 'j["problems"][0]["detail"]')" "file \"$victim\" " "the detail names the file ($victim)"
diag "$(vf_json 'j["problems"][0]["detail"]')"

section "backup_manifest edited, the catalogue updated: its own checksum catches it"
vf_copy manifest2
timeout 60 "$FERRY" repo --repo "$BAD" get "pg/backups/$B1/backup_manifest" "$T/manifest" >/dev/null 2>&1
sed -i '0,/"Last-Modified": "20/s//"Last-Modified": "19/' "$T/manifest"
vf_replace_part "$BADDIR" "$B1" backup_manifest "$T/manifest" || bail "backup_manifest replaced" ""
vf --repo "$BAD" --json
expect_vf 2 "exit 2"
expect_eq "$(vf_json '[(p["kind"], p["object"]) for p in j["problems"]]')" "[('corrupt_object', 'pg/backups/$B1/backup_manifest')]" "corrupt_object naming the manifest, nothing else"
expect_contains "$(vf_json 'j["problems"][0]["detail"]')" "backup manifest checksum mismatch: computed " "the manifest's checksum"

section "a missing catalogue entry: an incomplete backup"
vf_copy incomplete
rm "$BADDIR/pg/catalog/$B2.json"
vf --repo "$BAD"
expect_vf 2 "exit 2"
expect_problem "incomplete_backup pg/backups/$B2/: 2 objects ($(($(stat -c %s "$BADDIR/pg/backups/$B2/base.tar") + $(stat -c %s "$BADDIR/pg/backups/$B2/backup_manifest"))) bytes) without a catalogue entry (pg/catalog/$B2.json): an interrupted or running backup" "named, with what it holds"
expect_contains "$(vf_summary)" "damaged: 1 problem (1 incomplete_backup); checked 1 backup " "one problem; the other backup checked"
vf --repo "$BAD" --backup "$B2"
expect_vf 2 "--backup $B2: exit 2"
expect_contains "$(vf_problems)" "incomplete_backup pg/backups/$B2/: " "--backup $B2: incomplete"
vf --repo "$BAD" --backup 20010101T000000Z
expect_vf 2 "--backup of an unknown ID: exit 2"
expect_problem "missing_backup 20010101T000000Z: no backup \"20010101T000000Z\" in the repository" "--backup of an unknown ID: missing_backup"

section "every problem at once, not only the first"
vf_copy all
rm "$BADDIR/$(wal_key "$MID")" "$BADDIR/pg/catalog/$B2.json"
flip_byte "$BADDIR/pg/backups/$B1/base.tar"
rm "$BADDIR/pg/backups/$B1/backup_manifest"
vf --repo "$BAD" --parallel 3 --json
expect_vf 2 "exit 2"
expect_eq "$(vf_json 'sorted((p["kind"], p["object"]) for p in j["problems"])')" \
    "[('corrupt_object', 'pg/backups/$B1/base.tar'), ('gap', '$(wal_key "$MID")'), ('incomplete_backup', 'pg/backups/$B2/'), ('missing_object', 'pg/backups/$B1/backup_manifest')]" \
    "four problems: gap, corrupt_object, missing_object, incomplete_backup"

section "an object that cannot be read (encrypted, no key): unchecked, exit 3"
vf_copy nokey
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$T/key"
chmod 600 "$T/key"
timeout 60 "$FERRY" repo --repo "$BAD" get "$(wal_key "$MID")" "$T/mid" >/dev/null 2>&1
timeout 60 "$FERRY" repo --repo "$BAD" --encryption-key-file "$T/key" put --force "$(wal_key "$MID")" "$T/mid" >/dev/null 2>&1
vf --repo "$BAD"
expect_vf 3 "exit 3"
expect_problem "unchecked $(wal_key "$MID"): object is encrypted: no key given" "unchecked, naming the object"
expect_contains "$(vf_summary)" "unchecked: 1 problem (1 unchecked); " "summary: unchecked"
vf --repo "$BAD" --encryption-key-file "$T/key"
expect_vf 0 "with the key: exit 0"
rm "$BADDIR/pg/catalog/$B2.json"
vf --repo "$BAD" --json
expect_vf 2 "unchecked and damaged: exit 2 (damage wins)"
expect_eq "$(vf_json 'sorted(p["kind"] for p in j["problems"])')" "['incomplete_backup', 'unchecked']" "both reported"

section "could not check: exit 3"
port=$(free_port)
AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=y vf --repo s3://bucket/prefix --s3-endpoint "http://127.0.0.1:$port" --s3-retries 0 --s3-no-imds
expect_vf_error 3 "pg/cluster.json" "storage unreachable: exit 3, one line naming what it could not read"
diag "$(cat "$ERR")"
AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=y vf --repo s3://bucket/prefix --s3-endpoint "http://127.0.0.1:$port" --s3-retries 0 --s3-no-imds --json
expect_eq "$RC" 3 "--json: exit 3"
expect_eq "$(vf_json 'j["status"]')" unchecked "--json: status unchecked, with the error"
mkdir -p "$T/empty"
vf --repo "file://$T/empty"
expect_vf_error 3 "is not a ferry repository: it has no \"pg/cluster.json\"" "no repository: exit 3"

section "usage errors: exit 1"
vf --repo "$REPO" --since yesterday
expect_vf_error 1 'invalid --since "yesterday"' "a bad --since"
vf --repo "$REPO" --parallel 0
expect_vf_error 1 "parallel" "--parallel 0"
vf --repo "$REPO" extra
expect_vf_error 1 'unexpected argument "extra"' "an argument"
vf
expect_vf_error 1 "no repository given" "no --repo"
vf --help
expect_vf 0 "--help: exit 0"
expect_contains "$(cat "$OUT")" "Exit status: 0 all intact; 1 usage or configuration error; 2 damaged or missing" "--help documents the exit statuses"
done_testing
