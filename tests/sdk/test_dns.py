"""The DNS server answers as Azure's resolver answers a client inside a given
network: private zones linked to the network win, everything else is public
DNS where service names CNAME to their privatelink names."""

import dns.message
import dns.query
import dns.rcode
import pytest
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.privatedns import PrivateDnsManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient

ZONE = "privatelink.test.recoverite.local"
API = "api-version=2024-01-01"


@pytest.fixture(scope="module")
def world(server):
    rm = server.client(ResourceManagementClient)
    rm.resource_groups.create_or_update("dnsq-rg", {"location": "eastus"})
    net = server.client(NetworkManagementClient)
    base = f"/subscriptions/{server.sub}/resourceGroups/dnsq-rg/providers/Microsoft.Network"
    for name, loc, prefix in (("linked", "eastus", "10.40.0.0/16"), ("unlinked", "eastus", "10.41.0.0/16")):
        net.virtual_networks.begin_create_or_update("dnsq-rg", name, {"location": loc, "properties": {
            "addressSpace": {"addressPrefixes": [prefix]},
            "subnets": [{"name": "default", "properties": {"addressPrefix": prefix.replace("0.0/16", "1.0/24")}}]}}).result()
    vm = net.network_interfaces.begin_create_or_update("dnsq-rg", "vm-nic", {"location": "eastus", "properties": {
        "ipConfigurations": [{"name": "c", "properties": {"subnet": {"id": f"{base}/virtualNetworks/linked/subnets/default"}}}]}}).result()
    target = f"/subscriptions/{server.sub}/resourceGroups/dnsq-rg/providers/Recoverite.Test/privateLinkTargets/dnstarget"
    assert server.http("PUT", f"{target}?{API}", json={"location": "eastus"}).status_code == 201
    pe = net.private_endpoints.begin_create_or_update("dnsq-rg", "pe", {"location": "eastus", "properties": {
        "subnet": {"id": f"{base}/virtualNetworks/linked/subnets/default"},
        "privateLinkServiceConnections": [{"name": "c", "properties": {"privateLinkServiceId": target, "groupIds": ["target"]}}]}}).result()
    pdns = server.client(PrivateDnsManagementClient)
    pdns.private_zones.begin_create_or_update("dnsq-rg", ZONE, {"location": "global"}).result()
    pdns.virtual_network_links.begin_create_or_update("dnsq-rg", ZONE, "linked", {"location": "global", "properties": {
        "virtualNetwork": {"id": f"{base}/virtualNetworks/linked"}}}).result()
    net.private_dns_zone_groups.begin_create_or_update("dnsq-rg", "pe", "default", {"properties": {"privateDnsZoneConfigs": [
        {"name": "z", "properties": {"privateDnsZoneId": f"{base}/privateDnsZones/{ZONE}"}}]}}).result()
    aliases = server.http("GET", "/recoverite/network/aliases").json()["value"]
    by_owner = {a["owner"].lower(): a["alias"] for a in aliases}
    yield {
        "vm_alias": by_owner[f"{vm.id}/ipConfigurations/c".lower()],
        "unlinked_alias": by_owner[f"{base}/virtualNetworks/unlinked".lower()],
        "pe_ips": {c.fqdn: c.ip_addresses[0] for c in pe.custom_dns_configs},
        "vnet": f"{base}/virtualNetworks/linked",
        "dns": ("127.0.0.1", int(server.conn["dnsServer"].split(":")[1])),
    }
    rm.resource_groups.begin_delete("dnsq-rg").result()


def ask(world, name, source, tcp=False):
    host, port = world["dns"]
    q = dns.message.make_query(name, "A")
    fn = dns.query.tcp if tcp else dns.query.udp
    return fn(q, host, port=port, source=source, timeout=3)


def a_records(resp):
    return [r.address for rrset in resp.answer for r in rrset if rrset.rdtype == 1]


def cnames(resp):
    return [str(r.target) for rrset in resp.answer for r in rrset if rrset.rdtype == 5]


def test_private_answer_inside_the_linked_network(world):
    r = ask(world, "dnstarget.api.test.recoverite.local", world["vm_alias"])
    assert cnames(r) == ["dnstarget.api.privatelink.test.recoverite.local."]
    assert a_records(r) == [world["pe_ips"]["dnstarget.api.privatelink.test.recoverite.local"]]
    assert a_records(r)[0].startswith("10.40.1.")
    # TCP answers the same.
    assert a_records(ask(world, "dnstarget.data.test.recoverite.local", world["vm_alias"], tcp=True)) == \
        [world["pe_ips"]["dnstarget.data.privatelink.test.recoverite.local"]]


def test_public_answer_from_an_unlinked_network_and_from_outside(world):
    for source in (world["unlinked_alias"], "127.0.0.1"):
        r = ask(world, "dnstarget.api.test.recoverite.local", source)
        assert cnames(r) == ["dnstarget.api.privatelink.test.recoverite.local."]
        assert a_records(r)[0].startswith("203.0.113."), source


def test_private_zone_is_authoritative_inside_the_network(world):
    r = ask(world, "nosuch.privatelink.test.recoverite.local", world["vm_alias"])
    assert r.rcode() == dns.rcode.NXDOMAIN
    r = ask(world, "missing-target.api.test.recoverite.local", "127.0.0.1")
    assert r.rcode() == dns.rcode.NXDOMAIN


def test_azure_public_names(world):
    r = ask(world, "1234-asr-pod01-rcm1.eus.siterecovery.windowsazure.com", "127.0.0.1")
    assert cnames(r) == ["1234-asr-pod01-rcm1.eus.privatelink.siterecovery.windowsazure.com."]
    assert a_records(r)[0].startswith("52.136.")
    r = ask(world, "1234.wbcm1.ne.backup.windowsazure.com", "127.0.0.1")
    assert cnames(r) == ["1234.wbcm1.privatelink.ne.backup.windowsazure.com."]
    assert a_records(ask(world, "wbcm1.ne.backup.windowsazure.com", "127.0.0.1"))[0].startswith("20.40.")
    assert a_records(ask(world, "login.microsoftonline.com", "127.0.0.1"))[0].startswith("20.190.")


def test_resolve_explains_and_hosts_file_exports(server, world):
    r = server.http("GET", "/recoverite/network/resolve", params={"name": "dnstarget.api.test.recoverite.local", "vnet": world["vnet"]}).json()
    assert r["rcode"] == "NOERROR" and r["answers"][-1]["value"].startswith("10.40.1.")
    assert any("private zone" in step for step in r["trace"])
    hosts = server.http("GET", "/recoverite/network/hosts", params={"vnet": world["vnet"]}).text
    ip = world["pe_ips"]["dnstarget.api.privatelink.test.recoverite.local"]
    assert f"{ip}\tdnstarget.api.privatelink.test.recoverite.local" in hosts
