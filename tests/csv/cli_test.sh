#!/usr/bin/env bash
# godwit csv format|check|ls on an image file: a fresh volume checks clean (exit 0, JSON),
# a damaged one lists its problems and exits non-zero.
set -euo pipefail
godwit="$GODWIT_BUILD_DIR/bin/godwit"
work="$(mktemp -d "$GODWIT_BUILD_DIR/csv-cli.XXXXXX")"
trap 'rm -rf "$work"' EXIT
img="$work/lun.img"
fail() { echo "FAIL: $*"; exit 1; }

grep -q "formatted" <<<"$("$godwit" csv format "$img" --size 64M --label Volume1)" || fail "format"
[[ $(stat -c %s "$img") == $((64 << 20)) ]] || fail "image size"
grep -q ": clean" <<<"$("$godwit" csv check "$img")" || fail "fresh volume not clean"
json="$("$godwit" csv check --json "$img")"
python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["clean"] and d["problems"]==[] and d["directories"]==1, d' "$json" \
  || fail "check --json"
[[ -z "$("$godwit" csv ls "$img" /)" ]] || fail "ls of an empty volume"
python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["entries"]==[], d' "$("$godwit" csv ls --json "$img")" \
  || fail "ls --json"

# Damage the bitmap block (right after superblock, lease and journal).
journal_blocks=$(python3 -c 'import struct,sys; f=open(sys.argv[1],"rb"); f.seek(144); print(struct.unpack("<Q", f.read(8))[0])' "$img")
bitmap=$((2 + journal_blocks))
printf '\xff' | dd of="$img" bs=1 seek=$((bitmap * 4096 + 200)) conv=notrunc status=none
set +e
out="$("$godwit" csv check "$img")"; rc=$?
json="$("$godwit" csv check --json "$img")"; rc_json=$?
set -e
[[ $rc -ne 0 && $rc_json -ne 0 ]] || fail "damaged volume checked clean (rc=$rc)"
grep -q "checksum mismatch" <<<"$out" || fail "problem not listed: $out"
python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert not d["clean"] and any("checksum" in p for p in d["problems"]), d' "$json" \
  || fail "check --json on a damaged volume"
"$godwit" csv check /nonexistent.img >/dev/null 2>&1 && fail "missing device accepted"
echo "PASS: csv cli"
