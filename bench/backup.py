"""Backup benchmarks on the release build: a VM with a BENCH_DISK_GB data
disk holding BENCH_DATA_MIB of random data, backed up through the Backup
API (snapshot tier, then only the chunks the vault lacks), ten more backups
after rewriting 5% of the data each time, vault-tier size against the
distinct bytes changed, and restores from the snapshot tier and (after the
instant-restore days, on the emulator clock) from the vault tier. restic
backs up the same image file in the same run, for comparison."""

import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / "target/release/recoverite"
MiB, GiB = 1 << 20, 1 << 30
DISK_GB = int(os.environ.get("BENCH_DISK_GB", "64"))
DATA = int(os.environ.get("BENCH_DATA_MIB", "1024")) * MiB
CHURN = DATA // 20
BK = "2026-10-01"


class Arm:
    def __init__(self, c):
        self.c = c
        self.ctx = ssl.create_default_context(cafile=c["caCertFile"])
        form = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": c["clientId"],
                                       "client_secret": c["clientSecret"], "scope": "https://management.azure.com/.default"}).encode()
        self.tok = json.load(urllib.request.urlopen(f"{c['authority']}/{c['tenantId']}/oauth2/v2.0/token", form, context=self.ctx))["access_token"]

    def call(self, method, path, body=None, api=None, headers=False):
        url = self.c["armEndpoint"] + path + (f"?api-version={api}" if api else "")
        req = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": f"Bearer {self.tok}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, context=self.ctx, timeout=3600) as r:
            text = r.read()
            if headers:
                return {k.lower(): v for k, v in r.headers.items()}
            return json.loads(text) if text else None


def seconds(start, end):
    """Seconds between two ARM timestamps (`2026-11-23T08:14:21.1234567Z`)."""
    def at(s):
        whole, frac = s.rstrip("Z").split(".") if "." in s else (s.rstrip("Z"), "0")
        return time.mktime(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) + float("0." + frac)
    return at(end) - at(start)


def du(path):
    return int(subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True).stdout.split()[0])


def rewrite(image, offsets, _seed):
    """Random bytes at the given 1 MiB-aligned offsets, straight into the
    image (the data the disk holds before it is protected)."""
    with open(image, "r+b") as f:
        for i, off in enumerate(offsets):
            f.seek(off)
            f.write(os.urandom(MiB))
        f.flush()
        os.fsync(f.fileno())


def write_through_nbd(nbd_uri, offsets, scratch):
    """Random bytes at the given offsets written as a VM writes: through NBD
    (qemu-io), so the disk's change journal sees them."""
    scratch.mkdir(exist_ok=True)
    cmds = []
    for i, off in enumerate(offsets):
        src = scratch / f"w{i}.bin"
        src.write_bytes(os.urandom(MiB))
        cmds += ["-c", f"write -q -s {src} {off} {MiB}"]
    subprocess.run(["qemu-io", "-f", "raw", *cmds, nbd_uri], check=True, capture_output=True)
    shutil.rmtree(scratch)


