"""Private endpoints against the built-in test target: auto-approval vs
pending, approval, DNS zone groups (and their overwrite rule), static IPs,
subnet exhaustion, and members added to existing endpoints later."""

import uuid

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.privatedns import PrivateDnsManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient

TEST_ZONE = "privatelink.test.recoverite.local"
API = "api-version=2024-01-01"


@pytest.fixture(scope="module")
def env(server):
    rm = server.client(ResourceManagementClient)
    rm.resource_groups.create_or_update("pe-rg", {"location": "eastus"})
    net = server.client(NetworkManagementClient)
    for name, loc, prefix, subnets in (
        ("pe-src", "eastus", "10.30.0.0/16", [("pe", "10.30.1.0/24"), ("tiny", "10.30.2.0/29")]),
        ("pe-rec", "centralus", "10.31.0.0/16", [("pe", "10.31.1.0/24")]),
    ):
        net.virtual_networks.begin_create_or_update("pe-rg", name, {"location": loc, "properties": {
            "addressSpace": {"addressPrefixes": [prefix]},
            "subnets": [{"name": n, "properties": {"addressPrefix": p}} for n, p in subnets]}}).result()
    target = f"/subscriptions/{server.sub}/resourceGroups/pe-rg/providers/Recoverite.Test/privateLinkTargets/target1"
    r = server.http("PUT", f"{target}?{API}", json={"location": "eastus", "properties": {"members": ["api", "data"]}})
    assert r.status_code == 201, r.text
    dns = server.client(PrivateDnsManagementClient)
    for rg_zone, vnet in (("pe-rg", "pe-src"),):
        dns.private_zones.begin_create_or_update(rg_zone, TEST_ZONE, {"location": "global"}).result()
        dns.virtual_network_links.begin_create_or_update(rg_zone, TEST_ZONE, f"{vnet}-link", {"location": "global", "properties": {
            "virtualNetwork": {"id": vnet_id(server, vnet)}}}).result()
    yield {"net": net, "dns": dns, "target": target}
    rm.resource_groups.begin_delete("pe-rg").result()


def vnet_id(server, name):
    return f"/subscriptions/{server.sub}/resourceGroups/pe-rg/providers/Microsoft.Network/virtualNetworks/{name}"


def subnet_id(server, vnet, subnet="pe"):
    return f"{vnet_id(server, vnet)}/subnets/{subnet}"


def pe_body(server, target, vnet, location, manual=False, subnet="pe", static=None):
    conn = {"name": "conn", "properties": {"privateLinkServiceId": target, "groupIds": ["target"]}}
    props = {"subnet": {"id": subnet_id(server, vnet, subnet)},
             ("manualPrivateLinkServiceConnections" if manual else "privateLinkServiceConnections"): [conn]}
    if static:
        props["ipConfigurations"] = [{"name": f"ip-{m}", "properties": {"groupId": "target", "memberName": m, "privateIPAddress": ip}}
                                     for m, ip in static.items()]
    return {"location": location, "properties": props}


def test_owner_endpoint_is_auto_approved_with_dns_configs(server, env):
    net = env["net"]
    pe = net.private_endpoints.begin_create_or_update("pe-rg", "pe-source", pe_body(server, env["target"], "pe-src", "eastus")).result()
    state = pe.private_link_service_connections[0].private_link_service_connection_state
    assert (state.status, state.description) == ("Approved", "Auto-Approved")
    fqdns = {c.fqdn: c.ip_addresses for c in pe.custom_dns_configs}
    assert fqdns == {f"target1.api.{TEST_ZONE}": ["10.30.1.4"], f"target1.data.{TEST_ZONE}": ["10.30.1.5"]}
    nic = net.network_interfaces.get("pe-rg", pe.network_interfaces[0].id.split("/")[-1])
    assert nic.private_endpoint.id == pe.id
    assert nic.ip_configurations[0].private_link_connection_properties.required_member_name == "api"
    # The target lists the connection.
    conns = server.http("GET", f"{env['target']}/privateEndpointConnections?{API}").json()["value"]
    assert [c["properties"]["privateEndpoint"]["id"] for c in conns] == [pe.id]
    # Its NIC belongs to the endpoint.
    with pytest.raises(HttpResponseError) as e:
        net.network_interfaces.begin_delete("pe-rg", nic.name).result()
    assert e.value.error.code == "CannotDeleteNicAttachedToPrivateEndpoint"


