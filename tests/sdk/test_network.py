"""Microsoft.Network driven by azure-mgmt-network: the two-region network of
document 000, NSGs with service tags, routes, NICs, IPAM and Network Watcher."""

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.network import NetworkManagementClient, models
from azure.mgmt.resource.resources import ResourceManagementClient


@pytest.fixture(scope="module")
def net(server):
    rm = server.client(ResourceManagementClient)
    rm.resource_groups.create_or_update("net-rg", {"location": "eastus"})
    yield server.client(NetworkManagementClient)
    rm.resource_groups.begin_delete("net-rg").result()


def sub_id(server, vnet, subnet):
    return f"/subscriptions/{server.sub}/resourceGroups/net-rg/providers/Microsoft.Network/virtualNetworks/{vnet}/subnets/{subnet}"


def vnet(location, prefixes, subnets=()):
    # azure-mgmt-network sends dict bodies as they are: use the wire format.
    return {"location": location, "properties": {
        "addressSpace": {"addressPrefixes": list(prefixes)},
        "subnets": [{"name": n, "properties": {"addressPrefix": p}} for n, p in subnets]}}


def subnet(prefix, **props):
    return {"properties": {"addressPrefix": prefix, **props}}


def rule(priority, dst, port, access="Allow", direction="Outbound", protocol="Tcp", src="*"):
    return {"properties": {"protocol": protocol, "access": access, "direction": direction, "priority": priority,
                           "sourceAddressPrefix": src, "sourcePortRange": "*",
                           "destinationAddressPrefix": dst, "destinationPortRange": port}}


def nic(subnet_id, location="eastus", static=None):
    props = {"subnet": {"id": subnet_id}}
    if static:
        props.update(privateIPAllocationMethod="Static", privateIPAddress=static)
    return {"location": location, "properties": {"ipConfigurations": [{"name": "ipconfig1", "properties": props}]}}


def test_two_region_networks_with_subnets_and_peering(server, net):
    src = net.virtual_networks.begin_create_or_update("net-rg", "source-vnet", vnet(
        "eastus", ["10.0.0.0/16"], [("vms", "10.0.1.0/24"), ("endpoints", "10.0.2.0/27")])).result()
    assert src.provisioning_state == "Succeeded"
    assert sorted(s.name for s in src.subnets) == ["endpoints", "vms"]
    rec = net.virtual_networks.begin_create_or_update("net-rg", "recovery-vnet", vnet(
        "centralus", ["10.1.0.0/16"], [("vms", "10.1.1.0/24")])).result()
    assert rec.location == "centralus"
    net.virtual_network_peerings.begin_create_or_update("net-rg", "source-vnet", "to-recovery", {
        "properties": {"remoteVirtualNetwork": {"id": rec.id}, "allowVirtualNetworkAccess": True}}).result()
    p = net.virtual_network_peerings.get("net-rg", "source-vnet", "to-recovery")
    assert p.peering_state == "Initiated"
    net.virtual_network_peerings.begin_create_or_update("net-rg", "recovery-vnet", "to-source", {"properties": {"remoteVirtualNetwork": {"id": src.id}}}).result()
    assert net.virtual_network_peerings.get("net-rg", "source-vnet", "to-recovery").peering_state == "Connected"
    # A child subnet added on its own shows up in the network.
    net.subnets.begin_create_or_update("net-rg", "source-vnet", "extra", subnet("10.0.3.0/24")).result()
    assert "extra" in [s.name for s in net.virtual_networks.get("net-rg", "source-vnet").subnets]
    assert [v.name for v in net.virtual_networks.list("net-rg")] == ["recovery-vnet", "source-vnet"] or \
        sorted(v.name for v in net.virtual_networks.list("net-rg")) == ["recovery-vnet", "source-vnet"]


