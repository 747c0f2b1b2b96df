"""One emulated Godwit host: Bochs (Intel VT-x + EPT) booting godwit-host.iso, with COM1 on
a pseudo-terminal so a harness can read the console and type shell commands into the root
partition. Used by the `root` tests and later by the two-host harness.

    with BochsHost(iso, workdir) as host:
        host.shell_ready(timeout=300)
        status, output = host.run("godwit host info --json")
"""

import base64
import hashlib
import os
import pty
import re
import select
import subprocess
import time
import tty

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# A command the root has not acknowledged (gwrun's START or BAD) within this long is typed
# again; a busy emulated root answers within seconds.
COMMAND_ACCEPT_TIMEOUT = 60
COMMAND_ATTEMPTS = 4
# Linux's canonical-mode line buffer is 4096 bytes (N_TTY_BUF_SIZE), newline included.
MAX_CONSOLE_LINE = 4095
BOCHS_BIOS = "/usr/share/bochs/BIOS-bochs-latest"
VGA_BIOS = "/usr/share/bochs/VGABIOS-lgpl-latest"



def overdraw(text):
    """Console text as a terminal shows it: CR LF ends a line, and a bare CR (a progress bar
    drawing itself again) leaves only what was drawn last on that line."""
    lines = []
    for line in text.replace("\r\n", "\n").split("\n"):
        drawn = [part for part in line.split("\r") if part]
        lines.append(drawn[-1] if drawn else "")
    return "\n".join(lines)

class HostError(Exception):
    pass


def die_with_parent():
    """preexec_fn: the child gets SIGKILL when the harness dies, even by SIGKILL (a ctest
    timeout), so no emulator outlives its test."""
    import ctypes
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, 9)


