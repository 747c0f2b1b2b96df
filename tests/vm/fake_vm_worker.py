#!/usr/bin/env python3
"""A stand-in for godwit-vm-worker that honours the same contract with godwitd
(docs/vm-management.md, "Worker contract") but runs no VM, so the daemon's process
supervision (start, ready pipe, SIGTERM/SIGKILL, reaping, results) is testable on a build
host without /dev/godwit. What it does comes from the VM's cmdline:
  fake=run          heartbeat lines on the console until SIGTERM, then result "stopped"
  fake=ignore-term  heartbeats, ignores SIGTERM (godwitd must escalate to SIGKILL)
  fake=nosave       like run, but a save (SIGUSR2) fails and the VM keeps running
  fake=exit:N       a few lines, then result debug_exit N (like a test guest)
  fake=crash        dies of SIGABRT before it reports running, without a result
A migration request (SIGRTMIN, RUN_DIR/migrate-request) is answered in RUN_DIR/migration.json
with state "failed" and the reason "fake worker: no VM to migrate" (the real migration is
tested in Bochs, tests/vm/vm_checks.py); SIGRTMIN+1 (cancel) is ignored."""

import argparse
import json
import os
import signal
import sys
import time


def write_result(path, kind, message, exit_code=0):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"kind": kind, "exit_code": exit_code, "address": 0, "error_code": 0,
                   "message": message}, f)
    os.rename(tmp, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--definition", required=True)
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--tls-dir", default="")
    ap.add_argument("--device", required=True)
    ap.add_argument("--ready-fd", type=int, default=-1)
    ap.add_argument("--restore-from", default="")
    ap.add_argument("--name", default="")
    args = ap.parse_args()
    args.console = os.path.join(args.run_dir, "console.log")
    args.result = os.path.join(args.run_dir, "result.json")
    args.save_request = os.path.join(args.run_dir, "save-request")
    with open(args.definition) as f:
        definition = json.load(f)
    mode = "run"
    for word in definition.get("cmdline", "").split():
        if word.startswith("fake="):
            mode = word[len("fake="):]
    console = open(args.console, "a", buffering=1)
    stop = []
    if mode == "ignore-term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    save = []
    signal.signal(signal.SIGUSR2, lambda *_: save.append(True))
    migrate = []
    signal.signal(signal.SIGRTMIN, lambda *_: migrate.append(True))
    signal.signal(signal.SIGRTMIN + 1, signal.SIG_IGN)
    print(f"fake worker: VM {definition['name']} mode {mode}", file=sys.stderr, flush=True)
    if mode == "crash":  # before "ready", as a VMM failing while it builds the VM
        console.write("fake: about to crash\n")
        os.abort()
    if args.ready_fd >= 0:
        os.write(args.ready_fd, b"\x01")
        os.close(args.ready_fd)
    if mode.startswith("exit:"):
        code = int(mode.split(":", 1)[1])
        for i in range(3):
            console.write(f"fake: line {i}\n")
            time.sleep(0.05)
        write_result(args.result, "debug_exit",
                     f"guest wrote {code} to the debug-exit port (result {code * 2 + 1})", code)
        return 0 if code == 0 else 1
    beat = 0
    while not stop:
        if save:  # `godwit vm save`: the target from the request file, like the real worker
            save.clear()
            with open(args.save_request) as f:
                target = f.readline().strip()
            outcome = {"ok": False, "error": "fake=nosave: this VM cannot be saved"}
            if mode != "nosave":
                with open(target, "w") as f:
                    f.write(f"fake saved state of {definition['name']}\n")
                outcome = {"ok": True}
            with open(args.save_request + ".result", "w") as f:
                json.dump(outcome, f)
            if outcome["ok"]:
                write_result(args.result, "stopped", f"saved to {target}")
                return 0
        if migrate:
            migrate.clear()
            with open(os.path.join(args.run_dir, "migrate-request")) as f:
                request = json.load(f)
            status = os.path.join(args.run_dir, "migration.json")
            with open(status + ".tmp", "w") as f:
                json.dump({"state": "failed", "live": request["live"],
                           "destination": f"{request['host']}:{request['port']}",
                           "progress": None, "report": None,
                           "error": "fake worker: no VM to migrate"}, f)
            os.rename(status + ".tmp", status)
        beat += 1
        console.write(f"fake: heartbeat {beat}\n")
        time.sleep(0.05)
    write_result(args.result, "stopped", "stopped on request (SIGTERM to the worker)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
