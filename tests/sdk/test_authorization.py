"""Authorization as Azure does it, each leak once found on `main` kept
refused: lists filtered whatever the handler, custom roles guarded at every
assignable scope, linked access checks on what a body references, agent
endpoints that hand out credentials closed to readers, and a Blob service
that serves only the account a connection was admitted for."""

import socket
import uuid

import pytest
from conftest import wait_listening, gw_port
from azure.core.exceptions import HttpResponseError
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.msi import ManagedServiceIdentityClient
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.privatedns import PrivateDnsManagementClient
from azure.mgmt.recoveryservices import RecoveryServicesClient
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.mgmt.storage import StorageManagementClient

MINE, THEIRS = "authz-mine", "authz-theirs"


def principal(server, name, role, scope):
    r = server.http("POST", "/recoverite/principals", json={"displayName": name, "role": role, "scope": scope})
    assert r.status_code == 201, r.text
    p = r.json()
    p["cred"] = server.credential(p["clientId"], p["clientSecret"])
    return p


def refused(fn, status=403, code=None):
    with pytest.raises(HttpResponseError) as e:
        fn()
    assert e.value.status_code == status, e.value.message
    if code:
        assert e.value.error.code == code, e.value.message
    return e.value


@pytest.fixture(scope="module")
def env(server):
    rm = server.client(ResourceManagementClient)
    for g in (MINE, THEIRS):
        rm.resource_groups.create_or_update(g, {"location": "eastus"})
    net = server.client(NetworkManagementClient)
    nsg = net.network_security_groups.begin_create_or_update(THEIRS, "their-nsg", {"location": "eastus"}).result()
    vnet = net.virtual_networks.begin_create_or_update(THEIRS, "their-net", {"location": "eastus", "properties": {
        "addressSpace": {"addressPrefixes": ["10.77.0.0/16"]},
        "subnets": [{"name": "vms", "properties": {"addressPrefix": "10.77.1.0/24"}}]}}).result()
    mine_net = net.virtual_networks.begin_create_or_update(MINE, "my-net", {"location": "eastus", "properties": {
        "addressSpace": {"addressPrefixes": ["10.78.0.0/16"]},
        "subnets": [{"name": "vms", "properties": {"addressPrefix": "10.78.1.0/24"}}]}}).result()
    their_nic = net.network_interfaces.begin_create_or_update(THEIRS, "their-nic", {"location": "eastus", "properties": {
        "ipConfigurations": [{"name": "c", "properties": {"subnet": {"id": vnet.subnets[0].id}}}]}}).result()
    compute = server.client(ComputeManagementClient)
    their_disk = compute.disks.begin_create_or_update(THEIRS, "their-disk", {"location": "eastus", "sku": {"name": "Standard_LRS"},
        "properties": {"creationData": {"createOption": "Empty"}, "diskSizeGB": 1}}).result()
    net.route_tables.begin_create_or_update(THEIRS, "their-rt", {"location": "eastus", "properties": {"routes": [
        {"name": "r1", "properties": {"addressPrefix": "10.0.0.0/8", "nextHopType": "VnetLocal"}}]}}).result()
    pdns = server.client(PrivateDnsManagementClient)
    pdns.private_zones.begin_create_or_update(THEIRS, "privatelink.their.test", {"location": "global"}).result()
    pdns.record_sets.create_or_update(THEIRS, "privatelink.their.test", "A", "x", {"properties": {"ttl": 10, "aRecords": [{"ipv4Address": "10.1.1.1"}]}})
    server.client(RecoveryServicesClient).vaults.begin_create_or_update(THEIRS, "their-vault", {"location": "westus", "sku": {"name": "Standard"},
        "properties": {"publicNetworkAccess": "Enabled"}}).result()
    for ns, ty, body in (("Microsoft.DataProtection", "backupVaults", {"location": "eastus", "properties": {"storageSettings": [{"datastoreType": "VaultStore", "type": "LocallyRedundant"}]}}),
                         ("Microsoft.KeyVault", "vaults", {"location": "eastus", "properties": {"tenantId": server.conn["tenantId"], "sku": {"family": "A", "name": "standard"}}})):
        versions = server.http("GET", f"/subscriptions/{server.sub}/providers/{ns}?api-version=2021-04-01").json()["resourceTypes"][0]["apiVersions"]
        r = server.http("PUT", f"/subscriptions/{server.sub}/resourceGroups/{THEIRS}/providers/{ns}/{ty}/their{ty.lower()[:6]}?api-version={versions[0]}", json=body)
        assert r.status_code in (200, 201), r.text
    uai = server.client(ManagedServiceIdentityClient).user_assigned_identities.create_or_update(THEIRS, "their-identity", {"location": "eastus"})
    st = server.client(StorageManagementClient)
    accounts = {}
    for name, access in (("authzopen1", "Enabled"), ("authzclosed1", "Disabled")):
        accounts[name] = st.storage_accounts.begin_create(THEIRS if access == "Disabled" else MINE, name, {
            "location": "eastus", "sku": {"name": "Standard_LRS"}, "kind": "StorageV2",
            "properties": {"publicNetworkAccess": access}}).result()
    mine = f"/subscriptions/{server.sub}/resourceGroups/{MINE}"
    contributor = principal(server, "authz-contributor", "Contributor", mine)
    owner = principal(server, "authz-rg-owner", "Owner", mine)
    reader = principal(server, "authz-reader", "Reader", f"/subscriptions/{server.sub}")
    yield {"nsg": nsg, "vnet": vnet, "mine_net": mine_net, "their_nic": their_nic, "their_disk": their_disk, "uai": uai,
           "accounts": accounts, "contributor": contributor, "owner": owner, "reader": reader, "mine": mine}
    for g in (MINE, THEIRS):
        rm.resource_groups.begin_delete(g).result()


