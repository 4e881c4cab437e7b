"""The tracked-resource core (issue 9) as clients see it, on its first
kind, user-assigned identities (azure-mgmt-msi): a PATCH with only tags
changes nothing else, conditional writes (`If-None-Match: *`, `If-Match`)
answer 412 when they do not hold, lists cover a group and the subscription,
and `listAssociatedResources` finds the resources that use the identity."""

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.msi import ManagedServiceIdentityClient
from azure.mgmt.recoveryservices import RecoveryServicesClient
from azure.mgmt.resource.resources import ResourceManagementClient

RG = "tracked-rg"


@pytest.fixture(scope="module")
def msi(server):
    server.client(ResourceManagementClient).resource_groups.create_or_update(RG, {"location": "eastus"})
    yield server.client(ManagedServiceIdentityClient)
    server.client(ResourceManagementClient).resource_groups.begin_delete(RG).result()


def test_tags_only_patch_changes_nothing_else(msi):
    made = msi.user_assigned_identities.create_or_update(RG, "app-id", {"location": "eastus", "tags": {"env": "dr"}})
    patched = msi.user_assigned_identities.update(RG, "app-id", {"tags": {"env": "prod", "owner": "ops"}})
    assert patched.tags == {"env": "prod", "owner": "ops"}
    assert (patched.principal_id, patched.client_id, patched.tenant_id, patched.location) == \
        (made.principal_id, made.client_id, made.tenant_id, made.location)
    # A PUT replaces: without tags it leaves none (the principal is the
    # identity's for life); one with a new location is refused.
    again = msi.user_assigned_identities.create_or_update(RG, "app-id", {"location": "eastus"})
    assert not again.tags and again.principal_id == made.principal_id
    with pytest.raises(HttpResponseError) as e:
        msi.user_assigned_identities.create_or_update(RG, "app-id", {"location": "westus"})
    assert e.value.error.code == "LocationCannotBeChanged"
    ids = [i.name for i in msi.user_assigned_identities.list_by_resource_group(RG)]
    assert ids == ["app-id"] and "app-id" in [i.name for i in msi.user_assigned_identities.list_by_subscription()]


def test_conditional_writes(server, msi):
    path = f"/subscriptions/{server.sub}/resourceGroups/{RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities"
    body = {"location": "eastus"}
    r = server.http("PUT", f"{path}/cond-id?api-version=2023-01-31", json=body, headers={"If-None-Match": "*"})
    assert r.status_code == 201
    r = server.http("PUT", f"{path}/cond-id?api-version=2023-01-31", json=body, headers={"If-None-Match": "*"})
    assert r.status_code == 412 and r.json()["error"]["code"] == "PreconditionFailed"
    r = server.http("PUT", f"{path}/cond-id?api-version=2023-01-31", json=body, headers={"If-Match": "*"})
    assert r.status_code == 200
    r = server.http("PUT", f"{path}/absent-id?api-version=2023-01-31", json=body, headers={"If-Match": "*"})
    assert r.status_code == 412
    assert server.http("GET", f"{path}/absent-id?api-version=2023-01-31").status_code == 404
    # A PATCH updates; it never creates, even with a location.
    r = server.http("PATCH", f"{path}/absent-id?api-version=2023-01-31", json={"location": "eastus", "tags": {"a": "b"}})
    assert r.status_code == 404
    assert server.http("GET", f"{path}/absent-id?api-version=2023-01-31").status_code == 404


def test_list_associated_resources_finds_the_identitys_users(server, msi):
    uai = msi.user_assigned_identities.create_or_update(RG, "vault-id", {"location": "eastus"})
    rs = server.client(RecoveryServicesClient)
    vault = rs.vaults.begin_create_or_update(RG, "uai-vault", {
        "location": "eastus", "sku": {"name": "Standard"},
        "identity": {"type": "UserAssigned", "userAssignedIdentities": {uai.id: {}}},
        "properties": {"publicNetworkAccess": "Enabled"}}).result()
    # The operation is in the service's preview api-version; the multi-api
    # client selects it as documented.
    preview = server.client(ManagedServiceIdentityClient, api_version="2022-01-31-preview")
    found = list(preview.user_assigned_identities.list_associated_resources(RG, "vault-id"))
    assert [r.id.lower() for r in found] == [vault.id.lower()]
    assert found[0].resource_group == RG and found[0].type == "Microsoft.RecoveryServices/vaults"
    assert list(preview.user_assigned_identities.list_associated_resources(RG, "app-id")) == []


