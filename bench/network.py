"""Runs the network benchmarks and prints one table."""

import ipaddress
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / "target/release/recoverite"
EX = ROOT / "target/release/examples"


class Arm:
    def __init__(self, c):
        self.c = c
        self.ctx = ssl.create_default_context(cafile=c["caCertFile"])
        form = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": c["clientId"],
                                       "client_secret": c["clientSecret"], "scope": "https://management.azure.com/.default"}).encode()
        self.tok = json.load(urllib.request.urlopen(f"{c['authority']}/{c['tenantId']}/oauth2/v2.0/token", form, context=self.ctx))["access_token"]

    def call(self, method, path, body=None):
        req = urllib.request.Request(self.c["armEndpoint"] + path, method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": f"Bearer {self.tok}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, context=self.ctx) as r:
            text = r.read()
            return json.loads(text) if text else None


def build_world(arm, sub):
    rg = f"/subscriptions/{sub}/resourceGroups/bench"
    net = f"{rg}/providers/Microsoft.Network"
    v = "?api-version=2026-03-01"
    arm.call("PUT", f"{rg}?api-version=2025-04-01", {"location": "eastus"})
    arm.call("PUT", f"{net}/virtualNetworks/src{v}", {"location": "eastus", "properties": {
        "addressSpace": {"addressPrefixes": ["10.0.0.0/16"]},
        "subnets": [{"name": "vms", "properties": {"addressPrefix": "10.0.1.0/24"}},
                    {"name": "pe", "properties": {"addressPrefix": "10.0.2.0/24"}}]}})
    nic = arm.call("PUT", f"{net}/networkInterfaces/vm{v}", {"location": "eastus", "properties": {
        "ipConfigurations": [{"name": "c", "properties": {"subnet": {"id": f"{net}/virtualNetworks/src/subnets/vms"}}}]}})
    target = f"{rg}/providers/Recoverite.Test/privateLinkTargets/benchtarget"
    arm.call("PUT", f"{target}?api-version=2024-01-01", {"location": "eastus", "properties": {"members": ["api"]}})
    pe = arm.call("PUT", f"{net}/privateEndpoints/pe{v}", {"location": "eastus", "properties": {
        "subnet": {"id": f"{net}/virtualNetworks/src/subnets/pe"},
        "privateLinkServiceConnections": [{"name": "c", "properties": {"privateLinkServiceId": target, "groupIds": ["target"]}}]}})
    zone = "privatelink.test.recoverite.local"
    z = f"{net}/privateDnsZones/{zone}"
    arm.call("PUT", f"{z}?api-version=2024-06-01", {"location": "global"})
    arm.call("PUT", f"{z}/virtualNetworkLinks/src?api-version=2024-06-01", {"location": "global", "properties": {
        "virtualNetwork": {"id": f"{net}/virtualNetworks/src"}}})
    arm.call("PUT", f"{net}/privateEndpoints/pe/privateDnsZoneGroups/default{v}", {"properties": {
        "privateDnsZoneConfigs": [{"name": "z", "properties": {"privateDnsZoneId": z}}]}})
    aliases = arm.call("GET", "/recoverite/network/aliases")["value"]
    ip_of = lambda ip: [a["alias"] for a in aliases if a["privateIPAddress"] == ip][0]
    return ip_of(nic["properties"]["ipConfigurations"][0]["properties"]["privateIPAddress"]), \
        ip_of(pe["properties"]["customDnsConfigs"][0]["ipAddresses"][0]), pe["properties"]["customDnsConfigs"][0]


def dnsperf(server, port, source, names, seconds):
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        for n in names:
            f.write(f"{n} A\n")
    out = subprocess.run(["dnsperf", "-s", server, "-p", str(port), "-a", source, "-d", f.name, "-l", str(seconds),
                          "-c", "8", "-Q", "200000", "-q", "1000"], capture_output=True, text=True).stdout
    os.unlink(f.name)
    qps = float(re.search(r"Queries per second:\s+([\d.]+)", out).group(1))
    lost = re.search(r"Queries lost:\s+(\d+)", out).group(1)
    ok = re.search(r"NOERROR (\d+)", out)
    return qps, int(lost), int(ok.group(1)) if ok else 0


