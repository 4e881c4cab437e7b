"""Cross-region restore (issue 12) through the passive-stamp SDK
(`azure-mgmt-recoveryservicesbackup-passivestamp`, api-version 2021-11-15):
with GeoRedundant storage and cross-region restore on, a point's vault-tier
data reaches the paired region once it is 12 hours old on the emulator
clock; then the secondary region lists the item and the point, hands out an
access token, restores the point's disks into a resource group of the paired
region and reports the job there. Runs late: it moves emulated time."""

import shutil
import subprocess
import time

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.recoveryservices import RecoveryServicesClient
from azure.mgmt.recoveryservicesbackup import RecoveryServicesBackupClient
from azure.mgmt.recoveryservicesbackup.passivestamp import RecoveryServicesBackupPassiveClient
from azure.mgmt.recoveryservicesbackup.passivestamp.models import (
    CrossRegionRestoreRequest, CrrJobRequest, IaasVMRestoreRequest)
from azure.mgmt.storage import StorageManagementClient

import asr
from conftest import backup_and_wait

RG, VAULT, VM = "crr-rg", "crr-vault", "crrvm"
CONTAINER, ITEM = f"iaasvmcontainer;iaasvmcontainerv2;{RG};{VM}", f"vm;iaasvmcontainerv2;{RG};{VM}"
QEMU_IO = shutil.which("qemu-io")
pytestmark = pytest.mark.skipif(QEMU_IO is None, reason="qemu-io (qemu-utils) is not installed")