def test_child_lists_of_a_resource_the_caller_cannot_read_are_empty(server, env):
    c = env["contributor"]["cred"]
    net = server.client(NetworkManagementClient, credential=c)
    # The handlers of these child collections never filtered; the router now does.
    assert list(net.subnets.list(THEIRS, "their-net")) == []
    assert list(net.security_rules.list(THEIRS, "their-nsg")) == []
    assert list(net.default_security_rules.list(THEIRS, "their-nsg")) == []
    assert list(net.routes.list(THEIRS, "their-rt")) == []
    st = server.client(StorageManagementClient, credential=c)
    assert [a.name for a in st.storage_accounts.list()] == ["authzopen1"]
    assert list(st.private_endpoint_connections.list(THEIRS, "authzclosed1")) == []
    dns = server.client(PrivateDnsManagementClient, credential=c)
    assert list(dns.record_sets.list(THEIRS, "privatelink.their.test")) == []
    assert [z.name for z in server.client(PrivateDnsManagementClient).record_sets.list(THEIRS, "privatelink.their.test")] != []
    # Vaults of every kind: Recovery Services, Backup (Data Protection) and key vaults.
    rs = server.client(RecoveryServicesClient, credential=c)
    assert [x.name for x in rs.vaults.list_by_subscription_id()] == []
    for ns, ty in (("Microsoft.DataProtection", "backupVaults"), ("Microsoft.KeyVault", "vaults")):
        path = f"/subscriptions/{server.sub}/providers/{ns}/{ty}"
        versions = server.http("GET", f"/subscriptions/{server.sub}/providers/{ns}?api-version=2021-04-01").json()["resourceTypes"][0]["apiVersions"]
        token = server.token(c)
        assert server.http("GET", f"{path}?api-version={versions[0]}", token=token).json()["value"] == []
        assert len(server.http("GET", f"{path}?api-version={versions[0]}").json()["value"]) == 1
    admin = server.client(NetworkManagementClient)
    assert [s.name for s in admin.subnets.list(THEIRS, "their-net")] == ["vms"]


