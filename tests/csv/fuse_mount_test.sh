#!/usr/bin/env bash
# The CSV namespace through the kernel (docs/csv-namespace.md): a coordinator node and two
# `godwit csv mount` nodes over mutual TLS on 127.0.0.1, each mounting the same volume with
# FUSE in its own temp directory. Ordinary file I/O on mount A is read byte-exact on mount B,
# renames and unlinks show on the other mount, errno values are the POSIX ones, random
# operations on both mounts match a model, concurrent writers on both mounts to one file
# leave every piece intact, a VHD created
# on A with `godwit disk create` is written through B with the VHD library and read back on
# A, the coordinator is SIGKILLed under a write on B (a mounted standby takes over and the
# write completes), a snapshot keeps the VHD as it was while B rewrites it, and the volume
# checks clean after every node stopped.
# Needs /dev/fuse: without it the test FAILS (it does not skip).
# Usage: fuse_mount_test.sh VHD_TEST_TOOL
set -euo pipefail
godwit="$GODWIT_BUILD_DIR/bin/godwit"
vhd_tool="$1"
work="$(mktemp -d "$GODWIT_BUILD_DIR/csv-fuse.XXXXXX")"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done # SIGTERM: they unmount
  wait 2>/dev/null || true
  # Whatever is still mounted below $work (a killed node's dead mount included).
  for m in $(awk -v w="$work/" 'index($2, w) == 1 { print $2 }' /proc/mounts); do
    umount -l "$m" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; for f in "$work"/node*.log; do echo "== $f"; cat "$f"; done; exit 1; }

[ -c /dev/fuse ] || fail "/dev/fuse is missing: FUSE cannot work here (load the fuse module, or run the container with --device /dev/fuse)"
command -v openssl >/dev/null || fail "the openssl CLI is needed"
[ -x "$vhd_tool" ] || fail "no VHD test tool at $vhd_tool"

cd "$work"
ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
openssl req -x509 $ec -keyout ca.key -out ca.crt -days 2 -subj /CN=ca 2>/dev/null
for n in node1 node2 node3; do
  openssl req $ec -keyout $n.key -out $n.csr -subj /CN=$n 2>/dev/null
  openssl x509 -req -in $n.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out $n.crt -days 2 2>/dev/null
done
"$godwit" csv format lun.img --size 256M --label Volume1 >/dev/null || fail "format"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
members="1=127.0.0.1:$(port),2=127.0.0.1:$(port),3=127.0.0.1:$(port)"
tls() { echo --ca ca.crt --cert node$1.crt --key node$1.key; }

# Clear errors before anything runs (a missing mountpoint, no /dev/fuse).
set +e
out="$("$godwit" csv mount lun.img "$work/no-such-dir" --id 2 --members "$members" $(tls 2) 2>&1)"; rc=$?
set -e
[ "$rc" = 3 ] && grep -q "does not exist" <<<"$out" || fail "missing mountpoint: rc $rc, '$out'"
"$godwit" csv mount --help | grep -q "MOUNTPOINT" || fail "csv mount --help"
# No usable /dev/fuse (a regular file bound over it in a private mount namespace): exit 6.
touch not-a-device; mkdir mnt-nofuse
set +e
out="$(unshare -m sh -c 'mount --bind not-a-device /dev/fuse && exec "$0" "$@"' "$godwit" \
  csv mount lun.img mnt-nofuse --id 2 --members "$members" $(tls 2) 2>&1)"; rc=$?
set -e
[ "$rc" = 6 ] && grep -q "/dev/fuse is missing" <<<"$out" || fail "no /dev/fuse: rc $rc, '$out'"

"$godwit" csv node lun.img --id 1 --members "$members" --coordinator --lease-ms 2000 $(tls 1) \
  >node1.log 2>&1 & pids+=($!)
for _ in $(seq 100); do grep -q running node1.log && break; sleep 0.1; done
mkdir mntA mntB
"$godwit" csv mount lun.img mntA --id 2 --members "$members" --lease-ms 2000 $(tls 2) \
  >node2.log 2>&1 & pida=$!; pids+=($pida)
