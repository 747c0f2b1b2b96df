"""Live migration between two emulated Godwit hosts (docs/live-migration.md): what the
two-host end-to-end test (tests/twohost/migrate_test.py) and the README demo (tools/demo)
do on top of two_hosts.TwoHosts.

    pair = TwoHosts(iso, workdir); pair.start(); pair.wait_ready(); pair.setup_link()
    enable_migration(pair, workdir)                 # credentials + godwitd listening
    start_dirty(pair.a, "demo", "dirty_mb=1 idle_mcycles=20")
    write_marker(pair.a, "demo", MARKER_GPA, b"...")
    result = migrate(pair.a, "demo", pair.b)       # godwit vm migrate --live ... --json
    heartbeat(pair.b, "demo"); read_guest(pair.b, "demo", MARKER_GPA, n)

Guest memory is read and written from the root shell through the VM worker's
/proc/PID/mem (the worker logs where guest-physical 0 is in its address space), so the
checks see the guest's real RAM, not what a VMM API reports about it.
"""

import json
import re

from host_tls import install, make_credentials

GUESTS = "/usr/share/godwit/guests"
RUN_DIR = "/run/godwit/vms"
TLS_DIR = "/etc/godwit/tls"
MIGRATION_PORT = 6600
ROGUE_PORT = 6602
PAGE = 4096
VM_TIMEOUT = 600


class MigrationError(RuntimeError):
    pass


# A TLS handshake refused for the peer's certificate (not for any other TLS failure).
UNTRUSTED_PEER = re.compile(r"TLS handshake .* failed: .*"
                            r"(certificate verify failed|unknown ca|bad certificate)")

# A hypervisor log line on the shared serial console ("[cpu0] info: ..."), which can land in
# the middle of a command's output line.
HYPERVISOR_LOG_LINE = re.compile(r"\[cpu\d+\] \w+: [^\n]*\n?")


def parse_json(out):
    """The last JSON document in a command's output (the console may hold log lines)."""
    out = HYPERVISOR_LOG_LINE.sub("", out)
    start = out.find("{")
    end = out.rfind("}")
    if start < 0 or end < start:
        return {}
    try:
        return json.loads(out[start:end + 1])
    except ValueError:
        return {}


def run(host, command, timeout=VM_TIMEOUT):
    return host.run(command, timeout)


def restart_godwitd(host, listen, tls_dir=TLS_DIR, base=None):
    """Starts godwitd listening for migrations on `listen` ("ADDR:PORT"). With `base`, a
    second godwitd with its own socket, state and run directory (and credentials in
    `tls_dir`); without, the root's own godwitd is restarted with the listener (it holds no
    VM yet: its workers would die with it)."""
    if base is None:
        # (Only when there is one: `kill` without a PID just prints its usage.)
        status, out = run(host, "p=$(pidof godwitd); [ -n \"$p\" ] && kill $p; "
                                "i=0; while pidof godwitd >/dev/null && [ $i -lt 200 ]; do "
                                "i=$((i+1)); sleep 0.1; done; "
                                f"godwitd --daemon --log-file /var/log/godwitd.log "
                                f"--tls-dir {tls_dir} --migration-listen {listen}")
    else:
        status, out = run(host, f"mkdir -p {base} && godwitd --daemon --log-file "
                                f"{base}/godwitd.log --socket {base}/godwitd.sock --state-dir "
                                f"{base}/state --run-dir {base}/run --tls-dir {tls_dir} "
                                f"--migration-listen {listen}")
    if status != 0:
        raise MigrationError(f"{host.name}: godwitd --migration-listen {listen} did not start: "
                             f"{out[-300:]}")


def enable_migration(pair, workdir, rogue_on_b=False):
    """Both hosts get credentials from one CA and godwitd listening on their link address.
    With rogue_on_b, host B also runs a second godwitd on port 6602 whose credentials come
    from another CA (a host A must not trust). Returns the credentials made."""
    creds = make_credentials(workdir, ["a", "b"])
    for host, name in ((pair.a, "a"), (pair.b, "b")):
        install(host, creds[name], TLS_DIR)
        restart_godwitd(host, f"{host.address}:{MIGRATION_PORT}")
    if rogue_on_b:
        creds.update(make_credentials(workdir, ["rogue"], ca="rogue-ca"))
        install(pair.b, creds["rogue"], "/tmp/rogue/tls")
        restart_godwitd(pair.b, f"{pair.b.address}:{ROGUE_PORT}", "/tmp/rogue/tls",
                        base="/tmp/rogue")
    return creds


def start_dirty(host, name, cmdline, memory_mib=16, vcpus=1):
    status, out = run(host, f"godwit vm create --name {name} --kernel {GUESTS}/dirty.elf "
                            f"--memory {memory_mib} --vcpus {vcpus} --cmdline '{cmdline}' && "
                            f"godwit vm start {name}")
    if status != 0 or "running" not in out:
        raise MigrationError(f"{host.name}: VM {name} did not start: {out[-400:]}")


def last_pass(console):
    passes = [int(n) for n in re.findall(r"dirty: pass (\d+) done", console)]
    return max(passes) if passes else -1


