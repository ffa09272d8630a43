#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# ferry expire and what killed writers leave, and its lock; argument file | s3rver | rgw. No
# PostgreSQL: the catalogue is empty, pg/ holds an orphan and the leftovers.
#   file    a put killed with SIGKILL leaves a temporary file (made old), an old one beside a
#           fresh one: --dry-run lists the two old ones after the orphan and deletes nothing,
#           the run removes them (and the directory they emptied), the fresh one stays until
#           --incomplete-grace 0. Two runs at once: the second fails naming the first (host,
#           pid); SIGTERM stops the first before its next batch and releases the lock.
#   rgw     unfinished multipart uploads under pg/, one started by awscli, one left by a
#           ferry repo put killed after its first part (and one outside pg/): kept in the grace
#           period, listed as KEY?uploadId=ID and aborted with --incomplete-grace 0; the one
#           outside pg/ stays.
#   s3rver  also: AccessDenied to the listing (fault proxy) is a warning too.
#   s3rver  ListMultipartUploads answers 501 NotImplemented: one warning line, exit 0.
# Every backend: a lock held by another run (exit 1, one line naming its host and pid, nothing
# deleted; --dry-run goes on), taken over once older than --lock-timeout (a warning), removed at
# the end, also after an error.
. "$(dirname "$0")/lib.sh"
MODE="${1:?usage: expire_leftovers.sh file|s3rver|rgw}"

case "$MODE" in
file)
    R="$T/repo"
    mkdir -p "$R"
    URL="file://$R"
    EX_OPTS=(--repo "$URL")
    ;;
s3rver)
    use_servers
    URL="s3://$S3RVER_BUCKET/$PFX"
    export AWS_ACCESS_KEY_ID="$S3RVER_ACCESS_KEY_ID" AWS_SECRET_ACCESS_KEY="$S3RVER_SECRET_ACCESS_KEY"
    EX_OPTS=(--repo "$URL" --s3-endpoint "$S3RVER_ENDPOINT" --s3-region us-east-1)
    on_exit "aws_s3rver s3 rm --recursive --quiet s3://$S3RVER_BUCKET/$PFX/"
    ;;
rgw)
    use_servers
    URL="s3://$RGW_BUCKET/$PFX"
    export AWS_ACCESS_KEY_ID="$RGW_ACCESS_KEY_ID" AWS_SECRET_ACCESS_KEY="$RGW_SECRET_ACCESS_KEY"
    EX_OPTS=(--repo "$URL" --s3-endpoint "$RGW_ENDPOINT" --s3-region us-east-1)
    on_exit "aws_rgw s3 rm --recursive --quiet s3://$RGW_BUCKET/$PFX/"
    ;;
*) bail "mode" "unknown mode $MODE" ;;
esac
REPO_OPTS=("${EX_OPTS[@]}")

# ex ARGS...: `ferry expire EX_OPTS... ARGS...`, stdout in $OUT, stderr in $ERR, status in $RC
ex() {
    LAST_CMD="ferry expire ${EX_OPTS[*]} $*"
    timeout -k 5 "$CMD_TIMEOUT" "$FERRY" expire "${EX_OPTS[@]}" "$@" >"$OUT" 2>"$ERR" </dev/null
    RC=$?
}
# keys PREFIX: the listing, one key a line
keys() { timeout 60 "$FERRY" repo "${EX_OPTS[@]}" ls "$1" 2>&1; }
# put_lock STARTED_EPOCH: a lock of another run ("cron2", pid 4242) started then
put_lock() {
    printf '{"program":"ferry expire","host":"cron2","pid":4242,"started":%s,"start_time":"-","token":"feedfacefeedfacefeedfacefeedface"}\n' "$1" >"$T/lock.json"
    ferry_run put pg/locks/expire "$T/lock.json"
    [ "$RC" = 0 ] || bail "a lock of another run stored" "$(_show_io)"
}

echo junk >"$T/junk"
ferry_run put pg/junk.txt "$T/junk"
expect_ok "an orphan pg/junk.txt"

