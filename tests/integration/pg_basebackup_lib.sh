# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# Helpers of the ferry-basebackup tests (pg_basebackup_*.sh): sourced after lib.sh and
# tests/harness/pg.sh.

BASEBACKUP="${FERRY_BASEBACKUP:-$BUILD/basebackup/ferry-basebackup}"
PG_VERIFYBACKUP="$PGCLIENT/pg_verifybackup"
[ -x "$BASEBACKUP" ] || bail "ferry-basebackup is built" "$BASEBACKUP is missing"

# bb CONFIG DIR ARGS...: ferry-basebackup --config CONFIG against the cluster DIR, as postgres;
# stdout in $OUT, stderr in $ERR, status in $RC
bb() {
    local cfg="$1" d="$2"
    shift 2
    run_pg "$BASEBACKUP" --config "$cfg" -h 127.0.0.1 -p "$(pg_port "$d")" -U postgres "$@"
}

# expect_bb_error SUBSTRING DESC: exit 1, one line "ferry-basebackup: error: ...", stdout empty
expect_bb_error() {
    local want="$1" desc="$2" lines first why=""
    lines=$(wc -l <"$ERR")
    first=$(head -n 1 "$ERR")
    [ "$RC" = 1 ] || why="exit status $RC, want 1"
    [ -z "$why" ] && [ "$lines" != 1 ] && why="stderr has $lines lines, want exactly one"
    [ -z "$why" ] && [[ "$first" != "ferry-basebackup: error: "* ]] && why="stderr does not start with 'ferry-basebackup: error: '"
    [ -z "$why" ] && [[ "$first" != *"$want"* ]] && why="stderr lacks \"$want\""
    [ -z "$why" ] && [ -s "$OUT" ] && why="stdout is not empty"
    if [ -z "$why" ]; then pass "$desc"; else fail "$desc" "$why" "$(_show_io)"; fi
}

# jget FILE EXPR: a value of the JSON in FILE (python expression on `j`)
jget() { python3 -c 'import json, sys; j = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }

# catalog_ids CONFIG: the backup IDs in the catalogue, one a line
catalog_ids() { repo_ls "$1" pg/catalog/ | sed -n 's|^pg/catalog/\(.*\)\.json$|\1|p'; }

# bb_check_entry CONFIG JSON DIR: the entry printed by --json (file JSON) is sane for cluster DIR
# and is the one stored in the catalogue
bb_check_entry() {
    local cfg="$1" j="$2" d="$3" id got sysid ver seg
    id=$(jget "$j" 'j["id"]')
    sysid=$(pg_sql "$d" "select system_identifier from pg_control_system()")
    ver=$(pg_sql "$d" "show server_version_num")
    seg=$(pg_sql "$d" "select setting::bigint * (case unit when '8kB' then 8192 when 'B' then 1 when 'MB' then 1048576 else 1 end) from pg_settings where name = 'wal_segment_size'")
    expect_contains "$(catalog_ids "$cfg")" "$id" "the catalogue has entry $id"
    got=$(timeout 60 "$FERRY" repo --config "$cfg" get "pg/catalog/$id.json" - 2>&1)
    expect_eq "$(python3 -c 'import json, sys; print(json.dumps(json.loads(sys.argv[1]), sort_keys=True))' "$got" 2>&1)" \
        "$(python3 -c 'import json, sys; print(json.dumps(json.load(open(sys.argv[1])), sort_keys=True))' "$j")" \
        "--json printed the stored catalogue entry"
    expect_eq "$(jget "$j" 'j["system_identifier"]')" "$sysid" "entry: the server's system identifier"
    expect_eq "$(jget "$j" 'j["pg_version_num"]')" "$ver" "entry: server_version_num $ver"
    expect_eq "$(jget "$j" 'j["wal_segment_size"]')" "$seg" "entry: wal_segment_size $seg"
    expect_eq "$(jget "$j" 'j["timeline"]')" 1 "entry: timeline 1"
    got=$(jget "$j" 'int(j["start_lsn"].split("/")[0], 16) * 2**32 + int(j["start_lsn"].split("/")[1], 16) < int(j["stop_lsn"].split("/")[0], 16) * 2**32 + int(j["stop_lsn"].split("/")[1], 16)')
    expect_eq "$got" True "entry: start LSN $(jget "$j" 'j["start_lsn"]') before stop LSN $(jget "$j" 'j["stop_lsn"]')"
    got=$(jget "$j" 'j["start_wal"] <= j["stop_wal"] and j["start_wal"][:8] == "00000001"')
    expect_eq "$got" True "entry: WAL $(jget "$j" 'j["start_wal"]') to $(jget "$j" 'j["stop_wal"]') on timeline 1"
    got=$(jget "$j" 'j["start_time"] <= j["stop_time"]')
    expect_eq "$got" True "entry: start time $(jget "$j" 'j["start_time"]') <= stop time"
    # every segment of the range is archived
    local first last segsize missing="" i n
    segsize=$seg
    first=$(seg_no "$(jget "$j" 'j["start_wal"]')" "$segsize")
    last=$(seg_no "$(jget "$j" 'j["stop_wal"]')" "$segsize")
    for ((i = first; i <= last; i++)); do
        n=$(seg_name 1 "$i" "$segsize")
        timeout 60 "$FERRY" repo --config "$cfg" stat "$(wal_key "$n")" >/dev/null 2>&1 || missing="$missing $n"
    done
    expect_eq "$missing" "" "every WAL segment from start to stop is in the repository"
    # parts: each object's plaintext size and checksum are what the entry says
    local name key size sha psize psha bad=""
    while IFS=' ' read -r name key size sha; do
        rm -f "$T/part"
        timeout 300 "$FERRY" repo --config "$cfg" get "$key" "$T/part" >/dev/null 2>&1
        psize=$(stat -c %s "$T/part" 2>/dev/null)
        psha=$(sha "$T/part" 2>/dev/null)
        [ "$psize" = "$size" ] && [ "$psha" = "$sha" ] || bad="$bad $name($psize/$size)"
    done < <(jget "$j" '"\n".join("%s %s %s %s" % (p["name"], p["key"], p["size"], p["sha256"]) for p in j["parts"])')
    rm -f "$T/part"
    expect_eq "$bad" "" "every part decodes to the size and SHA-256 of the entry"
}

# bb_extract CONFIG JSON DEST: a data directory from the stored tars and manifest: base.tar into
# DEST, each tablespace tar into DEST/pg_tblspc/OID (a directory, as pg_verifybackup reads it)
bb_extract() {
    local cfg="$1" j="$2" dest="$3" name key ts
    rm -rf "$dest"
    mkdir -p "$dest"
    while IFS=' ' read -r name key ts; do
        rm -f "$T/part"
        timeout 300 "$FERRY" repo --config "$cfg" get "$key" "$T/part" >/dev/null 2>&1 || return 1
        case "$name" in
        backup_manifest) cp "$T/part" "$dest/backup_manifest" ;;
        base.tar) tar -C "$dest" -xf "$T/part" || return 1 ;;
        *) mkdir -p "$dest/pg_tblspc/$ts" && tar -C "$dest/pg_tblspc/$ts" -xf "$T/part" || return 1 ;;
        esac
    done < <(jget "$j" '"\n".join("%s %s %s" % (p["name"], p["key"], p.get("tablespace", 0)) for p in j["parts"])')
    rm -f "$T/part"
    chown -R postgres: "$dest"
    chmod 700 "$dest"
}

