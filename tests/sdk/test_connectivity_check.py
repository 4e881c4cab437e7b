"""Network Watcher's connectivity check (`azure-mgmt-network`
`begin_check_connectivity`) answered with the real decision: the name
resolved by the DNS server from the VM's network and the gateway's verdict
for the connection, with the refusing NSG rule named as the issue."""

import pytest
import asr
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.mgmt.storage import StorageManagementClient
from conftest import gw_port

RG = "connchk-rg"


@pytest.fixture(scope="module")
def env(server):
    server.client(ResourceManagementClient).resource_groups.create_or_update(RG, {"location": "eastus"})
    net = server.client(NetworkManagementClient)
    net.network_security_groups.begin_create_or_update(RG, "vms-nsg", {"location": "eastus"}).result()
    vnet = net.virtual_networks.begin_create_or_update(RG, "net", {"location": "eastus", "properties": {
        "addressSpace": {"addressPrefixes": ["10.71.0.0/16"]},
        "subnets": [{"name": "vms", "properties": {"addressPrefix": "10.71.1.0/24", "networkSecurityGroup": {
            "id": f"/subscriptions/{server.sub}/resourceGroups/{RG}/providers/Microsoft.Network/networkSecurityGroups/vms-nsg"}}}]}}).result()
    subnet = vnet.subnets[0].id
    a = asr.vm(server, RG, "app", subnet, os_gb=1)
    b = asr.vm(server, RG, "db", subnet, os_gb=1)
    server.client(StorageManagementClient).storage_accounts.begin_create(RG, "connchk1", {
        "location": "eastus", "kind": "StorageV2", "sku": {"name": "Standard_LRS"}}).result()
    net.network_watchers.create_or_update(RG, "nw", {"location": "eastus"})
    return {"net": net, "app": a, "db": b}


def check(env, **destination):
    return env["net"].network_watchers.begin_check_connectivity(RG, "nw", {
        "source": {"resourceId": env["app"].id}, "destination": destination}).result()


def test_reachable_public_service_then_refused_by_the_nsg_rule(env):
    ok = check(env, address="connchk1.blob.core.windows.net", port=443)
    assert ok.connection_status == "Reachable", ok.hops[-1].issues
    assert ok.hops[0].type == "Source" and ok.hops[0].address.startswith("10.71.1.")
    assert ok.probes_failed == 0 and ok.hops[-1].resource_id.endswith("/storageAccounts/connchk1")
    env["net"].security_rules.begin_create_or_update(RG, "vms-nsg", "deny-storage", {"properties": {
        "priority": 100, "direction": "Outbound", "access": "Deny", "protocol": "*", "sourcePortRange": "*",
        "destinationPortRange": "*", "sourceAddressPrefix": "*", "destinationAddressPrefix": "Storage"}}).result()
    refused = check(env, address="connchk1.blob.core.windows.net", port=443)
    assert refused.connection_status == "Unreachable" and refused.probes_failed == refused.probes_sent
    issue = refused.hops[-1].issues[0]
    assert issue.type == "NetworkSecurityRule" and "deny-storage" in issue.context[0]["detail"], issue.context
    env["net"].security_rules.begin_delete(RG, "vms-nsg", "deny-storage").result()
    assert check(env, address="connchk1.blob.core.windows.net", port=443).connection_status == "Reachable"


def test_names_that_do_not_resolve_and_vm_to_vm(env):
    dns = check(env, address="nothing-here.invalid", port=443)
    assert dns.connection_status == "Unreachable" and dns.hops[-1].issues[0].type == "DnsResolution"
    vm = check(env, resourceId=env["db"].id, port=22)
    assert vm.connection_status == "Reachable", vm.hops[-1].issues
    assert vm.hops[-1].type == "VirtualNetwork" and vm.hops[-1].address.startswith("10.71.1.")


def test_network_check_by_vm_and_name_and_the_flow_log_filters(server, env):
    """`/recoverite/network/check` takes a VM's id and a name or an address
    (issue 13), and the flow log filters by verdict, VM and destination and
    names the VMs on both ends."""
    import socket
    import time
    got = server.http("GET", "/recoverite/network/check", params={
        "from": env["app"].id, "to": "connchk1.blob.core.windows.net", "port": "443"}).json()
    assert got["allowed"] is True and got["dns"] and got["destinationResource"].endswith("/storageAccounts/connchk1"), got
    nowhere = server.http("GET", "/recoverite/network/check", params={"from": env["app"].id, "to": "nothing-here.invalid"}).json()
    assert nowhere["allowed"] is False and nowhere["dnsFailed"] is True
    assert server.http("GET", "/recoverite/network/check", params={"from": "127.0.0.1", "to": "example.com"}).status_code == 400

    def alias(vm):
        return server.http("GET", "/recoverite/network/aliases", params={"vm": vm.id}).json()["value"][0]["alias"]
    src, dst = alias(env["app"]), alias(env["db"])
    # app → db on 20004 (Site Recovery's multi-VM sync): allowed by the defaults.
    for _ in range(50):
        s = socket.socket()
        s.settimeout(3)
        s.bind((src, 0))
        try:
            s.connect((dst, gw_port(20004)))
            break
        except ConnectionRefusedError:
            time.sleep(0.1)
        finally:
            s.close()
    time.sleep(0.3)
    flows = server.http("GET", "/recoverite/network/flowlog", params={"vm": "app", "dest": "VM db"}).json()["value"]
    assert flows and all(f["sourceVm"].endswith("/virtualMachines/app") for f in flows), flows
    assert flows[-1]["destinationName"].startswith("VM db") and flows[-1]["allowed"] is True
    refused = server.http("GET", "/recoverite/network/flowlog", params={"allowed": "false", "vm": "app", "dest": "VM db"}).json()["value"]
    assert refused == []
    assert server.http("GET", "/recoverite/network/flowlog", params={"allowed": "maybe"}).status_code == 400
    # Kept across a restart.
    before = len(server.http("GET", "/recoverite/network/flowlog", params={"vm": "app"}).json()["value"])
    server.restart()
    after = server.http("GET", "/recoverite/network/flowlog", params={"vm": "app"}).json()["value"]
    assert len(after) == before and after[-1]["destinationName"].startswith("VM db")
