"""Site Recovery replication for real (issue 5): enable replication of a
VM's managed disks, write known bytes through NBD with qemu-io, take
recovery points, fail over to a chosen point and read the failed-over disks
back byte for byte; the rules around it, through the official SDKs."""

import shutil
import subprocess

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.recoveryservices import RecoveryServicesClient
from azure.mgmt.recoveryservicessiterecovery import SiteRecoveryManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.mgmt.storage import StorageManagementClient

RG, TARGET_RG, VAULT = "repl-rg", "repl-rg-asr", "repl-vault"
QEMU_IO = shutil.which("qemu-io")


@pytest.fixture(scope="module")
def env(server):
    rm = server.client(ResourceManagementClient)
    rm.resource_groups.create_or_update(RG, {"location": "eastus"})
    rm.resource_groups.create_or_update(TARGET_RG, {"location": "westus"})
    net = server.client(NetworkManagementClient)
    vnet = net.virtual_networks.begin_create_or_update(RG, "app-vnet", {"location": "eastus", "properties": {
        "addressSpace": {"addressPrefixes": ["10.80.0.0/16"]},
        "subnets": [{"name": "vms", "properties": {"addressPrefix": "10.80.1.0/24"}}]}}).result()
    compute = server.client(ComputeManagementClient)
    vms = {}
    for name in ("app1", "app2"):
        nic = net.network_interfaces.begin_create_or_update(RG, f"{name}-nic", {"location": "eastus", "properties": {
            "ipConfigurations": [{"name": "c", "properties": {"subnet": {"id": vnet.subnets[0].id}}}]}}).result()
        os_disk = compute.disks.begin_create_or_update(RG, f"{name}-os", {"location": "eastus", "sku": {"name": "Premium_LRS"},
            "properties": {"creationData": {"createOption": "Empty"}, "diskSizeGB": 32, "osType": "Linux"}}).result()
        vms[name] = compute.virtual_machines.begin_create_or_update(RG, name, {"location": "eastus", "properties": {
            "hardwareProfile": {"vmSize": "Standard_D2s_v3"},
            "storageProfile": {"osDisk": {"createOption": "Attach", "osType": "Linux", "managedDisk": {"id": os_disk.id}},
                               "dataDisks": [{"lun": 0, "createOption": "Empty", "diskSizeGB": 64,
                                              "managedDisk": {"storageAccountType": "Standard_LRS"}}]},
            "networkProfile": {"networkInterfaces": [{"id": nic.id}]}}}).result()
    server.client(RecoveryServicesClient).vaults.begin_create_or_update(RG, VAULT, {
        "location": "westus", "sku": {"name": "Standard"}, "properties": {"publicNetworkAccess": "Enabled"}}).result()
    server.client(StorageManagementClient).storage_accounts.begin_create(RG, "cachesa", {
        "location": "eastus", "kind": "StorageV2", "sku": {"name": "Standard_LRS"}}).result()
    sr = server.client(SiteRecoveryManagementClient)
    for fabric, loc in (("src-fabric", "eastus"), ("dst-fabric", "westus")):
        sr.replication_fabrics.begin_create(RG, VAULT, fabric, {"properties": {"customDetails": {"instanceType": "Azure", "location": loc}}}).result()
        sr.replication_protection_containers.begin_create(RG, VAULT, fabric, f"{fabric}-c", {
            "properties": {"providerSpecificInput": [{"instanceType": "A2A"}]}}).result()
    policy = sr.replication_policies.begin_create(RG, VAULT, "24h", {"properties": {"providerSpecificInput": {
        "instanceType": "A2A", "recoveryPointHistory": 1440, "appConsistentFrequencyInMinutes": 240, "multiVmSyncStatus": "Disable"}}}).result()
    target_c = sr.replication_protection_containers.get(RG, VAULT, "dst-fabric", "dst-fabric-c")
    sr.replication_protection_container_mappings.begin_create(RG, VAULT, "src-fabric", "src-fabric-c", "east-to-west", {
        "properties": {"targetProtectionContainerId": target_c.id, "policyId": policy.id,
                       "providerSpecificInput": {"instanceType": "A2A"}}}).result()
    sub = server.sub
    yield {"sr": sr, "compute": compute, "vms": vms, "policy": policy, "target_c": target_c,
           "cache": f"/subscriptions/{sub}/resourceGroups/{RG}/providers/Microsoft.Storage/storageAccounts/cachesa",
           "target_rg": f"/subscriptions/{sub}/resourceGroups/{TARGET_RG}",
           "nbd": server.http("GET", "/recoverite/nbd").json()["endpoint"]}


