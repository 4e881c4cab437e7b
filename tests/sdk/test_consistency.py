"""State that stays right (issue 9's defects): collections come back in the
order they were PUT, deleting a resource group cascades to every provider
that kept something about it, and protection-state transitions are decided
where they commit, so racing requests cannot both win."""

import threading

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.privatedns import PrivateDnsManagementClient
from azure.mgmt.recoveryservices import RecoveryServicesClient
from azure.mgmt.resource.resources import ResourceManagementClient

import asr


def test_collections_keep_the_order_of_the_put(server):
    asr.groups(server, ("order-rg", "eastus"))
    net = server.client(NetworkManagementClient)
    names = ["vms", "pe", "app", "db"]
    vnet = net.virtual_networks.begin_create_or_update("order-rg", "order-vnet", {"location": "eastus", "properties": {
        "addressSpace": {"addressPrefixes": ["10.70.0.0/16"]},
        "subnets": [{"name": n, "properties": {"addressPrefix": f"10.70.{i}.0/24"}} for i, n in enumerate(names)]}}).result()
    assert [s.name for s in vnet.subnets] == names
    assert [s.name for s in net.virtual_networks.get("order-rg", "order-vnet").subnets] == names
    assert [s.name for s in net.subnets.list("order-rg", "order-vnet")] == names
    assert [s.name for v in net.virtual_networks.list("order-rg") for s in v.subnets] == names
    # A subnet added on its own goes last; a PUT listing them anew sets the order.
    net.subnets.begin_create_or_update("order-rg", "order-vnet", "aaa", {"properties": {"addressPrefix": "10.70.9.0/24"}}).result()
    assert [s.name for s in net.subnets.list("order-rg", "order-vnet")] == names + ["aaa"]
    again = ["db", "aaa", "vms", "pe", "app"]
    prefixes = {s.name: s.address_prefix for s in net.subnets.list("order-rg", "order-vnet")}
    vnet = net.virtual_networks.begin_create_or_update("order-rg", "order-vnet", {"location": "eastus", "properties": {
        "addressSpace": {"addressPrefixes": ["10.70.0.0/16"]},
        "subnets": [{"name": n, "properties": {"addressPrefix": prefixes[n]}} for n in again]}}).result()
    assert [s.name for s in vnet.subnets] == again

    rules = ["zeta", "alpha", "mid"]
    nsg = net.network_security_groups.begin_create_or_update("order-rg", "order-nsg", {"location": "eastus", "properties": {
        "securityRules": [{"name": n, "properties": {"priority": 300 - 10 * i, "direction": "Outbound", "access": "Allow",
                           "protocol": "Tcp", "sourceAddressPrefix": "*", "sourcePortRange": "*",
                           "destinationAddressPrefix": "Storage", "destinationPortRange": str(443 + i)}}
                          for i, n in enumerate(rules)]}}).result()
    assert [r.name for r in nsg.security_rules] == rules
    assert [r.name for r in net.security_rules.list("order-rg", "order-nsg")] == rules

    routes = ["to-z", "to-a", "to-m"]
    rt = net.route_tables.begin_create_or_update("order-rg", "order-rt", {"location": "eastus", "properties": {
        "routes": [{"name": n, "properties": {"addressPrefix": f"10.{80 + i}.0.0/16", "nextHopType": "VnetLocal"}}
                   for i, n in enumerate(routes)]}}).result()
    assert [r.name for r in rt.routes] == routes
    assert [r.name for r in net.routes.list("order-rg", "order-rt")] == routes

    configs = ["secondary", "primary-ish", "third"]
    nic = net.network_interfaces.begin_create_or_update("order-rg", "order-nic", {"location": "eastus", "properties": {
        "ipConfigurations": [{"name": n, "properties": {"primary": i == 0, "subnet": {"id": f"{vnet.id}/subnets/vms"}}}
                             for i, n in enumerate(configs)]}}).result()
    assert [c.name for c in nic.ip_configurations] == configs
    assert [c.name for c in net.network_interfaces.get("order-rg", "order-nic").ip_configurations] == configs

    compute = server.client(ComputeManagementClient)
    osd = compute.disks.begin_create_or_update("order-rg", "order-os", {"location": "eastus", "sku": {"name": "Standard_LRS"},
        "properties": {"creationData": {"createOption": "Empty"}, "diskSizeGB": 4, "osType": "Linux"}}).result()
    luns = [3, 0, 7]
    vm = compute.virtual_machines.begin_create_or_update("order-rg", "order-vm", {"location": "eastus", "properties": {
        "hardwareProfile": {"vmSize": "Standard_D2s_v3"},
        "storageProfile": {"osDisk": {"createOption": "Attach", "osType": "Linux", "managedDisk": {"id": osd.id}},
                           "dataDisks": [{"lun": l, "createOption": "Empty", "diskSizeGB": 1,
                                          "managedDisk": {"storageAccountType": "Standard_LRS"}} for l in luns]},
        "networkProfile": {"networkInterfaces": [{"id": nic.id}]}}}).result()
    assert [d.lun for d in vm.storage_profile.data_disks] == luns
    assert [d.lun for d in compute.virtual_machines.get("order-rg", "order-vm").storage_profile.data_disks] == luns

    pdns = server.client(PrivateDnsManagementClient)
    pdns.private_zones.begin_create_or_update("order-rg", "order.internal", {"location": "global"}).result()
    ips = ["10.0.0.9", "10.0.0.2", "10.0.0.5"]
    pdns.record_sets.create_or_update("order-rg", "order.internal", "A", "web", {"properties": {
        "ttl": 60, "aRecords": [{"ipv4Address": ip} for ip in ips]}})
    got = pdns.record_sets.get("order-rg", "order.internal", "A", "web")
    assert [a.ipv4_address for a in got.a_records] == ips
    server.client(ResourceManagementClient).resource_groups.begin_delete("order-rg").result()