def test_a_resource_group_owner_cannot_rewrite_a_subscription_role(server, env):
    auth = server.client(AuthorizationManagementClient)
    sub = f"/subscriptions/{server.sub}"
    guid = str(uuid.uuid4())
    role = auth.role_definitions.create_or_update(sub, guid, {
        "role_name": "authz-readers-of-disks", "description": "reads disks",
        "permissions": [{"actions": ["Microsoft.Compute/disks/read"]}], "assignable_scopes": [sub]})
    owner = server.client(AuthorizationManagementClient, credential=env["owner"]["cred"])
    # Through its own scope, with the subscription kept or dropped: refused both ways.
    for scopes in ([sub], [env["mine"]]):
        e = refused(lambda: owner.role_definitions.create_or_update(env["mine"], guid, {
            "role_name": "authz-readers-of-disks", "permissions": [{"actions": ["*"]}], "assignable_scopes": scopes}),
            code="AuthorizationFailed")
        assert "Microsoft.Authorization/roleDefinitions/write" in e.message
    e = refused(lambda: owner.role_definitions.delete(env["mine"], guid), code="AuthorizationFailed")
    assert "roleDefinitions/delete" in e.message
    assert auth.role_definitions.get(sub, guid).permissions[0].actions == ["Microsoft.Compute/disks/read"]
    # An assignment under a scope keeps that scope on the role.
    auth.role_assignments.create(f"{sub}/resourceGroups/{THEIRS}", str(uuid.uuid4()), {
        "role_definition_id": role.id, "principal_id": env["reader"]["objectId"]})
    refused(lambda: auth.role_definitions.create_or_update(sub, guid, {
        "role_name": "authz-readers-of-disks", "permissions": [{"actions": ["Microsoft.Compute/disks/read"]}],
        "assignable_scopes": [env["mine"]]}), status=400, code="RoleScopeBeingRemovedContainsAssignments")


def test_references_to_resources_the_caller_cannot_use_are_linked_failures(server, env):
    c = env["contributor"]["cred"]
    net = server.client(NetworkManagementClient, credential=c)
    e = refused(lambda: net.network_interfaces.begin_create_or_update(MINE, "on-their-subnet", {"location": "eastus", "properties": {
        "ipConfigurations": [{"name": "c", "properties": {"subnet": {"id": env["vnet"].subnets[0].id}}}]}}).result(),
        code="LinkedAuthorizationFailed")
    assert "Microsoft.Network/virtualNetworks/subnets/join/action" in e.message and "their-net" in e.message
    e = refused(lambda: net.network_interfaces.begin_create_or_update(MINE, "with-their-nsg", {"location": "eastus", "properties": {
        "networkSecurityGroup": {"id": env["nsg"].id},
        "ipConfigurations": [{"name": "c", "properties": {"subnet": {"id": env["mine_net"].subnets[0].id}}}]}}).result(),
        code="LinkedAuthorizationFailed")
    assert "networkSecurityGroups/join/action" in e.message
    sub = net.subnets.get(MINE, "my-net", "vms")
    sub.network_security_group = {"id": env["nsg"].id}
    refused(lambda: net.subnets.begin_create_or_update(MINE, "my-net", "vms", sub).result(), code="LinkedAuthorizationFailed")
    refused(lambda: net.private_endpoints.begin_create_or_update(MINE, "pe-their-subnet", {"location": "eastus", "properties": {
        "subnet": {"id": env["vnet"].subnets[0].id},
        "privateLinkServiceConnections": [{"name": "c", "properties": {"privateLinkServiceId": env["accounts"]["authzopen1"].id, "groupIds": ["blob"]}}]}}).result(),
        code="LinkedAuthorizationFailed")
    compute = server.client(ComputeManagementClient, credential=c)
    e = refused(lambda: compute.disks.begin_create_or_update(MINE, "copy-of-theirs", {"location": "eastus", "sku": {"name": "Standard_LRS"},
        "properties": {"creationData": {"createOption": "Copy", "sourceResourceId": env["their_disk"].id}}}).result(), code="LinkedAuthorizationFailed")
    assert "Microsoft.Compute/disks/read" in e.message
    my_nic = net.network_interfaces.begin_create_or_update(MINE, "my-nic", {"location": "eastus", "properties": {
        "ipConfigurations": [{"name": "c", "properties": {"subnet": {"id": env["mine_net"].subnets[0].id}}}]}}).result()
    my_disk = compute.disks.begin_create_or_update(MINE, "my-os", {"location": "eastus", "sku": {"name": "Standard_LRS"},
        "properties": {"creationData": {"createOption": "Empty"}, "diskSizeGB": 1, "osType": "Linux"}}).result()

    def vm(nic, disk):
        return compute.virtual_machines.begin_create_or_update(MINE, "authz-vm", {"location": "eastus", "properties": {
            "hardwareProfile": {"vmSize": "Standard_B1s"},
            "storageProfile": {"osDisk": {"createOption": "Attach", "osType": "Linux", "managedDisk": {"id": disk}}},
            "networkProfile": {"networkInterfaces": [{"id": nic}]}}}).result()
    e = refused(lambda: vm(env["their_nic"].id, my_disk.id), code="LinkedAuthorizationFailed")
    assert "networkInterfaces/join/action" in e.message
    refused(lambda: vm(my_nic.id, env["their_disk"].id), code="LinkedAuthorizationFailed")
    assert vm(my_nic.id, my_disk.id).name == "authz-vm"
    rs = server.client(RecoveryServicesClient, credential=c)
    e = refused(lambda: rs.vaults.begin_create_or_update(MINE, "authz-vault", {"location": "westus", "sku": {"name": "Standard"},
        "properties": {"publicNetworkAccess": "Enabled"},
        "identity": {"type": "UserAssigned", "userAssignedIdentities": {env["uai"].id: {}}}}).result(), code="LinkedAuthorizationFailed")
    assert "userAssignedIdentities/assign/action" in e.message
    # Nothing was half-made.
    admin = server.client(NetworkManagementClient)
    assert sorted(n.name for n in admin.network_interfaces.list(MINE)) == ["my-nic"]
    assert admin.subnets.get(MINE, "my-net", "vms").network_security_group is None


