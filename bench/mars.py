"""MARS agent benchmark on the release build, with restic on the same data
in the same run.

Data sets in the shape of borg's benchmark: 10 x 100 MB, 1,000 x 1 MB and
10,000 x 10 KB files, once as zeros and once as random bytes (BENCH_SCALE
scales the file counts). For each: the first backup, an incremental backup
after 1% of the files changed, the repository size, and a full restore
(checked against the source), for `recoverite mars` (an on-premises server
registered to a vault, over the vault's public URL through the gateway)
and for `restic`. Then the agent's peak RSS backing up 1 GB and 10 GB
(sparse zero files: the work per byte is the same, the disk is spared).
"""

import filecmp
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / "target/release/recoverite"
SCALE = float(os.environ.get("BENCH_SCALE", "1"))
MB = 1_000_000
PASS = "benchmark passphrase, long enough"


def run(args, env=None, check=True):
    """Runs a command; returns (seconds, peak RSS in MiB, stdout)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    out = p.stdout.read()
    err = p.stderr.read()
    _, status, usage = os.wait4(p.pid, 0)
    secs = time.perf_counter() - t0
    if check and status != 0:
        sys.exit(f"{' '.join(map(str, args))} failed:\n{out.decode()}\n{err.decode()}")
    return secs, usage.ru_maxrss / 1024, out.decode()


def du(path):
    return int(subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True).stdout.split()[0])


def make(root: Path, kind: str):
    shapes = [(max(1, int(10 * SCALE)), 100 * MB), (max(1, int(1000 * SCALE)), MB), (max(1, int(10_000 * SCALE)), 10_000)]
    files = []
    for n, size in shapes:
        d = root / f"{size}"
        d.mkdir(parents=True)
        for i in range(n):
            p = d / f"f{i:05}"
            with open(p, "wb") as f:
                if kind == "zeros":
                    f.write(bytes(size))
                else:
                    f.write(os.urandom(size))
            files.append(p)
    return files


def churn(files, seed):
    """Rewrites 1% of the files (at least one of each size) with new bytes."""
    rnd = random.Random(seed)
    by_size = {}
    for f in files:
        by_size.setdefault(f.stat().st_size, []).append(f)
    changed = 0
    for size, group in by_size.items():
        for f in rnd.sample(group, max(1, len(group) // 100)):
            f.write_bytes(os.urandom(size))
            changed += size
    return changed


def same_tree(a: Path, b: Path):
    c = filecmp.dircmp(a, b)
    if c.left_only or c.right_only or c.diff_files or c.funny_files:
        return False
    return all(same_tree(a / d, b / d) for d in c.common_dirs)


class Server:
    def __init__(self, base: Path):
        self.dir = base / "server"
        self.dir.mkdir()
        self.log = open(base / "server.log", "wb")
        self.proc = subprocess.Popen([str(BIN), "serve", "--data-dir", str(self.dir), "--port", "0", "--dns-port", "0"],
                                     stdout=self.log, stderr=self.log)
        conn = self.dir / "connection.json"
        while not conn.exists():
            time.sleep(0.02)
        time.sleep(0.2)
        self.c = json.loads(conn.read_text())

    def arm(self, method, path, body=None, api=None):
        import ssl
        import urllib.parse
        import urllib.request
        ctx = ssl.create_default_context(cafile=self.c["caCertFile"])
        if not hasattr(self, "tok"):
            form = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": self.c["clientId"],
                                           "client_secret": self.c["clientSecret"], "scope": "https://management.azure.com/.default"}).encode()
            self.tok = json.load(urllib.request.urlopen(f"{self.c['authority']}/{self.c['tenantId']}/oauth2/v2.0/token", form, context=ctx))["access_token"]
        url = self.c["armEndpoint"] + path + (f"?api-version={api}" if api else "")
        req = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": f"Bearer {self.tok}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, context=ctx) as r:
            text = r.read()
            return json.loads(text) if text else None

    def mars(self, *args):
        return run([str(BIN), "mars", *args, "--data-dir", str(self.dir)])

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def vault(server, name):
    sub = server.c["subscriptionId"]
    rg = f"/subscriptions/{sub}/resourceGroups/bench"
    server.arm("PUT", rg, {"location": "eastus"}, "2025-04-01")
    v = f"{rg}/providers/Microsoft.RecoveryServices/vaults/{name}"
    server.arm("PUT", v, {"location": "eastus", "sku": {"name": "Standard"}, "properties": {"publicNetworkAccess": "Enabled"}}, "2026-11-01")
    return v


def mars_case(server, base, data, files, v, label):
    agent = base / f"agent-{label}"
    (base / "pass").write_text(PASS)
    server.mars("credentials", "--vault", v, "--out", str(base / f"creds-{label}.json"))
    server.mars("register", "--credentials", str(base / f"creds-{label}.json"), "--passphrase-file", str(base / "pass"),
                "--agent-dir", str(agent), "--name", f"bench-{label}")
    tier = server.dir / "backup"
    before = du(tier) if tier.exists() else 0
    first, rss, _ = server.mars("backup", "--agent-dir", str(agent), "--path", str(data))
    size = du(tier) - before
    return agent, first, rss, size


def main():
    base = Path(tempfile.mkdtemp(prefix="recoverite-bench-mars-", dir=os.environ.get("BENCH_DIR")))
    restic_env = dict(os.environ, RESTIC_PASSWORD=PASS, RESTIC_CACHE_DIR=str(base / "restic-cache"))
    rows = []
    server = Server(base)
    try:
        for kind in ("zeros", "random"):
            data = base / kind / "data"
            files = make(data, kind)
            os.sync()  # neither tool pays for writing the data set
            total = sum(f.stat().st_size for f in files)
            v = vault(server, f"bench-{kind}")
            # recoverite mars
            agent, first, rss, size = mars_case(server, base, data, files, v, kind)
            # restic, on the same data as it is now
            repo = base / f"restic-{kind}"
            run(["restic", "init", "--repo", str(repo)], env=restic_env)
            r_first, r_rss, _ = run(["restic", "backup", "--repo", str(repo), str(data)], env=restic_env)
            r_size = du(repo)
            changed = churn(files, 1)
            os.sync()
            incr, _, _ = server.mars("backup", "--agent-dir", str(agent), "--path", str(data))
            r_incr, _, _ = run(["restic", "backup", "--repo", str(repo), str(data)], env=restic_env)
            # restores of the latest point
            pts = json.loads(server.mars("points", "--agent-dir", str(agent))[2])
            point = [p for p in pts if p["path"] == str(data.resolve())][0]["id"]
            target = base / f"restore-{kind}"
            rest, _, _ = server.mars("restore", "--agent-dir", str(agent), "--point", point, "--target", str(target))
            ok = same_tree(data, target / "data")
            shutil.rmtree(target)
            r_target = base / f"restic-restore-{kind}"
            r_rest, _, _ = run(["restic", "restore", "latest", "--repo", str(repo), "--target", str(r_target)], env=restic_env)
            r_ok = same_tree(data, r_target / str(data).lstrip("/"))
            shutil.rmtree(r_target)
            rows.append((kind, total, changed, first, incr, size, rest, ok, rss, r_first, r_incr, r_size, r_rest, r_ok, r_rss))
            shutil.rmtree(base / kind)
        # Memory against the data's size: sparse zero files of 1 GB and 10 GB.
        mem = []
        for gb in (1, 10):
            d = base / f"mem{gb}" / "data"
            d.mkdir(parents=True)
            for i in range(gb):
                with open(d / f"z{i}", "wb") as f:
                    f.truncate(1 << 30)
            v = vault(server, f"bench-mem{gb}")
            _, secs, rss, _ = mars_case(server, base, d, [], v, f"mem{gb}")
            mem.append((gb, secs, rss))
            shutil.rmtree(base / f"mem{gb}")
    finally:
        server.stop()
    print()
    print("MARS agent (recoverite mars, through the gateway) vs restic, same data, same run")
    print(f"{'data':8} {'size':>8} {'tool':10} {'first':>10} {'MB/s':>7} {'1% incr':>9} {'speedup':>8} {'repo':>9} {'restore':>9} {'MB/s':>7} {'RSS':>7} ok")
    for (kind, total, changed, first, incr, size, rest, ok, rss, r_first, r_incr, r_size, r_rest, r_ok, r_rss) in rows:
        for tool, f, i, s, r, k, m in (("recoverite", first, incr, size, rest, ok, rss), ("restic", r_first, r_incr, r_size, r_rest, r_ok, r_rss)):
            print(f"{kind:8} {total / MB:7.0f}M {tool:10} {f:9.2f}s {total / MB / f:7.1f} {i:8.2f}s {f / i:7.1f}x {s / MB:8.1f}M {r:8.2f}s {total / MB / r:7.1f} {m:6.0f}M {'yes' if k else 'NO'}")
    print()
    print("agent peak RSS against the data's size (sparse zero files)")
    for gb, secs, rss in mem:
        print(f"{gb:3} GB: backup {secs:6.2f} s ({gb * 1024 / secs:6.0f} MiB/s), peak RSS {rss:6.1f} MiB")
    shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
