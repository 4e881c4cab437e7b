"""The whole Site Recovery cycle on real bytes (issue 5), through the
official SDK: protect a VM, drill with a test failover into an isolated
network and clean up, fail over to a chosen kind of point, commit, keep
writing in the recovery region, reprotect (only the difference is sent),
fail back, and find the data written after the failover on the original
disks. Roles: an Operator runs the drills but cannot enable replication."""

import shutil
import subprocess

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.recoveryservices import RecoveryServicesClient
from azure.mgmt.recoveryservicessiterecovery import SiteRecoveryManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.mgmt.storage import StorageManagementClient

RG, TARGET_RG, VAULT = "cycle-rg", "cycle-rg-asr", "cycle-vault"
SRC, DST = ("cyc-src", "cyc-src-c"), ("cyc-dst", "cyc-dst-c")
QEMU_IO = shutil.which("qemu-io")
pytestmark = pytest.mark.skipif(QEMU_IO is None, reason="qemu-io (qemu-utils) is not installed")


@pytest.fixture(scope="module")
def env(server):
    rm = server.client(ResourceManagementClient)
    rm.resource_groups.create_or_update(RG, {"location": "eastus"})
    rm.resource_groups.create_or_update(TARGET_RG, {"location": "centralus"})
    net = server.client(NetworkManagementClient)
    vnet = net.virtual_networks.begin_create_or_update(RG, "cyc-vnet", {"location": "eastus", "properties": {
        "addressSpace": {"addressPrefixes": ["10.90.0.0/16"]},
        "subnets": [{"name": "vms", "properties": {"addressPrefix": "10.90.1.0/24"}}]}}).result()
    drill = net.virtual_networks.begin_create_or_update(TARGET_RG, "drill-vnet", {"location": "centralus", "properties": {
        "addressSpace": {"addressPrefixes": ["10.99.0.0/16"]},
        "subnets": [{"name": "vms", "properties": {"addressPrefix": "10.99.1.0/24"}}]}}).result()
    compute = server.client(ComputeManagementClient)
    nic = net.network_interfaces.begin_create_or_update(RG, "web-nic", {"location": "eastus", "properties": {
        "ipConfigurations": [{"name": "c", "properties": {"subnet": {"id": vnet.subnets[0].id}}}]}}).result()
    os_disk = compute.disks.begin_create_or_update(RG, "web-os", {"location": "eastus", "sku": {"name": "Premium_LRS"},
        "properties": {"creationData": {"createOption": "Empty"}, "diskSizeGB": 32, "osType": "Linux"}}).result()
    vm = compute.virtual_machines.begin_create_or_update(RG, "web", {"location": "eastus", "properties": {
        "hardwareProfile": {"vmSize": "Standard_D2s_v3"},
        "storageProfile": {"osDisk": {"createOption": "Attach", "osType": "Linux", "managedDisk": {"id": os_disk.id}},
                           "dataDisks": [{"lun": 0, "createOption": "Empty", "diskSizeGB": 64,
                                          "managedDisk": {"storageAccountType": "Standard_LRS"}}]},
        "networkProfile": {"networkInterfaces": [{"id": nic.id}]}}}).result()
    server.client(RecoveryServicesClient).vaults.begin_create_or_update(RG, VAULT, {
        "location": "centralus", "sku": {"name": "Standard"}, "properties": {"publicNetworkAccess": "Enabled"}}).result()
    server.client(StorageManagementClient).storage_accounts.begin_create(RG, "cyccache", {
        "location": "eastus", "kind": "StorageV2", "sku": {"name": "Standard_LRS"}}).result()
    sr = server.client(SiteRecoveryManagementClient)
    for (fabric, container), loc in ((SRC, "eastus"), (DST, "centralus")):
        sr.replication_fabrics.begin_create(RG, VAULT, fabric, {"properties": {"customDetails": {"instanceType": "Azure", "location": loc}}}).result()
        sr.replication_protection_containers.begin_create(RG, VAULT, fabric, container, {
            "properties": {"providerSpecificInput": [{"instanceType": "A2A"}]}}).result()
    policy = sr.replication_policies.begin_create(RG, VAULT, "cyc-24h", {"properties": {"providerSpecificInput": {
        "instanceType": "A2A", "recoveryPointHistory": 1440, "appConsistentFrequencyInMinutes": 240, "multiVmSyncStatus": "Disable"}}}).result()
    target_c = sr.replication_protection_containers.get(RG, VAULT, *DST)
    sr.replication_protection_container_mappings.begin_create(RG, VAULT, *SRC, "east-to-central", {
        "properties": {"targetProtectionContainerId": target_c.id, "policyId": policy.id,
                       "providerSpecificInput": {"instanceType": "A2A"}}}).result()
    sub = server.sub
    return {"sr": sr, "compute": compute, "vm": vm, "policy": policy, "target_c": target_c, "drill": drill,
            "cache": f"/subscriptions/{sub}/resourceGroups/{RG}/providers/Microsoft.Storage/storageAccounts/cyccache",
            "target_rg": f"/subscriptions/{sub}/resourceGroups/{TARGET_RG}",
            "nbd": server.http("GET", "/recoverite/nbd").json()["endpoint"]}