def heartbeat(host, name, env=""):
    """(last pass, "FAIL" seen) from the VM's console on `host`; (-1, False) without one."""
    _, console = run(host, f"{env} godwit vm console {name} | tail -c 2000")
    return last_pass(console), "FAIL" in console


def wait_pass(host, name, beyond, tries=150, env=""):
    """Polls until the heartbeat passes `beyond` (or the guest reports FAIL)."""
    beat, failed = -1, False
    for _ in range(tries):
        beat, failed = heartbeat(host, name, env)
        if beat > beyond or failed:
            break
        run(host, "sleep 1")
    return beat, failed


def worker_ram(host, name):
    """(pid, host address of guest-physical 0) of VM `name`'s worker on `host`."""
    status, out = run(host, f"grep 'guest RAM at host address' {RUN_DIR}/{name}/worker.log "
                            f"| tail -1")
    match = re.search(r"address 0x([0-9a-f]+) in pid (\d+)", out)
    if status != 0 or not match:
        raise MigrationError(f"{host.name}: where VM {name}'s RAM is: {out[-300:]}")
    return int(match.group(2)), int(match.group(1), 16)


def write_guest(host, name, gpa, data):
    """Writes `data` into VM `name`'s RAM at `gpa` (through /proc/PID/mem of its worker)."""
    pid, base = worker_ram(host, name)
    escaped = "".join(f"\\x{b:02x}" for b in data)
    status, out = run(host, f"printf '{escaped}' | dd of=/proc/{pid}/mem bs=1 "
                            f"seek={base + gpa} conv=notrunc 2>&1")
    if status != 0:
        raise MigrationError(f"{host.name}: writing guest memory of {name}: {out[-300:]}")


def read_guest(host, name, gpa, length):
    """`length` bytes of VM `name`'s RAM at `gpa` (hex dump through /proc/PID/mem)."""
    pid, base = worker_ram(host, name)
    status, out = run(host, f"dd if=/proc/{pid}/mem bs=1 skip={base + gpa} count={length} "
                            f"2>/dev/null | od -An -tx1 -v")
    if status != 0:
        raise MigrationError(f"{host.name}: reading guest memory of {name}: {out[-300:]}")
    return bytes(int(x, 16) for x in out.split() if re.fullmatch(r"[0-9a-f]{2}", x))


def page_counters(host, name, start_gpa, pages):
    """Byte 0 of each of `pages` pages from `start_gpa`, read with the VM's vCPUs stopped
    (SIGSTOP to its worker, SIGCONT afterwards)."""
    pid, base = worker_ram(host, name)
    status, out = run(host, f"kill -STOP {pid}; dd if=/proc/{pid}/mem bs={PAGE} "
                            f"skip={(base + start_gpa) // PAGE} count={pages} 2>/dev/null | "
                            f"od -An -tu1 -w{PAGE} -v | awk '{{print $1}}'; kill -CONT {pid}")
    values = [int(x) for x in out.split() if x.isdigit()]
    if status != 0 or len(values) != pages:
        raise MigrationError(f"{host.name}: reading {pages} page counters of {name}: got "
                             f"{len(values)}: {out[-300:]}")
    return values


def consistency(counters):
    """The dirty guest's memory invariant after a migration. A pass increments the pages in
    order, so a stopped guest's counters are the first page's value up to where its pass
    was, and exactly one less (mod 256) from there to the end. Any other difference is a
    page whose last write got lost. Returns None when it holds, else what breaks it."""
    if not counters:
        return "no pages"
    first, behind = counters[0], (counters[0] - 1) % 256
    split = next((i for i, v in enumerate(counters) if v != first), len(counters))
    for i in range(split, len(counters)):
        if counters[i] != behind:
            return (f"page {i} holds {counters[i]}: the first page holds {first}"
                    + (f" and pages {split}..{i - 1} hold {behind}" if i > split else ""))
    return None


def dirty_range(host, name):
    """(start gpa, pages) of the dirty guest's range, from its first console line."""
    _, console = run(host, f"godwit vm console {name} | head -c 400")
    match = re.search(r"dirty: range 0x([0-9a-f]+)-0x([0-9a-f]+), (\d+) pages", console)
    if not match:
        raise MigrationError(f"{host.name}: no 'dirty: range' line from {name}: {console[-300:]}")
    return int(match.group(1), 16), int(match.group(3))


def migrate(src, name, dst, options="--live", port=MIGRATION_PORT, timeout=VM_TIMEOUT):
    """`godwit --json vm migrate NAME DST:PORT OPTIONS` on `src`: (exit status, status
    document, output)."""
    status, out = src.run(f"godwit --json vm migrate {name} {dst.address}:{port} {options}",
                          timeout)
    return status, parse_json(out), out


def show(host, name, env=""):
    status, out = run(host, f"{env} godwit --json vm show {name}")
    return status, parse_json(out)


def listed(host, env=""):
    _, out = run(host, f"{env} godwit --json vm list")
    return [vm.get("name") for vm in parse_json(out).get("vms", [])]


def guest_memory_in_hypervisor(host):
    """Bytes of RAM the hypervisor has given to guest partitions on `host`."""
    _, out = run(host, "godwit --json host info")
    return parse_json(out).get("memory", {}).get("guest_bytes")
