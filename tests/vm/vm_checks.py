"""VM management on a real Godwit host (docs/vm-management.md): `godwit vm` through godwitd
and one godwit-vm-worker per VM, in the root partition of a BochsHost
(tools/host-harness/bochs_host.py). The root test calls

    run_vm_checks(host, check)

with `host` at the root shell (godwitd running) and `check(condition, what, detail="")`
recording one PASS/FAIL line, as tests/root/root_host_test.py's check does (a
`check(name, ok, detail)` is recognised by its first parameter's name and adapted). It:
  - creates hello.elf, starts it, follows its console until it stops, checks the result
    (debug exit 0) and the console;
  - runs two VMs at once: dirty.elf (runs forever, heartbeats) and isolation.elf, which
    must stop alone with an access-outside-RAM result while dirty keeps running; then hello
    starts and completes while dirty still runs;
  - checks the operator errors on the real host (start or delete of a running VM);
  - stops dirty gracefully (SIGTERM: result "stopped"), starts it again;
  - kills dirty: stopped with result "killed", its worker gone, partitions destroyed (no
    guest memory left in the hypervisor), and a VM still starts afterwards;
  - deletes every VM.
Returns the number of failed checks."""

import inspect
import json
import re

# tools/host-harness is on sys.path (root_host_test.py and vm_host_test.py put it there).
from migration_hosts import UNTRUSTED_PEER, parse_json

GUESTS = "/usr/share/godwit/guests"
VM_TIMEOUT = 300  # seconds for one command that waits on a VM in Bochs


def _recorder(check):
    """check(condition, what, detail) as tests/root/root_host_test.py defines it; a
    check(name, ok, detail) (first parameter named name/what) is adapted."""
    try:
        first = next(iter(inspect.signature(check).parameters), "")
    except (TypeError, ValueError):
        first = ""
    if first in ("name", "what", "title"):
        return lambda condition, what, detail="": check(what, condition, detail)
    return check


def run_vm_checks(host, check):
    failed = []
    record = _recorder(check)

    def ok(condition, what, detail=""):
        if not condition:
            failed.append(what)
        record(condition, what, detail)
        return condition

    try:
        _checks(host, ok)
    finally:
        if failed:  # leave no VM running for the checks that follow
            host.run("for vm in dirty iso hello; do godwit vm kill $vm; godwit vm delete $vm; "
                     "done >/dev/null 2>&1", VM_TIMEOUT)
    return len(failed)


def _vms(host):
    """{name: VM document} from `godwit --json vm list`."""
    status, out = host.run("godwit --json vm list", VM_TIMEOUT)
    return {vm.get("name"): vm for vm in parse_json(out).get("vms", [])}


def _result(vm):
    return (vm or {}).get("last_result") or {}