def io(env, rg, disk, *cmds):
    args = [QEMU_IO, "-f", "raw"]
    for cmd in cmds:
        args += ["-c", cmd]
    out = subprocess.run(args + [f"{env['nbd']}/{rg}/{disk}"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "Pattern verification failed" not in out.stdout + out.stderr, out.stdout + out.stderr


def point(server, item_id, kind="CrashConsistent"):
    r = server.http("POST", "/recoverite/replication/points", json={"protectedItemId": item_id, "kind": kind})
    assert r.status_code == 200, r.text
    return r.json()


def wait_shipped(sr, timeout=20):
    """Until the agent has shipped everything written (nothing pending at the source)."""
    import time
    deadline = time.time() + timeout
    while time.time() < deadline:
        item = sr.replication_protected_items.get(RG, VAULT, *SRC, "web")
        if all((d.data_pending_at_source_agent_in_mb or 0) == 0 for d in item.properties.provider_specific_details.protected_managed_disks):
            return item
        time.sleep(0.2)
    raise AssertionError(f"the agent did not ship: {item.properties.health_errors}")


def enable_body(env):
    vm = env["vm"]
    disks = [vm.storage_profile.os_disk.managed_disk.id] + [d.managed_disk.id for d in vm.storage_profile.data_disks]
    return {"properties": {"policyId": env["policy"].id, "providerSpecificDetails": {
        "instanceType": "A2A", "fabricObjectId": vm.id, "recoveryContainerId": env["target_c"].id,
        "recoveryResourceGroupId": env["target_rg"],
        "vmManagedDisks": [{"diskId": d, "primaryStagingAzureStorageAccountId": env["cache"],
                            "recoveryResourceGroupId": env["target_rg"]} for d in disks]}}}


def operator(server):
    r = server.http("POST", "/recoverite/principals", json={
        "displayName": "dr-operator", "role": "Site Recovery Operator"})
    assert r.status_code in (200, 201), r.text
    p = r.json()
    return server.client(SiteRecoveryManagementClient, credential=server.credential(p["clientId"], p["clientSecret"]))


def test_protect_drill_failover_reprotect_failback(server, env):
    sr, compute, data = env["sr"], env["compute"], "web_DataDisk_0"
    ops = operator(server)
    # The Operator may not enable replication (document 003).
    with pytest.raises(HttpResponseError) as e:
        ops.replication_protected_items.begin_create(RG, VAULT, *SRC, "web", enable_body(env)).result()
    assert e.value.status_code == 403 and e.value.error.code == "AuthorizationFailed"

    io(env, RG, data, "write -P 0x10 0 1M")
    item = sr.replication_protected_items.begin_create(RG, VAULT, *SRC, "web", enable_body(env)).result()
    assert "TestFailover" in item.properties.allowed_operations
    io(env, RG, data, "write -P 0x20 1M 1M")
    app = point(server, item.id, "AppConsistent")
    io(env, RG, data, "write -P 0x30 2M 1M")
    crash = point(server, item.id)
    io(env, RG, data, "write -P 0x40 3M 1M")  # not in any point yet

    # Drill: the Operator runs a test failover into an isolated network; replication goes on.
    tfo = ops.replication_protected_items.begin_test_failover(RG, VAULT, *SRC, "web", {"properties": {
        "failoverDirection": "PrimaryToRecovery", "networkType": "VmNetworkAsInput", "networkId": env["drill"].id,
        "providerSpecificDetails": {"instanceType": "A2A", "recoveryPointType": "LatestApplicationConsistent"}}}).result()
    assert tfo.properties.test_failover_state == "TestFailoverCompleted"
    assert tfo.properties.protection_state == "Protected"
    io(env, TARGET_RG, f"{data}-ASRTest", "read -P 0x10 0 1M", "read -P 0x20 1M 1M", "read -P 0 2M 2M")
    # The drill's point is marked as tested (issue 13); the others are not.
    points = server.http("GET", f"{item.id}/recoveryPoints", params={"api-version": "2025-08-01"}).json()["value"]
    tested = {p["name"]: p["properties"]["testedByDrill"] for p in points}
    assert tested[app["name"]] is True and tested[crash["name"]] is False, tested
    with pytest.raises(HttpResponseError) as e:  # a second drill before cleanup
        sr.replication_protected_items.begin_test_failover(RG, VAULT, *SRC, "web", {"properties": {
            "networkId": env["drill"].id, "providerSpecificDetails": {"instanceType": "A2A"}}}).result()
    assert e.value.error.code == "TestFailoverInProgress"
    with pytest.raises(HttpResponseError) as e:  # failover must wait for the cleanup
        sr.replication_protected_items.begin_unplanned_failover(RG, VAULT, *SRC, "web", {"properties": {
            "failoverDirection": "PrimaryToRecovery", "providerSpecificDetails": {"instanceType": "A2A"}}}).result()
    assert e.value.error.code == "TestFailoverCleanupPending"
    clean = ops.replication_protected_items.begin_test_failover_cleanup(RG, VAULT, *SRC, "web", {"properties": {"comments": "drill ok"}}).result()
    assert clean.properties.test_failover_state == "None"
    assert [d.name for d in compute.disks.list_by_resource_group(TARGET_RG) if d.name.endswith("-ASRTest")] == []

    # Failover to LatestProcessed: the newest point made (the crash-consistent one), not the unshipped 0x40.
    failed = ops.replication_protected_items.begin_unplanned_failover(RG, VAULT, *SRC, "web", {"properties": {
        "failoverDirection": "PrimaryToRecovery", "sourceSiteOperations": "NotRequired",
        "providerSpecificDetails": {"instanceType": "A2A", "recoveryPointType": "LatestProcessed"}}}).result()
    assert failed.properties.failover_recovery_point_id.endswith("/" + crash["name"])
    assert app["name"] != crash["name"]
    io(env, TARGET_RG, f"{data}-ASRReplica", "read -P 0x10 0 1M", "read -P 0x20 1M 1M", "read -P 0x30 2M 1M", "read -P 0 3M 1M")
    with pytest.raises(HttpResponseError) as e:
        ops.replication_protected_items.begin_reprotect(RG, VAULT, *SRC, "web", {"properties": {
            "failoverDirection": "RecoveryToPrimary", "providerSpecificDetails": {"instanceType": "A2A"}}}).result()
    assert e.value.error.code == "OperationNotAllowed"  # commit first
    ops.replication_protected_items.begin_failover_commit(RG, VAULT, *SRC, "web").result()

    # The application runs in Central US now and writes there.
    io(env, TARGET_RG, f"{data}-ASRReplica", "write -P 0x50 10M 128k")
    back = ops.replication_protected_items.begin_reprotect(RG, VAULT, *SRC, "web", {"properties": {
        "failoverDirection": "RecoveryToPrimary", "providerSpecificDetails": {
            "instanceType": "A2A", "recoveryContainerId": sr.replication_protection_containers.get(RG, VAULT, *SRC).id,
            "recoveryResourceGroupId": f"/subscriptions/{server.sub}/resourceGroups/{RG}", "policyId": env["policy"].id}}}).result()
    assert back.properties.protection_state == "Protected" and back.properties.active_location == "Recovery"
    details = back.properties.provider_specific_details
    # Only the difference crossed: 0x50's 128 KiB and the 1 MiB 0x40 that never replicated.
    assert details["resyncBytes"] == (128 << 10) + (1 << 20), details["resyncBytes"]
    io(env, TARGET_RG, f"{data}-ASRReplica", "write -P 0x60 20M 64k")
    wait_shipped(sr)  # the agent in Central US ships it to the cache there

    # Failback: the original disks receive what was written in Central US.
    fb = ops.replication_protected_items.begin_unplanned_failover(RG, VAULT, *SRC, "web", {"properties": {
        "failoverDirection": "RecoveryToPrimary", "providerSpecificDetails": {"instanceType": "A2A"}}}).result()
    assert fb.properties.active_location == "Primary"
    io(env, RG, data, "read -P 0x10 0 1M", "read -P 0x30 2M 1M", "read -P 0 3M 1M",
       "read -P 0x50 10M 128k", "read -P 0x60 20M 64k")
    ops.replication_protected_items.begin_failover_commit(RG, VAULT, *SRC, "web").result()
    again = ops.replication_protected_items.begin_reprotect(RG, VAULT, *SRC, "web", {"properties": {
        "failoverDirection": "PrimaryToRecovery", "providerSpecificDetails": {"instanceType": "A2A"}}}).result()
    assert again.properties.active_location == "Primary" and again.properties.protection_state == "Protected"
    assert again.properties.provider_specific_details["resyncBytes"] == 0, "both regions hold the same bytes"
    scenarios = [j.properties.scenario_name for j in sr.replication_jobs.list(RG, VAULT)]
    for s in ("EnableDr", "TestFailover", "TestFailoverCleanup", "UnplannedFailover", "CommitFailover", "SwitchProtection"):
        assert s in scenarios, (s, scenarios)
    tfo_job = next(j for j in sr.replication_jobs.list(RG, VAULT) if j.properties.scenario_name == "TestFailover")
    assert tfo_job.properties.custom_details.instance_type == "TestFailoverJobDetails"
    # Each drill, failover and failback left a report: the point, its age at
    # the start (achieved RPO), the time to a running VM (achieved RTO), the steps.
    vault_id = f"/subscriptions/{server.sub}/resourceGroups/{RG}/providers/Microsoft.RecoveryServices/vaults/{VAULT}"
    r = server.http("GET", "/recoverite/drills", params={"vault": vault_id})
    assert r.status_code == 200, r.text
    reports = r.json()["value"]
    assert [x["kind"] for x in reports] == ["TestFailover", "Failover", "Failback"], reports
    drill = reports[0]
    assert drill["recoveryPointId"].endswith("/" + app["name"]) and drill["recoveryPointTime"] == app["properties"]["recoveryPointTime"]
    assert drill["rpoSeconds"] >= 0 and 0 < drill["rtoSeconds"] < 60, drill
    assert [st["name"] for st in drill["steps"]] == [
        "Prerequisites check for test failover", "Creating test disks", "Starting the test virtual machine"], drill["steps"]
    assert "web-test is running" in drill["outcome"] and "achieved RPO" in drill["summary"], drill
    assert reports[1]["recoveryPointId"].endswith("/" + crash["name"])
    text = server.http("GET", "/recoverite/drills", params={"vault": vault_id, "format": "text"}).text
    assert text.count("achieved RTO") == 3, text
    reader = server.http("POST", "/recoverite/principals", json={"displayName": "no-rights"}).json()
    nobody = server.token(server.credential(reader["clientId"], reader["clientSecret"]))
    assert server.http("GET", "/recoverite/drills", token=nobody, params={"vault": vault_id}).status_code == 403
    # The Operator may not disable replication either.
    with pytest.raises(HttpResponseError) as e:
        ops.replication_protected_items.begin_delete(RG, VAULT, *SRC, "web", {"properties": {"disableProtectionReason": "NotSpecified"}}).result()
    assert e.value.status_code == 403