def test_zone_group_writes_records_and_a_second_endpoint_overwrites_them(server, env):
    net, dns = env["net"], env["dns"]
    zone_id = f"/subscriptions/{server.sub}/resourceGroups/pe-rg/providers/Microsoft.Network/privateDnsZones/{TEST_ZONE}"
    zg = net.private_dns_zone_groups.begin_create_or_update("pe-rg", "pe-source", "default", {
        "properties": {"privateDnsZoneConfigs": [{"name": "test", "properties": {"privateDnsZoneId": zone_id}}]}}).result()
    assert {r.record_set_name for r in zg.private_dns_zone_configs[0].record_sets} == {"target1.api", "target1.data"}
    rec = dns.record_sets.get("pe-rg", TEST_ZONE, "A", "target1.api")
    assert [a.ipv4_address for a in rec.a_records] == ["10.30.1.4"] and rec.ttl == 10
    # A second endpoint of the same target pointed at the same zone overwrites the records (document 000).
    pe2 = net.private_endpoints.begin_create_or_update("pe-rg", "pe-source-2", pe_body(server, env["target"], "pe-src", "eastus")).result()
    ip2 = {c.fqdn: c.ip_addresses[0] for c in pe2.custom_dns_configs}[f"target1.api.{TEST_ZONE}"]
    assert ip2 == "10.30.1.6"
    net.private_dns_zone_groups.begin_create_or_update("pe-rg", "pe-source-2", "default", {
        "properties": {"privateDnsZoneConfigs": [{"name": "test", "properties": {"privateDnsZoneId": zone_id}}]}}).result()
    assert [a.ipv4_address for a in dns.record_sets.get("pe-rg", TEST_ZONE, "A", "target1.api").a_records] == [ip2]
    with pytest.raises(HttpResponseError) as e:
        net.private_dns_zone_groups.begin_create_or_update("pe-rg", "pe-source-2", "second", {
            "properties": {"privateDnsZoneConfigs": [{"name": "test", "properties": {"privateDnsZoneId": zone_id}}]}}).result()
    assert e.value.error.code == "OnlyOnePrivateDnsZoneGroupPerPrivateEndpoint"
    net.private_endpoints.begin_delete("pe-rg", "pe-source-2").result()


def test_manual_connection_is_pending_until_the_owner_approves(server, env):
    net = env["net"]
    pe = net.private_endpoints.begin_create_or_update("pe-rg", "pe-recovery", pe_body(server, env["target"], "pe-rec", "centralus", manual=True)).result()
    assert pe.manual_private_link_service_connections[0].private_link_service_connection_state.status == "Pending"
    conns = server.http("GET", f"{env['target']}/privateEndpointConnections?{API}").json()["value"]
    pending = [c for c in conns if c["properties"]["privateEndpoint"]["id"] == pe.id][0]
    r = server.http("PUT", f"{pending['id']}?{API}", json={"properties": {"privateLinkServiceConnectionState": {"status": "Approved", "description": "ok by owner"}}})
    assert r.status_code == 200, r.text
    pe = net.private_endpoints.get("pe-rg", "pe-recovery")
    state = pe.manual_private_link_service_connections[0].private_link_service_connection_state
    assert (state.status, state.description) == ("Approved", "ok by owner")