def test_network_security_groups_and_route_tables_on_the_core(server, msi):
    """NSGs and route tables are tracked kinds too: update_tags keeps their
    rules and routes, their ETags are Microsoft.Network's weak ones and an
    If-Match with a stale one is refused, a PUT replaces the inline rules,
    and one a subnet uses is not deleted."""
    from azure.mgmt.network import NetworkManagementClient
    net = server.client(NetworkManagementClient)
    nsg = net.network_security_groups.begin_create_or_update(RG, "core-nsg", {"location": "eastus", "properties": {
        "securityRules": [{"name": "allow-https", "properties": {
            "protocol": "Tcp", "direction": "Outbound", "access": "Allow", "priority": 100,
            "sourceAddressPrefix": "*", "sourcePortRange": "*",
            "destinationAddressPrefix": "AzureSiteRecovery", "destinationPortRange": "443"}}]}}).result()
    assert nsg.etag.startswith('W/"') and [r.name for r in nsg.security_rules] == ["allow-https"]
    assert len(nsg.default_security_rules) == 6
    tagged = net.network_security_groups.update_tags(RG, "core-nsg", {"tags": {"env": "dr"}})
    assert tagged.tags == {"env": "dr"} and [r.name for r in tagged.security_rules] == ["allow-https"]
    assert tagged.resource_guid == nsg.resource_guid and tagged.etag != nsg.etag
    path = f"/subscriptions/{server.sub}/resourceGroups/{RG}/providers/Microsoft.Network/networkSecurityGroups/core-nsg"
    r = server.http("PUT", f"{path}?api-version=2024-05-01", json={"location": "eastus"}, headers={"If-Match": nsg.etag})
    assert r.status_code == 412 and r.json()["error"]["code"] == "PreconditionFailed"
    r = server.http("PUT", f"{path}?api-version=2024-05-01", json={"location": "eastus"}, headers={"If-Match": tagged.etag})
    assert r.status_code == 200 and r.json()["properties"]["securityRules"] == []
    # Two rules with one priority and direction are refused, and change nothing.
    dup = {"protocol": "*", "direction": "Inbound", "access": "Deny", "priority": 300, "sourceAddressPrefix": "*",
           "sourcePortRange": "*", "destinationAddressPrefix": "*", "destinationPortRange": "*"}
    with pytest.raises(HttpResponseError):
        net.network_security_groups.begin_create_or_update(RG, "core-nsg", {"location": "eastus", "properties": {
            "securityRules": [{"name": "a", "properties": dup}, {"name": "b", "properties": dup}]}}).result()
    assert net.network_security_groups.get(RG, "core-nsg").security_rules == []

    rt = net.route_tables.begin_create_or_update(RG, "core-rt", {"location": "eastus", "properties": {"routes": [
        {"name": "z-first", "properties": {"addressPrefix": "10.9.0.0/16", "nextHopType": "None"}},
        {"name": "a-second", "properties": {"addressPrefix": "10.8.0.0/16", "nextHopType": "VnetLocal"}}]}}).result()
    assert [x.name for x in rt.routes] == ["z-first", "a-second"]
    rt2 = net.route_tables.update_tags(RG, "core-rt", {"tags": {"k": "v"}})
    assert [x.name for x in rt2.routes] == ["z-first", "a-second"] and rt2.tags == {"k": "v"}
    assert "core-rt" in [t.name for t in net.route_tables.list_all()]
    net.virtual_networks.begin_create_or_update(RG, "core-net", {"location": "eastus", "properties": {
        "addressSpace": {"addressPrefixes": ["10.77.0.0/16"]}, "subnets": [{"name": "s", "properties": {
            "addressPrefix": "10.77.1.0/24", "networkSecurityGroup": {"id": nsg.id}, "routeTable": {"id": rt.id}}}]}}).result()
    for delete in (lambda: net.route_tables.begin_delete(RG, "core-rt").result(),
                   lambda: net.network_security_groups.begin_delete(RG, "core-nsg").result()):
        with pytest.raises(HttpResponseError) as e:
            delete()
        assert e.value.error.code.startswith("InUse")
    assert [s.id.lower() for s in net.route_tables.get(RG, "core-rt").subnets][0].endswith("/subnets/s")
    net.virtual_networks.begin_delete(RG, "core-net").result()
    net.route_tables.begin_delete(RG, "core-rt").result()
    net.network_security_groups.begin_delete(RG, "core-nsg").result()
    assert "core-rt" not in [t.name for t in net.route_tables.list(RG)]


def test_key_vaults_and_backup_vaults_on_the_core(server, msi):
    """The key vaults and Backup vaults the vault rules look at are tracked
    kinds: Azure's defaults on create, a PATCH changes only what it names,
    a bad networkAcls.defaultAction is refused and changes nothing, and a
    list shows them."""
    kv = f"/subscriptions/{server.sub}/resourceGroups/{RG}/providers/Microsoft.KeyVault/vaults/core-kv"
    r = server.http("PUT", f"{kv}?api-version=2023-07-01", json={"location": "eastus", "properties": {}})
    assert r.status_code == 201, r.text
    p = r.json()["properties"]
    assert p["sku"] == {"family": "A", "name": "standard"} and p["networkAcls"]["defaultAction"] == "Allow"
    assert p["tenantId"] and p["publicNetworkAccess"] == "Enabled"
    r = server.http("PATCH", f"{kv}?api-version=2023-07-01", json={"properties": {"publicNetworkAccess": "Disabled"}, "tags": {"t": "1"}})
    assert r.status_code == 200, r.text
    p = r.json()["properties"]
    assert p["publicNetworkAccess"] == "Disabled" and p["networkAcls"]["bypass"] == "AzureServices"
    assert r.json()["tags"] == {"t": "1"}
    r = server.http("PUT", f"{kv}?api-version=2023-07-01", json={"location": "eastus", "properties": {"networkAcls": {"defaultAction": "Maybe"}}})
    assert r.status_code == 400
    assert server.http("GET", f"{kv}?api-version=2023-07-01").json()["properties"]["publicNetworkAccess"] == "Disabled"
    names = [v["name"] for v in server.http("GET", f"/subscriptions/{server.sub}/resourceGroups/{RG}/providers/Microsoft.KeyVault/vaults?api-version=2023-07-01").json()["value"]]
    assert names == ["core-kv"]
    bv = f"/subscriptions/{server.sub}/resourceGroups/{RG}/providers/Microsoft.DataProtection/backupVaults/core-bv"
    r = server.http("PUT", f"{bv}?api-version=2023-05-01", json={"location": "eastus", "properties": {}})
    assert r.status_code == 201 and r.json()["properties"]["storageSettings"] == [{"datastoreType": "VaultStore", "type": "LocallyRedundant"}]
    assert server.http("DELETE", f"{bv}?api-version=2023-05-01").status_code == 200
    assert server.http("GET", f"{bv}?api-version=2023-05-01").status_code == 404
