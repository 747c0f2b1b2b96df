#!/usr/bin/env python3
"""A TCP proxy on 127.0.0.1 that breaks a migration stream on purpose (one connection).

  faulty_proxy.py LISTEN_PORT TARGET_PORT MODE AFTER_BYTES
MODE: kill    close both sides after AFTER_BYTES source->destination bytes
      corrupt flip one byte at offset AFTER_BYTES of the source->destination stream
      stall   stop forwarding after AFTER_BYTES (keep the connections open)
      pass    forward everything
"""
import socket
import sys
import threading
import time

listen_port, target_port, mode, after = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", listen_port))
srv.listen(1)
print("ready", flush=True)
client, _ = srv.accept()
upstream = socket.create_connection(("127.0.0.1", target_port))
done = threading.Event()


def back():
    try:
        while True:
            data = upstream.recv(65536)
            if not data:
                break
            client.sendall(data)
    except OSError:
        pass


threading.Thread(target=back, daemon=True).start()
seen = 0
try:
    while True:
        data = client.recv(65536)
        if not data:
            break
        if mode in ("kill", "stall") and seen + len(data) > after:
            upstream.sendall(data[: after - seen])
            if mode == "kill":
                break
            time.sleep(30)  # stalled: the peers must time out, not hang forever
            break
        if mode == "corrupt" and seen <= after < seen + len(data):
            b = bytearray(data)
            b[after - seen] ^= 0x5A
            data = bytes(b)
        upstream.sendall(data)
        seen += len(data)
finally:
    for s in (client, upstream):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()
