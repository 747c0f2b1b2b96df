"""Two emulated Godwit hosts (A and B) on one virtual Ethernet link, for the live-migration
work: a hub joins the two Bochs instances' e1000 NICs (Bochs' `socket` net module, UDP on
loopback inside a private network namespace), and inside the root partitions the link has
the link-local addresses 169.254.0.1/16 (A) and 169.254.0.2/16 (B). No slirp/tuntap, no
other addresses. The hub is relay_frames (a logging repeater with bxhub's port layout) by
default; Debian's bxhub loses unicast IPv4 between the two roots (docs/two-host-harness.md).

    with TwoHosts(iso, workdir) as pair:
        boot = pair.wait_ready(timeout=480)        # both boot in parallel
        pair.setup_link()
        pair.ping(pair.a, pair.b)
        result = pair.transfer(pair.a, pair.b, mib=4)

Run as a program it boots the pair, proves the link (ping both ways, a TCP transfer checked
byte for byte) and prints one JSON document:
    two_hosts.py --iso build/godwit-host.iso [--hub-base PORT] [--mib N] [--workdir DIR]
"""

import argparse
import ctypes
import fcntl
import json
import os
import re
import socket
import struct
import subprocess
import sys
import time

from bochs_host import BochsHost, HostError, die_with_parent

LINK_PREFIX = "169.254.0."
LINK_MASK_BITS = 16
TRANSFER_PORT = 5001
# The e1000 is what the root initramfs drives (tools/root-image/make-initramfs loads e1000).
NIC_DRIVER = "e1000"
SHA256 = r"\b[0-9a-f]{64}\b"


CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
_in_private_netns = False


def enter_private_network_namespace():
    """Moves this process (and every process it starts afterwards) into a new network
    namespace that holds only its own loopback interface, and brings that up.

    Why: Debian's Bochs 2.7 and bxhub bind their UDP link sockets (and the rfb display its
    TCP port) to 0.0.0.0, not 127.0.0.1. In a private namespace the only interface is `lo`,
    so the link is carried on 127.0.0.1 and nothing else, and parallel runs cannot clash on
    ports. Needs CAP_SYS_ADMIN (root, as the emulation tests run)."""
    global _in_private_netns
    if _in_private_netns:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise HostError(f"cannot create a private network namespace ({os.strerror(err)}): the "
                        f"two-host harness needs root (CAP_SYS_ADMIN) so that Bochs and bxhub, "
                        f"which bind 0.0.0.0, are confined to a namespace with only loopback")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sH22x", b"lo", 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(s, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags | IFF_UP))
    _in_private_netns = True


def udp_ports_free(base, count):
    """True when UDP ports base..base+count-1 can all be bound on 127.0.0.1 right now."""
    socks = []
    try:
        for port in range(base, base + count):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            socks.append(s)
            s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        for s in socks:
            s.close()


def pick_hub_base(preferred=None, ports=2):
    """A free base UDP port for bxhub (it uses 2 ports per host). Tests running in parallel
    start their search at different places (pid based) unless a base is given."""
    need = 2 * ports
    if preferred is not None:
        if not udp_ports_free(preferred, need):
            raise HostError(f"hub: UDP ports {preferred}-{preferred + need - 1} on 127.0.0.1 are "
                            f"in use; pick another --hub-base")
        return preferred
    start = 40000 + (os.getpid() % 500) * 8
    for i in range(400):
        base = 40000 + (start - 40000 + i * 8) % 4000
        if udp_ports_free(base, need):
            return base
    raise HostError("hub: no free UDP port range in 40000-43999 on 127.0.0.1")


