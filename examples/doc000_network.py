"""Builds document 000's two-region network with the official Python SDK,
then shows DNS answers and gateway decisions for a VM in it.

    python examples/doc000_network.py .recoverite/connection.json

Source network in East US, recovery network in Central US, each with a VM
subnet and an endpoint subnet, NSGs with document 002's service-tag rules,
one private endpoint per network (to the built-in test target, standing in
for the vault until vaults land), each with its own private DNS zone linked
to its own network."""

import json
import socket
import sys
import time

import requests
from azure.identity import ClientSecretCredential
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.privatedns import PrivateDnsManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient

ZONE = "privatelink.test.recoverite.local"


def rule(priority, dst, port="443", access="Allow"):
    return {"properties": {"protocol": "Tcp" if port != "*" else "*", "access": access, "direction": "Outbound",
                           "priority": priority, "sourceAddressPrefix": "VirtualNetwork", "sourcePortRange": "*",
                           "destinationAddressPrefix": dst, "destinationPortRange": port}}


def main(conn_file):
    c = json.load(open(conn_file))
    cred = ClientSecretCredential(c["tenantId"], c["clientId"], c["clientSecret"], authority=c["authority"],
                                  connection_verify=c["caCertFile"], disable_instance_discovery=True)
    kw = dict(base_url=c["armEndpoint"], connection_verify=c["caCertFile"], polling_interval=1)
    sub = c["subscriptionId"]
    rm = ResourceManagementClient(cred, sub, **kw)
    net = NetworkManagementClient(cred, sub, **kw)
    pdns = PrivateDnsManagementClient(cred, sub, **kw)
    http = requests.Session()
    http.verify = c["caCertFile"]
    http.headers["Authorization"] = "Bearer " + cred.get_token("https://management.azure.com/.default").token
    arm = lambda method, path, **k: http.request(method, c["armEndpoint"] + path, verify=c["caCertFile"], **k)

    rg = "doc000-rg"
    rm.resource_groups.create_or_update(rg, {"location": "eastus"})
    base = f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Network"
    target = f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Recoverite.Test/privateLinkTargets/drtarget"
    arm("PUT", f"{target}?api-version=2024-01-01", json={"location": "eastus", "properties": {"members": ["api"]}}).raise_for_status()

    sites = {"source": ("eastus", "10.0", "centralus"), "recovery": ("centralus", "10.1", "eastus")}
    vms = {}
    for site, (region, prefix, other) in sites.items():
        nsg = net.network_security_groups.begin_create_or_update(rg, f"{site}-nsg", {"location": region, "properties": {"securityRules": [
            {"name": f"allow-storage-{region}", **rule(100, f"Storage.{region}")},
            {"name": "allow-aad", **rule(110, "AzureActiveDirectory")},
            {"name": f"allow-eventhub-{other}", **rule(120, f"EventHub.{other}")},
            {"name": "allow-site-recovery", **rule(130, "AzureSiteRecovery")},
            {"name": "deny-internet", **rule(4000, "Internet", "*", "Deny")},
        ]}}).result()
        net.virtual_networks.begin_create_or_update(rg, f"{site}-vnet", {"location": region, "properties": {
            "addressSpace": {"addressPrefixes": [f"{prefix}.0.0/16"]},
            "subnets": [{"name": "vms", "properties": {"addressPrefix": f"{prefix}.1.0/24", "networkSecurityGroup": {"id": nsg.id}}},
                        {"name": "endpoints", "properties": {"addressPrefix": f"{prefix}.2.0/24"}}]}}).result()
        vms[site] = net.network_interfaces.begin_create_or_update(rg, f"{site}-vm-nic", {"location": region, "properties": {
            "ipConfigurations": [{"name": "ipconfig1", "properties": {"subnet": {"id": f"{base}/virtualNetworks/{site}-vnet/subnets/vms"}}}]}}).result()
        # One private endpoint per network, each with its own zone linked to its own network (document 000).
        zrg = f"doc000-{site}-dns"
        rm.resource_groups.create_or_update(zrg, {"location": region})
        pdns.private_zones.begin_create_or_update(zrg, ZONE, {"location": "global"}).result()
        pdns.virtual_network_links.begin_create_or_update(zrg, ZONE, f"{site}-link", {"location": "global", "properties": {
            "virtualNetwork": {"id": f"{base}/virtualNetworks/{site}-vnet"}}}).result()
        net.private_endpoints.begin_create_or_update(rg, f"{site}-pe", {"location": region, "properties": {
            "subnet": {"id": f"{base}/virtualNetworks/{site}-vnet/subnets/endpoints"},
            "privateLinkServiceConnections": [{"name": "conn", "properties": {"privateLinkServiceId": target, "groupIds": ["target"]}}]}}).result()
        zone_id = f"/subscriptions/{sub}/resourceGroups/{zrg}/providers/Microsoft.Network/privateDnsZones/{ZONE}"
        net.private_dns_zone_groups.begin_create_or_update(rg, f"{site}-pe", "default", {"properties": {
            "privateDnsZoneConfigs": [{"name": "zone", "properties": {"privateDnsZoneId": zone_id}}]}}).result()

    aliases = arm("GET", "/recoverite/network/aliases").json()["value"]
    alias_of = {a["owner"].lower(): a["alias"] for a in aliases}
    dns_host, dns_port = c["dnsServer"].split(":")
    print("Resolve from inside each network (the source address places the query):")
    for site, nic in vms.items():
        alias = alias_of[f"{nic.id}/ipConfigurations/ipconfig1".lower()]
        answer = arm("GET", "/recoverite/network/resolve", params={"name": "drtarget.api.test.recoverite.local", "from": alias}).json()
        print(f"  {site:8} VM {alias:15} -> {answer['answers'][-1]['value']}")
        print(f"      dig -b {alias} @{dns_host} -p {dns_port} drtarget.api.test.recoverite.local")
    public = arm("GET", "/recoverite/network/resolve", params={"name": "drtarget.api.test.recoverite.local"}).json()
    print(f"  outside any network    -> {public['answers'][-1]['value']}")

    # A connection from the source VM to the target's public address: the NSG's deny-internet rule refuses it...
    src = alias_of[f"{vms['source'].id}/ipConfigurations/ipconfig1".lower()]
    pub_ip = public["answers"][-1]["value"]
    pub_alias = "127.250." + ".".join(pub_ip.split(".")[2:])

    def try_connect():
        # The gateway opens listeners for new addresses within moments; on a
        # busy machine allow it up to ten seconds.
        for _ in range(200):
            s = socket.socket()
            s.settimeout(2)
            s.bind((src, 0))
            try:
                s.connect((pub_alias, 10443 + c.get("instanceSlot", 0)))
                return s.recv(200).decode().strip()
            except ConnectionRefusedError:
                time.sleep(0.05)
            finally:
                s.close()
        return ""

    first = try_connect()
    reason = [f for f in arm("GET", "/recoverite/network/flowlog").json()["value"] if f["sourceAlias"] == src][-1]["reason"]
    print(f"\nsource VM -> {pub_ip}:443 (public): {'connected' if first else 'refused'} ({reason})")
    # ...until a rule for the Internet service tag allows HTTPS.
    net.security_rules.begin_create_or_update(rg, "source-nsg", "allow-internet-https", rule(200, "Internet")).result()
    second = try_connect()
    print(f"after allowing the Internet service tag on 443: {second or 'refused'}")
    return {"first": first, "first_reason": reason, "second": second}


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".recoverite/connection.json")
