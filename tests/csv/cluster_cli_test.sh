#!/usr/bin/env bash
# godwit csv add|list|remove|node|status|move|snapshot: two node processes over mutual TLS
# (certificates from the openssl CLI) on 127.0.0.1, node 1 started by the name it was
# registered under; status shows node 1 coordinating, move hands the volume to node 2, status
# shows it, snapshots are taken, listed and released through the new coordinator, both nodes
# stop on SIGTERM and the volume (with a snapshot kept) checks clean.
set -euo pipefail
godwit="$GODWIT_BUILD_DIR/bin/godwit"
work="$(mktemp -d "$GODWIT_BUILD_DIR/csv-cluster-cli.XXXXXX")"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; for f in "$work"/node*.log; do echo "== $f"; cat "$f"; done; exit 1; }
command -v openssl >/dev/null || fail "the openssl CLI is needed"

cd "$work"
ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
openssl req -x509 $ec -keyout ca.key -out ca.crt -days 2 -subj /CN=ca 2>/dev/null
for n in node1 node2 admin; do
  openssl req $ec -keyout $n.key -out $n.csr -subj /CN=$n 2>/dev/null
  openssl x509 -req -in $n.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out $n.crt -days 2 2>/dev/null
done
"$godwit" csv format lun.img --size 64M --label Volume1 >/dev/null || fail "format"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
members="1=127.0.0.1:$(port),2=127.0.0.1:$(port)"
admin=(--members "$members" --ca ca.crt --cert admin.crt --key admin.key)

# The registry: node 1's host registers the volume under its label, then names it.
reg=(--registry "$work/reg1")
"$godwit" csv add lun.img --id 3 --members "$members" --ca ca.crt --cert node1.crt --key node1.key "${reg[@]}" >/dev/null 2>&1 \
  && fail "add with an id that is not a member"
"$godwit" csv add lun.img --id 1 --members "$members" --ca ca.crt --cert node1.crt --key missing.key "${reg[@]}" >/dev/null 2>&1 \
  && fail "add with a missing key file"
"$godwit" csv add lun.img --id 1 --members "$members" --lease-ms 1000 --ca ca.crt --cert node1.crt --key node1.key \
  --mountpoint "$work/mnt" "${reg[@]}" | grep -q "added volume Volume1" || fail "add"
rc=0; "$godwit" csv add lun.img --id 1 --members "$members" --plaintext "${reg[@]}" >/dev/null 2>&1 || rc=$?
[[ $rc -eq 7 ]] || fail "a second add of Volume1 exited $rc, not 7 (conflict)"
json="$("$godwit" --json csv list "${reg[@]}")" || fail "list"
python3 -c 'import json,sys; d=json.loads(sys.argv[1]); v=d["volumes"]; assert len(v)==1 and v[0]["name"]=="Volume1" and v[0]["node_id"]==1 and v[0]["tls"] and v[0]["device_present"], d' "$json" \
  || fail "list: $json"
rc=0; "$godwit" csv node Volume9 "${reg[@]}" >/dev/null 2>&1 || rc=$?
[[ $rc -eq 3 ]] || fail "node of an unregistered name exited $rc, not 3 (not found)"

"$godwit" csv node Volume1 --coordinator "${reg[@]}" >node1.log 2>&1 & pids+=($!)
for _ in $(seq 100); do grep -q running node1.log && break; sleep 0.1; done
"$godwit" csv node lun.img --id 2 --members "$members" --lease-ms 1000 \
  --ca ca.crt --cert node2.crt --key node2.key >node2.log 2>&1 & pids+=($!)
for _ in $(seq 100); do grep -q running node2.log && break; sleep 0.1; done

json="$("$godwit" --json csv status "${admin[@]}")" || fail "status"
python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["coordinator"]==1 and d["volume"]=="Volume1", d; assert all(n["reachable"] and n["state"]=="Direct" for n in d["nodes"]), d' "$json" \
  || fail "status before the move: $json"
