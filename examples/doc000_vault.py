"""Document 000 with the Python SDK, up to (not including) enabling replication:

    python examples/doc000_vault.py .recoverite/connection.json

A Recovery Services vault with a system-assigned identity; a source network
(East US) and a recovery network (Central US); one Site Recovery private
endpoint per network, each with its **own** private DNS zone
`privatelink.siterecovery.windowsazure.com` linked to its network; then what
the five Site Recovery FQDNs resolve to from inside each network and from an
unlinked one."""

import json
import sys

import requests
from azure.identity import ClientSecretCredential
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.privatedns import PrivateDnsManagementClient
from azure.mgmt.recoveryservices import RecoveryServicesClient
from azure.mgmt.resource.resources import ResourceManagementClient

ZONE = "privatelink.siterecovery.windowsazure.com"


def main(conn_file):
    c = json.load(open(conn_file))
    cred = ClientSecretCredential(c["tenantId"], c["clientId"], c["clientSecret"], authority=c["authority"],
                                  connection_verify=c["caCertFile"], disable_instance_discovery=True)
    kw = dict(base_url=c["armEndpoint"], connection_verify=c["caCertFile"], polling_interval=1)
    sub = c["subscriptionId"]
    rm = ResourceManagementClient(cred, sub, **kw)
    net = NetworkManagementClient(cred, sub, **kw)
    pdns = PrivateDnsManagementClient(cred, sub, **kw)
    rs = RecoveryServicesClient(cred, sub, **kw)
    token = cred.get_token("https://management.azure.com/.default").token
    arm = lambda path, **k: requests.get(c["armEndpoint"] + path, verify=c["caCertFile"], headers={"Authorization": f"Bearer {token}"}, **k).json()

    rg = "doc000-vault-rg"
    rm.resource_groups.create_or_update(rg, {"location": "eastus"})
    # 1. The vault, with its managed identity (the Object ID of document 000).
    vault = rs.vaults.begin_create_or_update(rg, "dr-vault", {"location": "eastus", "sku": {"name": "Standard"},
                                                              "identity": {"type": "SystemAssigned"}}).result()
    print(f"vault {vault.name}: managed identity object id {vault.identity.principal_id}")
    base = f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Network"
    networks = {"source": ("eastus", "10.10"), "recovery": ("centralus", "10.11"), "unlinked": ("eastus", "10.12")}
    for site, (region, prefix) in networks.items():
        net.virtual_networks.begin_create_or_update(rg, f"{site}-vnet", {"location": region, "properties": {
            "addressSpace": {"addressPrefixes": [f"{prefix}.0.0/16"]},
            "subnets": [{"name": "endpoints", "properties": {"addressPrefix": f"{prefix}.1.0/24"}}]}}).result()
    # 2. One private endpoint per network, each with its own zone linked to its own network.
    endpoint_ips = {}
    for site in ("source", "recovery"):
        region = networks[site][0]
        pe = net.private_endpoints.begin_create_or_update(rg, f"{site}-asr-pe", {"location": region, "properties": {
            "subnet": {"id": f"{base}/virtualNetworks/{site}-vnet/subnets/endpoints"},
            "privateLinkServiceConnections": [{"name": "asr", "properties": {
                "privateLinkServiceId": vault.id, "groupIds": ["AzureSiteRecovery"]}}]}}).result()
        state = pe.private_link_service_connections[0].private_link_service_connection_state.status
        print(f"{site} endpoint: {state}, {len(pe.custom_dns_configs)} FQDNs")
        endpoint_ips[site] = {d.fqdn: d.ip_addresses[0] for d in pe.custom_dns_configs}
        zrg = f"doc000-{site}-zone"
        rm.resource_groups.create_or_update(zrg, {"location": region})
        pdns.private_zones.begin_create_or_update(zrg, ZONE, {"location": "global"}).result()
        pdns.virtual_network_links.begin_create_or_update(zrg, ZONE, f"{site}-link", {"location": "global", "properties": {
            "virtualNetwork": {"id": f"{base}/virtualNetworks/{site}-vnet"}}}).result()
        zone_id = f"/subscriptions/{sub}/resourceGroups/{zrg}/providers/Microsoft.Network/privateDnsZones/{ZONE}"
        net.private_dns_zone_groups.begin_create_or_update(rg, f"{site}-asr-pe", "default", {"properties": {
            "privateDnsZoneConfigs": [{"name": "asr", "properties": {"privateDnsZoneId": zone_id}}]}}).result()
    # 3. What the names resolve to, from each network.
    answers = {}
    for fqdn in endpoint_ips["source"]:
        public_name = fqdn.replace(".privatelink.", ".")
        row = {}
        for site in networks:
            r = arm("/recoverite/network/resolve", params={"name": public_name, "vnet": f"{base}/virtualNetworks/{site}-vnet"})
            row[site] = r["answers"][-1]["value"]
        answers[public_name] = row
        print(f"{public_name}\n    source {row['source']:14} recovery {row['recovery']:14} unlinked {row['unlinked']}")
    return {"endpoint_ips": endpoint_ips, "answers": answers}


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".recoverite/connection.json")
