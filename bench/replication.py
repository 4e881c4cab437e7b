"""Replication benchmarks: the whole pipeline (NBD writes → change journal →
agent → DNS + gateway → cache storage account → replication service →
recovery points → failover), measured on the release build, next to rsync
shipping the same changes between disk images in the same run."""

import json
import os
import random
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / "target/release/recoverite"
QEMU_IO = shutil.which("qemu-io")
MiB, GiB = 1 << 20, 1 << 30
CHURN = int(os.environ.get("BENCH_CHURN_MIB", "1024")) * MiB


class Arm:
    def __init__(self, c):
        self.c = c
        self.ctx = ssl.create_default_context(cafile=c["caCertFile"])
        form = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": c["clientId"],
                                       "client_secret": c["clientSecret"], "scope": "https://management.azure.com/.default"}).encode()
        self.tok = json.load(urllib.request.urlopen(f"{c['authority']}/{c['tenantId']}/oauth2/v2.0/token", form, context=self.ctx))["access_token"]

    def call(self, method, path, body=None, api=None):
        url = self.c["armEndpoint"] + path + (f"?api-version={api}" if api else "")
        req = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": f"Bearer {self.tok}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, context=self.ctx, timeout=600) as r:
            text = r.read()
            return json.loads(text) if text else None