if [ "$MODE" = file ]; then
    section "file://: temporary files of killed puts"
    # a put killed with SIGKILL in the middle of its stream
    mkfifo "$T/feed"
    "$FERRY" repo "${EX_OPTS[@]}" put pg/wal/0000000100000000/killed - --raw <"$T/feed" >/dev/null 2>&1 &
    putpid=$!
    exec 7>"$T/feed"
    head -c 100000 /dev/urandom >&7
    for _ in $(seq 1 100); do
        killed=$(cd "$R" && find pg/wal -name '.ferry-tmp-*' | head -1)
        [ -n "$killed" ] && break
        sleep 0.05
    done
    kill -KILL "$putpid"
    wait "$putpid" 2>/dev/null
    exec 7>&-
    expect_ne "$killed" "" "the killed put left its temporary file ($killed)"
    touch -d '2 days ago' "$R/$killed"
    mkdir -p "$R/pg/backups/20200101T000000Z" "$R/pg/backups/20991231T000000Z"
    old=pg/backups/20200101T000000Z/.ferry-tmp-00112233445566ff
    fresh=pg/backups/20991231T000000Z/.ferry-tmp-ffeeddccbbaa9988
    head -c 1000 /dev/urandom >"$R/$old"
    touch -d '25 hours ago' "$R/$old"
    head -c 1000 /dev/urandom >"$R/$fresh"
    expect_eq "$(keys pg/)" "pg/junk.txt" "repo ls shows none of them"

    ex --retain-full 1 --dry-run
    expect_ok "--dry-run"
    want=$(printf '%s\n' pg/junk.txt "$old" "$killed")
    expect_eq "$(cat "$OUT")" "$want" "it lists the orphan, then the two old temporary files (sorted), not the fresh one"
    expect_contains "$(cat "$ERR")" "1 orphans, 0 WAL files, 0 history files; would remove 2 of 2 incomplete writes" "the summary counts them"
    expect_contains "$(cat "$ERR")" ", 1 incomplete write in the grace period; " "and the fresh one"
    expect_eq "$(wc -l <"$ERR")" 2 "two lines on stderr (the summary)"
    [ -f "$R/$old" ] && [ -f "$R/$killed" ] && pass "--dry-run removed nothing" || fail "--dry-run removed nothing"

    ex --retain-full 1
    expect_ok "the real run"
    expect_eq "$(cat "$OUT")" "$want" "it printed the same list"
    expect_contains "$(cat "$ERR")" "removed 2 of 2 incomplete writes" "the summary says so"
    expect_file_absent "$R/$old" "the old temporary file is gone"
    expect_file_absent "$R/pg/backups/20200101T000000Z" "and the directory it emptied"
    expect_file_absent "$R/$killed" "the killed put's temporary file is gone"
    expect_file_absent "$R/pg/locks" "no lock is left"
    [ -f "$R/$fresh" ] && pass "the fresh one stays" || fail "the fresh one stays"
    ex --retain-full 1
    expect_eq "$RC:$(cat "$OUT")" "0:" "a rerun removes nothing"
    ex --retain-full 1 --incomplete-grace 0
    expect_eq "$RC:$(cat "$OUT")" "0:$fresh" "--incomplete-grace 0: the fresh one goes too"
    expect_eq "$(cd "$R" && find . -name '.ferry-tmp-*' | wc -l)" 0 "no temporary file is left"
    ferry_run put pg/junk.txt "$T/junk"
fi