def enable_body(env, vm, rg=None):
    disks = [vm.storage_profile.os_disk.managed_disk.id] + [d.managed_disk.id for d in vm.storage_profile.data_disks]
    return {"properties": {"policyId": env["policy"].id, "protectableItemId": vm.id, "providerSpecificDetails": {
        "instanceType": "A2A", "fabricObjectId": vm.id, "recoveryContainerId": env["target_c"].id,
        "recoveryResourceGroupId": rg or env["target_rg"],
        "vmManagedDisks": [{"diskId": d, "primaryStagingAzureStorageAccountId": env["cache"],
                            "recoveryResourceGroupId": rg or env["target_rg"]} for d in disks]}}}


def enable(env, name, item=None, rg=None):
    return env["sr"].replication_protected_items.begin_create(
        RG, VAULT, "src-fabric", "src-fabric-c", item or name, enable_body(env, env["vms"][name], rg)).result()


def qemu_io(env, rg, disk, *cmds):
    args = [QEMU_IO, "-f", "raw"]
    for cmd in cmds:
        args += ["-c", cmd]
    out = subprocess.run(args + [f"{env['nbd']}/{rg}/{disk}"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "Pattern verification failed" not in out.stdout + out.stderr, out.stdout + out.stderr
    return out.stdout


def point(server, item_id, kind="CrashConsistent"):
    r = server.http("POST", "/recoverite/replication/points", json={"protectedItemId": item_id, "kind": kind})
    assert r.status_code == 200, r.text
    return r.json()


def wait_shipped(sr, name, timeout=20):
    """Waits until the agent has shipped everything written (nothing pending at the source)."""
    import time
    deadline = time.time() + timeout
    while time.time() < deadline:
        item = sr.replication_protected_items.get(RG, VAULT, "src-fabric", "src-fabric-c", name)
        disks = item.properties.provider_specific_details.protected_managed_disks
        if all((d.data_pending_at_source_agent_in_mb or 0) == 0 for d in disks):
            return item
        time.sleep(0.2)
    raise AssertionError(f"the agent did not ship {name}'s changes: {item.properties.health_errors}")


def test_enable_replication_rules(env):
    sr = env["sr"]
    with pytest.raises(HttpResponseError) as e:
        enable(env, "app2", rg=f"{env['target_rg'][:-len(TARGET_RG)]}{RG}")
    assert "source VM's region" in e.value.error.message
    with pytest.raises(HttpResponseError) as e:
        enable(env, "app2", rg=env["target_rg"] + "-missing")
    assert e.value.error.code == "InvalidParameter"
    body = enable_body(env, env["vms"]["app2"])
    body["properties"]["providerSpecificDetails"]["vmManagedDisks"][0]["diskId"] = env["vms"]["app1"].storage_profile.os_disk.managed_disk.id
    with pytest.raises(HttpResponseError) as e:
        sr.replication_protected_items.begin_create(RG, VAULT, "src-fabric", "src-fabric-c", "app2", body).result()
    assert "not attached" in e.value.error.message
    assert list(sr.replication_protected_items.list(RG, VAULT)) == []


@pytest.mark.skipif(QEMU_IO is None, reason="qemu-io (qemu-utils) is not installed")
def test_failover_to_a_chosen_point_has_that_points_bytes(server, env):
    sr, compute = env["sr"], env["compute"]
    data_disk = "app1_DataDisk_0"
    qemu_io(env, RG, data_disk, "write -P 0x11 1M 4M")
    item = enable(env, "app1")
    assert item.properties.protection_state == "Protected"
    assert item.properties.provider_specific_details.recovery_fabric_location == "westus"
    assert len(item.properties.provider_specific_details.protected_managed_disks) == 2
    # Enabling twice, or the same VM under another name, is refused.
    with pytest.raises(HttpResponseError) as e:
        enable(env, "app1", item="app1-again")
    assert e.value.error.code == "VmAlreadyProtected"

    qemu_io(env, RG, data_disk, "write -P 0x22 2M 1M", "write -P 0x33 40G 2M")
    p1 = point(server, item.id)
    qemu_io(env, RG, data_disk, "write -P 0x44 1M 4M", "write -P 0x55 63G 64k")
    p2 = point(server, item.id, "AppConsistent")
    qemu_io(env, RG, data_disk, "write -P 0x66 1M 1M")  # after the last point

    points = list(sr.recovery_points.list_by_replication_protected_items(RG, VAULT, "src-fabric", "src-fabric-c", "app1"))
    assert [p.name for p in points] == [p2["name"], p1["name"]]
    assert [p.properties.recovery_point_type for p in points] == ["AppConsistent", "CrashConsistent"]
    got = sr.recovery_points.get(RG, VAULT, "src-fabric", "src-fabric-c", "app1", p1["name"])
    assert got.name == p1["name"] and got.properties.recovery_point_type == "CrashConsistent"
    assert got.properties.recovery_point_time.year >= 2025

    # The mapping, the vault's pairing and the VM's disks are in use now.
    with pytest.raises(HttpResponseError) as e:
        sr.replication_protection_container_mappings.begin_purge(RG, VAULT, "src-fabric", "src-fabric-c", "east-to-west").result()
    assert e.value.error.code == "ProtectedItemsExist"

    failed = sr.replication_protected_items.begin_unplanned_failover(RG, VAULT, "src-fabric", "src-fabric-c", "app1", {
        "properties": {"failoverDirection": "PrimaryToRecovery", "sourceSiteOperations": "NotRequired",
                       "providerSpecificDetails": {"instanceType": "A2A", "recoveryPointId": points[1].id}}}).result()
    assert failed.properties.active_location == "Recovery"
    assert failed.properties.protection_state == "UnplannedFailoverCommitPending"
    replica = compute.disks.get(TARGET_RG, f"{data_disk}-ASRReplica")
    assert replica.location == "westus" and replica.disk_size_gb == 64 and replica.sku.name == "Standard_LRS"
    assert compute.disks.get(TARGET_RG, "app1-os-ASRReplica").os_type == "Linux"
    # The failed-over disk holds point 1 exactly: not what came before or after.
    qemu_io(env, TARGET_RG, f"{data_disk}-ASRReplica",
            "read -P 0x11 1M 1M", "read -P 0x22 2M 1M", "read -P 0x11 3M 2M", "read -P 0x33 40G 2M",
            "read -P 0 63G 64k", "read -P 0 0 1M")
    # A failover already happened: a second one is refused until commit + reprotect.
    with pytest.raises(HttpResponseError) as e:
        sr.replication_protected_items.begin_unplanned_failover(RG, VAULT, "src-fabric", "src-fabric-c", "app1", {
            "properties": {"failoverDirection": "PrimaryToRecovery", "providerSpecificDetails": {"instanceType": "A2A"}}}).result()
    assert e.value.error.code == "OperationNotAllowed"
    committed = sr.replication_protected_items.begin_failover_commit(RG, VAULT, "src-fabric", "src-fabric-c", "app1").result()
    assert committed.properties.protection_state == "FailedOver"
    jobs = {j.properties.scenario_name for j in sr.replication_jobs.list(RG, VAULT)}
    assert {"EnableDr", "UnplannedFailover", "CommitFailover"} <= jobs


@pytest.mark.skipif(QEMU_IO is None, reason="qemu-io (qemu-utils) is not installed")
def test_latest_failover_ships_everything_written(server, env):
    sr = env["sr"]
    item = enable(env, "app2")
    qemu_io(env, RG, "app2_DataDisk_0", "write -P 0x77 5M 3M")
    wait_shipped(sr, "app2")
    # No point is taken by hand: "Latest" processes everything in the cache first.
    done = sr.replication_protected_items.begin_unplanned_failover(RG, VAULT, "src-fabric", "src-fabric-c", "app2", {
        "properties": {"failoverDirection": "PrimaryToRecovery", "providerSpecificDetails": {"instanceType": "A2A"}}}).result()
    assert done.properties.failover_recovery_point_id.startswith(item.id + "/recoveryPoints/")
    qemu_io(env, TARGET_RG, "app2_DataDisk_0-ASRReplica", "read -P 0x77 5M 3M", "read -P 0 8M 1M")
    sr.replication_protected_items.begin_delete(RG, VAULT, "src-fabric", "src-fabric-c", "app2", {
        "properties": {"disableProtectionReason": "NotSpecified"}}).result()
    assert [i.name for i in sr.replication_protected_items.list(RG, VAULT)] == ["app1"]