def test_agent_endpoints_are_closed_to_readers(server, env):
    token = server.token(env["reader"]["cred"])
    item = (f"/subscriptions/{server.sub}/resourceGroups/{MINE}/providers/Microsoft.RecoveryServices/vaults/v/replicationFabrics/f"
            "/replicationProtectionContainers/c/replicationProtectedItems/i")
    r = server.http("GET", "/recoverite/agents/placement", token=token, params={"vm": item})
    assert r.status_code == 403 and r.json()["error"]["code"] == "AuthorizationFailed", r.text
    assert "storageToken" not in r.text
    r = server.http("POST", "/recoverite/agents/report", token=token, json={"itemId": item, "agent": "mine"})
    assert r.status_code == 403, r.text


def blob_request(src, dst, host):
    wait_listening((dst, gw_port(443)))
    s = socket.socket()
    s.settimeout(5)
    s.bind((src, 0))
    s.connect((dst, gw_port(443)))
    s.sendall(f"GET /data?restype=container&comp=list HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    return data.decode(errors="replace")


def test_blob_serves_only_the_account_the_connection_was_admitted_for(server, env):
    r = server.http("GET", "/recoverite/network/resolve", params={"name": "authzopen1.blob.core.windows.net"}).json()
    ip = r["answers"][-1]["value"]
    # Storage's public range 20.60.0.0/16 is served on 127.200.0.0/16 (addressbook.rs).
    assert ip.startswith("20.60."), r
    alias = "127.200." + ".".join(ip.split(".")[2:])
    own = blob_request("127.0.0.1", alias, "authzopen1.blob.core.windows.net")
    assert "NoAuthenticationInformation" in own, own
    other = blob_request("127.0.0.1", alias, "authzclosed1.blob.core.windows.net")
    assert other.startswith("HTTP/1.1 403") and "AuthorizationFailure" in other, other
    assert "authzopen1" in other
