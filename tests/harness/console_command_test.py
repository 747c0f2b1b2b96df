#!/usr/bin/env python3
"""BochsHost.run's console protocol against the root image's real `gwrun`
(tools/root-image/console.rc), with busybox sh on a pseudo-terminal standing in for the
root's serial console: output and exit status come back, shell state persists between
commands, a line that lost a byte or its newline is typed again, and no command runs twice.
Exit status 0 only when every check passed."""

import os
import pty
import shutil
import subprocess
import sys
import tempfile
import tty

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(SOURCE, "tools", "host-harness"))
import bochs_host  # noqa: E402
from bochs_host import BochsHost, HostError  # noqa: E402

failures = []


def check(condition, what, detail=""):
    print(f"{'PASS' if condition else 'FAIL'}: {what}" +
          (f" ({detail})" if detail and not condition else ""), flush=True)
    if not condition:
        failures.append(what)


class ShellHost(BochsHost):
    """A BochsHost whose 'machine' is busybox sh on a pty, with the root's console.rc."""

    def start(self):
        busybox = shutil.which("busybox") or "/bin/busybox"
        done = os.path.join(self.workdir, "gwrun.done")
        if os.path.exists(done):
            os.unlink(done)  # a new "boot": tags start again
        master, slave = pty.openpty()
        tty.setraw(master)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
               "ENV": os.path.join(SOURCE, "tools", "root-image", "console.rc"),
               "GWRUN_DONE": done, "PS1": "/ # "}
        self.proc = subprocess.Popen([busybox, "sh", "-i"], stdin=slave, stdout=slave,
                                     stderr=slave, env=env, cwd=self.workdir,
                                     start_new_session=True)
        os.close(slave)
        self.master = master
        self.type("stty -echo\n")
        self.run("true")
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()  # an interactive shell ignores BochsHost.stop's SIGTERM
            self.proc.wait()
        super().stop()


def main():
    workdir = tempfile.mkdtemp(prefix="godwit-console-")
    bochs_host.COMMAND_ACCEPT_TIMEOUT = 3  # busybox on this machine answers in milliseconds
    host = ShellHost("unused.iso", workdir, name="shell")
    try:
        host.start()
        status, out = host.run("echo hello; printf 'a b\\n' | tr a-z A-Z; (exit 3)")
        check(status == 3 and out.split() == ["hello", "A", "B"],
              "output and exit status come back", repr((status, out)))
        host.run("cd /; x='it \"quotes\" and $dollars'")
        status, out = host.run("pwd; echo \"$x\"")
        check(out.rstrip("\n").split("\n") == ["/", 'it "quotes" and $dollars'],
              "shell state (cd, variables) persists between commands", repr(out))

        # A byte lost on the way: the root refuses the line, the harness types it again.
        counter = os.path.join(workdir, "runs")
        real_type, typed = host.type, []

        def lossy(drop):
            def type_(text):
                typed.append(text)
                if len(typed) == 1:
                    text = drop(text)
                real_type(text)
            return type_
        host.type = lossy(lambda t: t[:20] + t[21:])
        status, out = host.run(f"echo run >> {counter}; echo done")
        host.type = real_type
        runs = open(counter).read().count("run")
        check(status == 0 and out.strip() == "done" and runs == 1,
              "a line that lost a byte is refused and typed again; it runs once",
              repr((status, out, runs, len(typed))))
        check(len(typed) >= 3, "the damaged line was typed again (after a ^U)", repr(typed))

        # The newline lost: no answer; the partial line is erased and the command typed again.
        typed.clear()
        host.type = lossy(lambda t: t[:-1])
        status, out = host.run(f"echo run >> {counter}; echo again")
        host.type = real_type
        runs = open(counter).read().count("run")
        check(status == 0 and out.strip() == "again" and runs == 2,
              "a line that lost its newline is erased and typed again; it runs once",
              repr((status, out, runs)))

        # A copy of a command that already ran (the first was only slow) does not run again.
        host.sequence -= 1
        try:
            host.run(f"echo run >> {counter}")
            refused = ""
        except HostError as e:
            refused = str(e)
        runs = open(counter).read().count("run")
        check("ran before its start was seen" in refused and runs == 2,
              "a repeated tag is refused (GWDUP) and does not run", repr((refused[-200:], runs)))
    except HostError as e:
        check(False, "the shell answers", str(e)[-500:])
    finally:
        host.stop()
    try:
        host = ShellHost("unused.iso", workdir, name="shell")
        host.start()
        long_command = "echo " + "x" * 4000
        try:
            host.run(long_command)
            check(False, "a command longer than the tty's line buffer is refused")
        except HostError as e:
            check("at most 4095" in str(e),
                  "a command longer than the tty's line buffer is refused", str(e)[-200:])
    finally:
        host.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    if failures:
        print(f"console test: {len(failures)} check(s) failed: {failures}")
        return 1
    print("console test: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