def test_subnet_validation(server, net):
    with pytest.raises(HttpResponseError) as e:
        net.subnets.begin_create_or_update("net-rg", "source-vnet", "outside", subnet("10.9.0.0/24")).result()
    assert e.value.error.code == "NetcfgSubnetRangeOutsideVnet"
    with pytest.raises(HttpResponseError) as e:
        net.subnets.begin_create_or_update("net-rg", "source-vnet", "overlap", subnet("10.0.1.128/25")).result()
    assert e.value.error.code == "NetcfgSubnetRangesOverlap"
    with pytest.raises(HttpResponseError) as e:
        net.subnets.begin_create_or_update("net-rg", "source-vnet", "tiny", subnet("10.0.9.0/30")).result()
    assert e.value.error.code == "NetcfgInvalidSubnet"
    with pytest.raises(HttpResponseError) as e:
        net.subnets.begin_create_or_update("net-rg", "source-vnet", "hostbits", subnet("10.0.9.1/24")).result()
    assert e.value.error.code == "InvalidAddressPrefixFormat"
    with pytest.raises(HttpResponseError) as e:
        net.virtual_network_peerings.begin_create_or_update("net-rg", "source-vnet", "self-overlap", {
            "properties": {"remoteVirtualNetwork": {"id": net.virtual_networks.get("net-rg", "source-vnet").id}}}).result()
    assert e.value.error.code == "CannotPeerVnetToItself"


def test_overlapping_peering_is_refused(server, net):
    other = net.virtual_networks.begin_create_or_update("net-rg", "overlapping-vnet", vnet("eastus", ["10.0.128.0/17"])).result()
    with pytest.raises(HttpResponseError) as e:
        net.virtual_network_peerings.begin_create_or_update("net-rg", "source-vnet", "bad", {"properties": {"remoteVirtualNetwork": {"id": other.id}}}).result()
    assert e.value.error.code == "VnetAddressSpacesOverlap"
    net.virtual_networks.begin_delete("net-rg", "overlapping-vnet").result()


def test_nsg_with_service_tags_and_defaults(server, net):
    rules = {
        "allow-storage-eastus": rule(100, "Storage.EastUS", "443", src="VirtualNetwork"),
        "allow-aad": rule(110, "AzureActiveDirectory", "443"),
        "allow-eventhub-centralus": rule(120, "EventHub.CentralUS", "443"),
        "allow-asr": rule(130, "AzureSiteRecovery", "443"),
        "deny-internet": rule(4000, "Internet", "*", access="Deny", protocol="*"),
    }
    nsg = net.network_security_groups.begin_create_or_update("net-rg", "source-nsg", {
        "location": "eastus",
        "properties": {"securityRules": [{"name": n, **r} for n, r in rules.items()]}}).result()
    assert len(nsg.security_rules) == 5
    assert {r.name: r.priority for r in nsg.default_security_rules}["DenyAllOutBound"] == 65500
    assert net.default_security_rules.get("net-rg", "source-nsg", "AllowVnetInBound").priority == 65000
    with pytest.raises(HttpResponseError) as e:
        net.security_rules.begin_create_or_update("net-rg", "source-nsg", "dup", rule(100, "*", "22")).result()
    assert e.value.error.code == "SecurityRuleConflict"
    with pytest.raises(HttpResponseError) as e:
        net.security_rules.begin_create_or_update("net-rg", "source-nsg", "bad-tag", rule(200, "Storge", "443")).result()
    assert e.value.error.code == "SecurityRuleInvalidAddressPrefix"
    with pytest.raises(HttpResponseError) as e:
        net.security_rules.begin_create_or_update("net-rg", "source-nsg", "bad-prio", rule(5000, "*", "443")).result()
    assert e.value.error.code == "SecurityRuleInvalidPriority"
    # Associate with the source subnet.
    s = net.subnets.get("net-rg", "source-vnet", "vms")
    s.network_security_group = models.NetworkSecurityGroup(id=nsg.id)
    net.subnets.begin_create_or_update("net-rg", "source-vnet", "vms", s).result()
    nsg = net.network_security_groups.get("net-rg", "source-nsg")
    assert [x.id for x in nsg.subnets] == [sub_id(server, "source-vnet", "vms")]
    with pytest.raises(HttpResponseError) as e:
        net.network_security_groups.begin_delete("net-rg", "source-nsg").result()
    assert e.value.error.code == "InUseNetworkSecurityGroupCannotBeDeleted"


