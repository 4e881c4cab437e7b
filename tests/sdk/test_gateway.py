"""Traffic really passes the model: connections from a VM's loopback alias
through the gateway are allowed or refused as Azure's network would decide,
and every decision is in the flow log with its reason."""

import socket
import time

import pytest
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.privatedns import PrivateDnsManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient
from conftest import gw_port

API = "api-version=2024-01-01"
ZONE = "privatelink.test.recoverite.local"


def wait_listening(addr, timeout=5):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(addr, timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(addr)


@pytest.fixture(scope="module")
def w(server):
    rm = server.client(ResourceManagementClient)
    rm.resource_groups.create_or_update("gw-rg", {"location": "eastus"})
    net = server.client(NetworkManagementClient)
    base = f"/subscriptions/{server.sub}/resourceGroups/gw-rg/providers/Microsoft.Network"
    nsg = net.network_security_groups.begin_create_or_update("gw-rg", "vm-nsg", {"location": "eastus", "properties": {"securityRules": []}}).result()
    net.virtual_networks.begin_create_or_update("gw-rg", "src", {"location": "eastus", "properties": {
        "addressSpace": {"addressPrefixes": ["10.50.0.0/16"]},
        "subnets": [{"name": "vms", "properties": {"addressPrefix": "10.50.1.0/24", "networkSecurityGroup": {"id": nsg.id}}},
                    {"name": "pe", "properties": {"addressPrefix": "10.50.2.0/24"}}]}}).result()
    net.virtual_networks.begin_create_or_update("gw-rg", "other", {"location": "eastus", "properties": {
        "addressSpace": {"addressPrefixes": ["10.51.0.0/16"]},
        "subnets": [{"name": "vms", "properties": {"addressPrefix": "10.51.1.0/24"}}]}}).result()

    def nic(name, vnet):
        return net.network_interfaces.begin_create_or_update("gw-rg", name, {"location": "eastus", "properties": {
            "ipConfigurations": [{"name": "c", "properties": {"subnet": {"id": f"{base}/virtualNetworks/{vnet}/subnets/vms"}}}]}}).result()

    vm, stranger = nic("vm", "src"), nic("stranger", "other")
    target = f"/subscriptions/{server.sub}/resourceGroups/gw-rg/providers/Recoverite.Test/privateLinkTargets/gwtarget"
    server.http("PUT", f"{target}?{API}", json={"location": "eastus", "properties": {"members": ["api"]}})

    def pe(name, manual=False):
        key = "manualPrivateLinkServiceConnections" if manual else "privateLinkServiceConnections"
        return net.private_endpoints.begin_create_or_update("gw-rg", name, {"location": "eastus", "properties": {
            "subnet": {"id": f"{base}/virtualNetworks/src/subnets/pe"},
            key: [{"name": "c", "properties": {"privateLinkServiceId": target, "groupIds": ["target"]}}]}}).result()

    approved, pending = pe("pe-approved"), pe("pe-pending", manual=True)
    aliases = server.http("GET", "/recoverite/network/aliases").json()["value"]

    def alias_of_ip(ip, vnet):
        return [a["alias"] for a in aliases if a["privateIPAddress"] == ip and a["virtualNetworkId"].lower().endswith(f"/virtualnetworks/{vnet}")][0]

    yield {
        "net": net, "nsg": nsg, "target": target,
        "vm": alias_of_ip(vm.ip_configurations[0].private_ip_address, "src"),
        "stranger": alias_of_ip(stranger.ip_configurations[0].private_ip_address, "other"),
        "approved": alias_of_ip(approved.custom_dns_configs[0].ip_addresses[0], "src"),
        "pending": alias_of_ip(pending.custom_dns_configs[0].ip_addresses[0], "src"),
    }
    rm.resource_groups.begin_delete("gw-rg").result()


def connect(src, dst, port=None):
    port = port or gw_port(443)
    wait_listening((dst, port))
    s = socket.socket()
    s.settimeout(3)
    s.bind((src, 0))
    s.connect((dst, port))
    return s


def greeting(src, dst):
    s = connect(src, dst)
    try:
        data = s.recv(200)
        if data:
            s.sendall(b"ping\n")
            echoed = s.recv(100)
            assert echoed == b"ping\n"
        return data.decode()
    finally:
        s.close()


def last_flow(server, src, dst):
    flows = [f for f in server.http("GET", "/recoverite/network/flowlog").json()["value"]
             if f["sourceAlias"] == src and f["destinationAlias"] == dst]
    return flows[-1]


def test_approved_endpoint_carries_traffic(server, w):
    g = greeting(w["vm"], w["approved"])
    assert g.startswith("recoverite test target gwtarget via private endpoint pe-approved")
    f = last_flow(server, w["vm"], w["approved"])
    assert f["allowed"] and f["port"] == 443


def test_pending_endpoint_carries_none(server, w):
    assert greeting(w["vm"], w["pending"]) == ""
    f = last_flow(server, w["vm"], w["pending"])
    assert not f["allowed"] and "is Pending" in f["reason"]


def test_outside_and_unpeered_sources_cannot_reach_a_private_address(server, w):
    assert greeting("127.0.0.1", w["approved"]) == ""
    assert "not inside any virtual network" in last_flow(server, "127.0.0.1", w["approved"])["reason"]
    assert greeting(w["stranger"], w["approved"]) == ""
    assert not last_flow(server, w["stranger"], w["approved"])["allowed"]


def test_nsg_refuses_then_a_service_tag_rule_allows(server, w):
    net, public = w["net"], None
    # The test target's public address, as the DNS server answers it outside any network.
    r = server.http("GET", "/recoverite/network/resolve", params={"name": "gwtarget.api.test.recoverite.local"}).json()
    public_ip = r["answers"][-1]["value"]
    public = "127.250." + ".".join(public_ip.split(".")[2:])
    assert greeting(w["vm"], public).startswith("recoverite test target gwtarget via public endpoint")
    net.security_rules.begin_create_or_update("gw-rg", "vm-nsg", "deny-internet", {"properties": {
        "protocol": "*", "access": "Deny", "direction": "Outbound", "priority": 4000, "sourceAddressPrefix": "*",
        "sourcePortRange": "*", "destinationAddressPrefix": "Internet", "destinationPortRange": "*"}}).result()
    assert greeting(w["vm"], public) == ""
    reason = last_flow(server, w["vm"], public)["reason"]
    assert "vm-nsg" in reason and "securityRules/deny-internet" in reason
    check = server.http("GET", "/recoverite/network/check", params={"from": w["vm"], "to": public, "port": 443}).json()
    assert check["allowed"] is False
    net.security_rules.begin_create_or_update("gw-rg", "vm-nsg", "allow-internet-https", {"properties": {
        "protocol": "Tcp", "access": "Allow", "direction": "Outbound", "priority": 100, "sourceAddressPrefix": "VirtualNetwork",
        "sourcePortRange": "*", "destinationAddressPrefix": "Internet", "destinationPortRange": "443"}}).result()
    assert greeting(w["vm"], public).startswith("recoverite test target")
    # The private endpoint is inside the network: Internet rules do not touch it.
    assert greeting(w["vm"], w["approved"]).startswith("recoverite test target")
    w["public"] = public


def test_public_network_access_disabled_refuses_public_but_not_private(server, w):
    server.http("PUT", f"{w['target']}?{API}", json={"location": "eastus", "properties": {"members": ["api"], "publicNetworkAccess": "Disabled"}})
    assert greeting(w["vm"], w["public"]) == ""
    assert "public network access disabled" in last_flow(server, w["vm"], w["public"])["reason"]
    assert greeting(w["vm"], w["approved"]).startswith("recoverite test target")


def test_forced_tunneling_refuses_with_the_route_named(server, w):
    net = w["net"]
    base = f"/subscriptions/{server.sub}/resourceGroups/gw-rg/providers/Microsoft.Network"
    rt = net.route_tables.begin_create_or_update("gw-rg", "forced", {"location": "eastus", "properties": {"routes": [
        {"name": "all-to-nva", "properties": {"addressPrefix": "0.0.0.0/0", "nextHopType": "VirtualAppliance", "nextHopIpAddress": "10.50.9.4"}}]}}).result()
    s = net.subnets.get("gw-rg", "src", "vms")
    s.route_table = {"id": rt.id}
    net.subnets.begin_create_or_update("gw-rg", "src", "vms", s).result()
    server.http("PUT", f"{w['target']}?{API}", json={"location": "eastus", "properties": {"members": ["api"], "publicNetworkAccess": "Enabled"}})
    assert greeting(w["vm"], w["public"]) == ""
    reason = last_flow(server, w["vm"], w["public"])["reason"]
    assert "forced tunneling" in reason and "all-to-nva" in reason
    # Traffic inside the network still goes direct.
    assert greeting(w["vm"], w["approved"]).startswith("recoverite test target")
    s = net.subnets.get("gw-rg", "src", "vms")
    s.route_table = None
    net.subnets.begin_create_or_update("gw-rg", "src", "vms", s).result()
    assert greeting(w["vm"], w["public"]).startswith("recoverite test target")
    _ = base
