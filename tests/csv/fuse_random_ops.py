#!/usr/bin/env python3
"""Random file operations on two FUSE mounts of one cluster shared volume, checked against
an in-memory model: each operation runs on one mount (chosen at random) and its result is
read back through the other one; at the end both trees must equal the model.

Usage: fuse_random_ops.py MOUNT_A MOUNT_B [OPERATIONS] [SEED]
"""
import os
import random
import sys

a, b = sys.argv[1], sys.argv[2]
operations = int(sys.argv[3]) if len(sys.argv) > 3 else 300
seed = int(sys.argv[4]) if len(sys.argv) > 4 else 1
rng = random.Random(seed)
root = "random"
model = {}  # relative path -> bytearray
for m in (a, b):
    assert not os.path.exists(os.path.join(m, root)), "leftover tree"
os.mkdir(os.path.join(a, root))
dirs = [root]


def check(path, mount):
    with open(os.path.join(mount, path), "rb") as f:
        got = f.read()
    want = bytes(model[path])
    if got != want:
        first = next((i for i, (x, y) in enumerate(zip(got, want)) if x != y), min(len(got), len(want)))
        raise AssertionError(f"{path} on {mount}: {len(got)} bytes, want {len(want)}, first difference at {first}")


for step in range(operations):
    here, there = (a, b) if rng.random() < 0.5 else (b, a)
    files = sorted(model)
    op = rng.choice(["create", "create", "write", "write", "write", "truncate", "rename", "unlink"]
                    if files else ["create", "mkdir"])
    if rng.random() < 0.05:
        op = "mkdir"
    if op == "create":
        path = f"{rng.choice(dirs)}/f{step}"
        data = bytearray(os.urandom(rng.choice([0, 1, 511, 4096, 5000, 70000])))
        with open(os.path.join(here, path), "wb") as f:
            f.write(data)
        model[path] = data
    elif op == "write":
        path = rng.choice(files)
        data = os.urandom(rng.choice([1, 17, 4096, 4097, 65536, 200000]))
        off = rng.randrange(0, len(model[path]) + 8192)
        with open(os.path.join(here, path), "r+b") as f:
            f.seek(off)
            f.write(data)
        cur = model[path]
        if off + len(data) > len(cur):
            cur.extend(b"\0" * (off + len(data) - len(cur)))
        cur[off:off + len(data)] = data
    elif op == "truncate":
        path = rng.choice(files)
        size = rng.randrange(0, len(model[path]) * 2 + 4097)
        os.truncate(os.path.join(here, path), size)
        cur = model[path]
        del cur[size:]
        cur.extend(b"\0" * (size - len(cur)))
    elif op == "rename":
        path = rng.choice(files)
        to = rng.choice(files + [f"{rng.choice(dirs)}/r{step}"])
        if to == path:
            continue
        os.rename(os.path.join(here, path), os.path.join(here, to))
        model[to] = model.pop(path)
        path = to
    elif op == "unlink":
        path = rng.choice(files)
        os.unlink(os.path.join(here, path))
        del model[path]
        assert not os.path.exists(os.path.join(there, path)), f"{path} still on {there}"
        continue
    elif op == "mkdir":
        path = f"{rng.choice(dirs)}/d{step}"
        os.mkdir(os.path.join(here, path))
        dirs.append(path)
        assert os.path.isdir(os.path.join(there, path)), f"{path} not a directory on {there}"
        continue
    check(path, there)

for m in (a, b):
    seen = {}
    for d, _, names in os.walk(os.path.join(m, root)):
        for n in names:
            seen[os.path.relpath(os.path.join(d, n), m)] = True
    assert sorted(seen) == sorted(model), f"tree on {m} differs from the model"
    for path in model:
        check(path, m)
print(f"{operations} random operations (seed {seed}) on two mounts match the model "
      f"({len(model)} files, {len(dirs)} directories)")
