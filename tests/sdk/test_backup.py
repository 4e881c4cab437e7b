"""Azure Backup for Azure VMs on real bytes (issue 12, first part), through
`azure-mgmt-recoveryservicesbackup`: default policies and policy rules,
discovery, protection, two on-demand backups of different bytes written
with qemu-io, the job chain azure-cli follows, restore of the earlier point
checked byte for byte, roles, soft delete and undelete, and the vault rules
that follow from having items."""

import shutil
import subprocess
import uuid

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.recoveryservices import RecoveryServicesClient
from azure.mgmt.recoveryservicesbackup import RecoveryServicesBackupClient
from azure.mgmt.storage import StorageManagementClient

import asr
from conftest import backup_and_wait, restore_and_wait, wait_job

RG, VAULT, VM = "bkp-rg", "bkp-vault", "bkvm"
CONTAINER, ITEM = f"iaasvmcontainer;iaasvmcontainerv2;{RG};{VM}", f"vm;iaasvmcontainerv2;{RG};{VM}"
QEMU_IO = shutil.which("qemu-io")
pytestmark = pytest.mark.skipif(QEMU_IO is None, reason="qemu-io (qemu-utils) is not installed")


@pytest.fixture(scope="module")
def env(server):
    asr.groups(server, (RG, "eastus"), ("bkp-restore", "eastus"))
    net = server.client(NetworkManagementClient)
    vnet = net.virtual_networks.begin_create_or_update(RG, "bkp-vnet", {"location": "eastus", "properties": {
        "addressSpace": {"addressPrefixes": ["10.61.0.0/16"]},
        "subnets": [{"name": "vms", "properties": {"addressPrefix": "10.61.1.0/24"}},
                    {"name": "pe", "properties": {"addressPrefix": "10.61.2.0/24"}}]}}).result()
    vm = asr.vm(server, RG, VM, vnet.subnets[0].id, os_gb=2, data_gb=8)
    rs = server.client(RecoveryServicesClient)
    vault = rs.vaults.begin_create_or_update(RG, VAULT, {"location": "eastus", "sku": {"name": "Standard"}}).result()
    staging = server.client(StorageManagementClient).storage_accounts.begin_create(RG, "bkpstaging", {
        "location": "eastus", "kind": "StorageV2", "sku": {"name": "Standard_LRS"}}).result()
    return {"bk": server.client(RecoveryServicesBackupClient), "vm": vm, "vault": vault, "vnet": vnet,
            "staging": staging, "nbd": server.http("GET", "/recoverite/nbd").json()["endpoint"]}