def test_principal_without_approval_right_gets_a_pending_connection(server, env):
    from azure.mgmt.authorization import AuthorizationManagementClient
    auth = server.client(AuthorizationManagementClient)
    role_id = str(uuid.uuid4())
    auth.role_definitions.create_or_update(f"/subscriptions/{server.sub}", role_id, {
        "role_name": "Network builder", "description": "networks, not approvals",
        "permissions": [{"actions": ["Microsoft.Network/*", "*/read"]}],
        "assignable_scopes": [f"/subscriptions/{server.sub}"]})
    p = server.cli("principal", "create", "--name", "net-builder")
    auth.role_assignments.create(f"/subscriptions/{server.sub}/resourceGroups/pe-rg", str(uuid.uuid4()), {
        "role_definition_id": f"/subscriptions/{server.sub}/providers/Microsoft.Authorization/roleDefinitions/{role_id}",
        "principal_id": p["objectId"]})
    net = server.client(NetworkManagementClient, credential=server.credential(p["clientId"], p["clientSecret"]))
    pe = net.private_endpoints.begin_create_or_update("pe-rg", "pe-by-builder", pe_body(server, env["target"], "pe-src", "eastus")).result()
    assert pe.private_link_service_connections[0].private_link_service_connection_state.status == "Pending"
    env["net"].private_endpoints.begin_delete("pe-rg", "pe-by-builder").result()


def test_static_ips_and_exhaustion(server, env):
    net = env["net"]
    pe = net.private_endpoints.begin_create_or_update("pe-rg", "pe-static", pe_body(
        server, env["target"], "pe-src", "eastus", static={"api": "10.30.1.100", "data": "10.30.1.101"})).result()
    assert {c.ip_addresses[0] for c in pe.custom_dns_configs} == {"10.30.1.100", "10.30.1.101"}
    net.private_endpoints.begin_delete("pe-rg", "pe-static").result()
    # A /29 has 3 usable addresses; a target with 5 members needs 5.
    big = env["target"].replace("target1", "target5")
    server.http("PUT", f"{big}?{API}", json={"location": "eastus", "properties": {"members": ["a", "b", "c", "d", "e"]}})
    with pytest.raises(HttpResponseError) as e:
        net.private_endpoints.begin_create_or_update("pe-rg", "pe-tiny", pe_body(server, big, "pe-src", "eastus", subnet="tiny")).result()
    assert e.value.error.code == "SubnetIsFull"
    assert "needs 5" in e.value.error.message and "has 3" in e.value.error.message
    assert "pe-tiny" not in [x.name for x in net.private_endpoints.list("pe-rg")]


def test_members_added_later_reach_every_endpoint_and_its_zone(server, env):
    net, dns = env["net"], env["dns"]
    r = server.http("POST", f"{env['target']}/addMembers?{API}", json={"groupId": "target", "members": ["extra1", "extra2"]})
    assert r.status_code == 200, r.text
    for pe_name in ("pe-source", "pe-recovery"):
        pe = net.private_endpoints.get("pe-rg", pe_name)
        fqdns = {c.fqdn for c in pe.custom_dns_configs}
        assert {f"target1.extra1.{TEST_ZONE}", f"target1.extra2.{TEST_ZONE}"} <= fqdns, pe_name
    # The zone group of pe-source received the new records automatically.
    assert dns.record_sets.get("pe-rg", TEST_ZONE, "A", "target1.extra1").a_records[0].ipv4_address.startswith("10.30.1.")
    # When an endpoint's subnet cannot give the addresses, nothing changes anywhere.
    small = env["target"].replace("target1", "target-small")
    server.http("PUT", f"{small}?{API}", json={"location": "eastus", "properties": {"members": ["one"]}})
    net.private_endpoints.begin_create_or_update("pe-rg", "pe-small", pe_body(server, small, "pe-src", "eastus", subnet="tiny")).result()
    r = server.http("POST", f"{small}/addMembers?{API}", json={"groupId": "target", "members": ["two", "three", "four"]})
    assert r.status_code == 400 and r.json()["error"]["code"] == "SubnetIsFull"
    assert "needs 3" in r.json()["error"]["message"] and "has 2" in r.json()["error"]["message"]
    assert len(net.private_endpoints.get("pe-rg", "pe-small").custom_dns_configs) == 1