def test_resource_group_delete_cascades_to_the_vault(server):
    """A vault, a private endpoint to it in another resource group, then that
    group deleted: the vault forgets the connection and can be deleted."""
    asr.groups(server, ("cascade-vault-rg", "centralus"), ("cascade-net-rg", "eastus"))
    rs = server.client(RecoveryServicesClient)
    vault = rs.vaults.begin_create_or_update("cascade-vault-rg", "cascade-vault", {
        "location": "centralus", "sku": {"name": "Standard"}}).result()
    net = server.client(NetworkManagementClient)
    vnet = net.virtual_networks.begin_create_or_update("cascade-net-rg", "pe-vnet", {"location": "eastus", "properties": {
        "addressSpace": {"addressPrefixes": ["10.71.0.0/16"]},
        "subnets": [{"name": "pe", "properties": {"addressPrefix": "10.71.1.0/24"}}]}}).result()
    net.private_endpoints.begin_create_or_update("cascade-net-rg", "vault-pe", {"location": "eastus", "properties": {
        "subnet": {"id": vnet.subnets[0].id}, "privateLinkServiceConnections": [{"name": "asr", "properties": {
            "privateLinkServiceId": vault.id, "groupIds": ["AzureSiteRecovery"]}}]}}).result()
    assert len(rs.vaults.get("cascade-vault-rg", "cascade-vault").properties.private_endpoint_connections) == 1
    with pytest.raises(HttpResponseError) as e:
        rs.vaults.begin_delete("cascade-vault-rg", "cascade-vault").result()
    assert e.value.error.code == "ServiceResourceNotEmpty"

    server.client(ResourceManagementClient).resource_groups.begin_delete("cascade-net-rg").result()
    assert not rs.vaults.get("cascade-vault-rg", "cascade-vault").properties.private_endpoint_connections
    rs.vaults.begin_delete("cascade-vault-rg", "cascade-vault").result()
    assert [v.name for v in rs.vaults.list_by_resource_group("cascade-vault-rg")] == []


@pytest.fixture(scope="module")
def protected(server):
    asr.groups(server, ("race-rg", "eastus"), ("race-rg-asr", "centralus"))
    net = server.client(NetworkManagementClient)
    vnet = net.virtual_networks.begin_create_or_update("race-rg", "race-vnet", {"location": "eastus", "properties": {
        "addressSpace": {"addressPrefixes": ["10.72.0.0/16"]},
        "subnets": [{"name": "vms", "properties": {"addressPrefix": "10.72.1.0/24"}},
                    {"name": "pe", "properties": {"addressPrefix": "10.72.2.0/24"}}]}}).result()
    sr, pol, tc = asr.vault(server, "race-rg", "race-vault", target="centralus")
    cache = asr.cache(server, "race-rg", "racecache")
    yield {"vnet": vnet, "sr": sr, "pol": pol, "tc": tc, "cache": cache}
    # Replicating items keep agents busy for the rest of the session: stop them.
    for i in sr.replication_protected_items.list("race-rg", "race-vault"):
        sr.replication_protected_items.begin_delete("race-rg", "race-vault", "east", "east-c", i.name, {
            "properties": {"disableProtectionReason": "NotSpecified"}}).result()