class Hub:
    """The virtual Ethernet hub (relay_frames or bxhub). Host i's NIC binds UDP base+2i on 127.0.0.1 and sends
    to base+2i+1, where bxhub listens."""

    def __init__(self, base, workdir, ports=2, log_level=1, kind="bxhub"):
        self.base, self.ports, self.workdir, self.log_level = base, ports, workdir, log_level
        self.kind = kind  # "bxhub" or "relay" (relay_frames: a logging repeater)
        self.proc = None

    def port(self, index):
        return self.base + 2 * index

    def start(self):
        if self.kind == "bxhub" and subprocess.call(["sh", "-c", "command -v bxhub >/dev/null"]) != 0:
            raise HostError("hub: bxhub not installed (package bochs; tools/bootstrap)")
        os.makedirs(self.workdir, exist_ok=True)
        command = ["bxhub", f"-ports={self.ports}", f"-base={self.base}",
                   f"-loglev={self.log_level}", f"-logfile={os.path.join(self.workdir, 'bxhub.log')}"]
        if self.kind == "relay":
            command = [sys.executable, os.path.abspath(__file__), "--relay", str(self.base),
                       str(self.ports), os.path.join(self.workdir, "relay.log")]
        self.proc = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=open(os.path.join(self.workdir, "bxhub.out"), "w"),
            stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=die_with_parent)
        # Ready once its receive ports are bound (then they cannot be bound by us).
        deadline = time.monotonic() + 10
        while udp_ports_free(self.base + 1, 1):
            if self.proc.poll() is not None:
                raise HostError(f"hub: {self.kind} exited with status {self.proc.returncode}; "
                                f"see {self.workdir}/bxhub.out")
            if time.monotonic() > deadline:
                raise HostError(f"hub: {self.kind} did not bind its UDP ports within 10s")
            time.sleep(0.1)
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def relay_frames(base, ports, log_path):
    """A plain Ethernet repeater with the same UDP port layout as bxhub (listens on
    base+2i+1, delivers to base+2i): every frame from one port goes to all the others, and
    every frame is logged (direction, destination MAC, type, length). Unlike bxhub it has no
    built-in DHCP/ARP/ICMP responder of its own."""
    socks = []
    for i in range(ports):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", base + 2 * i + 1))
        socks.append(s)
    import select as select_module
    with open(log_path, "w", buffering=1) as log:
        log.write(f"relay: ports {ports}, base {base}\n")
        while True:
            ready, _, _ = select_module.select(socks, [], [])
            for s in ready:
                frame = s.recv(65536)
                src = socks.index(s)
                log.write(f"{src} -> * dst {frame[0:6].hex(':')} src {frame[6:12].hex(':')} "
                          f"type {frame[12:14].hex()} len {len(frame)}\n")
                for i, out in enumerate(socks):
                    if i != src:
                        out.sendto(frame, ("127.0.0.1", base + 2 * i))


def nic_config(hub, index):
    """bochsrc lines for host `index`'s e1000 on the hub (distinct MAC per host)."""
    return (f"pci: enabled=1, chipset=i440fx, slot1=e1000\n"
            f"e1000: enabled=1, mac=b0:c4:20:00:00:{index + 1:02x}, ethmod=socket, "
            f"ethdev={hub.port(index)}\n")


def output_tail(text, limit=600):
    return text.strip()[-limit:]