def _checks(host, ok):
    # -- one VM from create to its end ----------------------------------------------------
    status, out = host.run(f"godwit vm create --name hello --kernel {GUESTS}/hello.elf "
                           f"--memory 16 --cmdline answer=42", VM_TIMEOUT)
    ok(status == 0 and "created" in out, "vm: godwit vm create hello", out[-400:])
    status, out = host.run("godwit vm start hello && godwit vm console hello --follow",
                           VM_TIMEOUT)
    ok(status == 0 and "hello: PASS" in out, "vm: godwit vm start hello; console --follow shows "
       "its COM1 output until it stops", out[-600:])
    ok("answer=42" in out, "vm: the guest got its command line", out[-600:])
    hello = _vms(host).get("hello", {})
    ok(hello.get("state") == "stopped" and _result(hello).get("kind") == "debug_exit" and
       _result(hello).get("exit_code") == 0, "vm: list shows hello stopped with debug exit 0",
       json.dumps(hello)[:600])

    # -- two VMs at once: one runs on, the other is stopped by isolation -------------------
    status, out = host.run(f"godwit vm create --name dirty --kernel {GUESTS}/dirty.elf "
                           f"--memory 16 --cmdline dirty_mb=2 && godwit vm create --name iso "
                           f"--kernel {GUESTS}/isolation.elf --memory 16", VM_TIMEOUT)
    ok(status == 0, "vm: create dirty and iso", out[-400:])
    status, out = host.run("godwit vm start dirty", VM_TIMEOUT)
    ok(status == 0 and "running" in out, "vm: start dirty (runs until stopped)", out[-400:])
    status, out = host.run("godwit vm start iso && godwit vm console iso --follow", VM_TIMEOUT)
    ok(status == 0 and "isolation: RAM ends at" in out, "vm: start iso while dirty runs",
       out[-400:])
    vms = _vms(host)
    iso, dirty = vms.get("iso", {}), vms.get("dirty", {})
    ok(iso.get("state") == "stopped" and _result(iso).get("kind") == "outside_ram" and
       _result(iso).get("address", 0) >= 16 << 20 and
       "outside its RAM" in _result(iso).get("message", ""),
       "vm: isolation VM stopped alone with a clear reason (access outside its RAM, address "
       "named)", json.dumps(iso)[:600])
    ok(dirty.get("state") == "running", "vm: dirty still running after iso stopped",
       json.dumps(dirty)[:400])
    dirty_pid = dirty.get("pid")

    status, first = host.run("godwit vm console dirty | grep -c 'dirty: pass'", VM_TIMEOUT)
    status, out = host.run("godwit vm start hello && godwit vm console hello --follow",
                           VM_TIMEOUT)
    ok(status == 0 and "hello: PASS" in out, "vm: hello runs to completion again while dirty "
       "runs", out[-600:])
    status, second = host.run("godwit vm console dirty | grep -c 'dirty: pass'", VM_TIMEOUT)
    beats = [int(m.group(1)) if m else -1 for m in
             (re.search(r"(\d+)\s*$", t.strip()) for t in (first, second))]
    ok(0 < beats[0] < beats[1], "vm: dirty's heartbeats keep coming in its console",
       f"heartbeat lines {beats}")

    # -- operator errors on a real host -----------------------------------------------------
    status, out = host.run("godwit vm start dirty", VM_TIMEOUT)
    ok(status == 7 and "already running" in out, "vm: start of a running VM is refused",
       out[-300:])
    status, out = host.run("godwit vm delete dirty", VM_TIMEOUT)
    ok(status == 7 and "stop it first" in out, "vm: delete of a running VM is refused",
       out[-300:])

    # -- graceful stop: SIGTERM -> the worker's VmRunner::request_stop --------------------------
    status, out = host.run("godwit --json vm stop dirty", VM_TIMEOUT)
    doc = parse_json(out)
    ok(status == 0 and doc.get("state") == "stopped" and _result(doc).get("kind") == "stopped",
       "vm: godwit vm stop dirty: the worker stops the VM on SIGTERM (result stopped)",
       out[-400:])

    # -- kill -----------------------------------------------------------------------------
    status, out = host.run("godwit --json vm start dirty", VM_TIMEOUT)
    doc = parse_json(out)
    ok(status == 0 and doc.get("state") == "running", "vm: a stopped VM starts again",
       out[-400:])
    dirty_pid = doc.get("pid")
    status, out = host.run("godwit --json vm kill dirty", VM_TIMEOUT)
    doc = parse_json(out)
    ok(status == 0 and doc.get("state") == "stopped" and _result(doc).get("kind") == "killed",
       "vm: godwit vm kill dirty: stopped, result killed", out[-400:])
    if dirty_pid:
        status, out = host.run(f"kill -0 {dirty_pid} 2>&1; echo rc=$?", VM_TIMEOUT)
        ok("rc=1" in out, "vm: the killed worker process is gone", out[-200:])
    status, out = host.run("godwit vm start hello && godwit vm console hello --follow",
                           VM_TIMEOUT)
    ok(status == 0 and "hello: PASS" in out, "vm: a VM starts and completes after the kill",
       out[-400:])
    status, out = host.run("godwit --json host info", VM_TIMEOUT)
    ok(status == 0 and re.search(r'"guest_bytes":\s*0\b', out) is not None,
       "vm: every partition destroyed (no guest memory left in the hypervisor)", out[-300:])

    # -- delete -----------------------------------------------------------------------------
    status, out = host.run("godwit vm delete hello && godwit vm delete iso && "
                           "godwit vm delete dirty", VM_TIMEOUT)
    ok(status == 0 and _vms(host) == {}, "vm: delete every VM", out[-300:])


# The dirtying guest for save/restore and migration: it idles (HLT, woken by its LAPIC
# timer) between passes, so its dirty rate is paced and the emulated host is not kept busy.
PACED_DIRTY = "dirty_mb=2 idle_mcycles=10"


def _last_pass(console):
    """The highest "dirty: pass N done" in a console text, -1 without one."""
    passes = [int(n) for n in re.findall(r"dirty: pass (\d+) done", console)]
    return max(passes) if passes else -1