"$godwit" csv status --members "$members" --plaintext >/dev/null 2>&1 && fail "plaintext status accepted by TLS nodes"
json="$("$godwit" --json csv status "${reg[@]}")" || fail "status of the registered volume"
python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["coordinator"]==1 and d["volume"]=="Volume1", d' "$json" \
  || fail "status by name: $json"
"$godwit" csv move Volume2 2 "${admin[@]}" >/dev/null 2>&1 && fail "move of a volume the cluster does not serve"
grep -q "from node 1 to node 2" <<<"$("$godwit" csv move Volume1 2 "${reg[@]}")" || fail "move by name"
json="$("$godwit" --json csv status "${admin[@]}")" || fail "status after the move"
python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["coordinator"]==2, d' "$json" || fail "after the move: $json"

# Snapshots, through whichever node coordinates (node 2 now).
grep -q "snapshot nightly of Volume1 taken" <<<"$("$godwit" csv snapshot Volume1 nightly "${reg[@]}")" \
  || fail "snapshot by name"
rc=0; "$godwit" csv snapshot Volume1 nightly "${admin[@]}" >/dev/null 2>&1 || rc=$?
[[ $rc -eq 7 ]] || fail "a second snapshot named nightly exited $rc, not 7 (conflict)"
rc=0; "$godwit" csv snapshot Volume2 x "${admin[@]}" >/dev/null 2>&1 || rc=$?
[[ $rc -eq 3 ]] || fail "a snapshot of a volume the cluster does not serve exited $rc, not 3"
rc=0; "$godwit" csv snapshot Volume1 'bad/name' "${admin[@]}" >/dev/null 2>&1 || rc=$?
[[ $rc -eq 2 ]] || fail "a snapshot with a bad name exited $rc, not 2 (usage)"
json="$("$godwit" --json csv snapshot Volume1 "${admin[@]}")" || fail "snapshot with the default name"
python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["taken"] and d["coordinator"]==2 and d["path"].startswith("/.snapshots/20"), d' "$json" \
  || fail "default-named snapshot: $json"
json="$("$godwit" --json csv snapshot Volume1 --list "${reg[@]}")" || fail "snapshot --list"
python3 -c 'import json,sys; d=json.loads(sys.argv[1]); s=d["snapshots"]; assert len(s)==2 and s[1]["name"]=="nightly" and all(x["state"]=="ready" for x in s), d' "$json" \
  || fail "snapshot list: $json"
"$godwit" csv snapshot Volume1 nightly --release "${admin[@]}" | grep -q "released snapshot nightly" || fail "release"
rc=0; "$godwit" csv snapshot Volume1 nightly --release "${admin[@]}" >/dev/null 2>&1 || rc=$?
[[ $rc -eq 3 ]] || fail "releasing a released snapshot exited $rc, not 3 (not found)"
"$godwit" csv snapshot Volume1 kept "${admin[@]}" >/dev/null || fail "snapshot kept"

kill -TERM "${pids[@]}"; wait "${pids[@]}" || fail "a node did not stop cleanly"; pids=()
grep -q ": clean" <<<"$("$godwit" csv check lun.img)" || fail "volume not clean after the nodes stopped"
"$godwit" csv ls lun.img /.snapshots | grep -q "kept/" || fail "the kept snapshot is not on the volume"
"$godwit" csv ls lun.img /.snapshots | grep -q "nightly" && fail "the released snapshot is still on the volume"
"$godwit" csv remove Volume1 "${reg[@]}" | grep -q "removed volume Volume1" || fail "remove"
grep -q "no volumes registered" <<<"$("$godwit" csv list "${reg[@]}")" || fail "list after remove"
rc=0; "$godwit" csv remove Volume1 "${reg[@]}" >/dev/null 2>&1 || rc=$?
[[ $rc -eq 3 ]] || fail "a second remove exited $rc, not 3"
echo "PASS: csv cluster cli"