def test_points_reach_the_paired_region_and_restore_there(server):
    asr.groups(server, (RG, "eastus"), ("crr-west", "westus"))
    net = server.client(NetworkManagementClient)
    vnet = net.virtual_networks.begin_create_or_update(RG, "crr-vnet", {"location": "eastus", "properties": {
        "addressSpace": {"addressPrefixes": ["10.73.0.0/16"]}, "subnets": [
            {"name": "vms", "properties": {"addressPrefix": "10.73.1.0/24"}},
            {"name": "pe", "properties": {"addressPrefix": "10.73.2.0/24"}}]}}).result()
    west_vnet = net.virtual_networks.begin_create_or_update("crr-west", "crr-west-vnet", {"location": "westus", "properties": {
        "addressSpace": {"addressPrefixes": ["10.74.0.0/16"]}, "subnets": [{"name": "pe", "properties": {"addressPrefix": "10.74.2.0/24"}}]}}).result()
    vm = asr.vm(server, RG, VM, vnet.subnets[0].id, os_gb=1, data_gb=2)
    pe_vm = asr.vm(server, RG, "crrvm-pe", vnet.subnets[0].id, os_gb=1)
    rs = server.client(RecoveryServicesClient)
    vault = rs.vaults.begin_create_or_update(RG, VAULT, {"location": "eastus", "sku": {"name": "Standard"}}).result()
    # A second vault reached through a Backup private endpoint (made before it protects anything).
    pe_vault = rs.vaults.begin_create_or_update(RG, "crr-pe-vault", {"location": "eastus", "sku": {"name": "Standard"}}).result()

    def endpoint(name, location, subnet_id, group):
        net.private_endpoints.begin_create_or_update(RG, name, {"location": location, "properties": {
            "subnet": {"id": subnet_id}, "privateLinkServiceConnections": [{"name": "c", "properties": {
                "privateLinkServiceId": pe_vault.id, "groupIds": [group]}}]}}).result()
    endpoint("crr-pe", "eastus", vnet.subnets[1].id, "AzureBackup")
    storage = server.client(StorageManagementClient)
    west = storage.storage_accounts.begin_create("crr-west", "crrweststaging", {
        "location": "westus", "kind": "StorageV2", "sku": {"name": "Standard_LRS"}}).result()
    east = storage.storage_accounts.begin_create(RG, "crreaststaging", {
        "location": "eastus", "kind": "StorageV2", "sku": {"name": "Standard_LRS"}}).result()
    bk = server.client(RecoveryServicesBackupClient)
    crr = server.client(RecoveryServicesBackupPassiveClient)
    bk.backup_resource_storage_configs_non_crr.update(VAULT, RG, {"properties": {
        "storageType": "GeoRedundant", "crossRegionRestoreFlag": True}})
    assert crr.backup_resource_storage_configs.get(VAULT, RG).properties.cross_region_restore_flag is True

    bk.protected_items.begin_create_or_update(VAULT, RG, "Azure", CONTAINER, ITEM, {"properties": {
        "protectedItemType": "Microsoft.Compute/virtualMachines", "sourceResourceId": vm.id,
        "policyId": bk.protection_policies.get(VAULT, RG, "DefaultPolicy").id}}).result()
    pe_container, pe_item = f"iaasvmcontainer;iaasvmcontainerv2;{RG};crrvm-pe", f"vm;iaasvmcontainerv2;{RG};crrvm-pe"
    bk.backup_resource_storage_configs_non_crr.update("crr-pe-vault", RG, {"properties": {
        "storageType": "GeoRedundant", "crossRegionRestoreFlag": True}})
    bk.protected_items.begin_create_or_update("crr-pe-vault", RG, "Azure", pe_container, pe_item, {"properties": {
        "protectedItemType": "Microsoft.Compute/virtualMachines", "sourceResourceId": pe_vm.id,
        "policyId": bk.protection_policies.get("crr-pe-vault", RG, "DefaultPolicy").id}}).result()
    backup_and_wait(bk, "crr-pe-vault", RG, pe_container, pe_item)
    pe_point = next(iter(bk.recovery_points.list("crr-pe-vault", RG, "Azure", pe_container, pe_item)))
    nbd = server.http("GET", "/recoverite/nbd").json()["endpoint"]

    def io(rg, disk, *cmds):
        out = subprocess.run([QEMU_IO, "-f", "raw", *[x for c in cmds for x in ("-c", c)], f"{nbd}/{rg}/{disk}"],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0 and "Pattern verification failed" not in out.stdout + out.stderr, out.stdout + out.stderr

    io(RG, f"{VM}_DataDisk_0", "write -P 0x3c 0 1M", "write -P 0x4d 1M 256k")
    backup_and_wait(bk, VAULT, RG, CONTAINER, ITEM)
    point = next(iter(bk.recovery_points.list(VAULT, RG, "Azure", CONTAINER, ITEM)))

    # Not in the paired region yet.
    assert list(crr.recovery_points_crr.list(VAULT, RG, "Azure", CONTAINER, ITEM)) == []
    assert list(crr.backup_protected_items_crr.list(VAULT, RG)) == []
    aad = crr.aad_properties.get("westus")
    with pytest.raises(HttpResponseError) as e:
        crr.recovery_points.get_access_token(VAULT, RG, "Azure", CONTAINER, ITEM, point.name, aad)
    assert e.value.status_code == 404 and "12 hours" in e.value.error.message

    # Twelve hours later (emulated) the vault tier's copy is there.
    assert server.http("POST", "/recoverite/clock/advance", json={"minutes": 13 * 60}).status_code == 200
    deadline = time.time() + 30
    while time.time() < deadline and not list(crr.recovery_points_crr.list(VAULT, RG, "Azure", CONTAINER, ITEM)):
        time.sleep(0.5)
    secondary = list(crr.recovery_points_crr.list(VAULT, RG, "Azure", CONTAINER, ITEM))
    assert [p.name for p in secondary] == [point.name]
    assert [t.type for t in secondary[0].properties.recovery_point_tier_details] == ["HardenedRP"]
    items = list(crr.backup_protected_items_crr.list(VAULT, RG, filter="backupManagementType eq 'AzureIaasVM'"))
    assert [i.name for i in items] == [ITEM]

    # azure-cli's chain: AAD properties → access token → backupCrossRegionRestore
    # → backupCrrOperationsStatus → jobId → backupCrrJob.
    token = crr.recovery_points.get_access_token(VAULT, RG, "Azure", CONTAINER, ITEM, point.name, aad).properties
    token.object_type = "CrrAccessToken"
    target_rg = f"/subscriptions/{server.sub}/resourceGroups/crr-west"

    def request(account):
        return CrossRegionRestoreRequest(cross_region_restore_access_details=token, restore_request=IaasVMRestoreRequest(
            recovery_point_id=point.name, recovery_type="RestoreDisks", source_resource_id=vm.id,
            target_resource_group_id=target_rg, storage_account_id=account.id, region="westus"))
    with pytest.raises(HttpResponseError) as e:  # the staging account must be in the paired region
        crr.cross_region_restore.begin_trigger("westus", request(east), polling=False).result()
    assert e.value.error.code == "BMSUserErrorStorageAccountRegionMismatch"
    def restored(body, vault_id=vault.id):
        """The restore runs after its 202, as in Azure: its job in the
        secondary region, followed until it ends."""
        headers = crr.cross_region_restore.begin_trigger(
            "westus", body, polling=False, cls=lambda resp, b, h: resp.http_response.headers).result()
        op = headers["Azure-AsyncOperation"].split("?")[0].rstrip("/").split("/")[-1]
        status = crr.crr_operation_status.get("westus", op)
        assert status.status == "Succeeded"
        ask = CrrJobRequest(resource_id=vault_id, job_name=status.properties.job_id)
        until = time.time() + 120
        while (job := crr.backup_crr_job_details.get("westus", ask)).properties.status == "InProgress":
            assert time.time() < until, "cross-region restore still InProgress"
            time.sleep(0.1)
        return job

    job = restored(request(west))
    assert job.properties.operation == "CrossRegionRestore" and job.properties.status == "Completed", job.properties
    listed = list(crr.backup_crr_jobs.list("westus", CrrJobRequest(resource_id=vault.id)))
    assert [j.name for j in listed] == [job.name]
    # The primary region's jobs do not show it.
    assert "CrossRegionRestore" not in [j.properties.operation for j in bk.backup_jobs.list(VAULT, RG)]

    disks = {d.name: d for d in server.client(ComputeManagementClient).disks.list_by_resource_group("crr-west")}
    assert len(disks) == 2 and all(d.location == "westus" for d in disks.values()), disks
    data = next(n for n in disks if n.startswith(f"{VM}_DataDisk_0"))
    io("crr-west", data, "read -P 0x3c 0 1M", "read -P 0x4d 1M 256k", "read -P 0 1280k 256k")

    # AlternateLocation: a VM in the paired region on the restored disks, its
    # NIC in a subnet there; the restored data disk holds the point's bytes.
    alt_vm = f"{target_rg}/providers/Microsoft.Compute/virtualMachines/crrvm-west"
    alt = CrossRegionRestoreRequest(cross_region_restore_access_details=token, restore_request=IaasVMRestoreRequest(
        recovery_point_id=point.name, recovery_type="AlternateLocation", source_resource_id=vm.id,
        target_resource_group_id=target_rg, storage_account_id=west.id, region="westus",
        target_virtual_machine_id=alt_vm, subnet_id=west_vnet.subnets[0].id))
    assert restored(alt).properties.status == "Completed"
    made = server.client(ComputeManagementClient).virtual_machines.get("crr-west", "crrvm-west")
    assert made.location == "westus" and len(made.storage_profile.data_disks) == 1
    alt_data = made.storage_profile.data_disks[0].managed_disk.id.rsplit("/", 1)[1]
    io("crr-west", alt_data, "read -P 0x3c 0 1M", "read -P 0x4d 1M 256k")
    jobs = [j for j in crr.backup_crr_jobs.list("westus", CrrJobRequest(resource_id=vault.id))]
    assert len(jobs) == 2
    no_subnet = CrossRegionRestoreRequest(cross_region_restore_access_details=token, restore_request=IaasVMRestoreRequest(
        recovery_point_id=point.name, recovery_type="AlternateLocation", source_resource_id=vm.id,
        target_resource_group_id=target_rg, storage_account_id=west.id, region="westus", target_virtual_machine_id=alt_vm))
    with pytest.raises(HttpResponseError) as e:
        crr.cross_region_restore.begin_trigger("westus", no_subnet, polling=False).result()
    assert e.value.status_code == 400

    # Documents 001/004: a vault reached through private endpoints restores
    # across regions through a secondary-region endpoint.
    while not list(crr.recovery_points_crr.list("crr-pe-vault", RG, "Azure", pe_container, pe_item)):
        assert time.time() < deadline + 30
        time.sleep(0.5)
    pe_token = crr.recovery_points.get_access_token("crr-pe-vault", RG, "Azure", pe_container, pe_item, pe_point.name, aad).properties
    pe_token.object_type = "CrrAccessToken"
    pe_request = CrossRegionRestoreRequest(cross_region_restore_access_details=pe_token, restore_request=IaasVMRestoreRequest(
        recovery_point_id=pe_point.name, recovery_type="RestoreDisks", source_resource_id=pe_vm.id,
        target_resource_group_id=target_rg, storage_account_id=west.id, region="westus"))
    with pytest.raises(HttpResponseError) as e:
        crr.cross_region_restore.begin_trigger("westus", pe_request, polling=False).result()
    assert e.value.error.code == "BMSUserErrorCrrSecondaryPrivateEndpointMissing" and "AzureBackup_secondary" in e.value.error.message
    endpoint("crr-pe-secondary", "westus", west_vnet.subnets[0].id, "AzureBackup_secondary")
    assert restored(pe_request, pe_vault.id).properties.status == "Completed"
    restored = [d for d in server.client(ComputeManagementClient).disks.list_by_resource_group("crr-west") if d.name.startswith("crrvm-pe-os")]
    assert len(restored) == 1 and restored[0].location == "westus"
