#!/usr/bin/env python3
"""The README's main job: live migration of a running VM between two Godwit hosts.

Boots two emulated hosts (A and B: Bochs with Intel VT-x + EPT, each booting
build/godwit-host.iso: the hypervisor, then Debian's Linux as the root partition) joined by
one virtual Ethernet link inside a private network namespace, gives both TLS credentials
from one cluster CA, starts a memory-dirtying VM on A, moves it to B with
`godwit vm migrate NAME B --live` while it runs, and shows on B that it goes on: its
heartbeat continues, every page check passes, a marker written into its memory on A is
there, and A holds nothing any more. Every line comes from the run just made.

  migration_demo.py --iso build/godwit-host.iso [--workdir DIR] [--boot-timeout S]
Exit status 0 when the VM arrived intact and runs on B."""

import argparse
import json
import os
import re
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bochs_host import HostError  # noqa: E402
from two_hosts import TwoHosts, exit_on_sigterm  # noqa: E402
import migration_hosts as mh  # noqa: E402

VM = "demo"
MARKER_GPA = 12 * 1024 * 1024 + 0x40  # above the 1 MiB the guest rewrites
MARKER = b"written-on-host-A"


def step(text):
    print(f"\n=== {text}", flush=True)


def shown(host, command, timeout=mh.VM_TIMEOUT):
    """Runs `command` on `host`'s root shell and prints it with what it printed (progress
    redraws collapsed to their last state)."""
    print(f"{host.name}# {command}", flush=True)
    status, out = host.run(command, timeout)
    for line in out.replace("\r\n", "\n").split("\n"):
        line = line.split("\r")[-1].rstrip()
        if line and not line.startswith("@@GW"):
            print(f"    {line}", flush=True)
    return status, out


def main():
    exit_on_sigterm()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iso", required=True)
    ap.add_argument("--workdir", help="keep the Bochs files and consoles here")
    ap.add_argument("--boot-timeout", type=int, default=600)
    args = ap.parse_args()
    workdir = args.workdir or tempfile.mkdtemp(prefix="godwit-demo-")
    result = {"ok": False}
    pair = None
    started = time.monotonic()
    try:
        step("1/5 Two Godwit hosts boot in Bochs at once (emulated VT-x + EPT, 1 CPU, "
             "512 MiB each)")
        print(f"    consoles: {workdir}/A/com1.txt, {workdir}/B/com1.txt", flush=True)
        pair = TwoHosts(args.iso, workdir)
        pair.start()
        boot = pair.wait_ready(args.boot_timeout)
        for name, times in boot.items():
            print(f"    {name}: hypervisor handed over to Linux after {times['handoff_s']} s, "
                  f"root shell after {times['shell_s']} s", flush=True)
        a, b = pair.a, pair.b
        shown(a, "godwit host info | head -4")

        step("2/5 The link and the trust between the hosts")
        pair.setup_link()
        print(f"    e1000 link: A {a.address} <-> B {b.address} (link-local, carried over "
              f"127.0.0.1 in a private network namespace)", flush=True)
        mh.enable_migration(pair, workdir)
        print(f"    both hosts hold a certificate from one cluster CA in {mh.TLS_DIR}; godwitd "
              f"listens for migrations on port {mh.MIGRATION_PORT} (mutual TLS)", flush=True)

        step(f"3/5 A VM on host A: '{VM}' rewrites 1 MiB of its memory every pass and checks "
             f"every page")
        mh.start_dirty(a, VM, "dirty_mb=1 idle_mcycles=20")
        mh.write_guest(a, VM, MARKER_GPA, MARKER)
        mh.wait_pass(a, VM, 2)
        start, pages = mh.dirty_range(a, VM)
        shown(a, "godwit vm list")
        shown(a, f"godwit vm console {VM} | tail -2")
        print(f"    (and '{MARKER.decode()}' written into its RAM at guest-physical "
              f"{MARKER_GPA:#x}, which the guest never touches)", flush=True)

        step(f"4/5 Live migration A -> B while it runs")
        status, _ = shown(a, f"godwit vm migrate {VM} {b.address} --live")
        _, out = a.run(f"godwit --json vm migrate-status {VM}", mh.VM_TIMEOUT)
        report = mh.parse_json(out).get("report") or {}
        if status != 0:
            raise mh.MigrationError(f"godwit vm migrate exited {status}")

        step("5/5 On host B the VM goes on; host A holds nothing")
        before, _ = mh.heartbeat(b, VM)
        beat, failed = mh.wait_pass(b, VM, before + 1)
        shown(b, "godwit vm list")
        shown(b, f"godwit vm console {VM} | tail -2")
        marker = mh.read_guest(b, VM, MARKER_GPA, len(MARKER))
        problem = mh.consistency(mh.page_counters(b, VM, start, pages))
        status_a, _ = shown(a, f"godwit vm show {VM}")
        left_a = mh.guest_memory_in_hypervisor(a)
        checks = {
            "runs on B, heartbeat goes on": beat > before and not failed,
            "marker written on A read back on B": marker == MARKER,
            f"all {pages} page counters consistent": problem is None,
            "gone from A (no VM, no guest memory)": status_a == 3 and left_a == 0,
        }
        for what, good in checks.items():
            print(f"    {'ok  ' if good else 'FAIL'} {what}", flush=True)
        result = {
            "ok": all(checks.values()),
            "checks": checks,
            "migration": {k: report.get(k) for k in (
                "total_time_ms", "downtime_ms", "iterations", "converged", "bytes_on_wire",
                "guest_bytes", "max_throttle_percent")},
            "boot": boot,
            "wall_s": round(time.monotonic() - started, 1),
        }
    except (HostError, mh.MigrationError, RuntimeError) as e:
        result["error"] = str(e)
        print(f"demo: FAILED: {e}", file=sys.stderr, flush=True)
    finally:
        if pair is not None:
            pair.stop()
    step("Result")
    print(json.dumps(result, indent=2), flush=True)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