def run_vm_save_restore_checks(host, check):
    """Quick migration on a real host (docs/vm-management.md, `godwit vm save`/`restore`):
    dirty.elf runs, is saved to a file (stopped with "saved to FILE"), restored under a new
    name and keeps counting passes from where it stopped; dirty.elf checks every page holds
    its pass number, so a page lost or stale in the saved state shows as "FAIL" in the
    guest. Also: save of a stopped VM and restore of a damaged file are refused. Called like
    run_vm_checks; returns the number of failed checks."""
    failed = []
    record = _recorder(check)

    def ok(condition, what, detail=""):
        if not condition:
            failed.append(what)
        record(condition, what, detail)
        return condition

    saved = "/tmp/dirty-saved.gws"
    # Until the VM's console (a restored VM's starts empty) shows {n} more passes.
    wait_beat = ("for i in $(seq 1 120); do [ $(godwit vm console {vm} | grep -c 'dirty: pass') "
                 "-ge {n} ] && break; sleep 1; done; godwit vm console {vm}")
    try:
        host.run(f"rm -f {saved} {saved}.bad", VM_TIMEOUT)
        status, out = host.run(f"godwit vm create --name dsave --kernel {GUESTS}/dirty.elf "
                               f"--memory 16 --cmdline '{PACED_DIRTY}' && godwit vm start dsave",
                               VM_TIMEOUT)
        ok(status == 0 and "running" in out, "save: start dirty (dsave)", out[-400:])
        status, console = host.run(wait_beat.format(vm="dsave", n=2), VM_TIMEOUT)
        before = _last_pass(console)
        ok(before >= 2, "save: dsave counts passes before the save", console[-300:])
        status, out = host.run(f"godwit --json vm save dsave {saved}", VM_TIMEOUT)
        doc = parse_json(out)
        ok(status == 0 and doc.get("state") == "stopped" and
           _result(doc).get("message") == f"saved to {saved}",
           "save: godwit vm save stops the VM with 'saved to FILE'", out[-500:])
        status, out = host.run(f"godwit vm save dsave {saved}.again", VM_TIMEOUT)
        ok(status == 7 and "not running" in out, "save: a stopped VM cannot be saved",
           out[-300:])
        status, out = host.run(f"godwit --json vm restore {saved} --name drestored", VM_TIMEOUT)
        doc = parse_json(out)
        ok(status == 0 and doc.get("state") == "running",
           "save: godwit vm restore FILE --name drestored runs the VM", out[-500:])
        status, console = host.run(wait_beat.format(vm="drestored", n=2), VM_TIMEOUT)
        after = _last_pass(console)
        ok(after > before and "FAIL" not in console,
           "save: the restored VM counts on from its pass with every page intact",
           f"last pass before the save {before}, after the restore {after}: {console[-400:]}")
        status, out = host.run(f"godwit vm restore {saved} --name drestored", VM_TIMEOUT)
        ok(status == 7, "save: restore under a name in use is refused", out[-300:])
        host.run(f"cp {saved} {saved}.bad && printf 'XXXXXXXX' | dd of={saved}.bad bs=1 "
                 f"seek=100000 conv=notrunc 2>/dev/null", VM_TIMEOUT)
        status, out = host.run(f"godwit vm restore {saved}.bad --name dbad", VM_TIMEOUT)
        ok(status == 4 and "not a usable saved VM" in out,
           "save: a damaged saved file is refused with the parser's reason", out[-300:])
    finally:
        host.run(f"godwit vm kill drestored; for vm in dsave drestored dbad; do godwit vm "
                 f"delete $vm; done; rm -f {saved} {saved}.bad {saved}.again", VM_TIMEOUT)
    return len(failed)


def _wait_pass(host, vm, beyond, env="", tries=120):
    """Polls VM `vm`'s console until it shows a pass above `beyond`; returns the console."""
    console = ""
    for _ in range(tries):
        _, console = host.run(f"{env} godwit vm console {vm}", VM_TIMEOUT)
        if _last_pass(console) > beyond or "FAIL" in console:
            break
        host.run("sleep 2", VM_TIMEOUT)
    return console


def _start_godwitd(host, base, listen, tls_dir):
    """A second godwitd in the same root partition ("host B" of a one-machine migration):
    its own socket, state, run directory and credentials, listening on `listen`."""
    return host.run(f"mkdir -p {base} && godwitd --daemon --log-file {base}/godwitd.log "
                    f"--socket {base}/godwitd.sock --state-dir {base}/state --run-dir {base}/run "
                    f"--tls-dir {tls_dir} --migration-listen {listen}", VM_TIMEOUT)