class TwoHosts:
    def __init__(self, iso, workdir, hub_base=None, cpus=1, megs=512, private_netns=True,
                 clock_sync="slowdown", hub_kind="relay"):
        self.workdir = os.path.abspath(workdir)
        if private_netns:
            enter_private_network_namespace()
        self.hub = Hub(pick_hub_base(hub_base), os.path.join(self.workdir, "hub"), kind=hub_kind)
        self.a = BochsHost(iso, os.path.join(self.workdir, "A"), cpus=cpus, megs=megs, name="A",
                           extra_config=nic_config(self.hub, 0), clock_sync=clock_sync)
        self.b = BochsHost(iso, os.path.join(self.workdir, "B"), cpus=cpus, megs=megs, name="B",
                           extra_config=nic_config(self.hub, 1), clock_sync=clock_sync)
        self.a.address, self.b.address = LINK_PREFIX + "1", LINK_PREFIX + "2"
        self.hosts = (self.a, self.b)
        self.ready = False  # both root shells answered (then stop() powers them off)

    # -- lifecycle -------------------------------------------------------------------
    def start(self):
        try:
            self.hub.start()
            for host in self.hosts:
                host.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, poweroff=True):
        """Powers both roots off (when they still answer), then ends Bochs and bxhub."""
        for host in self.hosts:
            if poweroff and self.ready and host.running() and host.master is not None:
                try:
                    host.type("poweroff -f\n")
                except OSError:
                    pass
        deadline = time.monotonic() + (45 if poweroff and self.ready else 0)
        while any(h.running() for h in self.hosts) and time.monotonic() < deadline:
            for host in self.hosts:
                host._pump(0.1)
        for host in self.hosts:
            host.stop()
        self.hub.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def wait_all(self, pattern, timeout):
        """Waits until `pattern` appears on both consoles, reading both all the time (so
        neither Bochs blocks on a full console pty). Returns {name: seconds since start}."""
        regex = re.compile(pattern.encode())
        found = {}
        deadline = time.monotonic() + timeout
        while len(found) < len(self.hosts):
            for host in self.hosts:
                if host.name in found:
                    continue
                match = regex.search(host.console, host.seen)
                if match:
                    host.seen = match.end()
                    found[host.name] = host.elapsed()
                    continue
                if not host.running():
                    raise HostError(f"{host.name}: Bochs exited (status {host.proc.poll()}) "
                                    f"before '{pattern}' appeared; console tail:\n"
                                    f"{host.text()[-2000:]}")
                if time.monotonic() > deadline:
                    raise HostError(f"{host.name}: '{pattern}' did not appear within {timeout}s;"
                                    f" console tail:\n{host.text()[-2000:]}")
            for host in self.hosts:
                host._pump(0.1)
        return found

    def wait_ready(self, timeout=480):
        """Both hosts boot in parallel; returns boot times (hypervisor handover and root
        shell, seconds of wall clock) per host."""
        handoff = self.wait_all(r"godwit: starting the root partition", min(timeout, 180))
        ready = self.wait_all(r"godwit-root: ready", timeout)
        for host in self.hosts:
            host.type("stty -echo\n")
            host.run("true")
        self.ready = True
        return {name: {"handoff_s": round(handoff[name], 1), "shell_s": round(ready[name], 1)}
                for name in ready}

    # -- the link --------------------------------------------------------------------
    def run_checked(self, host, command, timeout=120):
        # Commands never `exit` the root's shell: it is init, and its exit panics the kernel
        # (loops that give up use a subshell).
        status, out = host.run(command, timeout)
        if status != 0:
            raise HostError(f"{host.name}: `{command}` exited {status}: {output_tail(out)}")
        return out

    def setup_link(self, carrier_timeout=60):
        """Finds each root's e1000 interface, brings it up with its link-local address and
        waits for carrier. Returns {name: interface}."""
        names = {}
        for host in self.hosts:
            out = self.run_checked(
                host, "for n in /sys/class/net/*; do case \"$(readlink $n/device/driver)\" in "
                      f"*/{NIC_DRIVER}) echo \"IF=${{n##*/}}\";; esac; done")
            match = re.search(r"IF=(\S+)", out)
            if not match:
                raise HostError(f"{host.name}: no {NIC_DRIVER} network interface in the root "
                                f"(is the e1000 module loaded?): {output_tail(out)}")
            host.interface = names[host.name] = match.group(1)
            self.run_checked(host, f"ip link set {host.interface} up && ip addr add "
                                   f"{host.address}/{LINK_MASK_BITS} dev {host.interface}")
        for host in self.hosts:
            # The root's clock runs at emulated speed: count polls, not seconds.
            self.run_checked(
                host, f"(i=0; until [ \"$(cat /sys/class/net/{host.interface}/carrier)\" = 1 ]; "
                      f"do i=$((i+1)); [ $i -gt {carrier_timeout * 2} ] && exit 1; sleep 0.5; "
                      f"done)", timeout=carrier_timeout * 3)
        return names

    def ping(self, src, dst, count=3):
        """Pings dst's link address from src; returns the round-trip summary line."""
        out = self.run_checked(src, f"ping -c {count} -w 60 {dst.address}", timeout=180)
        received = re.search(r"(\d+) packets received", out)
        if not received or int(received.group(1)) == 0:
            raise HostError(f"{src.name}: no ping reply from {dst.name} ({dst.address}): "
                            f"{output_tail(out)}")
        rtt = re.search(r"min/avg/max = ([\d.]+)/([\d.]+)/([\d.]+)", out)
        return {"from": src.name, "to": dst.name, "received": int(received.group(1)),
                "sent": count, "avg_rtt_ms": float(rtt.group(2)) if rtt else None}

    def transfer(self, src, dst, mib=4, port=TRANSFER_PORT):
        """Sends `mib` MiB of random data from src to dst with busybox nc over TCP and checks
        it arrived byte for byte (sha256). Throughput is wall-clock (what the harness sees)
        and emulated-clock (what the roots' /proc/uptime sees)."""
        size = mib * 1024 * 1024
        self.run_checked(src, f"dd if=/dev/urandom of=/tmp/tx bs=65536 count={mib * 16} "
                              f"2>/dev/null && sha256sum /tmp/tx > /tmp/tx.sum", timeout=300)
        # Parsed by shape: a console line can carry a leftover prompt ("/ # ") before it.
        sent = re.search(SHA256, self.run_checked(src, "cat /tmp/tx.sum"))
        sent_sum = sent.group(0) if sent else None
        # The receiver's stdin must stay open: busybox nc half-closes the connection when its
        # stdin ends, and the sender quits when it sees that. `sleep` holds it open.
        # (The outer subshell: run() appends `; echo marker`, and `&;` is a syntax error. The
        # done file is written inside the pipeline: the pipeline itself lasts as long as sleep.)
        self.run_checked(dst, f"rm -f /tmp/rx /tmp/rx.done; ( (sleep 3600 | (nc -l -p {port} "
                              f"> /tmp/rx; echo $? > /tmp/rx.done)) >/dev/null 2>&1 & )")
        self.run_checked(dst, f"(i=0; until netstat -ltn | grep -q ':{port} '; do i=$((i+1)); "
                              f"[ $i -gt 100 ] && exit 1; sleep 0.1; done)")
        started = time.monotonic()
        out = self.run_checked(
            src, f"t0=$(cut -d' ' -f1 /proc/uptime); nc {dst.address} {port} < /tmp/tx; "
                 f"s=$?; t1=$(cut -d' ' -f1 /proc/uptime); echo \"UPTIME $t0 $t1\"; [ $s = 0 ]",
            timeout=600)
        wall = time.monotonic() - started
        self.run_checked(dst, "(i=0; until [ -f /tmp/rx.done ]; do i=$((i+1)); "
                              "[ $i -gt 600 ] && exit 1; sleep 0.1; done)", timeout=300)
        received_out = self.run_checked(dst, "echo RX $(cat /tmp/rx.done) $(stat -c %s /tmp/rx) "
                                             "$(sha256sum /tmp/rx)")
        rx = re.search(r"RX (\d+) (\d+) (" + SHA256 + ")", received_out)
        uptime = re.search(r"UPTIME ([\d.]+) ([\d.]+)", out)
        emulated = float(uptime.group(2)) - float(uptime.group(1)) if uptime else None
        result = {
            "from": src.name, "to": dst.name, "bytes": size,
            "received_bytes": int(rx.group(2)) if rx else None,
            "sha256_sent": sent_sum, "sha256_received": rx.group(3) if rx else None,
            "wall_s": round(wall, 2), "wall_kib_per_s": round(size / 1024 / wall, 1),
            "emulated_s": round(emulated, 2) if emulated else None,
            "emulated_kib_per_s": round(size / 1024 / emulated, 1) if emulated else None,
        }
        result["intact"] = (sent_sum is not None and result["received_bytes"] == size and
                            result["sha256_received"] == sent_sum)
        self.run_checked(dst, "rm -f /tmp/rx")
        self.run_checked(src, "rm -f /tmp/tx")
        return result


