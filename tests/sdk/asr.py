"""Shared Site Recovery set-up for the SDK tests: a VM with its NIC and
disks, a vault with East → other-region fabrics, containers, a policy and a
mapping, a cache account, and enabling replication."""

from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.recoveryservices import RecoveryServicesClient
from azure.mgmt.recoveryservicessiterecovery import SiteRecoveryManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.mgmt.storage import StorageManagementClient


def vm(server, rg, name, subnet_id, os_gb=4, data_gb=None, location="eastus"):
    """A Linux VM with an empty OS disk, optionally an empty data disk."""
    nic = server.client(NetworkManagementClient).network_interfaces.begin_create_or_update(rg, f"{name}-nic", {
        "location": location, "properties": {"ipConfigurations": [{"name": "c", "properties": {"subnet": {"id": subnet_id}}}]}}).result()
    compute = server.client(ComputeManagementClient)
    osd = compute.disks.begin_create_or_update(rg, f"{name}-os", {"location": location, "sku": {"name": "Standard_LRS"},
        "properties": {"creationData": {"createOption": "Empty"}, "diskSizeGB": os_gb, "osType": "Linux"}}).result()
    sp = {"osDisk": {"createOption": "Attach", "osType": "Linux", "managedDisk": {"id": osd.id}}}
    if data_gb:
        sp["dataDisks"] = [{"lun": 0, "createOption": "Empty", "diskSizeGB": data_gb, "managedDisk": {"storageAccountType": "Standard_LRS"}}]
    return compute.virtual_machines.begin_create_or_update(rg, name, {"location": location, "properties": {
        "hardwareProfile": {"vmSize": "Standard_D2s_v3"}, "storageProfile": sp,
        "networkProfile": {"networkInterfaces": [{"id": nic.id}]}}}).result()


def disks_of(v):
    return [v.storage_profile.os_disk.managed_disk.id] + [d.managed_disk.id for d in v.storage_profile.data_disks]


def cache(server, rg, name, location="eastus"):
    return server.client(StorageManagementClient).storage_accounts.begin_create(rg, name, {
        "location": location, "kind": "StorageV2", "sku": {"name": "Standard_LRS"}}).result()


def vault(server, rg, name, target="westus", policy=None):
    """A vault in `target` with fabrics `east`/`{target-fabric}`, containers `-c`, policy `p`, mapping `m`.
    Returns (SiteRecoveryManagementClient, policy, target container)."""
    server.client(RecoveryServicesClient).vaults.begin_create_or_update(rg, name, {"location": target, "sku": {"name": "Standard"}}).result()
    sr = server.client(SiteRecoveryManagementClient)
    dst = "central" if target == "centralus" else "west"
    for fabric, loc in (("east", "eastus"), (dst, target)):
        sr.replication_fabrics.begin_create(rg, name, fabric, {"properties": {"customDetails": {"instanceType": "Azure", "location": loc}}}).result()
        sr.replication_protection_containers.begin_create(rg, name, fabric, f"{fabric}-c", {"properties": {"providerSpecificInput": [{"instanceType": "A2A"}]}}).result()
    pol = sr.replication_policies.begin_create(rg, name, "p", {"properties": {"providerSpecificInput": policy or {
        "instanceType": "A2A", "recoveryPointHistory": 1440, "multiVmSyncStatus": "Disable"}}}).result()
    tc = sr.replication_protection_containers.get(rg, name, dst, f"{dst}-c")
    sr.replication_protection_container_mappings.begin_create(rg, name, "east", "east-c", "m", {"properties": {
        "targetProtectionContainerId": tc.id, "policyId": pol.id, "providerSpecificInput": {"instanceType": "A2A"}}}).result()
    return sr, pol, tc


def protect(server, sr, rg, vault_name, item, v, pol, tc, cache_id, recovery_rg):
    return sr.replication_protected_items.begin_create(rg, vault_name, "east", "east-c", item, {"properties": {
        "policyId": pol.id, "providerSpecificDetails": {
            "instanceType": "A2A", "fabricObjectId": v.id, "recoveryContainerId": tc.id,
            "recoveryResourceGroupId": f"/subscriptions/{server.sub}/resourceGroups/{recovery_rg}",
            "vmManagedDisks": [{"diskId": d, "primaryStagingAzureStorageAccountId": cache_id} for d in disks_of(v)]}}}).result()


def groups(server, *pairs):
    rm = server.client(ResourceManagementClient)
    for name, loc in pairs:
        rm.resource_groups.create_or_update(name, {"location": loc})