def test_nic_ipam_static_dynamic_and_exhaustion(server, net):
    subnet = sub_id(server, "source-vnet", "endpoints")  # a /27: 32 - 5 = 27 usable
    first = net.network_interfaces.begin_create_or_update("net-rg", "nic-1", nic(subnet)).result()
    assert first.ip_configurations[0].private_ip_address == "10.0.2.4"
    static = net.network_interfaces.begin_create_or_update("net-rg", "nic-static", nic(subnet, static="10.0.2.20")).result()
    assert static.ip_configurations[0].private_ip_address == "10.0.2.20"
    for bad, code in (("10.0.2.3", "PrivateIPAddressInReservedRange"), ("10.0.2.31", "PrivateIPAddressInReservedRange"),
                      ("10.0.2.20", "PrivateIPAddressIsAllocated"), ("10.0.5.9", "PrivateIPAddressNotInSubnet")):
        with pytest.raises(HttpResponseError) as e:
            net.network_interfaces.begin_create_or_update("net-rg", "nic-bad", nic(subnet, static=bad)).result()
        assert e.value.error.code == code, bad
    second = net.network_interfaces.begin_create_or_update("net-rg", "nic-2", nic(subnet)).result()
    assert second.ip_configurations[0].private_ip_address == "10.0.2.5"
    # Fill the subnet: 27 usable, 3 used.
    for i in range(24):
        net.network_interfaces.begin_create_or_update("net-rg", f"fill-{i}", nic(subnet)).result()
    with pytest.raises(HttpResponseError) as e:
        net.network_interfaces.begin_create_or_update("net-rg", "one-too-many", nic(subnet)).result()
    assert e.value.error.code == "SubnetIsFull"
    assert "needs 1" in e.value.error.message and "has 0" in e.value.error.message
    # Freeing an address makes it the next one handed out (lowest first).
    net.network_interfaces.begin_delete("net-rg", "nic-1").result()
    again = net.network_interfaces.begin_create_or_update("net-rg", "nic-again", nic(subnet)).result()
    assert again.ip_configurations[0].private_ip_address == "10.0.2.4"
    # A subnet in use cannot be deleted.
    with pytest.raises(HttpResponseError) as e:
        net.subnets.begin_delete("net-rg", "source-vnet", "endpoints").result()
    assert e.value.error.code == "InUseSubnetCannotBeDeleted"
    sn = net.subnets.get("net-rg", "source-vnet", "endpoints")
    assert len(sn.ip_configurations) == 27