def race(*calls):
    """Runs the calls at once; returns (results, errors)."""
    results, errors = [], []
    barrier = threading.Barrier(len(calls))

    def run(c):
        barrier.wait()
        try:
            results.append(c())
        except HttpResponseError as e:
            errors.append(e)

    threads = [threading.Thread(target=run, args=(c,)) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results, errors


def test_one_vm_cannot_be_protected_twice_under_a_race(server, protected):
    p = protected
    vm = asr.vm(server, "race-rg", "twice", p["vnet"].subnets[0].id, os_gb=2)
    results, errors = race(*[
        (lambda name=name: asr.protect(server, p["sr"], "race-rg", "race-vault", name, vm, p["pol"], p["tc"],
                                       p["cache"].id, "race-rg-asr"))
        for name in ("twice-a", "twice-b")])
    assert len(results) == 1, (results, errors)
    assert len(errors) == 1 and errors[0].error.code in ("VmAlreadyProtected", "ProtectedItemAlreadyExists"), errors
    items = [i for i in p["sr"].replication_protected_items.list("race-rg", "race-vault")
             if i.properties.provider_specific_details.fabric_object_id.lower() == vm.id.lower()]
    assert len(items) == 1


def test_site_recovery_enable_marks_the_vault(server, protected):
    """Document 000: private endpoints only for vaults with no items; a
    protected VM is an item, so a first endpoint afterwards is refused."""
    net = server.client(NetworkManagementClient)
    vault_id = p_vault = protected["tc"].id.split("/replicationFabrics/")[0]
    assert list(protected["sr"].replication_protected_items.list("race-rg", "race-vault")), "an item is protected"
    with pytest.raises(HttpResponseError) as e:
        net.private_endpoints.begin_create_or_update("race-rg", "late-pe", {"location": "eastus", "properties": {
            "subnet": {"id": protected["vnet"].subnets[1].id}, "privateLinkServiceConnections": [{"name": "asr", "properties": {
                "privateLinkServiceId": vault_id, "groupIds": ["AzureSiteRecovery"]}}]}}).result()
    assert e.value.error.code == "PrivateEndpointNotSupportedForVaultWithRegisteredItems", p_vault
    assert [x.name for x in net.private_endpoints.list("race-rg")] == []


def test_two_concurrent_failovers_one_wins(server, protected):
    p = protected
    vm = asr.vm(server, "race-rg", "fo", p["vnet"].subnets[0].id, os_gb=2)
    asr.protect(server, p["sr"], "race-rg", "race-vault", "fo", vm, p["pol"], p["tc"], p["cache"].id, "race-rg-asr")
    r = server.http("POST", "/recoverite/replication/points", json={
        "protectedItemId": p["sr"].replication_protected_items.get("race-rg", "race-vault", "east", "east-c", "fo").id})
    assert r.status_code == 200, r.text
    body = {"properties": {"failoverDirection": "PrimaryToRecovery", "providerSpecificDetails": {
        "instanceType": "A2A", "recoveryPointType": "LatestProcessed"}}}
    results, errors = race(*[
        (lambda: p["sr"].replication_protected_items.begin_unplanned_failover(
            "race-rg", "race-vault", "east", "east-c", "fo", body).result())
        for _ in range(2)])
    assert len(results) == 1, (results, errors)
    assert len(errors) == 1 and errors[0].status_code == 409 and errors[0].error.code == "OperationNotAllowed", errors
    item = p["sr"].replication_protected_items.get("race-rg", "race-vault", "east", "east-c", "fo")
    assert item.properties.protection_state == "UnplannedFailoverCommitPending"
    disks = [d.name for d in server.client(ComputeManagementClient).disks.list_by_resource_group("race-rg-asr")]
    assert sorted(d for d in disks if d.startswith("fo")) == ["fo-os-ASRReplica"], disks
