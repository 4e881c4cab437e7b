"""kill -9 during Backup (issue 12): a backup or a restore cut short leaves
no half-made recovery point and no half-written restored disk; after the
restart every listed point restores exactly, and the next backup works."""

import random
import shutil
import subprocess
import time

import pytest
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.recoveryservices import RecoveryServicesClient
from azure.mgmt.recoveryservicesbackup import RecoveryServicesBackupClient
from azure.mgmt.storage import StorageManagementClient

import asr
from conftest import backup_and_wait, kill_during, restore_and_wait, wait_no_running_backups

RG, VAULT, VM = "bcrash-rg", "bcrash-vault", "crashvm"
CONTAINER, ITEM = f"iaasvmcontainer;iaasvmcontainerv2;{RG};{VM}", f"vm;iaasvmcontainerv2;{RG};{VM}"
QEMU_IO = shutil.which("qemu-io")
pytestmark = pytest.mark.skipif(QEMU_IO is None, reason="qemu-io (qemu-utils) is not installed")
PATTERN = ["read -P 0x5a 0 96M", "read -P 0 96M 32M", "read -P 0x3c 512M 64M"]


def io(server, path, *cmds):
    nbd = server.http("GET", "/recoverite/nbd").json()["endpoint"]
    out = subprocess.run([QEMU_IO, "-f", "raw", *[x for c in cmds for x in ("-c", c)], f"{nbd}/{path}"],
                         capture_output=True, text=True, timeout=120)
    return out.returncode == 0 and "Pattern verification failed" not in out.stdout + out.stderr, out.stdout + out.stderr


def test_kill_9_during_backups_and_restores(server):
    rng = random.Random(12)
    asr.groups(server, (RG, "eastus"), ("bcrash-restore", "eastus"))
    vnet = server.client(NetworkManagementClient).virtual_networks.begin_create_or_update(RG, "v", {"location": "eastus", "properties": {
        "addressSpace": {"addressPrefixes": ["10.64.0.0/16"]}, "subnets": [{"name": "vms", "properties": {"addressPrefix": "10.64.1.0/24"}}]}}).result()
    vm = asr.vm(server, RG, VM, vnet.subnets[0].id, os_gb=1, data_gb=1)
    server.client(RecoveryServicesClient).vaults.begin_create_or_update(RG, VAULT, {"location": "eastus", "sku": {"name": "Standard"}}).result()
    staging = server.client(StorageManagementClient).storage_accounts.begin_create(RG, "bcrashstaging", {
        "location": "eastus", "kind": "StorageV2", "sku": {"name": "Standard_LRS"}}).result()
    bk = lambda: server.client(RecoveryServicesBackupClient)
    bk().protected_items.begin_create_or_update(VAULT, RG, "Azure", CONTAINER, ITEM, {"properties": {
        "protectedItemType": "Microsoft.Compute/virtualMachines", "sourceResourceId": vm.id,
        "policyId": bk().protection_policies.get(VAULT, RG, "DefaultPolicy").id}}).result()
    ok, out = io(server, f"{RG}/{VM}_DataDisk_0", "write -P 0x5a 0 96M", "write -P 0x3c 512M 64M")
    assert ok, out

    def backup():
        return backup_and_wait(bk(), VAULT, RG, CONTAINER, ITEM)

    # Backups cut short at random moments. One accepted before the kill runs
    # again from the start once the service is back (its job stays
    # InProgress meanwhile); its point, if it makes one, is whole.
    for _ in range(6):
        wait_no_running_backups(bk(), VAULT, RG)
        kill_during(server, backup, rng.uniform(0.0, 1.2))
    wait_no_running_backups(bk(), VAULT, RG)
    states = [j.properties.status for j in bk().backup_jobs.list(VAULT, RG, filter="operation eq 'Backup'")]
    assert "InProgress" not in states, states
    survived = len(list(bk().recovery_points.list(VAULT, RG, "Azure", CONTAINER, ITEM)))
    print(f"{survived} of 6 backups cut short left a point")
    t0 = time.time()
    assert backup().properties.status == "Completed"  # the next backup works
    print(f"a whole backup takes {time.time() - t0:.2f} s")
    points = list(bk().recovery_points.list(VAULT, RG, "Azure", CONTAINER, ITEM))
    assert points, "at least the last backup made a point"

    def restore(point, target):
        return restore_and_wait(bk(), VAULT, RG, CONTAINER, ITEM, point, {"properties": {
            "objectType": "IaasVMRestoreRequest", "recoveryPointId": point, "recoveryType": "RestoreDisks",
            "sourceResourceId": vm.id, "storageAccountId": staging.id, "region": "eastus", "restoreDiskLunList": [0],
            "targetResourceGroupId": f"/subscriptions/{server.sub}/resourceGroups/{target}"}})

    # Restores cut short: whatever disk exists afterwards holds the whole point.
    for _ in range(3):
        kill_during(server, lambda: restore(points[-1].name, "bcrash-restore"), rng.uniform(0.0, 0.3))
    # A restore cut short is not run again: its job ends Failed once the service is back.
    wait_no_running_backups(bk(), VAULT, RG)
    ends = {j.properties.status for j in bk().backup_jobs.list(VAULT, RG, filter="operation eq 'Restore'")}
    assert ends <= {"Completed", "Failed"}, ends
    for d in server.client(ComputeManagementClient).disks.list_by_resource_group("bcrash-restore"):
        if d.name.startswith(f"{VM}_DataDisk_0"):
            ok, out = io(server, f"bcrash-restore/{d.name}", *PATTERN)
            assert ok, (d.name, out)

    # Every point that survived is whole: it restores exactly.
    for p in points:
        restore(p.name, RG)
    restored = [d.name for d in server.client(ComputeManagementClient).disks.list_by_resource_group(RG)
                if d.name.startswith(f"{VM}_DataDisk_0-")]
    assert len(restored) >= len(points)
    for name in restored:
        ok, out = io(server, f"{RG}/{name}", *PATTERN)
        assert ok, (name, out)
    item = bk().protected_items.get(VAULT, RG, "Azure", CONTAINER, ITEM)
    assert item.properties["protectionState"] == "Protected"
    assert item.properties["extendedInfo"]["recoveryPointCount"] == len(points)