if [ "$MODE" = rgw ]; then
    section "RGW: an unfinished multipart upload"
    ukey="$PFX/pg/backups/20261125T000000Z/base.tar"
    uid=$(aws_rgw s3api create-multipart-upload --bucket "$RGW_BUCKET" --key "$ukey" --query UploadId --output text 2>"$T/aws.err")
    expect_ne "$uid" "" "awscli started an upload under pg/ ($uid)"
    head -c 5000 /dev/urandom >"$T/part"
    aws_rgw s3api upload-part --bucket "$RGW_BUCKET" --key "$ukey" --upload-id "$uid" --part-number 1 --body "$T/part" >/dev/null 2>&1
    expect_eq "$?" 0 "with one part"
    okey="$PFX/other/x.tar"
    oid=$(aws_rgw s3api create-multipart-upload --bucket "$RGW_BUCKET" --key "$okey" --query UploadId --output text 2>>"$T/aws.err")
    expect_ne "$oid" "" "and one outside pg/"
    on_exit "aws_rgw s3api abort-multipart-upload --bucket $RGW_BUCKET --key $okey --upload-id $oid"
    uploads() { aws_rgw s3api list-multipart-uploads --bucket "$RGW_BUCKET" --prefix "$PFX/" --query 'Uploads[].Key' --output text 2>&1; }

    # ferry's own leftover: a multipart put killed with SIGKILL after its first part
    mkfifo "$T/feed"
    "$FERRY" repo "${EX_OPTS[@]}" put pg/backups/20261125T010000Z/base.tar - --raw --s3-part-size 5M <"$T/feed" >/dev/null 2>"$T/put.err" &
    putpid=$!
    exec 7>"$T/feed"
    head -c $((6 * 1024 * 1024)) /dev/urandom >&7
    for _ in $(seq 1 100); do
        [[ "$(uploads)" == *20261125T010000Z* ]] && break
        sleep 0.1
    done
    sleep 1 # the first part on its way
    kill -KILL "$putpid"
    wait "$putpid" 2>/dev/null
    exec 7>&-
    kid=$(aws_rgw s3api list-multipart-uploads --bucket "$RGW_BUCKET" --prefix "$PFX/pg/backups/20261125T010000Z/" --query 'Uploads[0].UploadId' --output text 2>&1)
    expect_ne "$kid" "None" "a ferry repo put killed after its first part left an upload ($kid)"

    ex --retain-full 1 --dry-run
    expect_ok "--dry-run (grace 24 hours)"
    expect_eq "$(cat "$OUT")" "pg/junk.txt" "the fresh uploads are not listed"
    expect_contains "$(cat "$ERR")" "would remove 0 of 0 incomplete writes" "none would be removed"
    expect_contains "$(cat "$ERR")" ", 2 incomplete writes in the grace period; " "they are in the grace period"
    ex --retain-full 1 --incomplete-grace 0 --dry-run
    expect_ok "--incomplete-grace 0 --dry-run"
    want=$(printf 'pg/junk.txt\npg/backups/20261125T000000Z/base.tar?uploadId=%s\npg/backups/20261125T010000Z/base.tar?uploadId=%s' "$uid" "$kid")
    expect_eq "$(cat "$OUT")" "$want" "it lists the uploads as KEY?uploadId=ID"
    expect_eq "$(uploads)" "$(printf '%s\t%s\t%s' "$okey" "$ukey" "$PFX/pg/backups/20261125T010000Z/base.tar")" "--dry-run aborted nothing"
    ex --retain-full 1 --incomplete-grace 0
    expect_ok "--incomplete-grace 0"
    expect_eq "$(cat "$OUT")" "$want" "it printed the same list"
    expect_contains "$(cat "$ERR")" "removed 2 of 2 incomplete writes" "the summary counts them"
    expect_eq "$(uploads)" "$okey" "the uploads under pg/ are aborted, the one outside pg/ stays"
    expect_eq "$(keys pg/)" "" "nothing is left under pg/ (no lock either)"
    ferry_run put pg/junk.txt "$T/junk"
fi

if [ "$MODE" = s3rver ]; then
    section "s3rver: ListMultipartUploads is not implemented"
    ex --retain-full 1
    expect_ok "the run succeeds"
    expect_eq "$(cat "$OUT")" "pg/junk.txt" "it deletes the orphan"
    expect_eq "$(grep -c warning "$ERR")" 1 "one warning line"
    expect_eq "$(head -1 "$ERR")" "ferry expire: warning: \"$S3RVER_ENDPOINT\" does not implement ListMultipartUploads (HTTP 501): unfinished uploads cannot be listed, so none are removed" "naming the server"
    expect_contains "$(cat "$ERR")" "0 history files; incomplete writes not looked for" "the summary says so"
    expect_eq "$(wc -l <"$ERR")" 3 "and the two summary lines"
    ferry_run put pg/junk.txt "$T/junk"

    section "access denied to ListMultipartUploads (a bucket policy without it)"
    start_proxy "$S3RVER_ENDPOINT"
    proxy_plan '[{"method": "GET", "query": "uploads", "times": -1, "fault": "status", "status": 403, "code": "AccessDenied", "message": "Access Denied"}]'
    EX_OPTS[3]="$PROXY_URL"
    ex --retain-full 1
    expect_ok "the run succeeds"
    expect_eq "$(cat "$OUT")" "pg/junk.txt" "it deletes the orphan"
    expect_eq "$(head -1 "$ERR")" "ferry expire: warning: could not list the unfinished uploads under \"pg/\": access denied by \"$PROXY_URL\": AccessDenied, so none are removed" "one warning line"
    expect_eq "$(wc -l <"$ERR")" 3 "and the two summary lines"
    expect_eq "$(proxy_count GET '.*' 'uploads')" 1 "the listing was asked once (no retry)"
    EX_OPTS[3]="$S3RVER_ENDPOINT"
    ferry_run put pg/junk.txt "$T/junk"
fi

section "a lock held by another run"
put_lock "$(($(date +%s) - 600))"
LOCK_BEFORE=$(timeout 60 "$FERRY" repo "${EX_OPTS[@]}" get pg/locks/expire - 2>&1)
ex --retain-full 1
expect_rc 1 "exit 1"
expect_eq "$(wc -l <"$ERR")" 1 "one line on stderr"
expect_contains "$(cat "$ERR")" 'ferry expire: error: another ferry expire holds the lock "pg/locks/expire": host "cron2", pid 4242, since ' "naming host and pid"
expect_contains "$(cat "$ERR")" "(10 min ago); it is taken over once older than --lock-timeout (6 hours)" "its age and the timeout"
expect_eq "$(cat "$OUT")" "" "nothing printed"
expect_eq "$(keys pg/)" "$(printf 'pg/junk.txt\npg/locks/expire')" "nothing deleted"
expect_eq "$(timeout 60 "$FERRY" repo "${EX_OPTS[@]}" get pg/locks/expire - 2>&1)" "$LOCK_BEFORE" "the other run's lock is untouched"
ex --retain-full 1 --dry-run
expect_ok "--dry-run takes no lock: it goes on"
expect_eq "$(cat "$OUT")" "pg/junk.txt" "and lists the orphan only (pg/locks/ is not an orphan)"

