"""Replication groups (document 003, issue 5): multi-VM consistency needs a
policy with multi-VM sync, a group holds at most 16 VMs, its VMs share
crash- and app-consistent points (one failover point, same time, for all),
and they must reach each other on port 20004."""

import shutil
import subprocess
import time

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.recoveryservices import RecoveryServicesClient
from azure.mgmt.recoveryservicessiterecovery import SiteRecoveryManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.mgmt.storage import StorageManagementClient

RG, VAULT = "groups-rg", "groups-vault"
QEMU_IO = shutil.which("qemu-io")


@pytest.fixture(scope="module")
def env(server):
    rm = server.client(ResourceManagementClient)
    rm.resource_groups.create_or_update(RG, {"location": "eastus"})
    net = server.client(NetworkManagementClient)
    nsg = net.network_security_groups.begin_create_or_update(RG, "app-nsg", {"location": "eastus"}).result()
    vnet = net.virtual_networks.begin_create_or_update(RG, "groups-vnet", {"location": "eastus", "properties": {
        "addressSpace": {"addressPrefixes": ["10.70.0.0/16"]},
        "subnets": [{"name": "app", "properties": {"addressPrefix": "10.70.1.0/24", "networkSecurityGroup": {"id": nsg.id}}}]}}).result()
    compute = server.client(ComputeManagementClient)

    def vm(name, data=True):
        nic = net.network_interfaces.begin_create_or_update(RG, f"{name}-nic", {"location": "eastus", "properties": {
            "ipConfigurations": [{"name": "c", "properties": {"subnet": {"id": vnet.subnets[0].id}}}]}}).result()
        osd = compute.disks.begin_create_or_update(RG, f"{name}-os", {"location": "eastus", "sku": {"name": "Standard_LRS"},
            "properties": {"creationData": {"createOption": "Empty"}, "diskSizeGB": 4, "osType": "Linux"}}).result()
        sp = {"osDisk": {"createOption": "Attach", "osType": "Linux", "managedDisk": {"id": osd.id}}}
        if data:
            sp["dataDisks"] = [{"lun": 0, "createOption": "Empty", "diskSizeGB": 8, "managedDisk": {"storageAccountType": "Standard_LRS"}}]
        return compute.virtual_machines.begin_create_or_update(RG, name, {"location": "eastus", "properties": {
            "hardwareProfile": {"vmSize": "Standard_D2s_v3"}, "storageProfile": sp,
            "networkProfile": {"networkInterfaces": [{"id": nic.id}]}}}).result()

    cache = server.client(StorageManagementClient).storage_accounts.begin_create(RG, "groupscache", {
        "location": "eastus", "kind": "StorageV2", "sku": {"name": "Standard_LRS"}}).result()
    server.client(RecoveryServicesClient).vaults.begin_create_or_update(RG, VAULT, {
        "location": "westus", "sku": {"name": "Standard"}}).result()
    sr = server.client(SiteRecoveryManagementClient)
    for fabric, loc in (("east", "eastus"), ("west", "westus")):
        sr.replication_fabrics.begin_create(RG, VAULT, fabric, {"properties": {"customDetails": {"instanceType": "Azure", "location": loc}}}).result()
        sr.replication_protection_containers.begin_create(RG, VAULT, fabric, f"{fabric}-c", {"properties": {"providerSpecificInput": [{"instanceType": "A2A"}]}}).result()
    target = sr.replication_protection_containers.get(RG, VAULT, "west", "west-c")
    policies = {}
    sr.replication_protection_containers.begin_create(RG, VAULT, "east", "east-c2", {"properties": {"providerSpecificInput": [{"instanceType": "A2A"}]}}).result()
    for name, sync, container in (("multi", "Enable", "east-c"), ("single", "Disable", "east-c2")):
        policies[name] = sr.replication_policies.begin_create(RG, VAULT, name, {"properties": {"providerSpecificInput": {
            "instanceType": "A2A", "recoveryPointHistory": 1440, "multiVmSyncStatus": sync}}}).result()
        sr.replication_protection_container_mappings.begin_create(RG, VAULT, "east", container, f"map-{name}", {"properties": {
            "targetProtectionContainerId": target.id, "policyId": policies[name].id, "providerSpecificInput": {"instanceType": "A2A"}}}).result()
    rm.resource_groups.create_or_update(f"{RG}-asr", {"location": "westus"})
    return {"sr": sr, "vm": vm, "cache": cache.id, "target": target, "policies": policies, "net": net,
            "nbd": server.http("GET", "/recoverite/nbd").json()["endpoint"], "target_rg": f"/subscriptions/{server.sub}/resourceGroups/{RG}-asr"}


