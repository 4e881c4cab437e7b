"""Measures recoverite's foundation and Azurite side by side.

Figures: cold start to ready (recoverite: connection.json written; Azurite:
blob port accepting), idle RSS, and wrk throughput/p99 of an authorized
GET of a resource (recoverite: resource group with a bearer token; Azurite:
GET of a small blob with a SAS token)."""

import argparse
import base64
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path


def rss_mb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wait_for(pred, timeout=30.0, step=0.001):
    end = time.perf_counter() + timeout
    while time.perf_counter() < end:
        if pred():
            return True
        time.sleep(step)
    raise TimeoutError


def wrk(url, headers, seconds, conns):
    cmd = ["wrk", "-t2", f"-c{conns}", f"-d{seconds}s", "--latency"]
    for k, v in headers.items():
        cmd += ["-H", f"{k}: {v}"]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return rps, float(p99.group(1)) * scale, int(non2xx.group(1)) if non2xx else 0


def start_recoverite(binary, data_dir):
    t0 = time.perf_counter()
    proc = subprocess.Popen([binary, "serve", "--data-dir", data_dir, "--port", "0", "--dns-port", "0", "--nbd-port", "0"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    conn = Path(data_dir) / "connection.json"
    wait_for(conn.exists)
    return proc, (time.perf_counter() - t0) * 1000, json.loads(conn.read_text())


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def get_token(c):
    ctx = ssl.create_default_context(cafile=c["caCertFile"])
    form = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": c["clientId"],
                                   "client_secret": c["clientSecret"], "scope": "https://management.azure.com/.default"}).encode()
    return json.load(urllib.request.urlopen(f"{c['authority']}/{c['tenantId']}/oauth2/v2.0/token", form, context=ctx))["access_token"]


def bench_recoverite(binary, runs, seconds, conns):
    cold, warm, first_token = [], [], []
    for _ in range(runs):
        d = tempfile.mkdtemp(prefix="rbench-")
        t0 = time.perf_counter()
        p, ms, c = start_recoverite(binary, d)
        cold.append(ms)
        get_token(c)
        first_token.append((time.perf_counter() - t0) * 1000)
        stop(p)
        p, ms, _ = start_recoverite(binary, d)
        warm.append(ms)
        stop(p)
        shutil.rmtree(d)
    d = tempfile.mkdtemp(prefix="rbench-")
    proc, _, c = start_recoverite(binary, d)
    ctx = ssl.create_default_context(cafile=c["caCertFile"])
    tok = get_token(c)
    url = f"{c['armEndpoint']}/subscriptions/{c['subscriptionId']}/resourcegroups/bench?api-version=2025-04-01"
    req = urllib.request.Request(url, data=b'{"location":"eastus"}', method="PUT",
                                 headers={"Authorization": f"Bearer {tok}", "Content-Type": "application/json"})
    urllib.request.urlopen(req, context=ctx).read()
    time.sleep(1.0)
    idle = rss_mb(proc.pid)
    rps, p99, bad = wrk(url, {"Authorization": f"Bearer {tok}"}, seconds, conns)
    loaded = rss_mb(proc.pid)
    stop(proc)
    shutil.rmtree(d)
    return dict(cold_ms=statistics.median(cold), warm_ms=statistics.median(warm),
                first_token_ms=statistics.median(first_token), idle_mb=idle,
                loaded_mb=loaded, rps=rps, p99_ms=p99, non2xx=bad)


ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def shared_key_put_container(port, container):
    now = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime())
    version = "2021-08-06"
    canon_headers = f"x-ms-date:{now}\nx-ms-version:{version}\n"
    canon_resource = f"/{ACCOUNT}/{ACCOUNT}/{container}\nrestype:container"
    to_sign = "PUT\n\n\n\n\n\n\n\n\n\n\n\n" + canon_headers + canon_resource
    sig = base64.b64encode(hmac.new(base64.b64decode(KEY), to_sign.encode(), hashlib.sha256).digest()).decode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/{ACCOUNT}/{container}?restype=container", method="PUT",
                                 headers={"x-ms-date": now, "x-ms-version": version,
                                          "Authorization": f"SharedKey {ACCOUNT}:{sig}", "Content-Length": "0"})
    urllib.request.urlopen(req).read()


