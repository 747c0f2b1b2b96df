#!/usr/bin/env python3
"""Live migration's control plane on the build host (docs/live-migration.md), with real
programs where the build host allows: a real godwitd as the destination, listening on
127.0.0.1 with the real godwit-vm-worker receiving (it authenticates the source with TLS
before it needs /dev/godwit), and a real godwitd as the source with a stand-in worker
(fake_vm_worker.py: no VM to send) driven by the real `godwit vm migrate` CLI.
  - a source whose certificate another CA signed is refused by the receiving worker; the
    destination logs why and holds no VM;
  - a trusted source that sends garbage is refused by the stream parser; nothing is kept;
  - CLI errors: no credentials, bad destinations, a VM that is not running, cancel with
    nothing under way, status of an unknown VM; a failed migration is reported with the
    worker's reason and "it keeps running here".
The migration itself (memory, vCPUs, devices) runs in Bochs: tests/vm/vm_checks.py and the
two-host test. Exit status 0 only when every check passed.
  migration_daemon_test.py BIN_DIR GUEST_DIR"""

import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools", "host-harness"))
sys.path.insert(0, HERE)
from host_tls import make_credentials  # noqa: E402
from vmctl_daemon_test import Daemon, check, failures  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_log(path, text, timeout=20):
    deadline = time.monotonic() + timeout
    content = ""
    while time.monotonic() < deadline:
        try:
            with open(path) as f:
                content = f.read()
        except OSError:
            content = ""
        if text in content:
            return True, content
        time.sleep(0.1)
    return False, content[-1500:]


def tls_client(creds, port):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(creds["ca.pem"])
    ctx.load_cert_chain(creds["host.pem"], creds["host.key"])
    ctx.check_hostname = False
    raw = socket.create_connection(("127.0.0.1", port), timeout=20)
    return ctx.wrap_socket(raw)