def run_vm_migration_checks(host, check, credentials):
    """Live migration through godwitd on one real host (docs/live-migration.md): a second
    and a third godwitd run in the same root partition with their own state, run directory
    and credentials and listen on 127.0.0.1:6601 (same CA: trusted) and :6602 (another CA).
    dirty.elf (a page counter that checks every page on every pass, printing FAIL for a
    lost page) runs under the first godwitd and is
      - refused by the destination that does not trust its CA (the VM keeps running, the
        destination holds no VM) and by a port nobody listens on;
      - live-migrated to 127.0.0.1:6601 over mutually authenticated TLS: gone from the
        source, running on the destination and counting on past its last pass there with
        every page intact; the source keeps the migration's report;
      - moved back by quick migration is not possible here (the first godwitd listens on
        nothing), so the destination cancels nothing: the checks end by stopping it.
    `credentials` is host_tls.make_credentials' result with hosts "a", "b" and "rogue" (the
    last from another CA). Returns the number of failed checks."""
    failed = []
    record = _recorder(check)
    summary = {}

    def ok(condition, what, detail=""):
        if not condition:
            failed.append(what)
        record(condition, what, detail)
        return condition

    from host_tls import install
    b, r = "/tmp/gw-b", "/tmp/gw-r"
    on_b, on_r = f"GODWIT_SOCKET={b}/godwitd.sock", f"GODWIT_SOCKET={r}/godwitd.sock"
    try:
        install(host, credentials["a"], "/etc/godwit/tls")
        install(host, credentials["b"], f"{b}/tls")
        install(host, credentials["rogue"], f"{r}/tls")
        status, out = _start_godwitd(host, b, "127.0.0.1:6601", f"{b}/tls")
        ok(status == 0, "migrate: a second godwitd listens for migrations on 127.0.0.1:6601",
           out[-300:])
        status, out = _start_godwitd(host, r, "127.0.0.1:6602", f"{r}/tls")
        ok(status == 0, "migrate: a godwitd with another CA listens on 127.0.0.1:6602", out[-300:])
        status, out = host.run(f"godwit vm create --name mig --kernel {GUESTS}/dirty.elf "
                               f"--memory 16 --cmdline '{PACED_DIRTY}' && godwit vm start mig",
                               VM_TIMEOUT)
        ok(status == 0 and "running" in out, "migrate: dirty.elf runs as 'mig'", out[-300:])
        console = _wait_pass(host, "mig", 1)
        ok(_last_pass(console) >= 2, "migrate: mig counts passes", console[-300:])

        status, out = host.run("godwit vm migrate mig 127.0.0.1:6602", VM_TIMEOUT)
        _, shown = host.run("godwit --json vm show mig", VM_TIMEOUT)
        _, listed = host.run(f"{on_r} godwit --json vm list", VM_TIMEOUT)
        ok(status == 1 and UNTRUSTED_PEER.search(out) is not None and
           parse_json(shown).get("state") == "running" and
           not parse_json(listed).get("vms"),
           "migrate: a destination that does not trust our CA refuses; the VM keeps running "
           "here and nothing is left there", f"{out[-400:]} | {shown[-200:]} | {listed[-200:]}")
        status, out = host.run("godwit vm migrate mig 127.0.0.1:6609", VM_TIMEOUT)
        ok(status == 1 and "refused" in out and "keeps running" in out,
           "migrate: a destination nobody listens on: a clear error, the VM keeps running",
           out[-300:])

        _, console = host.run("godwit vm console mig", VM_TIMEOUT)
        before = _last_pass(console)
        status, out = host.run("godwit vm migrate mig 127.0.0.1:6601 --live", VM_TIMEOUT)
        print(out, flush=True)
        ok(status == 0 and "live-migrated to 127.0.0.1:6601" in out,
           "migrate: godwit vm migrate --live mig 127.0.0.1:6601 completes with a summary",
           out[-600:])
        status, out = host.run("godwit vm show mig", VM_TIMEOUT)
        ok(status == 3, "migrate: the source no longer has the VM", out[-300:])
        status, out = host.run("godwit --json vm migrate-status mig", VM_TIMEOUT)
        doc = parse_json(out)
        report = doc.get("report") or {}
        summary.update(report)
        ok(doc.get("state") == "completed" and report.get("ok") is True,
           "migrate: the source keeps the completed migration's report", out[-600:])
        status, out = host.run(f"{on_b} godwit --json vm show mig", VM_TIMEOUT)
        ok(status == 0 and parse_json(out).get("state") == "running",
           "migrate: the VM runs on the destination", out[-400:])
        console = _wait_pass(host, "mig", before + 1, on_b)
        ok(_last_pass(console) > before and "FAIL" not in console,
           "migrate: on the destination the guest counts on past its last pass with every page "
           "intact", f"last pass on the source {before}: {console[-400:]}")
    except RuntimeError as e:
        ok(False, "migrate: credentials installed in the root partition", str(e))
    finally:
        host.run(f"godwit vm kill mig; godwit vm delete mig; {on_b} godwit vm kill mig; "
                 f"{on_b} godwit vm delete mig; pkill -f {b}/godwitd.sock; "
                 f"pkill -f {r}/godwitd.sock; tail -5 {b}/godwitd.log {r}/godwitd.log",
                 VM_TIMEOUT)
    if summary:
        print("migration report: " + json.dumps(summary), flush=True)
    return len(failed)