def shared_key_put_blob(port, container, blob, data):
    now = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime())
    version = "2021-08-06"
    ctype = "application/octet-stream"
    canon_headers = f"x-ms-blob-type:BlockBlob\nx-ms-date:{now}\nx-ms-version:{version}\n"
    canon_resource = f"/{ACCOUNT}/{ACCOUNT}/{container}/{blob}"
    to_sign = f"PUT\n\n\n{len(data)}\n\n{ctype}\n\n\n\n\n\n\n" + canon_headers + canon_resource
    sig = base64.b64encode(hmac.new(base64.b64decode(KEY), to_sign.encode(), hashlib.sha256).digest()).decode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/{ACCOUNT}/{container}/{blob}", data=data, method="PUT",
                                 headers={"x-ms-date": now, "x-ms-version": version, "x-ms-blob-type": "BlockBlob",
                                          "Content-Type": ctype, "Authorization": f"SharedKey {ACCOUNT}:{sig}"})
    urllib.request.urlopen(req).read()


def container_sas(container):
    start, expiry = "2020-01-01T00:00:00Z", "2099-01-01T00:00:00Z"
    version = "2021-08-06"
    fields = ["r", start, expiry, f"/blob/{ACCOUNT}/{container}", "", "", "", version, "c", "", "", "", "", "", "", ""]
    sig = base64.b64encode(hmac.new(base64.b64decode(KEY), "\n".join(fields).encode(), hashlib.sha256).digest()).decode()
    return urllib.parse.urlencode({"sv": version, "st": start, "se": expiry, "sr": "c", "sp": "r", "sig": sig})


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def bench_azurite(binary, runs, seconds, conns):
    if not os.path.exists(binary):
        return None
    cold = []
    proc = None
    for i in range(runs + 1):
        d = tempfile.mkdtemp(prefix="abench-")
        port = free_port()
        t0 = time.perf_counter()
        proc = subprocess.Popen([binary, "--silent", "--location", d, "--blobHost", "127.0.0.1", "--blobPort", str(port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def up():
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.05).close()
                return True
            except OSError:
                return False

        wait_for(up, timeout=60)
        cold.append((time.perf_counter() - t0) * 1000)
        if i < runs:
            stop(proc)
            shutil.rmtree(d)
    shared_key_put_container(port, "bench")
    shared_key_put_blob(port, "bench", "item.json", b'{"name": "bench"}')
    url = f"http://127.0.0.1:{port}/{ACCOUNT}/bench/item.json?{container_sas('bench')}"
    urllib.request.urlopen(urllib.request.Request(url, headers={"x-ms-version": "2021-08-06"})).read()
    time.sleep(1.0)
    idle = rss_mb(proc.pid)
    rps, p99, bad = wrk(url, {"x-ms-version": "2021-08-06"}, seconds, conns)
    loaded = rss_mb(proc.pid)
    stop(proc)
    return dict(cold_ms=statistics.median(cold[:runs]), warm_ms=float("nan"), idle_mb=idle, loaded_mb=loaded,
                rps=rps, p99_ms=p99, non2xx=bad)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--azurite", default="")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=16)
    a = ap.parse_args()
    r = bench_recoverite(a.bin, a.runs, a.seconds, a.connections)
    z = bench_azurite(a.azurite, 3, a.seconds, a.connections) if a.azurite else None
    rows = [("cold start to ready (median, ms)", "cold_ms", "{:.0f}"),
            ("restart with existing state (median, ms)", "warm_ms", "{:.0f}"),
            ("first start to first token (median, ms)", "first_token_ms", "{:.0f}"),
            ("idle RSS (MB)", "idle_mb", "{:.1f}"),
            ("RSS after the load (MB)", "loaded_mb", "{:.1f}"),
            ("authorized GET, requests/s", "rps", "{:.0f}"),
            ("authorized GET, p99 latency (ms)", "p99_ms", "{:.2f}"),
            ("non-2xx replies under load", "non2xx", "{}")]
    print(f"{'':44} {'recoverite':>12} {'Azurite':>12}")
    for label, key, fmt in rows:
        theirs = fmt.format(z[key]) if z and key in z and z[key] == z[key] else "-"
        print(f"{label:44} {fmt.format(r[key]):>12} {theirs:>12}")
    print(f"\nwrk: 2 threads, {a.connections} connections, {a.seconds}s, on the same 2-core machine as the server.")
    print("recoverite GET: a resource group over HTTPS with a bearer token (JWT verified, RBAC checked per request).")
    print("Azurite GET: a small blob over HTTP with a SAS token (signature checked per request).")
    targets = [("cold start <= 300 ms", r["cold_ms"] <= 300), ("GET >= 5000 req/s", r["rps"] >= 5000),
               ("p99 <= 5 ms", r["p99_ms"] <= 5), ("idle RSS <= 50 MB", r["idle_mb"] <= 50)]
    print("\ntargets: " + ", ".join(f"{t}: {'met' if ok else 'MISSED'}" for t, ok in targets))


if __name__ == "__main__":
    main()
