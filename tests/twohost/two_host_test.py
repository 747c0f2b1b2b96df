#!/usr/bin/env python3
"""The `twohost` test: boots two emulated Godwit hosts (A, B) in parallel, each Bochs with
VT-x + EPT booting godwit-host.iso, joined by one virtual Ethernet link (a frame relay hub, e1000 NICs;
tools/host-harness/two_hosts.py, inside a private network namespace with only loopback).
Checks that
  - both roots see this build's hypervisor (`godwit host info --json`);
  - the link-local addresses 169.254.0.1/16 (A) and 169.254.0.2/16 (B) answer pings both ways;
  - a TCP transfer (busybox nc) of --mib MiB of random data A -> B arrives byte for byte
    (size and sha256), and a smaller one B -> A too;
  - godwitd runs on both roots;
  - with --migration: live and quick migration between the hosts and the fault cases
    (migration_checks.py), then B's godwitd listens on TCP 6600.
Prints one JSON document (boot times, ping round trips, link throughput) at the end.
Exit status 0 only when every check passed."""

import argparse
import json
import os
import re
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools",
                                "host-harness"))
from bochs_host import HostError  # noqa: E402
from two_hosts import TwoHosts, exit_on_sigterm  # noqa: E402
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from migration_checks import run_migration_checks  # noqa: E402

failures = []
started = time.monotonic()


def check(condition, what, detail=""):
    # The time since the start: where a slow run spent its minutes.
    print(f"[{time.monotonic() - started:6.1f}s] {'PASS' if condition else 'FAIL'}: {what}" +
          (f" ({detail})" if detail and not condition else ""), flush=True)
    if not condition:
        failures.append(what)
    return condition


def host_info(host):
    status, out = host.run("godwit host info --json", timeout=180)
    if status != 0 or "{" not in out:
        return status, {}
    try:
        return status, json.loads(out[out.index("{"):out.rindex("}") + 1])
    except ValueError:
        return status, {}


def listening_tcp_ports(host):
    """TCP ports something listens on in this root (busybox netstat -ltn; its -p shows
    nothing in the root image)."""
    status, out = host.run("netstat -ltn")
    return sorted({int(m.group(1)) for m in re.finditer(r":(\d+)\s+\S+\s+LISTEN", out)})


def main():
    exit_on_sigterm()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iso", required=True)
    ap.add_argument("--expect-build", required=True, help="hypervisor build string expected")
    ap.add_argument("--mib", type=int, default=4, help="A -> B transfer size in MiB")
    ap.add_argument("--hub-base", type=int, help="bxhub base UDP port (default: a free one)")
    ap.add_argument("--boot-timeout", type=int, default=420)
    ap.add_argument("--workdir", help="keep Bochs/bxhub files and the console logs here")
    ap.add_argument("--migration", action="store_true",
                    help="then migrate VMs between the hosts (migration_checks.py)")
    args = ap.parse_args()

    workdir = args.workdir or tempfile.mkdtemp(prefix="godwit-twohost-")
    print(f"workdir: {workdir} (consoles in A/com1.txt and B/com1.txt)", flush=True)
    report = {"test": "twohost"}
    pair = None
    try:
        pair = TwoHosts(args.iso, workdir, hub_base=args.hub_base)
        report["hub_base_port"] = pair.hub.base
        pair.start()
        report["boot"] = pair.wait_ready(args.boot_timeout)
        check(True, "both hosts boot to the root shell (in parallel)")
        print(f"boot: {report['boot']}", flush=True)

        for host in pair.hosts:
            status, info = host_info(host)
            build = info.get("hypervisor", {}).get("build")
            check(status == 0 and build == args.expect_build,
                  f"{host.name}: root sees this build's hypervisor (godwit host info --json)",
                  f"status {status}, build {build!r}, want {args.expect_build!r}")

        report["interfaces"] = pair.setup_link()
        check(True, "e1000 link up with 169.254.0.1/16 (A) and 169.254.0.2/16 (B)")
        report["ping"] = []
        for src, dst in ((pair.a, pair.b), (pair.b, pair.a)):
            try:
                result = pair.ping(src, dst)
                report["ping"].append(result)
                check(result["received"] == result["sent"],
                      f"ping {src.name} -> {dst.name} ({dst.address})", str(result))
            except HostError as e:
                check(False, f"ping {src.name} -> {dst.name} ({dst.address})", str(e))

        report["transfer"] = []
        for src, dst, mib in ((pair.a, pair.b, args.mib), (pair.b, pair.a, 1)):
            result = pair.transfer(src, dst, mib)
            report["transfer"].append(result)
            check(result["intact"], f"TCP transfer {src.name} -> {dst.name}: {mib} MiB arrive "
                                    f"byte for byte (sha256)", json.dumps(result))
            print(f"link: {src.name} -> {dst.name} {mib} MiB in {result['wall_s']} s wall clock "
                  f"= {result['wall_kib_per_s']} KiB/s ({result['emulated_kib_per_s']} KiB/s "
                  f"by the roots' clocks)", flush=True)

        for host in pair.hosts:
            status, out = host.run("pidof godwitd")
            check(status == 0 and out.strip() != "", f"{host.name}: godwitd runs", out.strip())
        if args.migration:
            report["migration"] = run_migration_checks(pair, workdir, check)
            ports = listening_tcp_ports(pair.b)
            check(6600 in ports, "B still listens for migrations on TCP port 6600 (godwitd)",
                  str(ports))
    except (HostError, RuntimeError) as e:
        check(False, "the two-host run completes", str(e))
    finally:
        if pair is not None:
            pair.stop()
            check(not any(h.running() for h in pair.hosts) and
                  (pair.hub.proc is None or pair.hub.proc.poll() is not None),
                  "both Bochs and the hub ended")
    report["failures"] = failures
    report["ok"] = not failures
    print(json.dumps(report, indent=2))
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
