#!/usr/bin/env python3
"""Runs tests/vm/vm_checks.py alone: boots godwit-host.iso in Bochs, waits for the root
partition's shell, runs run_vm_checks and powers off. The root test (tests/root) runs the
same checks as part of its boot; this is for working on VM management without the rest.
  vm_host_test.py --iso build/godwit-host.iso [--workdir DIR]
Exit status 0 only when every check passed."""

import argparse
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools", "host-harness"))
sys.path.insert(0, HERE)
from bochs_host import BochsHost, HostError  # noqa: E402
from vm_checks import (run_vm_checks, run_vm_migration_checks,  # noqa: E402
                       run_vm_save_restore_checks)
from host_tls import make_credentials  # noqa: E402

failures = []


def check(condition, what, detail=""):
    print(f"{'PASS' if condition else 'FAIL'}: {what}" +
          (f" ({detail})" if detail and not condition else ""), flush=True)
    if not condition:
        failures.append(what)
    return condition


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iso", required=True)
    ap.add_argument("--megs", type=int, default=512)
    ap.add_argument("--boot-timeout", type=int, default=480)
    ap.add_argument("--workdir")
    ap.add_argument("--checks", choices=["vm", "save-restore", "migrate", "all"], default="vm",
                    help="which check set to run (default: vm)")
    args = ap.parse_args()
    workdir = args.workdir or tempfile.mkdtemp(prefix="godwit-vm-")
    print(f"workdir: {workdir} (console in com1.txt)", flush=True)
    host = BochsHost(args.iso, workdir, cpus=1, megs=args.megs, name="host")
    try:
        host.start()
        host.shell_ready(args.boot_timeout)
        print(f"root shell after {host.elapsed():.0f}s", flush=True)
        started = time.monotonic()
        plain_run = host.run

        def timed_run(command, timeout=120):  # where the time goes, for the log
            t0 = time.monotonic()
            result = plain_run(command, timeout)
            print(f"  [{time.monotonic() - t0:5.1f}s] {command[:90]}", flush=True)
            return result
        host.run = timed_run
        if args.checks in ("vm", "all"):
            run_vm_checks(host, check)
        if args.checks in ("save-restore", "all"):
            run_vm_save_restore_checks(host, check)
        if args.checks in ("migrate", "all"):
            credentials = make_credentials(workdir, ["a", "b"])
            credentials.update(make_credentials(workdir, ["rogue"], ca="rogue-ca"))
            run_vm_migration_checks(host, check, credentials)
        host.run = plain_run
        print(f"vm checks took {time.monotonic() - started:.0f}s", flush=True)
        status, out = host.run("tail -20 /var/log/godwitd.log")
        print(out)
        host.type("poweroff -f\n")
        deadline = time.monotonic() + 60
        while host.running() and time.monotonic() < deadline:
            host._pump(0.5)
    except HostError as e:
        check(False, "the host boots and answers on its console", str(e))
    finally:
        host.stop()
    if failures:
        print(f"vm host test: {len(failures)} check(s) failed: {failures}")
        return 1
    print("vm host test: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