# bb_extract_remap CONFIG JSON DEST: a data directory to start a server from: base.tar into
# DEST, each tablespace tar into DEST.ts-OID, and tablespace_map pointed there (the original
# locations belong to the running source server)
bb_extract_remap() {
    local cfg="$1" j="$2" dest="$3" name key ts
    rm -rf "$dest" "$dest".ts-*
    mkdir -p "$dest"
    while IFS=' ' read -r name key ts; do
        rm -f "$T/part"
        timeout 300 "$FERRY" repo --config "$cfg" get "$key" "$T/part" >/dev/null 2>&1 || return 1
        case "$name" in
        backup_manifest) cp "$T/part" "$dest/backup_manifest" ;;
        base.tar) tar -C "$dest" -xf "$T/part" || return 1 ;;
        *) mkdir -p "$dest.ts-$ts" && tar -C "$dest.ts-$ts" -xf "$T/part" || return 1 ;;
        esac
    done < <(jget "$j" '"\n".join("%s %s %s" % (p["name"], p["key"], p.get("tablespace", 0)) for p in j["parts"])')
    rm -f "$T/part"
    if [ -f "$dest/tablespace_map" ]; then
        awk -v d="$dest" '{ print $1 " " d ".ts-" $1 }' "$dest/tablespace_map" >"$dest/tablespace_map.new" &&
            mv "$dest/tablespace_map.new" "$dest/tablespace_map"
    fi
    chown -R postgres: "$dest" "$dest".ts-* 2>/dev/null
    chmod 700 "$dest" "$dest".ts-* 2>/dev/null
    return 0
}

# bb_tar_terminated CONFIG KEY: the stored tar ends with the two zero blocks of a complete tar
bb_tar_terminated() {
    rm -f "$T/tarpart"
    timeout 300 "$FERRY" repo --config "$1" get "$2" "$T/tarpart" >/dev/null 2>&1 || return 1
    [ "$(tail -c 1024 "$T/tarpart" | tr -d '\0' | wc -c)" = 0 ] && tar -tf "$T/tarpart" >/dev/null 2>&1
    local rc=$?
    rm -f "$T/tarpart"
    return $rc
}
