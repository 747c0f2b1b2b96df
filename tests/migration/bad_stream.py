#!/usr/bin/env python3
"""Sends a hand-made, hostile migration stream to a destination on 127.0.0.1 (plaintext).

  bad_stream.py PORT CASE
CASE: pages-before-header   a valid PAGES record as the first record
      page-out-of-range     HEADER for 16 pages, then a page number 1000
      unknown-mandatory     HEADER, then record type 99 without the optional flag
      huge-record           a frame header announcing 1 GiB
"""
import socket
import struct
import sys


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def frame(rtype, payload, flags=0):
    return struct.pack("<IHHII", 0x314D5747, rtype, flags, len(payload), crc32c(payload)) + payload


def varint(v):
    out = b""
    while v >= 0x80:
        out += bytes([(v & 0x7F) | 0x80])
        v >>= 7
    return out + bytes([v])


def header(pages):
    # StreamHeader: 1 version_major=1, 5 page_size=4096, 6 page_count
    return b"\x08\x01" + b"\x28" + varint(4096) + b"\x30" + varint(pages)


def pages_record(pfn):
    return struct.pack("<I", 1) + struct.pack("<Q", pfn) + bytes(4096)


port, case = int(sys.argv[1]), sys.argv[2]
s = socket.create_connection(("127.0.0.1", port))
if case == "pages-before-header":
    s.sendall(frame(2, pages_record(0)))
elif case == "page-out-of-range":
    s.sendall(frame(1, header(16)) + frame(2, pages_record(1000)))
elif case == "unknown-mandatory":
    s.sendall(frame(1, header(16)) + frame(99, b"x"))
elif case == "huge-record":
    s.sendall(struct.pack("<IHHII", 0x314D5747, 2, 0, 1 << 30, 0))
try:
    s.recv(4096)
except OSError:
    pass
s.close()