def enable(env, vm, group, policy="multi", name=None):
    disks = [vm.storage_profile.os_disk.managed_disk.id] + [d.managed_disk.id for d in vm.storage_profile.data_disks]
    container = "east-c" if policy == "multi" else "east-c2"
    return env["sr"].replication_protected_items.begin_create(RG, VAULT, "east", container, name or vm.name, {"properties": {
        "policyId": env["policies"][policy].id, "providerSpecificDetails": {
            "instanceType": "A2A", "fabricObjectId": vm.id, "recoveryContainerId": env["target"].id,
            "recoveryResourceGroupId": env["target_rg"], "multiVmGroupName": group,
            "vmManagedDisks": [{"diskId": d, "primaryStagingAzureStorageAccountId": env["cache"]} for d in disks]}}}).result()


def io(env, disk, *cmds):
    args = [QEMU_IO, "-f", "raw"] + [x for c in cmds for x in ("-c", c)] + [f"{env['nbd']}/{disk}"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "Pattern verification failed" not in out.stdout + out.stderr, out.stdout + out.stderr


@pytest.mark.skipif(QEMU_IO is None, reason="qemu-io (qemu-utils) is not installed")
def test_group_members_share_points_and_fail_over_to_the_same_moment(server, env):
    sr = env["sr"]
    with pytest.raises(HttpResponseError) as e:
        enable(env, env["vm"]("solo"), "orders", policy="single")
    assert e.value.error.code == "MultiVmSyncNotEnabled"
    a, b = env["vm"]("db"), env["vm"]("web")
    ia, ib = enable(env, a, "orders"), enable(env, b, "orders")
    da, db_ = ia.properties.provider_specific_details, ib.properties.provider_specific_details
    assert da.multi_vm_group_name == db_.multi_vm_group_name == "orders"
    assert da.multi_vm_group_id and da.multi_vm_group_id == db_.multi_vm_group_id
    assert da.multi_vm_group_create_option == "UserSpecified"

    io(env, f"{RG}/db_DataDisk_0", "write -P 0x31 0 1M")
    io(env, f"{RG}/web_DataDisk_0", "write -P 0x41 0 1M")
    r = server.http("POST", "/recoverite/replication/points", json={"protectedItemId": ia.id, "kind": "AppConsistent"})
    assert r.status_code == 200, r.text
    io(env, f"{RG}/db_DataDisk_0", "write -P 0x32 0 1M")
    io(env, f"{RG}/web_DataDisk_0", "write -P 0x42 0 1M")
    pa = list(sr.recovery_points.list_by_replication_protected_items(RG, VAULT, "east", "east-c", "db"))
    pb = list(sr.recovery_points.list_by_replication_protected_items(RG, VAULT, "east", "east-c", "web"))
    assert len(pa) == len(pb) == 1
    assert pa[0].properties.recovery_point_time == pb[0].properties.recovery_point_time
    assert pa[0].properties.recovery_point_type == pb[0].properties.recovery_point_type == "AppConsistent"
    assert pa[0].properties.provider_specific_details.recovery_point_sync_type == "MultiVmSyncRecoveryPoint"
    for item, points, byte in (("db", pa, "0x31"), ("web", pb, "0x41")):
        sr.replication_protected_items.begin_unplanned_failover(RG, VAULT, "east", "east-c", item, {"properties": {
            "failoverDirection": "PrimaryToRecovery", "providerSpecificDetails": {"instanceType": "A2A", "recoveryPointId": points[0].id}}}).result()
        io(env, f"{RG}-asr/{item}_DataDisk_0-ASRReplica", f"read -P {byte} 0 1M")


def test_group_vms_must_reach_each_other_on_20004_and_a_group_holds_16(server, env):
    sr, net = env["sr"], env["net"]
    first = enable(env, env["vm"]("g0", data=False), "batch")
    second = enable(env, env["vm"]("g1", data=False), "batch")
    # Block the multi-VM sync port between the group's VMs: their agents say so.
    net.security_rules.begin_create_or_update(RG, "app-nsg", "deny-20004", {"properties": {
        "protocol": "Tcp", "access": "Deny", "direction": "Inbound", "priority": 100, "sourceAddressPrefix": "VirtualNetwork",
        "sourcePortRange": "*", "destinationAddressPrefix": "*", "destinationPortRange": "20004"}}).result()
    deadline = time.time() + 15
    while time.time() < deadline:
        item = sr.replication_protected_items.get(RG, VAULT, "east", "east-c", "g0")
        if item.properties.replication_health == "Critical":
            break
        time.sleep(0.25)
    msg = item.properties.health_errors[0].error_message
    assert "replication group peer" in msg and "20004" in msg and "deny-20004" in msg, msg
    net.security_rules.begin_delete(RG, "app-nsg", "deny-20004").result()
    r = server.http("POST", "/recoverite/replication/points", json={"protectedItemId": second.id})
    assert r.status_code == 200, r.text
    # 16 VMs at most.
    for i in range(2, 16):
        enable(env, env["vm"](f"g{i}", data=False), "batch")
    with pytest.raises(HttpResponseError) as e:
        enable(env, env["vm"]("g16", data=False), "batch")
    assert e.value.error.code == "ReplicationGroupFull" and "16" in e.value.error.message
    assert first.properties.provider_specific_details.multi_vm_group_name == "batch"
