"""Backup's two tiers on the emulator clock (issue 12): once a point's
instant-restore days are over it is only in the vault tier, and a restore
comes from there, with the same bytes. Runs after the other tests because
it moves emulated time forward."""

import shutil
import subprocess

import pytest
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.recoveryservices import RecoveryServicesClient
from azure.mgmt.recoveryservicesbackup import RecoveryServicesBackupClient
from azure.mgmt.storage import StorageManagementClient

import asr
from conftest import backup_and_wait, restore_and_wait

RG, VAULT, VM = "tier-rg", "tier-vault", "tiervm"
CONTAINER, ITEM = f"iaasvmcontainer;iaasvmcontainerv2;{RG};{VM}", f"vm;iaasvmcontainerv2;{RG};{VM}"
QEMU_IO = shutil.which("qemu-io")


@pytest.mark.skipif(QEMU_IO is None, reason="qemu-io (qemu-utils) is not installed")
def test_restore_from_the_vault_tier_after_the_instant_restore_days(server):
    asr.groups(server, (RG, "westus"))
    vnet = server.client(NetworkManagementClient).virtual_networks.begin_create_or_update(RG, "tier-vnet", {"location": "westus", "properties": {
        "addressSpace": {"addressPrefixes": ["10.62.0.0/16"]}, "subnets": [{"name": "vms", "properties": {"addressPrefix": "10.62.1.0/24"}}]}}).result()
    vm = asr.vm(server, RG, VM, vnet.subnets[0].id, os_gb=1, data_gb=4, location="westus")
    server.client(RecoveryServicesClient).vaults.begin_create_or_update(RG, VAULT, {"location": "westus", "sku": {"name": "Standard"}}).result()
    staging = server.client(StorageManagementClient).storage_accounts.begin_create(RG, "tierstaging", {
        "location": "westus", "kind": "StorageV2", "sku": {"name": "Standard_LRS"}}).result()
    bk = server.client(RecoveryServicesBackupClient)
    nbd = server.http("GET", "/recoverite/nbd").json()["endpoint"]

    def io(disk, *cmds):
        out = subprocess.run([QEMU_IO, "-f", "raw", *[x for c in cmds for x in ("-c", c)], f"{nbd}/{RG}/{disk}"],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0 and "Pattern verification failed" not in out.stdout + out.stderr, out.stdout + out.stderr

    bk.protected_items.begin_create_or_update(VAULT, RG, "Azure", CONTAINER, ITEM, {"properties": {
        "protectedItemType": "Microsoft.Compute/virtualMachines", "sourceResourceId": vm.id,
        "policyId": bk.protection_policies.get(VAULT, RG, "DefaultPolicy").id}}).result()
    io(f"{VM}_DataDisk_0", "write -P 0x7e 1M 3M")
    backup_and_wait(bk, VAULT, RG, CONTAINER, ITEM)
    io(f"{VM}_DataDisk_0", "write -P 0x11 1M 3M")  # after the point
    [point] = list(bk.recovery_points.list(VAULT, RG, "Azure", CONTAINER, ITEM))
    assert [t.type for t in point.properties.recovery_point_tier_details] == ["InstantRP", "HardenedRP"]

    # DefaultPolicy keeps instant-restore snapshots 2 days.
    r = server.http("POST", "/recoverite/clock/advance", json={"hours": 49})
    assert r.status_code == 200, r.text
    point = bk.recovery_points.get(VAULT, RG, "Azure", CONTAINER, ITEM, point.name)
    assert [t.type for t in point.properties.recovery_point_tier_details] == ["HardenedRP"]
    restore_and_wait(bk, VAULT, RG, CONTAINER, ITEM, point.name, {"properties": {
        "objectType": "IaasVMRestoreRequest", "recoveryPointId": point.name, "recoveryType": "RestoreDisks",
        "sourceResourceId": vm.id, "targetResourceGroupId": f"/subscriptions/{server.sub}/resourceGroups/{RG}",
        "storageAccountId": staging.id, "region": "westus", "restoreDiskLunList": [0]}})
    [job] = list(bk.backup_jobs.list(VAULT, RG, filter="operation eq 'Restore'"))
    assert job.properties.extended_info.property_bag["Restore source"] == "Vault"
    restored = f"{VM}_DataDisk_0-{point.name[-8:]}"
    assert restored in [d.name for d in server.client(ComputeManagementClient).disks.list_by_resource_group(RG)]
    io(restored, "read -P 0 0 1M", "read -P 0x7e 1M 3M")

    # The snapshot's restore point in AzureBackupRG_westus_1 went with the instant-restore days.
    import time as wall
    compute = server.client(ComputeManagementClient)
    [coll] = [c for c in compute.restore_point_collections.list("AzureBackupRG_westus_1") if c.name.startswith(f"AzureBackup_{VM}_")]
    deadline = wall.time() + 15
    while wall.time() < deadline:
        names = [p.name for p in compute.restore_point_collections.get("AzureBackupRG_westus_1", coll.name, expand="restorePoints").restore_points]
        if point.name not in names:
            break
        wall.sleep(0.3)
    assert point.name not in names, names

    # The policy's schedule ran while the clock moved on (DefaultPolicy: daily).
    deadline = wall.time() + 15
    while wall.time() < deadline:
        scheduled = [j for j in bk.backup_jobs.list(VAULT, RG, filter="operation eq 'Backup'") if j.properties.is_user_triggered is False]
        # Shown InProgress while it runs, as Azure shows it.
        if scheduled and scheduled[0].properties.status != "InProgress":
            break
        wall.sleep(0.3)
    assert scheduled and scheduled[0].properties.status == "Completed", [j.properties for j in bk.backup_jobs.list(VAULT, RG)]
    # Thirty days on, the first point has expired and is pruned; newer ones stay.
    r = server.http("POST", "/recoverite/clock/advance", json={"hours": 31 * 24})
    assert r.status_code == 200, r.text
    deadline = wall.time() + 15
    while wall.time() < deadline:
        names = [p.name for p in bk.recovery_points.list(VAULT, RG, "Azure", CONTAINER, ITEM)]
        if point.name not in names:
            break
        wall.sleep(0.3)
    assert point.name not in names and names, names