def test_route_table_forced_tunneling_and_watcher(server, net):
    rt = net.route_tables.begin_create_or_update("net-rg", "forced", {
        "location": "eastus", "properties": {"routes": [{"name": "default-to-nva", "properties": {
            "addressPrefix": "0.0.0.0/0", "nextHopType": "VirtualAppliance", "nextHopIpAddress": "10.0.3.4"}}]}}).result()
    with pytest.raises(HttpResponseError) as e:
        net.routes.begin_create_or_update("net-rg", "forced", "no-ip", {"properties": {"addressPrefix": "1.0.0.0/8", "nextHopType": "VirtualAppliance"}}).result()
    assert e.value.error.code == "InvalidRouteNextHopIpAddress"
    vm_nic = net.network_interfaces.begin_create_or_update("net-rg", "vm-nic", nic(sub_id(server, "source-vnet", "vms"))).result()
    watcher = net.network_watchers.create_or_update("net-rg", "nw-eastus", {"location": "eastus"})
    assert watcher.provisioning_state == "Succeeded" and watcher.etag
    # Watchers take tags-only updates and list by group, as Azure's do.
    tagged = net.network_watchers.update_tags("net-rg", "nw-eastus", {"tags": {"team": "dr"}})
    assert tagged.tags == {"team": "dr"} and tagged.etag != watcher.etag
    assert [w.name for w in net.network_watchers.list("net-rg")] == ["nw-eastus"]
    assert net.network_watchers.create_or_update("net-rg", "nw-eastus", {"location": "eastus"}).tags in (None, {})

    def verify(remote_ip, port="443"):
        return net.network_watchers.begin_verify_ip_flow("net-rg", "nw-eastus", {
            "targetResourceId": vm_nic.id, "direction": "Outbound", "protocol": "TCP",
            "localPort": "50000", "remotePort": port, "localIPAddress": vm_nic.ip_configurations[0].private_ip_address,
            "remoteIPAddress": remote_ip}).result()

    storage_east, storage_west = "20.60.1.10", "20.60.13.10"  # model addresses of Storage.EastUS / Storage.WestEurope
    r = verify(storage_east)
    assert (r.access, r.rule_name) == ("Allow", "securityRules/allow-storage-eastus")
    r = verify(storage_west)
    assert (r.access, r.rule_name) == ("Deny", "securityRules/deny-internet")
    r = verify("10.1.1.4", port="22")
    assert (r.access, r.rule_name) == ("Allow", "defaultSecurityRules/AllowVnetOutBound")

    hop = net.network_watchers.begin_get_next_hop("net-rg", "nw-eastus", {
        "targetResourceId": vm_nic.id, "sourceIPAddress": vm_nic.ip_configurations[0].private_ip_address,
        "destinationIPAddress": storage_east}).result()
    assert hop.next_hop_type == "Internet"
    s = net.subnets.get("net-rg", "source-vnet", "vms")
    s.route_table = models.RouteTable(id=rt.id)
    net.subnets.begin_create_or_update("net-rg", "source-vnet", "vms", s).result()
    hop = net.network_watchers.begin_get_next_hop("net-rg", "nw-eastus", {
        "targetResourceId": vm_nic.id, "sourceIPAddress": "10.0.1.4", "destinationIPAddress": storage_east}).result()
    assert (hop.next_hop_type, hop.next_hop_ip_address, hop.route_table_id) == ("VirtualAppliance", "10.0.3.4", rt.id)
    # A Storage service endpoint keeps storage traffic off the appliance (document 002).
    s = net.subnets.get("net-rg", "source-vnet", "vms")
    s.service_endpoints = [models.ServiceEndpointPropertiesFormat(service="Microsoft.Storage")]
    s = net.subnets.begin_create_or_update("net-rg", "source-vnet", "vms", s).result()
    assert s.service_endpoints[0].locations == ["eastus", "westus"]
    hop = net.network_watchers.begin_get_next_hop("net-rg", "nw-eastus", {
        "targetResourceId": vm_nic.id, "sourceIPAddress": "10.0.1.4", "destinationIPAddress": storage_east}).result()
    assert hop.next_hop_type == "VirtualNetworkServiceEndpoint"
    peered = net.network_watchers.begin_get_next_hop("net-rg", "nw-eastus", {
        "targetResourceId": vm_nic.id, "sourceIPAddress": "10.0.1.4", "destinationIPAddress": "10.1.1.4"}).result()
    assert peered.next_hop_type == "VNetPeering"

    eff = net.network_interfaces.begin_list_effective_network_security_groups("net-rg", "vm-nic").result()
    names = [r.name for r in eff.value[0].effective_security_rules]
    assert "securityRules/allow-storage-eastus" in names and "defaultSecurityRules/DenyAllOutBound" in names
    routes = net.network_interfaces.begin_get_effective_route_table("net-rg", "vm-nic").result()
    assert any(r.source == "User" and r.next_hop_type == "VirtualAppliance" for r in routes.value)
    assert any(r.address_prefix == ["0.0.0.0/0"] and r.state == "Invalid" for r in routes.value)


def test_deleting_in_use_network_and_missing_references(server, net):
    with pytest.raises(HttpResponseError) as e:
        net.virtual_networks.begin_delete("net-rg", "source-vnet").result()
    assert e.value.error.code == "InUseSubnetCannotBeDeleted"
    with pytest.raises(HttpResponseError) as e:
        net.network_interfaces.begin_create_or_update("net-rg", "dangling", nic(sub_id(server, "source-vnet", "nope"))).result()
    assert e.value.error.code == "InvalidResourceReference"
    with pytest.raises(HttpResponseError) as e:
        net.network_interfaces.begin_create_or_update("net-rg", "wrong-region", nic(sub_id(server, "source-vnet", "vms"), location="westeurope")).result()
    assert e.value.error.code == "InvalidResourceReference"
    with pytest.raises(ResourceNotFoundError):
        net.virtual_networks.get("net-rg", "no-such-vnet")