def main():
    # BENCH_DATA_DIR: where the server keeps its data (e.g. an XFS or btrfs
    # mount, where snapshot copies are reflinks; or /dev/shm, to see what the
    # software does when the disk is not the bound).
    data_dir = Path(tempfile.mkdtemp(prefix="recoverite-bench-backup-", dir=os.environ.get("BENCH_DATA_DIR")))
    log = open(data_dir / "server.log", "wb")
    proc = subprocess.Popen([str(BIN), "serve", "--data-dir", str(data_dir), "--port", "0", "--dns-port", "0", "--nbd-port", "0"],
                            stdout=log, stderr=log)
    try:
        conn = data_dir / "connection.json"
        while not conn.exists():
            time.sleep(0.02)
        c = json.loads(conn.read_text())
        arm, sub = Arm(c), c["subscriptionId"]
        rg = f"/subscriptions/{sub}/resourceGroups/bench"
        net, comp = f"{rg}/providers/Microsoft.Network", f"{rg}/providers/Microsoft.Compute"
        v = f"{rg}/providers/Microsoft.RecoveryServices/vaults/bench-vault"
        arm.call("PUT", rg, {"location": "eastus"}, "2025-04-01")
        arm.call("PUT", f"/subscriptions/{sub}/resourceGroups/bench-restore", {"location": "eastus"}, "2025-04-01")
        arm.call("PUT", f"{net}/virtualNetworks/app", {"location": "eastus", "properties": {
            "addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}, "subnets": [{"name": "vms", "properties": {"addressPrefix": "10.0.1.0/24"}}]}}, "2026-03-01")
        nic = arm.call("PUT", f"{net}/networkInterfaces/vm-nic", {"location": "eastus", "properties": {
            "ipConfigurations": [{"name": "c", "properties": {"subnet": {"id": f"{net}/virtualNetworks/app/subnets/vms"}}}]}}, "2026-03-01")
        arm.call("PUT", f"{comp}/disks/vm-os", {"location": "eastus", "sku": {"name": "Premium_LRS"},
            "properties": {"creationData": {"createOption": "Empty"}, "diskSizeGB": 1, "osType": "Linux"}}, "2026-03-02")
        arm.call("PUT", f"{comp}/virtualMachines/vm", {"location": "eastus", "properties": {
            "hardwareProfile": {"vmSize": "Standard_D2s_v3"},
            "storageProfile": {"osDisk": {"createOption": "Attach", "osType": "Linux", "managedDisk": {"id": f"{comp}/disks/vm-os"}},
                               "dataDisks": [{"lun": 0, "createOption": "Empty", "diskSizeGB": DISK_GB, "managedDisk": {"storageAccountType": "Premium_LRS"}}]},
            "networkProfile": {"networkInterfaces": [{"id": nic["id"]}]}}}, "2026-04-01")
        arm.call("PUT", f"{rg}/providers/Microsoft.Storage/storageAccounts/benchstaging", {"location": "eastus", "kind": "StorageV2", "sku": {"name": "Standard_LRS"}}, "2026-09-01")
        arm.call("PUT", v, {"location": "eastus", "sku": {"name": "Standard"}}, "2026-11-01")
        disk = arm.call("GET", f"{comp}/disks/vm_DataDisk_0", api="2026-03-02")
        nbd = arm.call("GET", "/recoverite/nbd")["endpoint"]
        image = data_dir / "disks" / f"{disk['properties']['uniqueId']}.img"
        item = f"{v}/backupFabrics/Azure/protectionContainers/iaasvmcontainer;iaasvmcontainerv2;bench;vm/protectedItems/vm;iaasvmcontainerv2;bench;vm"
        policy = arm.call("GET", f"{v}/backupPolicies/DefaultPolicy", api=BK)
        arm.call("PUT", item, {"properties": {"protectedItemType": "Microsoft.Compute/virtualMachines",
                                              "sourceResourceId": f"{comp}/virtualMachines/vm", "policyId": policy["id"]}}, BK)

        steps = []

        def backup():
            # Azure takes at most nine on-demand backups of a VM a day: the
            # emulated clock moves three hours before each one.
            arm.call("POST", "/recoverite/clock/advance", {"hours": 3})
            while True:
                t = time.time()
                try:
                    h = arm.call("POST", f"{item}/backup", {"properties": {"objectType": "IaasVMBackupRequest"}}, BK, headers=True)
                    break
                except urllib.error.HTTPError as e:
                    if e.code != 409:  # the policy's scheduled backup is running
                        raise
                    time.sleep(0.5)
            op = h["azure-asyncoperation"].split("?")[0].rsplit("/", 1)[-1]
            job_url = f"{v}/backupJobs/" + arm.call("GET", f"{v}/backupOperations/{op}", api=BK)["properties"]["jobId"]
            # The backup runs after its 202, as in Azure: `az backup job wait`.
            while (job := arm.call("GET", job_url, api=BK))["properties"]["status"] == "InProgress":
                time.sleep(0.02)
            took = time.time() - t
            # Each task's own time, from its start and end (seven fractional
            # digits; the emulated clock runs at wall-clock speed here).
            tasks = {x["taskId"]: seconds(x["startTime"], x["endTime"])
                     for x in job["properties"]["extendedInfo"]["tasksList"]}
            steps.append(tasks)
            return took, dict(job["properties"]["extendedInfo"]["propertyBag"], **{k: f"{v:.2f} s" for k, v in tasks.items()})

        print(f"disk {DISK_GB} GiB with {DATA // MiB} MiB of random data; ten backups after rewriting {CHURN // MiB} MiB each")
        offsets = [o * MiB for o in range(0, DISK_GB * 1024, max(1, DISK_GB * 1024 // (DATA // MiB)))][: DATA // MiB]
        rewrite(image, offsets, 0)
        took, bag = backup()
        print(f"recoverite first backup: {took:.2f} s, {DATA / MiB / took:.0f} MB/s of data; {bag}")

        # restic, same image, same run.
        repo = data_dir / "restic-repo"
        env = dict(os.environ, RESTIC_PASSWORD="bench-password-0123456789")
        subprocess.run(["restic", "init", "-q", "--repo", str(repo)], env=env, check=True, capture_output=True)
        t = time.time()
        subprocess.run(["restic", "backup", "-q", "--repo", str(repo), str(image)], env=env, check=True, capture_output=True)
        restic_first = time.time() - t
        print(f"restic first backup:     {restic_first:.2f} s, {DATA / MiB / restic_first:.0f} MB/s of data (it reads the whole {DISK_GB} GiB image)")

        distinct = DATA
        ours, theirs = [], []
        for n in range(10):
            changed = offsets[n * (len(offsets) // 10): n * (len(offsets) // 10) + CHURN // MiB]
            write_through_nbd(f"{nbd}/bench/vm_DataDisk_0", changed, data_dir / "scratch")
            distinct += len(changed) * MiB
            took, bag = backup()
            if n == 0:
                print(f"recoverite incremental backup: {took:.2f} s; {bag}")
            ours.append(took)
            t = time.time()
            subprocess.run(["restic", "backup", "-q", "--repo", str(repo), str(image)], env=env, check=True, capture_output=True)
            theirs.append(time.time() - t)
        vault_tier = du(data_dir / "backup")
        print(f"ten incremental backups: recoverite {sum(ours) / 10:.2f} s each ({CHURN / MiB / (sum(ours) / 10):.0f} MB/s of changed data), restic {sum(theirs) / 10:.2f} s each")
        print(f"vault tier after 11 backups: {vault_tier / MiB:.0f} MiB for {distinct / MiB:.0f} MiB of distinct changed data "
              f"({vault_tier / distinct:.2f}x; random data does not compress); restic repository {du(repo) / MiB:.0f} MiB")

        points = arm.call("GET", f"{item}/recoveryPoints", api=BK)["value"]
        newest = points[0]["name"]

        def restore(point, target):
            t = time.time()
            h = arm.call("POST", f"{item}/recoveryPoints/{point}/restore", {"properties": {
                "objectType": "IaasVMRestoreRequest", "recoveryPointId": point, "recoveryType": "RestoreDisks",
                "sourceResourceId": f"{comp}/virtualMachines/vm", "storageAccountId": f"{rg}/providers/Microsoft.Storage/storageAccounts/benchstaging",
                "region": "eastus", "restoreDiskLunList": [0], "targetResourceGroupId": f"/subscriptions/{sub}/resourceGroups/{target}"}}, BK, headers=True)
            # The restore runs after its 202: until its job ends.
            op = h["azure-asyncoperation"].split("?")[0].rsplit("/", 1)[-1]
            job_url = f"{v}/backupJobs/" + arm.call("GET", f"{v}/backupOperations/{op}", api=BK)["properties"]["jobId"]
            while (job := arm.call("GET", job_url, api=BK))["properties"]["status"] == "InProgress":
                time.sleep(0.02)
            assert job["properties"]["status"] == "Completed", job
            return time.time() - t

        snap = restore(newest, "bench-restore")
        print(f"restore from the snapshot tier: {snap:.2f} s ({DATA / MiB / snap:.0f} MB/s of data)")
        arm.call("POST", "/recoverite/clock/advance", {"hours": 49})
        vault = restore(newest, "bench-restore")
        print(f"restore from the vault tier:    {vault:.2f} s ({DATA / MiB / vault:.0f} MB/s of data)")
        # The targets, from this run (MB/s of data, 1 MB = 2^20 bytes).
        first = steps[0]
        for what, value, target, ok in [
            ("snapshot of the first backup (s)", first["Take Snapshot"], "<= 1", first["Take Snapshot"] <= 1),
            ("vault transfer of the first backup (MB/s)", DATA / MiB / first["Transfer data to vault"], ">= 500",
             DATA / MiB / first["Transfer data to vault"] >= 500),
            ("vault tier / distinct changed bytes", vault_tier / distinct, "<= 1.1", vault_tier / distinct <= 1.1),
            ("restore from the snapshot tier (MB/s)", DATA / MiB / snap, ">= 1000", DATA / MiB / snap >= 1000),
            ("restore from the vault tier (MB/s)", DATA / MiB / vault, ">= 500", DATA / MiB / vault >= 500),
        ]:
            print(f"target {what:<44} {value:>9.2f}  {target:<7} {'met' if ok else 'NOT met'}")
        if os.environ.get("BENCH_RESTIC_RESTORE", "1") == "0":
            print("restic restore: skipped (BENCH_RESTIC_RESTORE=0; restic 0.14 writes the whole image, zeros included)")
            return
        target = data_dir / "restic-restore"
        sparse = "--sparse" in subprocess.run(["restic", "restore", "--help"], capture_output=True, text=True).stdout
        t = time.time()
        r = subprocess.run(["restic", "restore", "-q", "latest", "--repo", str(repo), "--target", str(target)] + (["--sparse"] if sparse else []),
                           env=env, capture_output=True, text=True)
        rr = time.time() - t
        if r.returncode == 0:
            print(f"restic restore:                 {rr:.2f} s ({DATA / MiB / rr:.0f} MB/s of data; "
                  f"{'sparse' if sparse else 'it writes the whole image'})")
        else:
            print(f"restic restore failed after {rr:.2f} s: {r.stderr.strip()[-200:]}")
    except Exception:
        log.flush()
        tail = (data_dir / "server.log").read_text(errors="replace").splitlines()[-30:]
        print("server log:\n" + "\n".join(tail))
        raise
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