def exit_on_sigterm():
    """SIGTERM (ctest, kill) unwinds like an exception, so `finally` blocks clean up."""
    import signal

    def handler(signum, frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, handler)


def main():
    exit_on_sigterm()
    if len(sys.argv) == 5 and sys.argv[1] == "--relay":
        relay_frames(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--iso", required=True)
    ap.add_argument("--workdir", help="keep Bochs and bxhub files here")
    ap.add_argument("--hub-base", type=int, help="bxhub base UDP port (default: a free one)")
    ap.add_argument("--mib", type=int, default=4, help="TCP transfer size (default 4 MiB)")
    ap.add_argument("--boot-timeout", type=int, default=480)
    args = ap.parse_args()
    import tempfile
    workdir = args.workdir or tempfile.mkdtemp(prefix="godwit-two-hosts-")
    pair = TwoHosts(args.iso, workdir, hub_base=args.hub_base)
    report = {"workdir": workdir, "hub_base": pair.hub.base}
    try:
        pair.start()
        report["boot"] = pair.wait_ready(args.boot_timeout)
        report["interfaces"] = pair.setup_link()
        report["ping"] = [pair.ping(pair.a, pair.b), pair.ping(pair.b, pair.a)]
        report["transfer"] = pair.transfer(pair.a, pair.b, args.mib)
        report["ok"] = report["transfer"]["intact"]
    except HostError as e:
        report["ok"], report["error"] = False, str(e)
    finally:
        pair.stop()
    print(json.dumps(report, indent=2))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