def python_ipam_ms():
    net = ipaddress.ip_network("10.1.0.0/16")
    t = time.perf_counter()
    used, hosts = set(), list(net.hosts())[3:-0 or None]
    for ip in hosts:
        if ip not in used:
            used.add(ip)
    return (time.perf_counter() - t) * 1000


def main():
    rows = []
    nb = subprocess.run([str(EX / "netbench")], capture_output=True, text=True, check=True).stdout
    figures = dict(line.split() for line in nb.strip().splitlines())
    rows.append(("IPAM: every address of a /16 (ms)", figures["ipam_slash16_all_addresses_ms"], f"{python_ipam_ms():.1f}", "Python ipaddress set"))
    rows.append(("NSG: 200-rule decision, compiled (µs)", figures["nsg_200_rules_compiled_us_per_decision"], "-", ""))
    rows.append(("NSG: 200-rule decision, unsorted list (µs)", figures["nsg_200_rules_reference_us_per_decision"], "-", ""))

    d = tempfile.mkdtemp(prefix="nbench-")
    proc = subprocess.Popen([str(BIN), "serve", "--data-dir", d, "--port", "0", "--dns-port", "0", "--nbd-port", "0"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        conn = Path(d) / "connection.json"
        while not conn.exists():
            time.sleep(0.01)
        c = json.loads(conn.read_text())
        arm = Arm(c)
        vm, pe_alias, dnscfg = build_world(arm, c["subscriptionId"])
        dns_port = int(c["dnsServer"].split(":")[1])
        private_names = ["benchtarget.api.test.recoverite.local"]
        public_names = ["1234-asr-pod01-rcm1.eus.siterecovery.windowsazure.com", "login.microsoftonline.com"]
        time.sleep(0.5)
        qps_priv, lost_p, ok_p = dnsperf("127.0.0.1", dns_port, vm, private_names, 5)
        qps_pub, lost_q, _ = dnsperf("127.0.0.1", dns_port, "127.0.0.1", public_names, 5)
        # dnsmasq answering the same private name from a hosts file.
        hosts = Path(d) / "hosts"
        hosts.write_text(f"{dnscfg['ipAddresses'][0]} benchtarget.api.test.recoverite.local\n")
        mport = dns_port + 1
        dm = subprocess.Popen(["dnsmasq", "--no-daemon", "--no-resolv", "--no-hosts", f"--addn-hosts={hosts}",
                               "--listen-address=127.0.0.1", "--bind-interfaces", f"--port={mport}", "--cache-size=1000"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) if shutil.which("dnsmasq") else None
        qps_dm = "-"
        if dm:
            time.sleep(0.3)
            qps_dm = f"{dnsperf('127.0.0.1', mport, '127.0.0.1', private_names, 5)[0]:.0f}"
            dm.send_signal(signal.SIGTERM)
            dm.wait()
        rows.append(("DNS: private name from inside the VNet (queries/s)", f"{qps_priv:.0f}", qps_dm, "dnsmasq, hosts file"))
        rows.append(("DNS: public Azure names from outside (queries/s)", f"{qps_pub:.0f}", "-", ""))
        rows.append(("DNS: queries lost", str(lost_p + lost_q), "-", ""))
        time.sleep(0.5)
        tp = subprocess.run([str(EX / "throughput"), vm, f"{pe_alias}:{10443 + c.get('instanceSlot', 0)}", "2048"], capture_output=True, text=True, check=True).stdout
        t = dict(line.split() for line in tp.strip().splitlines())
        rows.append(("Gateway: proxied TCP, both directions (GB/s)", t["gateway_proxied_gb_per_s"], t["direct_loopback_gb_per_s"], "direct loopback, no proxy"))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait()
        shutil.rmtree(d, ignore_errors=True)
    print(f"{'':54} {'recoverite':>11} {'baseline':>11}")
    for label, ours, base, what in rows:
        print(f"{label:54} {ours:>11} {base:>11}  {what}")
    print("\nAll on this 2-core machine; load generators share the cores with the server.")


if __name__ == "__main__":
    main()