"$godwit" csv mount lun.img mntB --id 3 --members "$members" --lease-ms 2000 $(tls 3) \
  >node3.log 2>&1 & pidb=$!; pids+=($pidb)
for m in A B; do
  for _ in $(seq 150); do mountpoint -q mnt$m && break; sleep 0.1; done
  mountpoint -q mnt$m || fail "mount $m did not appear"
done
grep -q "fuse.godwit-csv" <<<"$(grep "$work/mntA" /proc/mounts)" || fail "mntA is not a godwit-csv FUSE mount"

# A mount node killed with SIGKILL leaves a dead mount: mounting again there is refused with
# the fix in the message (exit 7); after umount the node mounts again and sees the volume.
echo before >mntA/before.txt
kill -KILL "$pida"; wait "$pida" 2>/dev/null || true
set +e
out="$("$godwit" csv mount lun.img mntA --id 2 --members "$members" $(tls 2) 2>&1)"; rc=$?
set -e
[ "$rc" = 7 ] && grep -q "dead FUSE mount" <<<"$out" || fail "remount on a dead mount: rc $rc, '$out'"
umount mntA
"$godwit" csv mount lun.img mntA --id 2 --members "$members" --lease-ms 2000 $(tls 2) \
  >node2.log 2>&1 & pida=$!; pids+=($pida)
for _ in $(seq 150); do mountpoint -q mntA && break; sleep 0.1; done
[ "$(cat mntA/before.txt)" = before ] || fail "file written before the kill not readable after the remount"
rm mntB/before.txt

# Ordinary file I/O: dd on A, byte-exact on B (5 MiB plus an unaligned tail).
head -c $((5 * 1024 * 1024 + 12345)) /dev/urandom >data.bin
mkdir mntA/dir
dd if=data.bin of=mntA/dir/data.bin bs=64k status=none || fail "dd onto mount A"
[ -d mntB/dir ] || fail "directory made on A not seen on B"
cmp data.bin mntB/dir/data.bin || fail "data written on A differs when read on B"
[ "$(stat -c %s mntB/dir/data.bin)" = "$(stat -c %s data.bin)" ] || fail "size on B"

# Unaligned writes from python on B, read back on A; truncate, append, fsync.
python3 - "$work" <<'EOF' || fail "python file I/O across the mounts"
import os, sys, errno, time
w = sys.argv[1]
a, b = f"{w}/mntA/dir/data.bin", f"{w}/mntB/dir/data.bin"
expected = bytearray(open(f"{w}/data.bin", "rb").read())
with open(b, "r+b") as f:
    for off, n in ((1, 10), (4095, 2), (70000, 9000), (len(expected) - 3, 40)):
        chunk = os.urandom(n)
        f.seek(off); f.write(chunk); f.flush(); os.fsync(f.fileno())
        end = off + n
        if end > len(expected):
            expected.extend(b"\0" * (end - len(expected)))
        expected[off:end] = chunk
assert open(a, "rb").read() == expected, "unaligned writes on B not seen on A"
os.truncate(a, 100000)
assert os.stat(b).st_size == 100000, os.stat(b).st_size
assert open(b, "rb").read() == bytes(expected[:100000]), "truncate"
with open(b, "ab") as f:
    f.write(b"tail")
assert open(a, "rb").read()[-4:] == b"tail", "append on B"
# errno values.
def expect(code, fn, *args):
    try:
        fn(*args)
    except OSError as e:
        assert e.errno == code, f"{fn.__name__}{args}: {errno.errorcode[e.errno]}, want {errno.errorcode[code]}"
        return
    raise AssertionError(f"{fn.__name__}{args} succeeded, want {errno.errorcode[code]}")
