"""Migration credentials for emulated Godwit hosts (docs/live-migration.md "Trust between
hosts"): a throw-away CA and host certificates made with the openssl CLI on the build host,
and their installation into a root partition over its serial console.

    creds = make_credentials(workdir, ["a", "b"])          # one CA, two hosts
    rogue = make_credentials(workdir, ["rogue"], ca="rogue-ca")  # a CA nobody trusts
    install(host, creds["a"], "/etc/godwit/tls")
"""

import base64
import os
import subprocess
import time

EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def _openssl(args, cwd):
    try:
        subprocess.run(["openssl"] + args, cwd=cwd, check=True, capture_output=True)
    except FileNotFoundError:
        raise RuntimeError("the openssl CLI is needed (tools/bootstrap installs it)")
    except subprocess.CalledProcessError as e:
        raise RuntimeError(f"openssl {' '.join(args[:2])} failed: {e.stderr.decode()[-300:]}")


def make_credentials(workdir, hosts, ca="ca"):
    """A CA named `ca` (made once per workdir) and for each host name a key and a
    certificate it signed. Returns {host: {"ca.pem": path, "host.pem": path, "host.key":
    path}}."""
    d = os.path.join(workdir, "tls")
    os.makedirs(d, exist_ok=True)
    ca_key, ca_pem = os.path.join(d, f"{ca}.key"), os.path.join(d, f"{ca}.pem")
    if not os.path.exists(ca_pem):
        _openssl(["req", "-x509"] + EC_KEY + ["-keyout", ca_key, "-out", ca_pem, "-days", "2",
                                             "-subj", f"/CN=godwit-test-{ca}"], d)
    out = {}
    for name in hosts:
        key, csr, pem = (os.path.join(d, f"{name}.{ext}") for ext in ("key", "csr", "pem"))
        _openssl(["req"] + EC_KEY + ["-keyout", key, "-out", csr, "-subj", f"/CN={name}"], d)
        _openssl(["x509", "-req", "-in", csr, "-CA", ca_pem, "-CAkey", ca_key,
                  "-CAcreateserial", "-out", pem, "-days", "2"], d)
        out[name] = {"ca.pem": ca_pem, "host.pem": pem, "host.key": key}
    return out


def install(host, files, directory):
    """Writes the credentials into `directory` of the root partition (base64 over the serial
    console, one file per command). Raises RuntimeError when the copy does not match."""
    status, _ = host.run(f"mkdir -p {directory} && chmod 700 {directory}")
    if status != 0:
        raise RuntimeError(f"cannot create {directory} in the root partition")
    for name, path in files.items():
        with open(path, "rb") as f:
            data = f.read()
        encoded = base64.b64encode(data).decode()
        target = f"{directory}/{name}"
        status, out = host.run(f"echo {encoded} | base64 -d > {target} && chmod 600 {target} "
                               f"&& wc -c < {target}")
        if status != 0 or out.strip().split()[-1:] != [str(len(data))]:
            raise RuntimeError(f"copying {name} into the root failed: {out[-200:]}")
    set_clock(host)


def set_clock(host):
    """Sets the root's clock to the build host's, as NTP would on a real server: Bochs
    starts its RTC at a fixed time0 (1999), before which every certificate is not yet
    valid. Called after the credentials are made, so their notBefore has passed."""
    status, out = host.run(f"date -u -s @{int(time.time())} >/dev/null && date -u +%s")
    if status != 0:
        raise RuntimeError(f"cannot set the root's clock: {out[-200:]}")
