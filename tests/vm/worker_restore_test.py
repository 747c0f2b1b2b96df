#!/usr/bin/env python3
"""godwit-vm-worker --restore-from on the build host (no /dev/godwit): a saved state is
parsed and checked before any partition exists, so damaged, missing and wrong files fail
with the stream parser's reason in result.json and the right exit status.
  worker_restore_test.py BIN_DIR"""

import json
import os
import subprocess
import sys
import tempfile

USAGE, IO, INVALID_INPUT = 2, None, 4
failures = []


def check(ok, what, detail=""):
    print(f"{'PASS' if ok else 'FAIL'}: {what}" + (f" ({detail})" if detail and not ok else ""),
          flush=True)
    if not ok:
        failures.append(what)


def run_worker(worker, work, *args):
    result = os.path.join(work, "result.json")
    if os.path.exists(result):
        os.remove(result)
    p = subprocess.run([worker, "--result", result, "--device", os.path.join(work, "no-device"),
                        *args], capture_output=True, text=True, timeout=60)
    try:
        with open(result) as f:
            recorded = json.load(f)
    except (OSError, ValueError):
        recorded = {}
    return p.returncode, recorded, p.stderr


def main():
    worker = os.path.join(sys.argv[1], "godwit-vm-worker")
    if not os.access(worker, os.X_OK):
        print(f"FAIL: {worker} is missing")
        return 1
    with tempfile.TemporaryDirectory(prefix="godwit-worker-restore-") as work:
        garbage = os.path.join(work, "garbage.state")
        with open(garbage, "wb") as f:
            f.write(os.urandom(64 * 1024))
        code, result, err = run_worker(worker, work, "--restore-from", garbage)
        check(code == INVALID_INPUT, "a file that is no saved state: exit status invalid_input",
              f"status {code}, stderr {err.strip()}")
        check(result.get("kind") == "failed" and "restoring from " + garbage in
              result.get("message", "") and "migration stream" in result.get("message", ""),
              "the result names the file and the stream parser's reason", str(result))

        truncated = os.path.join(work, "truncated.state")
        with open(truncated, "wb") as f:
            f.write(b"GWM1")
        code, result, _ = run_worker(worker, work, "--restore-from", truncated)
        check(code == INVALID_INPUT and "ends early" in result.get("message", ""),
              "a truncated file fails as truncated", f"status {code}, {result}")

        code, result, _ = run_worker(worker, work, "--restore-from",
                                     os.path.join(work, "missing.state"))
        check(code != 0 and "No such file" in result.get("message", ""),
              "a missing file fails with the reason", f"status {code}, {result}")

        code, _, err = run_worker(worker, work)
        check(code == USAGE and "--restore-from" in err,
              "neither --definition nor --restore-from: usage error", f"status {code}, {err}")
    print(f"{len(failures)} failed" if failures else "all passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