def main():
    bin_dir, guest_dir = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    tmp = tempfile.mkdtemp(prefix="godwit-migctl-")
    creds = make_credentials(tmp, ["a", "b"])
    creds.update(make_credentials(tmp, ["rogue"], ca="rogue-ca"))
    tls_b = os.path.join(tmp, "tls-b")
    os.makedirs(tls_b)
    for name, path in creds["b"].items():
        shutil.copy(path, os.path.join(tls_b, name))
    port = free_port()
    dest_dir, src_dir = os.path.join(tmp, "b"), os.path.join(tmp, "a")
    os.makedirs(dest_dir)
    os.makedirs(src_dir)
    dest = source = None
    env = dict(os.environ)

    def godwit(*args, timeout=60):
        p = subprocess.run([os.path.join(bin_dir, "godwit"), *args], capture_output=True,
                           text=True, timeout=timeout, env=env)
        return p.returncode, p.stdout, p.stderr

    try:
        dest = Daemon(bin_dir, dest_dir, os.path.join(tmp, "no-device"),
                      extra=["--tls-dir", tls_b, "--migration-listen", f"127.0.0.1:{port}"])
        found, log = wait_for_log(dest.log, f"accepting migrations on 127.0.0.1:{port}")
        check("destination godwitd listens for migrations on 127.0.0.1", found, log)

        # A source from another CA: the receiving worker's TLS handshake refuses it.
        refused = False
        try:
            with tls_client(creds["rogue"], port) as s:
                s.sendall(b"x" * 16)
                refused = s.recv(16) == b""
        except (ssl.SSLError, ConnectionError, OSError):
            refused = True
        found, log = wait_for_log(dest.log, "incoming migration from 127.0.0.1")
        found_fail, log = wait_for_log(dest.log, "failed (worker pid")
        check("an untrusted source is refused (TLS)", refused and found and found_fail and
              "TLS handshake" in log, log)
        env["GODWIT_SOCKET"] = dest.socket
        rc, out, err = godwit("--json", "vm", "list")
        check("the destination holds no VM after the refusal", rc == 0 and
              json.loads(out).get("vms") == [], out + err)

        # A trusted source that sends garbage: the stream parser refuses it.
        with tls_client(creds["a"], port) as s:
            s.sendall(b"GARBAGE!" * 64)
            try:
                s.recv(4096)
            except (ssl.SSLError, OSError):
                pass
        found, log = wait_for_log(dest.log, "receiving a VM from")
        check("a trusted source's garbage stream is refused by the parser", found, log)
        rc, out, err = godwit("--json", "vm", "list")
        check("the destination still holds no VM", rc == 0 and json.loads(out).get("vms") == [],
              out + err)
        check("the failed receiver's log is kept for diagnosis", os.path.exists(
            os.path.join(dest_dir, "run", ".incoming", "last-failed.log")))

        # The source: a stand-in worker (no VM) under a real godwitd.
        tls_a = os.path.join(tmp, "tls-a")
        source = Daemon(bin_dir, src_dir, "/dev/null",
                        worker=os.path.join(HERE, "fake_vm_worker.py"),
                        extra=["--tls-dir", tls_a])
        env["GODWIT_SOCKET"] = source.socket
        rc, out, err = godwit("vm", "create", "--name", "web", "--kernel",
                              os.path.join(guest_dir, "hello.elf"), "--memory", "16",
                              "--cmdline", "fake=run")
        check("source: create web", rc == 0, err)
        rc, out, err = godwit("vm", "migrate", "web", f"127.0.0.1:{port}")
        check("migrate of a VM that is not running: exit 7", rc == 7 and "not running" in err,
              f"{rc}: {err}")
        rc, out, err = godwit("vm", "start", "web")
        check("source: start web (stand-in worker)", rc == 0, err)
        rc, out, err = godwit("vm", "migrate", "web", f"127.0.0.1:{port}")
        check("migrate without credentials: exit 3 naming the missing file", rc == 3 and
              "ca.pem is missing" in err, f"{rc}: {err}")
        os.makedirs(tls_a)
        for name, path in creds["a"].items():
            shutil.copy(path, os.path.join(tls_a, name))
        for bad, why in (("127.0.0.1:0", "port"), ("127.0.0.1:99999", "port"), (":6600", "no host"),
                         ("fe80::1:6600", "brackets")):
            rc, out, err = godwit("vm", "migrate", "web", bad)
            check(f"migrate to '{bad}': usage error about the {why}", rc == 2 and why in err,
                  f"{rc}: {err}")
        rc, out, err = godwit("vm", "migrate-cancel", "web")
        check("migrate-cancel with nothing under way: exit 7", rc == 7 and
              "not being migrated" in err, f"{rc}: {err}")
        rc, out, err = godwit("vm", "migrate-status", "nosuch")
        check("migrate-status of an unknown VM: exit 3", rc == 3, f"{rc}: {err}")
        rc, out, err = godwit("vm", "migrate", "web", f"127.0.0.1:{port}", "--timeout", "20")
        check("a failed migration: exit 1 with the worker's reason; the VM keeps running",
              rc == 1 and "fake worker: no VM to migrate" in err and "keeps running" in err,
              f"{rc}: {err}")
        rc, out, err = godwit("--json", "vm", "migrate-status", "web")
        doc = json.loads(out) if rc == 0 else {}
        check("migrate-status --json: state failed, destination, live", doc.get("state") ==
              "failed" and doc.get("destination") == f"127.0.0.1:{port}" and doc.get("live") is True,
              out + err)
        rc, out, err = godwit("--json", "vm", "show", "web")
        check("the VM is still running on the source", rc == 0 and
              json.loads(out).get("state") == "running", out + err)
        rc, out, err = godwit("vm", "migrate", "--help")
        check("godwit vm migrate --help explains DEST and the limits", rc == 0 and
              "--downtime-limit" in out and "--bandwidth" in out and "HOST[:PORT]" in out, out)
    finally:
        for d in (source, dest):
            if d:
                d.stop()
        if failures:
            print(f"kept {tmp} for inspection")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print(f"migration daemon test: {len(failures)} check(s) failed")
        return 1
    print("migration daemon test: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
