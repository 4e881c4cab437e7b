"""Private DNS zones driven by azure-mgmt-privatedns: zones, links (one zone
name per network), record sets and ETag preconditions."""

import pytest
from azure.core import MatchConditions
from azure.core.exceptions import (HttpResponseError, ResourceExistsError,
                                   ResourceModifiedError, ResourceNotFoundError)
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.privatedns import PrivateDnsManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient

ZONE = "privatelink.siterecovery.windowsazure.com"


@pytest.fixture(scope="module")
def dns(server):
    rm = server.client(ResourceManagementClient)
    rm.resource_groups.create_or_update("dns-rg", {"location": "eastus"})
    net = server.client(NetworkManagementClient)
    for name, loc, prefix in (("dns-src", "eastus", "10.20.0.0/16"), ("dns-rec", "centralus", "10.21.0.0/16")):
        net.virtual_networks.begin_create_or_update("dns-rg", name, {
            "location": loc, "properties": {"addressSpace": {"addressPrefixes": [prefix]}}}).result()
    yield server.client(PrivateDnsManagementClient)
    rm.resource_groups.begin_delete("dns-rg").result()


def vnet_id(server, name):
    return f"/subscriptions/{server.sub}/resourceGroups/dns-rg/providers/Microsoft.Network/virtualNetworks/{name}"


def test_zone_link_and_records(server, dns):
    z = dns.private_zones.begin_create_or_update("dns-rg", ZONE, {"location": "global"}).result()
    assert z.name == ZONE and z.number_of_record_sets == 1  # the SOA
    assert z.max_number_of_virtual_network_links == 1000
    link = dns.virtual_network_links.begin_create_or_update("dns-rg", ZONE, "src-link", {
        "location": "global", "properties": {"virtualNetwork": {"id": vnet_id(server, "dns-src")}, "registrationEnabled": False}}).result()
    assert link.virtual_network_link_state == "Completed"
    rs = dns.record_sets.create_or_update("dns-rg", ZONE, "A", "1234-asr-pod01-rcm1.eus", {
        "properties": {"ttl": 10, "aRecords": [{"ipv4Address": "10.20.1.4"}]}})
    assert rs.fqdn == f"1234-asr-pod01-rcm1.eus.{ZONE}." and rs.a_records[0].ipv4_address == "10.20.1.4"
    assert [r.name for r in dns.record_sets.list_by_type("dns-rg", ZONE, "A")] == ["1234-asr-pod01-rcm1.eus"]
    assert {r.name for r in dns.record_sets.list("dns-rg", ZONE)} == {"@", "1234-asr-pod01-rcm1.eus"}
    assert dns.private_zones.get("dns-rg", ZONE).number_of_virtual_network_links == 1


def test_etags(server, dns):
    rs = dns.record_sets.get("dns-rg", ZONE, "A", "1234-asr-pod01-rcm1.eus")
    updated = dns.record_sets.create_or_update("dns-rg", ZONE, "A", "1234-asr-pod01-rcm1.eus", {
        "properties": {"ttl": 10, "aRecords": [{"ipv4Address": "10.20.1.5"}]}}, etag=rs.etag, match_condition=MatchConditions.IfNotModified)
    assert updated.etag != rs.etag
    with pytest.raises(ResourceModifiedError):
        dns.record_sets.create_or_update("dns-rg", ZONE, "A", "1234-asr-pod01-rcm1.eus", {
            "properties": {"ttl": 10, "aRecords": [{"ipv4Address": "10.20.1.6"}]}}, etag=rs.etag, match_condition=MatchConditions.IfNotModified)
    with pytest.raises(ResourceExistsError):
        dns.record_sets.create_or_update("dns-rg", ZONE, "A", "1234-asr-pod01-rcm1.eus", {
            "properties": {"ttl": 10, "aRecords": [{"ipv4Address": "10.20.1.6"}]}}, match_condition=MatchConditions.IfMissing)
    assert dns.record_sets.get("dns-rg", ZONE, "A", "1234-asr-pod01-rcm1.eus").a_records[0].ipv4_address == "10.20.1.5"


def test_one_zone_name_per_network_and_cname_rules(server, dns):
    # Document 000: one zone per endpoint network; the same name twice on one network is refused.
    dns.private_zones.begin_create_or_update("dns-rg", "privatelink.blob.core.windows.net", {"location": "global"}).result()
    rm = server.client(ResourceManagementClient)
    rm.resource_groups.create_or_update("dns-rg-2", {"location": "eastus"})
    dns.private_zones.begin_create_or_update("dns-rg-2", ZONE, {"location": "global"}).result()
    with pytest.raises(HttpResponseError) as e:
        dns.virtual_network_links.begin_create_or_update("dns-rg-2", ZONE, "dup", {
            "location": "global", "properties": {"virtualNetwork": {"id": vnet_id(server, "dns-src")}}}).result()
    assert "overlapping namespaces" in e.value.error.message
    # The second zone of that name links to the recovery network instead.
    dns.virtual_network_links.begin_create_or_update("dns-rg-2", ZONE, "rec-link", {
        "location": "global", "properties": {"virtualNetwork": {"id": vnet_id(server, "dns-rec")}}}).result()
    with pytest.raises(HttpResponseError) as e:
        dns.record_sets.create_or_update("dns-rg", ZONE, "CNAME", "1234-asr-pod01-rcm1.eus", {
            "properties": {"ttl": 10, "cnameRecord": {"cname": "x.example.com"}}})
    assert e.value.status_code == 409
    with pytest.raises(HttpResponseError) as e:
        dns.private_zones.begin_create_or_update("dns-rg", "single", {"location": "global"}).result()
    assert e.value.error.code == "InvalidResourceName"
    # A zone with links cannot be deleted.
    with pytest.raises(HttpResponseError) as e:
        dns.private_zones.begin_delete("dns-rg-2", ZONE).result()
    assert e.value.error.code == "CannotDeleteZoneWithVirtualNetworkLinks"
    dns.virtual_network_links.begin_delete("dns-rg-2", ZONE, "rec-link").result()
    dns.private_zones.begin_delete("dns-rg-2", ZONE).result()
    with pytest.raises(ResourceNotFoundError):
        dns.private_zones.get("dns-rg-2", ZONE)
    rm.resource_groups.begin_delete("dns-rg-2").result()