def rss_kb(pid, field="VmRSS"):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def qemu(nbd, disk, cmds):
    args = [QEMU_IO, "-f", "raw"] + [x for c in cmds for x in ("-c", c)] + [f"{nbd}/{disk}"]
    out = subprocess.run(args, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(out.stdout + out.stderr)


def build(arm, sub):
    rg = f"/subscriptions/{sub}/resourceGroups/bench"
    net, comp = f"{rg}/providers/Microsoft.Network", f"{rg}/providers/Microsoft.Compute"
    arm.call("PUT", rg, {"location": "eastus"}, "2025-04-01")
    arm.call("PUT", f"/subscriptions/{sub}/resourceGroups/bench-asr", {"location": "centralus"}, "2025-04-01")
    arm.call("PUT", f"{net}/virtualNetworks/app", {"location": "eastus", "properties": {
        "addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}, "subnets": [{"name": "vms", "properties": {"addressPrefix": "10.0.1.0/24"}}]}}, "2026-03-01")
    nic = arm.call("PUT", f"{net}/networkInterfaces/vm-nic", {"location": "eastus", "properties": {
        "ipConfigurations": [{"name": "c", "properties": {"subnet": {"id": f"{net}/virtualNetworks/app/subnets/vms"}}}]}}, "2026-03-01")
    osd = arm.call("PUT", f"{comp}/disks/vm-os", {"location": "eastus", "sku": {"name": "Premium_LRS"},
        "properties": {"creationData": {"createOption": "Empty"}, "diskSizeGB": 32, "osType": "Linux"}}, "2026-03-02")
    vm = arm.call("PUT", f"{comp}/virtualMachines/vm", {"location": "eastus", "properties": {
        "hardwareProfile": {"vmSize": "Standard_D2s_v3"},
        "storageProfile": {"osDisk": {"createOption": "Attach", "osType": "Linux", "managedDisk": {"id": f"{comp}/disks/vm-os"}},
                           "dataDisks": [{"lun": 0, "createOption": "Empty", "diskSizeGB": 8, "managedDisk": {"storageAccountType": "Premium_LRS"}}]},
        "networkProfile": {"networkInterfaces": [{"id": nic["id"]}]}}}, "2026-04-01")
    cache = f"{rg}/providers/Microsoft.Storage/storageAccounts/benchcache"
    arm.call("PUT", cache, {"location": "eastus", "kind": "StorageV2", "sku": {"name": "Standard_LRS"}}, "2026-09-01")
    v = f"{rg}/providers/Microsoft.RecoveryServices/vaults/bench-vault"
    arm.call("PUT", v, {"location": "centralus", "sku": {"name": "Standard"}}, "2026-11-01")
    A = "2025-08-01"
    for fabric, loc in (("east", "eastus"), ("central", "centralus")):
        arm.call("PUT", f"{v}/replicationFabrics/{fabric}", {"properties": {"customDetails": {"instanceType": "Azure", "location": loc}}}, A)
        arm.call("PUT", f"{v}/replicationFabrics/{fabric}/replicationProtectionContainers/{fabric}-c", {"properties": {"providerSpecificInput": [{"instanceType": "A2A"}]}}, A)
    arm.call("PUT", f"{v}/replicationPolicies/p", {"properties": {"providerSpecificInput": {"instanceType": "A2A", "recoveryPointHistory": 1440, "multiVmSyncStatus": "Disable"}}}, A)
    tc = f"{v}/replicationFabrics/central/replicationProtectionContainers/central-c"
    sc = f"{v}/replicationFabrics/east/replicationProtectionContainers/east-c"
    arm.call("PUT", f"{sc}/replicationProtectionContainerMappings/m", {"properties": {
        "targetProtectionContainerId": tc, "policyId": f"{v}/replicationPolicies/p", "providerSpecificInput": {"instanceType": "A2A"}}}, A)
    data = vm["properties"]["storageProfile"]["dataDisks"][0]["managedDisk"]["id"]
    item = f"{sc}/replicationProtectedItems/vm"
    arm.call("PUT", item, {"properties": {"policyId": f"{v}/replicationPolicies/p", "providerSpecificDetails": {
        "instanceType": "A2A", "fabricObjectId": vm["id"], "recoveryContainerId": tc,
        "recoveryResourceGroupId": f"/subscriptions/{sub}/resourceGroups/bench-asr",
        "vmManagedDisks": [{"diskId": d, "primaryStagingAzureStorageAccountId": cache} for d in (osd["id"], data)]}}}, A)
    return item, data


def second_vm(arm, sub):
    """A VM with a 1 GiB OS disk and a 64 GiB data disk, protected like the first."""
    rg = f"/subscriptions/{sub}/resourceGroups/bench"
    net, comp = f"{rg}/providers/Microsoft.Network", f"{rg}/providers/Microsoft.Compute"
    nic = arm.call("PUT", f"{net}/networkInterfaces/big-nic", {"location": "eastus", "properties": {
        "ipConfigurations": [{"name": "c", "properties": {"subnet": {"id": f"{net}/virtualNetworks/app/subnets/vms"}}}]}}, "2026-03-01")
    osd = arm.call("PUT", f"{comp}/disks/big-os", {"location": "eastus", "sku": {"name": "Premium_LRS"},
        "properties": {"creationData": {"createOption": "Empty"}, "diskSizeGB": 1, "osType": "Linux"}}, "2026-03-02")
    vm = arm.call("PUT", f"{comp}/virtualMachines/big", {"location": "eastus", "properties": {
        "hardwareProfile": {"vmSize": "Standard_D2s_v3"},
        "storageProfile": {"osDisk": {"createOption": "Attach", "osType": "Linux", "managedDisk": {"id": osd["id"]}},
                           "dataDisks": [{"lun": 0, "createOption": "Empty", "diskSizeGB": 64, "managedDisk": {"storageAccountType": "Premium_LRS"}}]},
        "networkProfile": {"networkInterfaces": [{"id": nic["id"]}]}}}, "2026-04-01")
    v = f"{rg}/providers/Microsoft.RecoveryServices/vaults/bench-vault"
    sc = f"{v}/replicationFabrics/east/replicationProtectionContainers/east-c"
    item = f"{sc}/replicationProtectedItems/big"
    data = vm["properties"]["storageProfile"]["dataDisks"][0]["managedDisk"]["id"]
    arm.call("PUT", item, {"properties": {"policyId": f"{v}/replicationPolicies/p", "providerSpecificDetails": {
        "instanceType": "A2A", "fabricObjectId": vm["id"], "recoveryContainerId": f"{v}/replicationFabrics/central/replicationProtectionContainers/central-c",
        "recoveryResourceGroupId": f"/subscriptions/{sub}/resourceGroups/bench-asr",
        "vmManagedDisks": [{"diskId": d, "primaryStagingAzureStorageAccountId": f"{rg}/providers/Microsoft.Storage/storageAccounts/benchcache"} for d in (osd["id"], data)]}}}, "2025-08-01")
    return item


def pending_mb(arm, item):
    it = arm.call("GET", item, api="2025-08-01")
    return sum(d.get("dataPendingAtSourceAgentInMB") or 0 for d in it["properties"]["providerSpecificDetails"]["protectedManagedDisks"])


def point(arm, item):
    try:
        return arm.call("POST", "/recoverite/replication/points", {"protectedItemId": item})
    except urllib.error.HTTPError as e:
        sys.exit(f"point: {e.code} {e.read().decode()}")


def main():
    if not QEMU_IO:
        sys.exit("qemu-io (qemu-utils) is needed")
    work = Path(tempfile.mkdtemp(prefix="recoverite-bench-repl-"))
    proc = subprocess.Popen([str(BIN), "serve", "--data-dir", str(work), "--port", "0", "--dns-port", "0", "--nbd-port", "0"],
                            stdout=subprocess.DEVNULL, stderr=open(work / "server.log", "w"))
    try:
        while not (work / "connection.json").exists():
            time.sleep(0.02)
        c = json.loads((work / "connection.json").read_text())
        arm = Arm(c)
        item, data_disk = build(arm, c["subscriptionId"])
        nbd = arm.call("GET", "/recoverite/nbd")["endpoint"]
        unique = arm.call("GET", data_disk, api="2026-03-02")["properties"]["uniqueId"]
        img = work / "disks" / f"{unique}.img"
        rows = []

        # rsync's starting point: a copy of the disk before the churn (sparse).
        before = work / "rsync-target.img"
        subprocess.run(["cp", "--sparse=always", str(img), str(before)], check=True)

        # 1. Sustained churn: CHURN bytes written as fast as NBD takes them, in 4 MiB
        #    writes at random places; replication runs all along.
        rng = random.Random(7)
        offsets = rng.sample(range(0, 6 * GiB // (4 * MiB)), CHURN // (4 * MiB))
        rss0 = rss_kb(proc.pid)
        t0 = time.perf_counter()
        qemu(nbd, "bench/vm_DataDisk_0", [f"write -P {0x10 + i % 200} {o * 4 * MiB} 4M" for i, o in enumerate(offsets)])
        t_written = time.perf_counter() - t0
        p = point(arm, item)  # ships the rest, applies, seals
        t_replicated = time.perf_counter() - t0
        peak = max(rss_kb(proc.pid, "VmHWM") - rss0, 0)
        rows.append(("NBD write of the churn (MB/s)", CHURN / t_written / 1e6, None, ""))
        rows.append(("sustained churn replicated, write to sealed point (MB/s)", CHURN / t_replicated / 1e6, None, "target >= 500"))

        # rsync ships the same changes between the before/after images.
        t0 = time.perf_counter()
        subprocess.run(["rsync", "--inplace", "--no-whole-file", str(img), str(before)], check=True)
        t_rsync = time.perf_counter() - t0
        rows.append(("same changes shipped (MB/s of churn)", CHURN / t_replicated / 1e6, CHURN / t_rsync / 1e6, "rsync --inplace, delta mode"))

        # 2. Recovery point storage per changed byte (this point held everything above).
        stored = sum(int(x["changedBytes"]) for x in [p])
        rows.append(("recovery point storage / changed bytes", stored / CHURN, None, "target <= 1.1"))

        # 3. Memory the replication path added under that churn (agent, cache, service).
        rows.append(("server RSS growth during the churn (MB)", peak / 1024, None, "agent target <= 64 per disk"))

        # 4. RPO at 50 MB/s: 5 MB every 100 ms for 10 s; the lag is what waits at the source.
        cmds = []
        for i in range(100):
            cmds += [f"write -P {0x70 + i % 100} {(6 * GiB) + i * 5 * MiB} 5M", "sleep 100"]
        samples, stop = [], threading.Event()

        def sample():
            while not stop.is_set():
                samples.append(pending_mb(arm, item))
                time.sleep(0.1)

        th = threading.Thread(target=sample)
        th.start()
        t0 = time.perf_counter()
        qemu(nbd, "bench/vm_DataDisk_0", cmds)
        rate = 500 / (time.perf_counter() - t0)
        t_last = time.perf_counter()
        while pending_mb(arm, item) > 0:
            time.sleep(0.02)
        drain = time.perf_counter() - t_last
        stop.set()
        th.join()
        rows.append(("RPO at %.0f MB/s churn: most data waiting at the source (s)" % rate, max(samples) / rate, None, "target <= 2"))
        rows.append(("last write to shipped at that churn (s)", drain, None, ""))

        # 5. Failover of a VM whose 64 GiB disk has 1 GiB written (and a 1 GiB
        #    OS disk): LatestProcessed, timed to the reply.
        item2 = second_vm(arm, c["subscriptionId"])
        os_offsets = rng.sample(range(0, 64 * GiB // (4 * MiB)), GiB // (4 * MiB))
        qemu(nbd, "bench/big_DataDisk_0", [f"write -P 0x33 {o * 4 * MiB} 4M" for o in os_offsets])
        point(arm, item2)
        t0 = time.perf_counter()
        arm.call("POST", f"{item2}/unplannedFailover", {"properties": {"failoverDirection": "PrimaryToRecovery",
            "providerSpecificDetails": {"instanceType": "A2A", "recoveryPointType": "LatestProcessed"}}}, "2025-08-01")
        rows.append(("failover of a 64 GiB sparse disk with 1 GiB written (s)", time.perf_counter() - t0, None, "target <= 1"))

        print(f"{'':58} {'recoverite':>11} {'rsync':>9}")
        for name, ours, theirs, note in rows:
            t = f"{theirs:9.1f}" if theirs is not None else f"{'-':>9}"
            print(f"{name:58} {ours:11.2f} {t}  {note}")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
