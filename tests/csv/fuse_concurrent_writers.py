#!/usr/bin/env python3
"""Eight processes, half on each FUSE mount of one cluster shared volume, write interleaved
64 KiB pieces of one file at the same time (each through its own open file); both mounts
must then read every piece intact.

Usage: fuse_concurrent_writers.py MOUNT_A MOUNT_B
"""
import hashlib
import os
import sys
from multiprocessing import Process

A, B = sys.argv[1], sys.argv[2]
chunk, n, per = 65536, 8, 64  # 8 writers, 64 pieces each, interleaved
size = chunk * n * per
with open(f"{A}/shared.bin", "wb") as f:
    f.truncate(size)


def pattern(i, k):
    return hashlib.sha256(f"{i}-{k}".encode()).digest() * (chunk // 32)


def writer(i):
    mount = A if i % 2 == 0 else B
    fd = os.open(f"{mount}/shared.bin", os.O_WRONLY)
    for k in range(per):
        os.pwrite(fd, pattern(i, k), (k * n + i) * chunk)
    os.close(fd)


ps = [Process(target=writer, args=(i,)) for i in range(n)]
for p in ps:
    p.start()
for p in ps:
    p.join()
assert all(p.exitcode == 0 for p in ps), [p.exitcode for p in ps]
for m in (A, B):
    data = open(f"{m}/shared.bin", "rb").read()
    assert len(data) == size
    for i in range(n):
        for k in range(per):
            off = (k * n + i) * chunk
            assert data[off:off + chunk] == pattern(i, k), (m, i, k)
os.unlink(f"{A}/shared.bin")
print(f"8 concurrent writers on two mounts: {size >> 20} MiB intact on both")
