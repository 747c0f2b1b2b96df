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

GUESTS = "/usr/share/godwit/guests"
VM_TIMEOUT = 300  # seconds for one command that waits on a VM in Bochs


def _json(out):
    """The JSON document in a command's output (prompt debris may surround it)."""
    try:
        return json.loads(out[out.index("{"):out.rindex("}") + 1])
    except ValueError:
        return {}


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
    return {vm.get("name"): vm for vm in _json(out).get("vms", [])}


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
    doc = _json(out)
    ok(status == 0 and doc.get("state") == "stopped" and _result(doc).get("kind") == "stopped",
       "vm: godwit vm stop dirty: the worker stops the VM on SIGTERM (result stopped)",
       out[-400:])

    # -- kill -----------------------------------------------------------------------------
    status, out = host.run("godwit --json vm start dirty", VM_TIMEOUT)
    doc = _json(out)
    ok(status == 0 and doc.get("state") == "running", "vm: a stopped VM starts again",
       out[-400:])
    dirty_pid = doc.get("pid")
    status, out = host.run("godwit --json vm kill dirty", VM_TIMEOUT)
    doc = _json(out)
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