class BochsHost:
    def __init__(self, iso, workdir, cpus=1, megs=512, cpu_model="corei7_skylake_x",
                 ips=50_000_000, name="host", extra_config="", clock_sync="none"):
        self.iso = os.path.abspath(iso)
        # Further bochsrc lines (devices such as a NIC on a bxhub port; two_hosts.py).
        self.extra_config = extra_config
        # `none`: emulated time follows instructions (repeatable, idle time skipped). Hosts
        # that talk to each other need `slowdown` (emulated time never runs ahead of the wall
        # clock), or an idle host's timeouts pass in an instant (docs/two-host-harness.md).
        self.clock_sync = clock_sync
        self.workdir = os.path.abspath(workdir)
        self.cpus, self.megs, self.cpu_model, self.ips, self.name = cpus, megs, cpu_model, ips, name
        # SMP: instructions each CPU runs before Bochs switches to the next (its maximum;
        # the default 16 switches twice as often).
        self.quantum = 32
        self.proc = None
        self.master = None
        self.console = b""  # everything COM1 printed so far
        self.seen = 0       # console offset wait_for/run have consumed up to
        self.log = None
        self.sequence = 0
        self.started_at = None

    # -- lifecycle -------------------------------------------------------------------
    def start(self):
        if not os.path.exists(self.iso):
            raise HostError(f"{self.name}: ISO missing: {self.iso}")
        for tool in ("bochs-bin",):
            if subprocess.call(["sh", "-c", f"command -v {tool} >/dev/null"]) != 0:
                raise HostError(f"{self.name}: {tool} not installed (tools/bootstrap)")
        os.makedirs(self.workdir, exist_ok=True)
        self.master, slave = pty.openpty()
        tty.setraw(slave)
        slave_name = os.ttyname(slave)
        self._slave = slave
        with open(os.path.join(self.workdir, "bochsrc"), "w") as f:
            f.write(f"""config_interface: textconfig
display_library: rfb, options="timeout=0"
megs: {self.megs}
romimage: file={BOCHS_BIOS}
vgaromimage: file={VGA_BIOS}
cpu: model={self.cpu_model}, count={self.cpus}, ips={self.ips}, quantum={self.quantum}, reset_on_triple_fault=0, ignore_bad_msrs=0
ata0-master: type=cdrom, path={self.iso}, status=inserted
boot: cdrom
clock: sync={self.clock_sync}, time0=946681200
com1: enabled=1, mode=term, dev={slave_name}
log: {self.workdir}/bochs.log
panic: action=fatal
error: action=report
magic_break: enabled=1
{self.extra_config}""")
        # At a magic breakpoint (the hypervisor ending the run) the debugger reads `quit`.
        with open(os.path.join(self.workdir, "dbg.rc"), "w") as f:
            # Debugging a hung host: GODWIT_BOCHS_SAMPLES=N makes each of the first N SIGINTs
            # to Bochs print the CPU state (GODWIT_BOCHS_SAMPLE_CMDS: debugger commands
            # separated by ';') to bochs.out, and the run goes on.
            samples = int(os.environ.get("GODWIT_BOCHS_SAMPLES", "0"))
            sample = os.environ.get("GODWIT_BOCHS_SAMPLE_CMDS", "r;sreg;creg;print-stack 24")
            f.write("c\n" + (sample.replace(";", "\n") + "\nc\n") * samples + "quit\n")
        self.log = open(os.path.join(self.workdir, "com1.txt"), "wb")
        self.proc = subprocess.Popen(
            ["bochs-bin", "-q", "-f", "bochsrc", "-rc", "dbg.rc"], cwd=self.workdir,
            stdin=subprocess.DEVNULL, stdout=open(os.path.join(self.workdir, "bochs.out"), "w"),
            stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=die_with_parent)
        self.started_at = time.monotonic()
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._pump(0)
        for fd in (self.master, getattr(self, "_slave", None)):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.master = None
        if self.log:
            self.log.close()
            self.log = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def elapsed(self):
        return time.monotonic() - self.started_at

    # -- console ---------------------------------------------------------------------
    def _pump(self, timeout):
        """Reads whatever COM1 printed within `timeout` seconds into self.console."""
        if self.master is None:
            return
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return
        try:
            data = os.read(self.master, 65536)
        except OSError:
            return
        self.console += data
        if self.log:
            self.log.write(data)
            self.log.flush()

    def text(self, start=0):
        return self.console[start:].replace(b"\r", b"").decode(errors="replace")

    def wait_for(self, pattern, timeout):
        """Waits until `pattern` (a regex) appears in console output not consumed yet."""
        match = self.poll_for(pattern, timeout)
        if match is None:
            raise HostError(f"{self.name}: '{pattern}' did not appear within {timeout}s; "
                            f"console tail:\n{self.text()[-2000:]}")
        return match

    def poll_for(self, pattern, timeout):
        """Like wait_for, but returns None when `timeout` passes (Bochs exiting is an error)."""
        regex = re.compile(pattern.encode() if isinstance(pattern, str) else pattern)
        deadline = time.monotonic() + timeout
        while True:
            match = regex.search(self.console, self.seen)
            if match:
                self.seen = match.end()
                return match
            if not self.running():
                self._pump(0.2)
                match = regex.search(self.console, self.seen)
                if match:
                    self.seen = match.end()
                    return match
                raise HostError(f"{self.name}: Bochs exited (status {self.proc.poll()}) before "
                                f"'{pattern}' appeared; console tail:\n{self.text()[-2000:]}")
            if time.monotonic() > deadline:
                return None
            self._pump(0.5)

    def type(self, text):
        """Types `text` on COM1, slowly enough for the emulated 16550's small FIFO."""
        data = text.encode()
        for i in range(0, len(data), 8):
            os.write(self.master, data[i:i + 8])
            self._pump(0.02)

    def shell_ready(self, timeout):
        """Waits for the root partition's shell and turns terminal echo off, so command
        output is only what the command prints."""
        self.wait_for(r"godwit-root: ready", timeout)
        self.type("stty -echo\n")
        self.run("true")

    def run(self, command, timeout=120):
        """Runs a shell command in the root partition; returns (exit status, output).

        The command goes through the root's `gwrun` (tools/root-image/console.rc): typed as
        base64 with a checksum, so a byte the emulated UART drops makes the root refuse the
        line (@@GWBAD) instead of running a damaged command or waiting on an open quote, and
        the harness types it again. A line whose newline was lost gets no answer at all: it
        is erased (^U) and typed again; a tag runs at most once, so that is safe even when
        the first copy was only slow. `timeout` counts from the command's start."""
        self.sequence += 1
        tag = f"{self.sequence:04d}"
        encoded = base64.b64encode(command.encode()).decode()
        line = f"gwrun {tag} {hashlib.md5(encoded.encode()).hexdigest()[:8]} {encoded}\n"
        if len(line) > MAX_CONSOLE_LINE:
            raise HostError(f"{self.name}: command {tag} is {len(line)} characters encoded; "
                            f"the root's tty takes lines of at most {MAX_CONSOLE_LINE}")
        started = None
        for attempt in range(1, COMMAND_ATTEMPTS + 1):
            self.type(line)
            answer = self.poll_for(rf"@@GW(START|BAD|DUP) {tag}@@", COMMAND_ACCEPT_TIMEOUT)
            if answer is not None and answer.group(1) != b"BAD":
                started = answer
                break
            why = "arrived damaged" if answer is not None else \
                f"got no answer within {COMMAND_ACCEPT_TIMEOUT}s"
            print(f"{self.name}: console command {tag} {why} (attempt {attempt}); "
                  "typing it again", flush=True)
            self.type("\x15")  # VKILL: drop whatever part of the line the shell holds
        if started is None:
            raise HostError(f"{self.name}: the root shell did not accept command {tag} "
                            f"({command[:80]!r}) after {COMMAND_ATTEMPTS} attempts; console "
                            f"tail:\n{self.text()[-2000:]}")
        if started.group(1) == b"DUP":
            raise HostError(f"{self.name}: command {tag} ran before its start was seen")
        start = started.end()
        match = self.wait_for(rf"@@GWEND {tag} (\d+)@@", timeout)
        text = overdraw(self.console[start:match.start()].decode(errors="replace"))
        text = ANSI_ESCAPE.sub("", text)
        # Shell prompts (a shell restarted by /init) are not output.
        lines = [line for line in text.split("\n") if line.strip() not in ("/ #", "#")]
        output = "\n".join(line[4:] if line.startswith("/ # ") else line for line in lines)
        return int(match.group(1)), output.lstrip("\n")
