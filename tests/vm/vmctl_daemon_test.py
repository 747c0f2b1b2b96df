#!/usr/bin/env python3
"""`vmctl` on the build host: a real godwitd (its own socket, state and run directories in a
temporary directory) driven by the real `godwit vm` CLI.
  1. No hypervisor device: create/list/show/delete, every create error, start refused with
     "not running on the Godwit hypervisor".
  2. Restart on /dev/null with the real godwit-vm-worker: definitions reload, and start
     fails clearly because /dev/null is not /dev/godwit (the real outcome on a build host).
  3. The same daemon with a stand-in worker (fake_vm_worker.py, same contract, no VM):
     running/stop/kill/escalation/crash, start of a running VM, delete of a running VM,
     console --follow, results in list/show.
Exit status 0 only when every check passed.
  vmctl_daemon_test.py BIN_DIR GUEST_DIR"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
failures = []


def check(name, ok, detail=""):
    print(f"{'PASS' if ok else 'FAIL'}: {name}" + (f" ({detail})" if detail and not ok else ""))
    if not ok:
        failures.append(name)
    return ok


def alive(pid):
    """A process that exists and is not a zombie (its reaper may be slow or absent)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Daemon:
    def __init__(self, bin_dir, tmp, device, worker=None, extra=(), state_dir=None):
        self.socket = os.path.join(tmp, "godwitd.sock")
        self.log = os.path.join(tmp, "godwitd.log")
        cmd = [os.path.join(bin_dir, "godwitd"), "--socket", self.socket, "--state-dir",
               state_dir or os.path.join(tmp, "state"), "--run-dir", os.path.join(tmp, "run"),
               "--device",
               device, "--log-file", self.log, "--log-level", "debug", *extra]
        if worker:
            cmd += ["--worker", worker]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while not self.listening():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"godwitd did not start: {self.proc.stderr.read()}")
            time.sleep(0.02)

    def listening(self):
        # A socket file alone may be a dead daemon's: only an accepted connection counts.
        with socket.socket(socket.AF_UNIX) as s:
            try:
                s.connect(self.socket)
                return True
            except OSError:
                return False

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def main():
    bin_dir, guest_dir = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    godwit_bin = os.path.join(bin_dir, "godwit")
    hello = os.path.join(guest_dir, "hello.elf")
    tmp = tempfile.mkdtemp(prefix="godwit-vmctl-")
    daemon = None
    env = dict(os.environ)

    def godwit(*args, timeout=60):
        p = subprocess.run([godwit_bin, *args], capture_output=True, text=True, timeout=timeout,
                           env=env)
        return p.returncode, p.stdout, p.stderr

    def godwit_json(*args):
        rc, out, err = godwit("--json", *args)
        try:
            return rc, json.loads(out)
        except json.JSONDecodeError:
            return rc, {"unparsable": out, "stderr": err}

    def expect_error(name, want_code, want_text, *args):
        rc, out, err = godwit(*args)
        check(f"{name}: exit {want_code}", rc == want_code, f"exit {rc}: {err.strip()}")
        check(f"{name}: message says '{want_text}'", want_text in err, err.strip())
        rc, doc = godwit_json(*args)
        error = doc.get("error", {})
        check(f"{name}: --json error document", rc == want_code and
              error.get("exit_code") == want_code and want_text in error.get("message", ""),
              str(doc))

    try:
        env["GODWIT_SOCKET"] = os.path.join(tmp, "godwitd.sock")
        # -- no daemon --------------------------------------------------------------------
        expect_error("no godwitd", 3, "is godwitd running", "vm", "list")

        # -- phase 1: no /dev/godwit ----------------------------------------------------------
        daemon = Daemon(bin_dir, tmp, os.path.join(tmp, "no-such-device"))
        rc, doc = godwit_json("vm", "list")
        check("empty list", rc == 0 and doc == {"vms": []}, str(doc))
        check("no directories created before the first VM", not os.path.exists(
            os.path.join(tmp, "state")) and not os.path.exists(os.path.join(tmp, "run")))
        rc, out, err = godwit("vm", "create", "--name", "hello", "--kernel", hello, "--memory",
                              "16", "--cmdline", "answer=42")
        check("create hello", rc == 0 and "created" in out, err)
        rc, doc = godwit_json("vm", "show", "hello")
        d = doc.get("definition", {})
        check("show --json: definition as created", rc == 0 and d.get("kernel") == hello and
              d.get("memory_mib") == 16 and d.get("vcpus") == 1 and d.get("cmdline") == "answer=42",
              str(doc))
        check("show --json: state defined, no pid, no result", doc.get("state") == "defined" and
              doc.get("pid") is None and doc.get("last_result") is None, str(doc))
        check("definition stored as a file",
              os.path.exists(os.path.join(tmp, "state", "hello.json")))
        rc, out, _ = godwit("vm", "list")
        check("list shows hello defined", rc == 0 and "hello" in out and "defined" in out, out)

        module = os.path.join(tmp, "initrd.img")
        open(module, "wb").write(b"module contents")
        cwd = os.getcwd()
        os.chdir(tmp)
        rc, out, err = godwit("vm", "create", "--name", "mod", "--kernel", hello, "--memory",
                              "16", "--module", "initrd.img root=/dev/ram0")
        os.chdir(cwd)
        rc2, doc = godwit_json("vm", "show", "mod")
        check("create --module: path made absolute, text after it is its cmdline", rc == 0 and
              doc.get("definition", {}).get("modules") ==
              [{"path": module, "cmdline": "root=/dev/ram0"}], f"{err} {doc}")
        godwit("vm", "delete", "mod")
        expect_error("module not found", 3, "does not exist", "vm", "create", "--name", "k",
                     "--kernel", hello, "--memory", "16", "--module",
                     os.path.join(tmp, "missing.img"))

        definition = os.path.join(tmp, "two.json")
        with open(definition, "w") as f:
            json.dump({"schema": 1, "name": "two", "vcpus": 2, "memory_mib": 8,
                       "kernel": os.path.relpath(hello, tmp)}, f)
        rc, out, err = godwit("vm", "create", "--file", definition)
        check("create --file with a path relative to the file", rc == 0, err)
        rc, doc = godwit_json("vm", "show", "two")
        check("--file: kernel path made absolute", doc.get("definition", {}).get("kernel") ==
              os.path.normpath(hello), str(doc))

        expect_error("duplicate name", 7, "already exists", "vm", "create", "--name", "hello",
                     "--kernel", hello, "--memory", "16")
        # A name in use is refused before the saved file is read (reading and checking a
        # saved VM takes a while): the file here does not even exist.
        expect_error("restore under a name in use", 7, "already exists", "vm", "restore",
                     os.path.join(tmp, "no-such-saved-vm"), "--name", "hello")
        expect_error("unknown VM (show)", 3, "no VM named 'nope'", "vm", "show", "nope")
        expect_error("unknown VM (start)", 3, "no VM named 'nope'", "vm", "start", "nope")
        expect_error("unknown VM (delete)", 3, "no VM named 'nope'", "vm", "delete", "nope")
        expect_error("memory above the partition limit", 6, "at most 4096 MiB", "vm", "create",
                     "--name", "big", "--kernel", hello, "--memory", "8192")
        expect_error("kernel not found", 3, "does not exist", "vm", "create", "--name", "k",
                     "--kernel", os.path.join(tmp, "missing.elf"), "--memory", "16")
        not_multiboot = os.path.join(tmp, "plain.bin")
        with open(not_multiboot, "wb") as f:
            f.write(b"\x7fELF" + bytes(4096))
        expect_error("kernel not Multiboot", 6, "not a Multiboot1 or Multiboot2", "vm", "create",
                     "--name", "k", "--kernel", not_multiboot, "--memory", "16")
        expect_error("too many vCPUs", 6, "1 to 8", "vm", "create", "--name", "k", "--kernel",
                     hello, "--memory", "16", "--vcpus", "9")
        expect_error("zero vCPUs", 4, "1 to 8", "vm", "create", "--name", "k", "--kernel", hello,
                     "--memory", "16", "--vcpus", "0")
        expect_error("bad name", 4, "must be 1-63 letters", "vm", "create", "--name", "a b",
                     "--kernel", hello, "--memory", "16")
        # A Multiboot header but ELF program headers past the end: only the loader sees it.
        broken = bytearray(open(hello, "rb").read())
        broken[28:32] = (0x7fff0000).to_bytes(4, "little")  # e_phoff of an ELF32 file
        broken_elf = os.path.join(tmp, "broken.elf")
        open(broken_elf, "wb").write(broken)
        expect_error("kernel the loader cannot place", 4, "cannot be loaded", "vm", "create",
                     "--name", "k", "--kernel", broken_elf, "--memory", "16")
        expect_error("start without /dev/godwit", 6, "not running on the Godwit hypervisor",
                     "vm", "start", "hello")
        expect_error("stop of a VM that is not running", 7, "not running", "vm", "stop", "hello")
        expect_error("kill of a VM that is not running", 7, "not running", "vm", "kill", "hello")
        rc, out, err = godwit("vm", "create", "--help")
        check("create --help lists its options", rc == 0 and "--kernel" in out and
              "--file" in out and "--module" in out, out)
        rc, out, err = godwit("vm", "--help")
        check("vm --help lists every command", rc == 0 and all(
            c in out for c in ("vm create", "vm start", "vm stop", "vm kill", "vm list", "vm show",
                               "vm console", "vm delete")), out)
        rc, out, err = godwit("vm", "delete", "two")
        check("delete a defined VM", rc == 0 and not os.path.exists(
            os.path.join(tmp, "state", "two.json")), err)
        check("godwitd exits cleanly on SIGTERM", daemon.stop() == 0)

        # The reserve: memory the root keeps; more than MemAvailable leaves nothing for VMs.
        daemon = Daemon(bin_dir, tmp, os.path.join(tmp, "no-such-device"),
                        extra=["--reserve-mib", str(1 << 40)])
        expect_error("memory larger than the root can give", 7, "can give only 0 MiB", "vm",
                     "create", "--name", "m", "--kernel", hello, "--memory", "16")
        daemon.stop()

        # A state directory godwitd cannot use: VM requests say why, host commands still work.
        not_a_directory = os.path.join(tmp, "state-file")
        open(not_a_directory, "w").close()
        daemon = Daemon(bin_dir, tmp, os.path.join(tmp, "no-such-device"),
                        state_dir=not_a_directory)
        expect_error("unusable state directory", 5, "VM management is unavailable", "vm",
                     "list")
        daemon.stop()
        daemon = Daemon(bin_dir, tmp, os.path.join(tmp, "no-such-device"),
                        state_dir="/proc/version/vms")
        expect_error("state directory that cannot be created", 5, "cannot keep VM definitions",
                     "vm", "create", "--name", "x", "--kernel", hello, "--memory", "16")
        rc, out, err = godwit("host", "info")
        check("host info still answers", rc == 6 and "not running the Godwit hypervisor" in err,
              err)
        daemon.stop()

        # -- phase 2: the real worker on a device that is not /dev/godwit ------------------------
        daemon = Daemon(bin_dir, tmp, "/dev/null")
        rc, doc = godwit_json("vm", "list")
        names = [v.get("name") for v in doc.get("vms", [])]
        check("definitions reloaded at startup", names == ["hello"], str(doc))
        expect_error("start on a non-Godwit device fails with the worker's reason", 5,
                     "GODWIT_IOCTL_PARTITION_CREATE", "vm", "start", "hello")
        rc, doc = godwit_json("vm", "show", "hello")
        result = doc.get("last_result") or {}
        check("failed start recorded: stopped, result failed", doc.get("state") == "stopped" and
              result.get("kind") == "failed" and "did not" not in result.get("message", "x") and
              result.get("error_code") == 5, str(doc))
        daemon.stop()
        daemon = Daemon(bin_dir, tmp, "/dev/null")
        rc, doc = godwit_json("vm", "show", "hello")
        check("last result survives a godwitd restart", doc.get("state") == "stopped" and
              (doc.get("last_result") or {}).get("kind") == "failed", str(doc))
        daemon.stop()

        # -- phase 3: process supervision with the stand-in worker --------------------------
        fake = os.path.join(HERE, "fake_vm_worker.py")
        daemon = Daemon(bin_dir, tmp, "/dev/null", worker=fake, extra=["--stop-timeout", "1"])
        for name, cmdline in (("run", "fake=run"), ("stubborn", "fake=ignore-term"),
                              ("quick", "fake=exit:3"), ("crash", "fake=crash")):
            rc, _, err = godwit("vm", "create", "--name", name, "--kernel", hello, "--memory",
                                "8", "--cmdline", cmdline)
            check(f"create {name}", rc == 0, err)
        rc, doc = godwit_json("vm", "start", "run")
        check("start: running with a worker pid", rc == 0 and doc.get("state") == "running" and
              isinstance(doc.get("pid"), int), str(doc))
        pid = doc.get("pid") or 0
        expect_error("start of a running VM", 7, "already running", "vm", "start", "run")
        expect_error("delete of a running VM", 7, "stop it first", "vm", "delete", "run")
        deadline = time.monotonic() + 10  # a loaded CI machine may be slow to print
        while time.monotonic() < deadline:
            rc, out, _ = godwit("vm", "console", "run")
            if "fake: heartbeat 2" in out:
                break
            time.sleep(0.1)
        check("console shows the worker's output", rc == 0 and "fake: heartbeat 1" in out, out)
        rc, doc = godwit_json("vm", "console", "run")
        check("console --json", rc == 0 and doc.get("active") is True and
              "heartbeat" in doc.get("text", ""), str(doc)[:300])
        rc, doc = godwit_json("vm", "show", "run")
        time.sleep(0.2)
        rc, later = godwit_json("vm", "show", "run")
        check("show: uptime counts while running", 0 < doc.get("uptime_seconds", 0) <
              later.get("uptime_seconds", 0) - 0.15, f"{doc} then {later}")
        follower = subprocess.Popen([godwit_bin, "vm", "console", "run", "--follow"],
                                    stdout=subprocess.PIPE, text=True, env=env)
        time.sleep(0.3)
        rc, doc = godwit_json("vm", "stop", "run")
        result = doc.get("last_result") or {}
        check("stop: stopped gracefully", rc == 0 and doc.get("state") == "stopped" and
              result.get("kind") == "stopped", str(doc))
        try:
            followed, _ = follower.communicate(timeout=10)
            check("console --follow ends when the VM stops",
                  follower.returncode == 0 and "heartbeat" in followed)
        except subprocess.TimeoutExpired:
            follower.kill()
            check("console --follow ends when the VM stops", False, "still running")
        check("worker process is gone", not alive(pid))

        rc, doc = godwit_json("vm", "start", "run")
        check("restart after stop", rc == 0 and doc.get("state") == "running", str(doc))
        rc, doc = godwit_json("vm", "kill", "run")
        result = doc.get("last_result") or {}
        check("kill: stopped, result killed", rc == 0 and doc.get("state") == "stopped" and
              result.get("kind") == "killed", str(doc))

        # godwit vm save: request file + SIGUSR2 to the worker, outcome back through show.
        saved = os.path.join(tmp, "run.saved")
        expect_error("save of a stopped VM", 7, "not running", "vm", "save", "run", saved)
        godwit("vm", "start", "run")
        open(saved + ".old", "w").close()
        expect_error("save over an existing file", 7, "exists", "vm", "save", "run",
                     saved + ".old")
        rc, doc = godwit_json("vm", "save", "run", saved)
        result = doc.get("last_result") or {}
        check("save: stopped with result 'saved to FILE'", rc == 0 and
              doc.get("state") == "stopped" and result.get("message") == f"saved to {saved}",
              str(doc))
        check("save: the worker wrote the file", os.path.exists(saved))
        rc, _, err = godwit("vm", "create", "--name", "nosave", "--kernel", hello, "--memory",
                            "8", "--cmdline", "fake=nosave")
        godwit("vm", "start", "nosave")
        expect_error("a failed save", 1, "keeps running", "vm", "save", "nosave",
                     os.path.join(tmp, "nosave.saved"))
        rc, doc = godwit_json("vm", "show", "nosave")
        check("a failed save leaves the VM running with the reason", doc.get("state") ==
              "running" and "cannot be saved" in doc.get("save_error", ""), str(doc))
        godwit("vm", "kill", "nosave")
        godwit("vm", "delete", "nosave")
        # godwitd checks a saved state with the stream parser before registering anything.
        expect_error("restore of a file that is no saved VM", 4, "not a usable saved VM",
                     "vm", "restore", saved, "--name", "back")
        expect_error("restore of a missing file", 3, "No such file", "vm", "restore",
                     os.path.join(tmp, "missing.saved"))
        rc, doc = godwit_json("vm", "show", "back")
        check("a refused restore registers nothing", rc == 3, str(doc))

        godwit("vm", "start", "stubborn")
        started = time.monotonic()
        rc, doc = godwit_json("vm", "stop", "stubborn")
        result = doc.get("last_result") or {}
        check("stop escalates to SIGKILL after --stop-timeout", rc == 0 and
              result.get("kind") == "killed" and "did not stop within 1 s" in
              result.get("message", ""), str(doc))
        check("escalation took about the timeout", 0.8 < time.monotonic() - started < 10)

        rc, doc = godwit_json("vm", "start", "quick")
        deadline = time.monotonic() + 10
        while doc.get("state") != "stopped" and time.monotonic() < deadline:
            time.sleep(0.1)
            rc, doc = godwit_json("vm", "show", "quick")
        result = doc.get("last_result") or {}
        check("a VM that ends by itself: debug exit 3 recorded", result.get("kind") ==
              "debug_exit" and result.get("exit_code") == 3, str(doc))

        expect_error("a worker that crashes before running", 70, "worker died of SIGABRT",
                     "vm", "start", "crash")
        rc, out, _ = godwit("vm", "list")
        check("list shows every VM's last result", "killed" in out and "debug_exit" in out and
              "SIGABRT" in out, out)

        # godwitd dies (SIGKILL): its workers die with it, and the next godwitd says so.
        rc, doc = godwit_json("vm", "start", "run")
        pid = doc.get("pid") or 0
        daemon.proc.kill()
        daemon.proc.wait()
        deadline = time.monotonic() + 5
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        check("a worker does not outlive a killed godwitd", pid and not alive(pid))
        daemon = Daemon(bin_dir, tmp, "/dev/null", worker=fake)
        rc, doc = godwit_json("vm", "show", "run")
        result = doc.get("last_result") or {}
        check("the next godwitd reports the run that ended with the old one",
              doc.get("state") == "stopped" and result.get("kind") == "killed" and
              "godwitd ended while the VM ran" in result.get("message", ""), str(doc))

        godwit("vm", "start", "run")
        rc = daemon.stop()
        result_file = os.path.join(tmp, "run", "run", "result.json")
        stopped = json.load(open(result_file)) if os.path.exists(result_file) else {}
        check("godwitd's exit stops its running VMs", rc == 0 and
              stopped.get("kind") == "stopped", str(stopped))
        daemon = Daemon(bin_dir, tmp, "/dev/null", worker=fake)
        for name in ("hello", "run", "stubborn", "quick", "crash"):
            rc, _, err = godwit("vm", "delete", name)
            check(f"delete {name}", rc == 0, err)
        rc, doc = godwit_json("vm", "list")
        check("all deleted", doc == {"vms": []}, str(doc))
        check("run directories removed", os.listdir(os.path.join(tmp, "run")) == [],
              str(os.listdir(os.path.join(tmp, "run"))))
    except Exception as e:  # noqa: BLE001 - any harness failure is a test failure
        check("test harness", False, repr(e))
    finally:
        if daemon:
            daemon.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print(f"vmctl daemon test: {len(failures)} check(s) failed: {failures}")
        return 1
    print("vmctl daemon test: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