section "a lock older than --lock-timeout is taken over"
ex --retain-full 1 --lock-timeout 0.1
expect_ok "--lock-timeout 0.1 (6 min): taken over"
expect_contains "$(head -1 "$ERR")" 'ferry expire: warning: taking over the lock "pg/locks/expire", older than --lock-timeout (0.1 hours): host "cron2", pid 4242, since ' "one warning naming the holder"
expect_eq "$(cat "$OUT")" "pg/junk.txt" "the run deleted the orphan"
expect_eq "$(keys pg/)" "" "and removed the lock at the end"
put_lock "$(($(date +%s) - 7 * 3600))"
ex --retain-full 1
expect_ok "a lock of 7 hours is taken over by default (6 hours)"
expect_contains "$(cat "$ERR")" "(7.0 hours ago)" "the warning says how old it was"
expect_eq "$(keys pg/)" "" "no lock is left"

section "the lock goes after an error too"
echo "not json" >"$T/bad.json"
ferry_run put pg/catalog/20261125T000000Z.json "$T/bad.json"
ex --retain-full 1
expect_rc 1 "a damaged catalogue entry: exit 1"
expect_eq "$(wc -l <"$ERR")" 1 "one line on stderr"
expect_eq "$(keys pg/locks/)" "" "the lock was released"
ferry_run rm pg/catalog/20261125T000000Z.json

if [ "$MODE" = file ]; then
    section "two runs at once; SIGTERM"
    mkdir -p "$R/pg/many"
    for i in $(seq -w 1 5000); do : >"$R/pg/many/orphan-with-a-rather-long-name-$i"; done
    # run A's stdout is a pipe nobody reads for a while: A blocks in its second batch's output,
    # holding the lock
    "$FERRY" expire "${EX_OPTS[@]}" --retain-full 1 > >(sleep 6; cat >"$T/a.out") 2>"$T/a.err" </dev/null &
    apid=$!
    for _ in $(seq 1 100); do [ -f "$R/pg/locks/expire" ] && break; sleep 0.05; done
    sleep 0.5
    ex --retain-full 1
    expect_rc 1 "a second run at the same time: exit 1"
    expect_eq "$(wc -l <"$ERR")" 1 "one line"
    expect_contains "$(cat "$ERR")" "holds the lock \"pg/locks/expire\": host \"$(hostname)\", pid $apid, since " "naming the first run's host and pid"
    kill -TERM "$apid"
    wait "$apid"
    arc=$?
    sleep 0.5
    expect_eq "$arc" 1 "SIGTERM: the first run exits 1"
    expect_eq "$(cat "$T/a.err")" "ferry expire: error: interrupted by SIGTERM: stopped before the next step" "one line saying so"
    expect_file_absent "$R/pg/locks/expire" "the lock is released"
    n=$(wc -l <"$T/a.out")
    left=$(find "$R/pg/many" -type f | wc -l)
    expect_eq "$((n + left))" 5000 "it printed what it deleted ($n) and stopped before the next batch ($left left)"
    expect_eq "$((n % 1000))" 0 "whole batches"
    ex --retain-full 1
    expect_ok "a rerun finishes the job"
    expect_eq "$(wc -l <"$OUT")" "$left" "deleting the rest"

    section "stdout closed early (| head -1)"
    mkdir -p "$R/pg/many" # the rerun removed the directory it emptied
    for i in $(seq -w 1 2500); do : >"$R/pg/many/orphan-with-a-rather-long-name-$i"; done
    first=$(timeout 60 "$FERRY" expire "${EX_OPTS[@]}" --retain-full 1 2>"$T/h.err" </dev/null | head -1)
    hrc=${PIPESTATUS[0]}
    expect_eq "$first" "pg/many/orphan-with-a-rather-long-name-0001" "head read the first key"
    expect_eq "$hrc:$(cat "$T/h.err")" "1:ferry expire: error: could not write to stdout: Broken pipe" \
        "the run fails writing (no death by SIGPIPE): exit 1, one line"
    expect_file_absent "$R/pg/locks/expire" "and releases the lock"
fi
done_testing