expect(errno.EEXIST, os.mkdir, f"{w}/mntA/dir")
expect(errno.ENOTEMPTY, os.rmdir, f"{w}/mntB/dir")
expect(errno.ENOTDIR, os.rmdir, a)
expect(errno.EISDIR, os.unlink, f"{w}/mntB/dir")
expect(errno.ENOENT, os.stat, f"{w}/mntA/none")
expect(errno.ENAMETOOLONG, open, f"{w}/mntA/dir/{'x' * 256}", "w")
expect(errno.EEXIST, os.open, a, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
# unlink of an open file: refused when another node has it open; on the same mount libfuse
# hides it (.fuse_hidden*) until the last close.
f = open(f"{w}/mntA/open.bin", "w+b")
f.write(b"x" * 5000); f.flush()
expect(errno.EBUSY, os.unlink, f"{w}/mntB/open.bin")
os.unlink(f"{w}/mntA/open.bin")
assert not os.path.exists(f"{w}/mntB/open.bin")
f.seek(0); assert f.read() == b"x" * 5000, "open file unreadable after unlink"
f.close()
for _ in range(100):  # FUSE's release (which removes the hidden file) is asynchronous
    if os.listdir(f"{w}/mntB") == ["dir"]:
        break
    time.sleep(0.02)
assert os.listdir(f"{w}/mntB") == ["dir"], os.listdir(f"{w}/mntB")
st = os.statvfs(f"{w}/mntB")
assert st.f_bsize == 4096 and 0 < st.f_bfree < st.f_blocks, st
EOF

# Rename and unlink on one mount show on the other; rename replaces an existing file.
mv mntA/dir/data.bin mntA/dir/renamed.bin
[ ! -e mntB/dir/data.bin ] && [ -f mntB/dir/renamed.bin ] || fail "rename on A not seen on B"
echo small >mntB/dir/other.txt
mv mntB/dir/other.txt mntB/dir/renamed.bin
[ "$(cat mntA/dir/renamed.bin)" = small ] || fail "rename over an existing file (B) not seen on A"
ls mntA/dir | grep -qx renamed.bin || fail "listing on A"
rm mntB/dir/renamed.bin
[ ! -e mntA/dir/renamed.bin ] || fail "unlink on B not seen on A"
rmdir mntA/dir
[ -z "$(ls -A mntB)" ] || fail "mount B not empty after rmdir on A: $(ls -A mntB)"

"$GODWIT_SOURCE_DIR/tests/csv/fuse_random_ops.py" mntA mntB 300 "$RANDOM" \
  || fail "random operations across the mounts (the seed is in the output above)"
rm -r mntB/random
"$GODWIT_SOURCE_DIR/tests/csv/fuse_concurrent_writers.py" mntA mntB || fail "concurrent writers"

# A VHD created on A by godwit disk create, written through B by the VHD library.
mkdir mntA/vm
"$godwit" disk create -t dynamic mntA/vm/disk.vhd 64M >/dev/null || fail "disk create on mount A"
"$vhd_tool" write mntB/vm/disk.vhd 1048576 196608 171 || fail "VHD write through mount B"
"$vhd_tool" write mntB/vm/disk.vhd 40000000 5000 7 || fail "VHD write through mount B"
"$godwit" disk check mntA/vm/disk.vhd >/dev/null || fail "disk check on A after writes on B"
python3 -c '
import sys
with open(sys.argv[1], "wb") as f:
    f.truncate(64 << 20)
    f.seek(1048576); f.write(bytes([171]) * 196608)
    f.seek(40000000); f.write(bytes([7]) * 5000)
' expected.raw
"$godwit" disk compare expected.raw mntA/vm/disk.vhd >/dev/null || fail "VHD content read on A differs"

# A snapshot (godwit csv snapshot): the VHD rewritten through B afterwards, the snapshot's
# copy read on A is the disk as it was; the snapshot is read-only (EROFS) and released.
"$godwit" csv snapshot Volume1 before --members "$members" $(tls 2) >/dev/null || fail "snapshot"
"$vhd_tool" write mntB/vm/disk.vhd 1048576 4096 99 || fail "VHD write through B after the snapshot"
"$godwit" disk compare expected.raw mntA/.snapshots/before/vm/disk.vhd >/dev/null \
  || fail "the snapshot's VHD read on A is not the disk before the write"
"$godwit" disk compare expected.raw mntA/vm/disk.vhd >/dev/null 2>&1 \
  && fail "the live VHD did not change after the write through B"
python3 - "$work" <<'EOF' || fail "the snapshot is not read-only through FUSE"
import errno, os, sys
w = sys.argv[1]
for attempt in (lambda: os.open(f"{w}/mntA/.snapshots/before/vm/disk.vhd", os.O_RDWR),
                lambda: os.truncate(f"{w}/mntA/.snapshots/before/vm/disk.vhd", 0),
                lambda: open(f"{w}/mntB/.snapshots/before/vm/new", "wb"),
                lambda: os.unlink(f"{w}/mntB/.snapshots/before/vm/disk.vhd"),
                lambda: os.mkdir(f"{w}/mntA/.snapshots/mine")):
    try:
        attempt()
    except OSError as e:
        assert e.errno in (errno.EROFS, errno.EACCES), e
    else:
        raise SystemExit("a write into the snapshot succeeded")
EOF
"$godwit" csv snapshot Volume1 before --release --members "$members" $(tls 2) >/dev/null || fail "release"
[ -z "$(ls -A mntA/.snapshots)" ] || fail "the released snapshot is still listed: $(ls -A mntA/.snapshots)"

# The coordinator dies (SIGKILL) while B writes: FUSE requests pause, a standby (node 2 or 3)
# takes the volume over, the write completes and A reads it byte-exact.
head -c $((8 * 1024 * 1024)) /dev/urandom >failover.bin
python3 - "$work" >failover.log 2>&1 <<'EOF' & writer=$!
import os, sys, time
w = sys.argv[1]
data = open(f"{w}/failover.bin", "rb").read()
with open(f"{w}/mntB/failover.bin", "wb") as f:
    longest = 0.0
    for off in range(0, len(data), 256 * 1024):
        start = time.monotonic()
        f.write(data[off:off + 256 * 1024]); f.flush()
        longest = max(longest, time.monotonic() - start)
        time.sleep(0.05)
    os.fsync(f.fileno())
print(f"longest write through B: {longest:.2f} s")
EOF
sleep 0.5
kill -0 "$writer" 2>/dev/null || fail "the writer finished before the coordinator was killed"
kill -KILL "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true
wait "$writer" || fail "write through B across the coordinator's death: $(cat failover.log)"
cat failover.log
cmp failover.bin mntA/failover.bin || fail "data written on B across the failover differs on A"
json="$("$godwit" --json csv status --members "$members" $(tls 2))" || fail "status after the failover"
coordinator="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["coordinator"])' "$json")"
[ "$coordinator" = 2 ] || [ "$coordinator" = 3 ] || fail "no mounted node took over: $json"

# Stop the non-coordinator first: A by an unmount from outside (its node exits 0), B by
# SIGTERM; the coordinator last (it unmounts the volume cleanly).
stop_a() { umount mntA; wait "$pida" || fail "mount A did not exit cleanly after umount"; }
# B stops while this shell still holds a file open on it: the node must not wait for it.
stop_b() {
  kill -TERM "$pidb"
  for _ in $(seq 100); do kill -0 "$pidb" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pidb" 2>/dev/null && fail "mount B still running 10 s after SIGTERM (a file held open)"
  wait "$pidb" || fail "mount B did not stop cleanly on SIGTERM"
}
echo held >mntB/held.txt
exec 3<mntB/held.txt
if [ "$coordinator" = 2 ]; then stop_b; stop_a; else stop_a; stop_b; fi
exec 3<&- 2>/dev/null || true
pids=()
mountpoint -q mntA && fail "mntA still mounted"
mountpoint -q mntB && fail "mntB still mounted after its node stopped"
check="$("$godwit" csv check lun.img)" || fail "csv check: $check"
grep -q ": clean" <<<"$check" || fail "volume not clean: $check"
echo "PASS: csv fuse mount"