def io(env, rg, disk, *cmds):
    args = [QEMU_IO, "-f", "raw"]
    for c in cmds:
        args += ["-c", c]
    out = subprocess.run(args + [f"{env['nbd']}/{rg}/{disk}"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "Pattern verification failed" not in out.stdout + out.stderr, out.stdout + out.stderr


# Azure answers protectedItemType "Microsoft.Compute/virtualMachines", a
# discriminator nested two levels deep that this SDK leaves unresolved
# (the properties stay a mapping), so items are read by their wire names.

def follow_job(bk, headers):
    """azure-cli's chain: the Azure-AsyncOperation's last segment → backupOperations/{id} → jobId → the job, waited for."""
    op_id = headers["Azure-AsyncOperation"].split("?")[0].rstrip("/").split("/")[-1]
    status = bk.backup_operation_statuses.get(VAULT, RG, op_id)
    assert status.status == "Succeeded", status
    return wait_job(bk, VAULT, RG, status.properties.job_id)


def backup_now(bk):
    return backup_and_wait(bk, VAULT, RG, CONTAINER, ITEM)


def test_default_policies_and_policy_rules(env):
    bk = env["bk"]
    names = [p.name for p in bk.backup_policies.list(VAULT, RG)]
    assert names == ["DefaultPolicy", "EnhancedPolicy", "HourlyLogBackup"]
    default = bk.protection_policies.get(VAULT, RG, "DefaultPolicy").properties
    assert default.backup_management_type == "AzureIaasVM" and default.policy_type == "V1"
    assert default.instant_rp_retention_range_in_days == 2
    assert default.retention_policy.daily_schedule.retention_duration.count == 30
    enhanced = bk.protection_policies.get(VAULT, RG, "EnhancedPolicy").properties
    assert enhanced.policy_type == "V2" and enhanced.instant_rp_retention_range_in_days == 7
    assert enhanced.schedule_policy.hourly_schedule.interval == 4

    def policy(days, v2=False, freq="Daily"):
        sched = ({"schedulePolicyType": "SimpleSchedulePolicyV2", "scheduleRunFrequency": "Daily",
                  "dailySchedule": {"scheduleRunTimes": ["2026-12-01T02:00:00Z"]}} if v2 else
                 {"schedulePolicyType": "SimpleSchedulePolicy", "scheduleRunFrequency": freq,
                  "scheduleRunTimes": ["2026-12-01T02:00:00Z"]})
        return {"properties": {"backupManagementType": "AzureIaasVM", "policyType": "V2" if v2 else "V1",
                               "instantRpRetentionRangeInDays": days, "schedulePolicy": sched, "timeZone": "UTC",
                               "retentionPolicy": {"retentionPolicyType": "LongTermRetentionPolicy", "dailySchedule": {
                                   "retentionTimes": ["2026-12-01T02:00:00Z"], "retentionDuration": {"count": 10, "durationType": "Days"}}}}}
    for bad in (policy(6), policy(31, v2=True), policy(2, freq="Hourly")):
        with pytest.raises(HttpResponseError) as e:
            bk.protection_policies.create_or_update(VAULT, RG, "bad", bad)
        assert e.value.status_code == 400 and e.value.error.code == "BMSUserErrorInvalidPolicyInput", e.value.error.message
    made = bk.protection_policies.create_or_update(VAULT, RG, "ten-days", policy(5))
    assert made.properties.instant_rp_retention_range_in_days == 5
    assert bk.protection_policies.create_or_update(VAULT, RG, "v2-thirty", policy(30, v2=True)).properties.policy_type == "V2"
    bk.protection_policies.begin_delete(VAULT, RG, "v2-thirty").result()
    assert "v2-thirty" not in [p.name for p in bk.backup_policies.list(VAULT, RG)]


def test_discover_protect_backup_restore(server, env):
    bk, vm = env["bk"], env["vm"]
    bk.protection_containers.refresh(VAULT, RG, "Azure", filter="backupManagementType eq 'AzureIaasVM'")
    protectable = list(bk.backup_protectable_items.list(VAULT, RG, filter="backupManagementType eq 'AzureIaasVM'"))
    # The SDK leaves the nested discriminator (AzureIaaSComputeVMProtectableItem) as a mapping.
    mine = [p for p in protectable if p.properties["virtualMachineId"].lower() == vm.id.lower()]
    assert [p.name for p in mine] == [ITEM]
    # Only VMs in the vault's region (East US) are offered.
    assert all("westus" not in (p.properties.get("friendlyName") or "") for p in protectable)

    policy_id = bk.protection_policies.get(VAULT, RG, "DefaultPolicy").id
    item = bk.protected_items.begin_create_or_update(VAULT, RG, "Azure", CONTAINER, ITEM, {"properties": {
        "protectedItemType": "Microsoft.Compute/virtualMachines", "sourceResourceId": vm.id, "policyId": policy_id}}).result()
    assert item.properties["protectionState"] == "IRPending"
    assert item.properties["policyName"] == "DefaultPolicy"
    assert ITEM not in [p.name for p in bk.backup_protectable_items.list(VAULT, RG)], "a protected VM is not protectable any more"
    assert bk.protection_policies.get(VAULT, RG, "DefaultPolicy").properties.protected_items_count == 1
    with pytest.raises(HttpResponseError) as e:  # a policy in use stays
        bk.protection_policies.begin_delete(VAULT, RG, "DefaultPolicy").result()
    assert e.value.error.code == "BMSUserErrorPolicyInUse"

    data = f"{VM}_DataDisk_0"
    io(env, RG, data, "write -P 0xa1 0 1M", "write -P 0xa2 5M 512k")
    job1 = backup_now(bk)
    assert job1.properties.operation == "Backup" and job1.properties.status == "Completed"
    assert [t.task_id for t in job1.properties.extended_info.tasks_list] == ["Take Snapshot", "Transfer data to vault"]
    io(env, RG, data, "write -P 0xb2 0 1M", "write -P 0xc3 2M 1M")
    job2 = backup_now(bk)
    assert job2.properties.status == "Completed"
    # Incremental from the disks' change journals: only the two chunks written since are read.
    assert job2.properties.extended_info.property_bag["Backup Size"] == "2.00 MB", job2.properties.extended_info.property_bag

    points = list(bk.recovery_points.list(VAULT, RG, "Azure", CONTAINER, ITEM))
    assert len(points) == 2
    older, newer = sorted(points, key=lambda p: p.properties.recovery_point_time)
    assert [t.type for t in older.properties.recovery_point_tier_details] == ["InstantRP", "HardenedRP"]
    assert older.properties.recovery_point_disk_configuration.number_of_disks_included_in_backup == 2
    # The instant-restore snapshots are where Azure puts them: restore points
    # of the VM in AzureBackupRG_{region}_1, one per recovery point.
    compute = server.client(ComputeManagementClient)
    colls = list(compute.restore_point_collections.list("AzureBackupRG_eastus_1"))
    mine = [c for c in colls if c.name.startswith(f"AzureBackup_{VM}_")]
    assert len(mine) == 1 and mine[0].source.id.lower() == vm.id.lower()
    shown = compute.restore_point_collections.get("AzureBackupRG_eastus_1", mine[0].name, expand="restorePoints")
    assert sorted(p.name for p in shown.restore_points) == sorted(p.name for p in points)
    assert len(shown.restore_points[0].source_metadata.storage_profile.data_disks) == 1
    item = bk.protected_items.get(VAULT, RG, "Azure", CONTAINER, ITEM)
    assert item.properties["protectionState"] == "Protected" and item.properties["lastBackupStatus"] == "Completed"
    # azure-cli's window filter.
    window = "startDate eq '2000-01-01 12:00:00 AM' and endDate eq '2100-01-01 12:00:00 AM'"
    assert len(list(bk.recovery_points.list(VAULT, RG, "Azure", CONTAINER, ITEM, filter=window))) == 2

    # Restore the older point: its bytes, not the later writes.
    rg_id = f"/subscriptions/{server.sub}/resourceGroups/bkp-restore"
    body = {"properties": {"objectType": "IaasVMRestoreRequest", "recoveryPointId": older.name, "recoveryType": "RestoreDisks",
                           "sourceResourceId": vm.id, "targetResourceGroupId": rg_id,
                           "storageAccountId": env["staging"].id, "region": "eastus"}}
    restored_job = restore_and_wait(bk, VAULT, RG, CONTAINER, ITEM, older.name, body)
    assert restored_job.properties.status == "Completed", restored_job.properties
    assert [t.status for t in restored_job.properties.extended_info.tasks_list] == ["Completed", "Completed"]
    jobs = list(bk.backup_jobs.list(VAULT, RG, filter="operation eq 'Restore'"))
    assert len(jobs) == 1 and jobs[0].properties.status == "Completed"
    assert jobs[0].properties.extended_info.property_bag["Restore type"] == "RestoreDisks"
    bag = jobs[0].properties.extended_info.property_bag
    assert bag["Restore source"] == "Snapshot"
    restored = {d.name: d for d in server.client(ComputeManagementClient).disks.list_by_resource_group("bkp-restore")}
    data_restored = next(n for n in restored if n.startswith(data))
    io(env, "bkp-restore", data_restored, "read -P 0xa1 0 1M", "read -P 0 2M 1M", "read -P 0xa2 5M 512k")
    assert len(restored) == 2, restored  # the OS disk too
    # The newer point has the later bytes.
    body["properties"]["recoveryPointId"] = newer.name
    body["properties"]["restoreDiskLunList"] = [0]
    body["properties"]["targetResourceGroupId"] = f"/subscriptions/{server.sub}/resourceGroups/{RG}"
    assert restore_and_wait(bk, VAULT, RG, CONTAINER, ITEM, newer.name, body).properties.status == "Completed"
    newer_disk = f"{data}-{newer.name[-8:]}"
    io(env, RG, newer_disk, "read -P 0xb2 0 1M", "read -P 0xc3 2M 1M")

    # Refusals that change nothing.
    body["properties"]["storageAccountId"] = None
    with pytest.raises(HttpResponseError) as e:
        bk.restores.begin_trigger(VAULT, RG, "Azure", CONTAINER, ITEM, newer.name, body).result()
    assert e.value.status_code == 400
    body["properties"]["storageAccountId"] = env["staging"].id

    # AlternateLocation: a new VM on the older point's disks, its NIC in a subnet.
    alt = dict(body["properties"], recoveryType="AlternateLocation", recoveryPointId=older.name,
               targetResourceGroupId=rg_id, subnetId=env["vnet"].subnets[0].id, virtualNetworkId=env["vnet"].id,
               targetVirtualMachineId=f"{rg_id}/providers/Microsoft.Compute/virtualMachines/bkvm-alt")
    alt.pop("restoreDiskLunList", None)
    with pytest.raises(HttpResponseError) as e:  # the target VM is named
        bk.restores.begin_trigger(VAULT, RG, "Azure", CONTAINER, ITEM, older.name, {"properties": dict(alt, targetVirtualMachineId=None)}).result()
    assert e.value.status_code == 400
    assert restore_and_wait(bk, VAULT, RG, CONTAINER, ITEM, older.name, {"properties": alt}).properties.status == "Completed"
    compute = server.client(ComputeManagementClient)
    new_vm = compute.virtual_machines.get("bkp-restore", "bkvm-alt")
    nic = server.client(NetworkManagementClient).network_interfaces.get("bkp-restore", "bkvm-alt-nic")
    assert nic.ip_configurations[0].subnet.id.lower() == env["vnet"].subnets[0].id.lower()
    alt_data = new_vm.storage_profile.data_disks[0].managed_disk.id.rsplit("/", 1)[-1]
    io(env, "bkp-restore", alt_data, "read -P 0xa1 0 1M", "read -P 0 2M 1M")

    # OriginalLocation: the VM's own data disk gets the older point's bytes back.
    io(env, RG, data, "write -P 0xee 0 1M")
    orig = {"objectType": "IaasVMRestoreRequest", "recoveryPointId": older.name, "recoveryType": "OriginalLocation",
            "sourceResourceId": vm.id, "region": "eastus", "storageAccountId": env["staging"].id}
    assert restore_and_wait(bk, VAULT, RG, CONTAINER, ITEM, older.name, {"properties": orig}).properties.status == "Completed"
    io(env, RG, data, "read -P 0xa1 0 1M", "read -P 0 2M 1M", "read -P 0xa2 5M 512k")
    assert compute.virtual_machines.get(RG, VM).storage_profile.data_disks[0].managed_disk.id.lower().endswith(data.lower())
    # Every restore left a drill report with its point and timings (issue 13).
    vault_id = f"/subscriptions/{server.sub}/resourceGroups/{RG}/providers/Microsoft.RecoveryServices/vaults/{VAULT}"
    reports = server.http("GET", "/recoverite/drills", params={"vault": vault_id}).json()["value"]
    restores = [x for x in reports if x["kind"] == "Restore"]
    assert len(restores) >= 3, reports
    assert restores[-1]["recoveryPointId"].endswith("/" + older.name) and "in place" in restores[-1]["outcome"], restores[-1]
    assert all(x["rpoSeconds"] >= 0 and x["rtoSeconds"] > 0 and x["steps"] for x in restores), restores
    assert any("bkvm-alt" in x["outcome"] for x in restores), restores


def test_roles_soft_delete_and_vault_rules(server, env):
    bk = env["bk"]
    r = server.http("POST", "/recoverite/principals", json={"displayName": "backup-operator", "role": "Backup Operator"})
    p = r.json()
    ops = server.client(RecoveryServicesBackupClient, credential=server.credential(p["clientId"], p["clientSecret"]))
    # The operator backs up…
    assert backup_now(ops).properties.status == "Completed"
    # …but cannot stop protection with delete, create vaults or grant access.
    with pytest.raises(HttpResponseError) as e:
        ops.protected_items.delete(VAULT, RG, "Azure", CONTAINER, ITEM)
    assert e.value.status_code == 403
    op_cred = server.credential(p["clientId"], p["clientSecret"])
    with pytest.raises(HttpResponseError) as e:
        server.client(RecoveryServicesClient, credential=op_cred).vaults.begin_create_or_update(
            RG, "operator-vault", {"location": "eastus", "sku": {"name": "Standard"}}).result()
    assert e.value.status_code == 403
    from azure.mgmt.authorization import AuthorizationManagementClient
    reader_role = f"/subscriptions/{server.sub}/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7"
    with pytest.raises(HttpResponseError) as e:
        server.client(AuthorizationManagementClient, credential=op_cred).role_assignments.create(
            f"/subscriptions/{server.sub}/resourceGroups/{RG}", str(uuid.uuid4()),
            {"role_definition_id": reader_role, "principal_id": p["objectId"]})
    assert e.value.status_code == 403
    # A reader cannot back up.
    r = server.http("POST", "/recoverite/principals", json={"displayName": "backup-reader", "role": "Backup Reader"})
    rd = r.json()
    reader = server.client(RecoveryServicesBackupClient, credential=server.credential(rd["clientId"], rd["clientSecret"]))
    with pytest.raises(HttpResponseError) as e:
        backup_now(reader)
    assert e.value.status_code == 403

    # Protecting a VM takes the right to read it: Backup Contributor alone has none.
    r = server.http("POST", "/recoverite/principals", json={"displayName": "backup-contributor", "role": "Backup Contributor"})
    bc = r.json()
    contrib = server.client(RecoveryServicesBackupClient, credential=server.credential(bc["clientId"], bc["clientSecret"]))
    vm3 = asr.vm(server, RG, "bkvm3", env["vnet"].subnets[0].id, os_gb=1)
    with pytest.raises(HttpResponseError) as e:
        contrib.protected_items.begin_create_or_update(VAULT, RG, "Azure", f"iaasvmcontainer;iaasvmcontainerv2;{RG};bkvm3",
            f"vm;iaasvmcontainerv2;{RG};bkvm3", {"properties": {"protectedItemType": "Microsoft.Compute/virtualMachines",
            "sourceResourceId": vm3.id, "policyId": bk.protection_policies.get(VAULT, RG, "DefaultPolicy").id}}).result()
    assert e.value.status_code == 403 and e.value.error.code == "LinkedAuthorizationFailed"
    # A principal without any role sees no policies, items or jobs of the vault.
    r = server.http("POST", "/recoverite/principals", json={"displayName": "backup-nobody"})
    nb = r.json()
    nobody = server.client(RecoveryServicesBackupClient, credential=server.credential(nb["clientId"], nb["clientSecret"]))
    assert list(nobody.backup_policies.list(VAULT, RG)) == []
    assert list(nobody.backup_protected_items.list(VAULT, RG)) == []
    assert list(nobody.backup_jobs.list(VAULT, RG)) == []

    # The vault has items: no new private endpoints (documents 000, 001).
    net = server.client(NetworkManagementClient)
    with pytest.raises(HttpResponseError) as e:
        net.private_endpoints.begin_create_or_update(RG, "late-backup-pe", {"location": "eastus", "properties": {
            "subnet": {"id": env["vnet"].subnets[1].id}, "privateLinkServiceConnections": [{"name": "b", "properties": {
                "privateLinkServiceId": env["vault"].id, "groupIds": ["AzureBackup"]}}]}}).result()
    assert e.value.error.code == "PrivateEndpointNotSupportedForVaultWithRegisteredItems"

    # Soft delete: the data stays 14 days; the vault cannot go meanwhile.
    bk.protected_items.delete(VAULT, RG, "Azure", CONTAINER, ITEM)
    item = bk.protected_items.get(VAULT, RG, "Azure", CONTAINER, ITEM)
    assert item.properties["isScheduledForDeferredDelete"] is True
    assert item.properties["deferredDeleteTimeInUTC"] is not None
    assert len(list(bk.recovery_points.list(VAULT, RG, "Azure", CONTAINER, ITEM))) == 3
    with pytest.raises(HttpResponseError) as e:
        backup_now(bk)
    assert e.value.error.code == "BMSUserErrorItemSoftDeleted"
    rs = server.client(RecoveryServicesClient)
    with pytest.raises(HttpResponseError) as e:
        rs.vaults.begin_delete(RG, VAULT).result()
    assert e.value.error.code == "ServiceResourceNotEmpty" and "soft-deleted" in e.value.error.message
    # Undelete, then resume protection: backups work again.
    bk.protected_items.begin_create_or_update(VAULT, RG, "Azure", CONTAINER, ITEM, {"properties": {
        "protectedItemType": "Microsoft.Compute/virtualMachines", "isRehydrate": True}}).result()
    item = bk.protected_items.get(VAULT, RG, "Azure", CONTAINER, ITEM)
    assert item.properties["isScheduledForDeferredDelete"] is False and item.properties["protectionState"] == "ProtectionStopped"
    policy_id = bk.protection_policies.get(VAULT, RG, "DefaultPolicy").id
    bk.protected_items.begin_create_or_update(VAULT, RG, "Azure", CONTAINER, ITEM, {"properties": {
        "protectedItemType": "Microsoft.Compute/virtualMachines", "policyId": policy_id}}).result()
    assert backup_now(bk).properties.status == "Completed"
    ops_seen = {j.properties.operation for j in bk.backup_jobs.list(VAULT, RG)}
    assert {"ConfigureBackup", "Backup", "Restore", "DeleteBackupData", "Undelete"} <= ops_seen, ops_seen


def test_vm_outside_the_vault_region_is_refused(server, env):
    rs = server.client(RecoveryServicesClient)
    rs.vaults.begin_create_or_update(RG, "bkp-west", {"location": "westus", "sku": {"name": "Standard"}}).result()
    bk = env["bk"]
    assert ITEM not in [p.name for p in bk.backup_protectable_items.list("bkp-west", RG)]
    with pytest.raises(HttpResponseError) as e:
        bk.protected_items.begin_create_or_update("bkp-west", RG, "Azure", CONTAINER, ITEM, {"properties": {
            "protectedItemType": "Microsoft.Compute/virtualMachines", "sourceResourceId": env["vm"].id,
            "policyId": bk.protection_policies.get("bkp-west", RG, "DefaultPolicy").id}}).result()
    assert e.value.error.code == "BMSUserErrorVmNotInVaultRegion"
    _ = uuid


def test_storage_redundancy_and_soft_delete_settings(server, env):
    rs, bk = server.client(RecoveryServicesClient), env["bk"]
    rs.vaults.begin_create_or_update(RG, "bkp-cfg", {"location": "eastus", "sku": {"name": "Standard"}}).result()
    cfg = bk.backup_resource_storage_configs_non_crr
    got = cfg.get("bkp-cfg", RG).properties
    assert got.storage_model_type == "GeoRedundant" and got.cross_region_restore_flag is False
    # Redundancy may change until the first item; CRR needs GeoRedundant.
    assert cfg.update("bkp-cfg", RG, {"properties": {"storageModelType": "LocallyRedundant"}}).properties.storage_model_type == "LocallyRedundant"
    with pytest.raises(HttpResponseError) as e:
        cfg.update("bkp-cfg", RG, {"properties": {"storageModelType": "LocallyRedundant", "crossRegionRestoreFlag": True}})
    assert e.value.error.code == "BMSUserErrorCrossRegionRestoreNeedsGrs"
    on = cfg.update("bkp-cfg", RG, {"properties": {"storageModelType": "GeoRedundant", "crossRegionRestoreFlag": True}})
    assert on.properties.cross_region_restore_flag is True
    with pytest.raises(HttpResponseError) as e:
        cfg.update("bkp-cfg", RG, {"properties": {"crossRegionRestoreFlag": False}})
    assert e.value.error.code == "BMSUserErrorCrossRegionRestoreCannotBeDisabled"
    # The vault with protected items is locked.
    assert cfg.get(VAULT, RG).properties.storage_type_state == "Locked"
    with pytest.raises(HttpResponseError) as e:
        cfg.update(VAULT, RG, {"properties": {"storageModelType": "ZoneRedundant"}})
    assert e.value.error.code == "BMSUserErrorStorageTypeLocked"

    # Soft delete off: deleting an item's data removes it at once.
    vc = bk.backup_resource_vault_configs
    assert vc.get("bkp-cfg", RG).properties.soft_delete_feature_state == "Enabled"
    vc.update("bkp-cfg", RG, {"properties": {"softDeleteFeatureState": "Disabled"}})
    vm2 = asr.vm(server, RG, "bkvm2", env["vnet"].subnets[0].id, os_gb=1)
    c2, i2 = f"iaasvmcontainer;iaasvmcontainerv2;{RG};bkvm2", f"vm;iaasvmcontainerv2;{RG};bkvm2"
    bk.protected_items.begin_create_or_update("bkp-cfg", RG, "Azure", c2, i2, {"properties": {
        "protectedItemType": "Microsoft.Compute/virtualMachines", "sourceResourceId": vm2.id,
        "policyId": bk.protection_policies.get("bkp-cfg", RG, "DefaultPolicy").id}}).result()
    io(env, RG, "bkvm2-os", "write -P 0x44 0 64k")
    backup_and_wait(bk, "bkp-cfg", RG, c2, i2)
    assert len(list(bk.recovery_points.list("bkp-cfg", RG, "Azure", c2, i2))) == 1
    bk.protected_items.delete("bkp-cfg", RG, "Azure", c2, i2)
    with pytest.raises(HttpResponseError) as e:
        bk.protected_items.get("bkp-cfg", RG, "Azure", c2, i2)
    assert e.value.status_code == 404
    # AlwaysON is for good; and the vault, empty again, can go.
    vc.update("bkp-cfg", RG, {"properties": {"softDeleteFeatureState": "AlwaysON"}})
    with pytest.raises(HttpResponseError) as e:
        vc.update("bkp-cfg", RG, {"properties": {"softDeleteFeatureState": "Enabled"}})
    assert e.value.error.code == "BMSUserErrorSoftDeleteAlwaysOn"
    rs.vaults.begin_delete(RG, "bkp-cfg").result()


def test_a_weekly_policy_keeps_points_its_weeks(server, env):
    """A point taken under a weekly schedule is kept as its weekly retention
    says (12 weeks here), not the 30 days of a daily default."""
    import datetime
    rg, name = "bkp-weekly", "wkvm"
    asr.groups(server, (rg, "eastus"))
    vm = asr.vm(server, rg, name, env["vnet"].subnets[0].id, os_gb=1, data_gb=1)
    bk = env["bk"]
    pol = bk.protection_policies.create_or_update(VAULT, RG, "weekly12", {"properties": {
        "backupManagementType": "AzureIaasVM", "instantRpRetentionRangeInDays": 5,
        "schedulePolicy": {"schedulePolicyType": "SimpleSchedulePolicy", "scheduleRunFrequency": "Weekly",
                           "scheduleRunDays": ["Sunday"], "scheduleRunTimes": ["2026-01-04T02:00:00Z"]},
        "retentionPolicy": {"retentionPolicyType": "LongTermRetentionPolicy", "weeklySchedule": {
            "daysOfTheWeek": ["Sunday"], "retentionTimes": ["2026-01-04T02:00:00Z"],
            "retentionDuration": {"count": 12, "durationType": "Weeks"}}}}})
    # What Azure only echoes comes back as given.
    assert pol.properties.retention_policy.weekly_schedule.days_of_the_week == ["Sunday"]
    assert pol.properties.instant_rp_retention_range_in_days == 5 and pol.properties.time_zone == "UTC"
    container, item = f"iaasvmcontainer;iaasvmcontainerv2;{rg};{name}", f"vm;iaasvmcontainerv2;{rg};{name}"
    bk.protected_items.begin_create_or_update(VAULT, RG, "Azure", container, item, {"properties": {
        "protectedItemType": "Microsoft.Compute/virtualMachines", "sourceResourceId": vm.id, "policyId": pol.id}}).result()
    assert bk.protection_policies.get(VAULT, RG, "weekly12").properties.protected_items_count == 1
    backup_and_wait(bk, VAULT, RG, container, item)
    [point] = list(bk.recovery_points.list(VAULT, RG, "Azure", container, item))
    expiry = datetime.date.fromisoformat(point.properties.recovery_point_properties.expiry_time[:10])
    taken = point.properties.recovery_point_time
    taken = datetime.date.fromisoformat(taken[:10] if isinstance(taken, str) else taken.date().isoformat())
    assert abs((expiry - taken).days - 84) <= 1, (taken, expiry)
