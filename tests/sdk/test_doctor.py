"""`recoverite doctor` (issue 13): document 000's set-up passes every check;
broken the way teams break it — the zone unlinked, Entra ID egress denied —
the first failing hop is named with its fix."""

import json
import subprocess

from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.privatedns import PrivateDnsManagementClient
from azure.mgmt.recoveryservices import RecoveryServicesClient

import asr
from conftest import BIN

RG = "doctor-rg"
ZONE = "privatelink.siterecovery.windowsazure.com"


def doctor(server, vm, vault, scenario="sr"):
    r = server.http("GET", "/recoverite/doctor", params={"vm": vm.id, "vault": vault.id, "scenario": scenario})
    assert r.status_code == 200, r.text
    return r.json()


def failing(report):
    return [c for c in report["checks"] if c["status"] == "fail"]


def test_doctor_passes_document_000_and_names_each_break(server):
    asr.groups(server, (RG, "eastus"))
    net = server.client(NetworkManagementClient)
    net.network_security_groups.begin_create_or_update(RG, "vms-nsg", {"location": "eastus"}).result()
    nsg_id = f"/subscriptions/{server.sub}/resourceGroups/{RG}/providers/Microsoft.Network/networkSecurityGroups/vms-nsg"
    vnet = net.virtual_networks.begin_create_or_update(RG, "app", {"location": "eastus", "properties": {
        "addressSpace": {"addressPrefixes": ["10.76.0.0/16"]},
        "subnets": [{"name": "vms", "properties": {"addressPrefix": "10.76.1.0/24", "networkSecurityGroup": {"id": nsg_id}}},
                    {"name": "pe", "properties": {"addressPrefix": "10.76.2.0/24"}}]}}).result()
    vm = asr.vm(server, RG, "docvm", vnet.subnets[0].id, os_gb=1)
    vault = server.client(RecoveryServicesClient).vaults.begin_create_or_update(RG, "doc-vault", {
        "location": "eastus", "sku": {"name": "Standard"}, "identity": {"type": "SystemAssigned"}}).result()
    net.private_endpoints.begin_create_or_update(RG, "doc-pe", {"location": "eastus", "properties": {
        "subnet": {"id": vnet.subnets[1].id}, "privateLinkServiceConnections": [{"name": "c", "properties": {
            "privateLinkServiceId": vault.id, "groupIds": ["AzureSiteRecovery"]}}]}}).result()
    pdns = server.client(PrivateDnsManagementClient)
    pdns.private_zones.begin_create_or_update(RG, ZONE, {"location": "global"}).result()
    pdns.virtual_network_links.begin_create_or_update(RG, ZONE, "app", {"location": "global", "properties": {
        "virtualNetwork": {"id": vnet.id}, "registrationEnabled": False}}).result()
    zone_id = f"/subscriptions/{server.sub}/resourceGroups/{RG}/providers/Microsoft.Network/privateDnsZones/{ZONE}"
    net.private_dns_zone_groups.begin_create_or_update(RG, "doc-pe", "default", {"properties": {
        "privateDnsZoneConfigs": [{"name": "z", "properties": {"privateDnsZoneId": zone_id}}]}}).result()

    report = doctor(server, vm, vault)
    assert report["passed"] is True and not failing(report), failing(report)
    names = [c["check"] for c in report["checks"]]
    assert "Microsoft Entra ID: login.microsoftonline.com:443" in names
    assert sum(".privatelink.siterecovery.windowsazure.com" in n for n in names) == 5, names

    # The zone unlinked: the names go public, and DNS is named with the link to add.
    pdns.virtual_network_links.begin_delete(RG, ZONE, "app").result()
    broken = failing(doctor(server, vm, vault))
    assert broken and all("not linked" in c["evidence"] and f"-g {RG} -z {ZONE}" in c["fix"] for c in broken), broken
    pdns.virtual_network_links.begin_create_or_update(RG, ZONE, "app", {"location": "global", "properties": {
        "virtualNetwork": {"id": vnet.id}, "registrationEnabled": False}}).result()
    assert doctor(server, vm, vault)["passed"] is True

    # Entra ID has no private endpoint: denying it is a failure, with the rule named.
    net.security_rules.begin_create_or_update(RG, "vms-nsg", "deny-entra", {"properties": {
        "priority": 100, "direction": "Outbound", "access": "Deny", "protocol": "*", "sourcePortRange": "*",
        "destinationPortRange": "*", "sourceAddressPrefix": "*", "destinationAddressPrefix": "AzureActiveDirectory"}}).result()
    [entra] = failing(doctor(server, vm, vault))
    assert entra["check"].startswith("Microsoft Entra ID") and "deny-entra" in entra["evidence"], entra

    # The command is a CI gate: JSON out, exit status 1 on a failure.
    out = subprocess.run([str(BIN), "doctor", "--vm", vm.id, "--vault", vault.id, "--scenario", "sr", "--json",
                          "--data-dir", str(server.data_dir)], capture_output=True, text=True)
    assert out.returncode == 1, out.stderr
    assert json.loads(out.stdout)["passed"] is False
    net.security_rules.begin_delete(RG, "vms-nsg", "deny-entra").result()
    out = subprocess.run([str(BIN), "doctor", "--vm", vm.id, "--vault", vault.id, "--scenario", "sr",
                          "--data-dir", str(server.data_dir)], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("PASS"), out.stdout + out.stderr


def test_doctor_checks_a_replicating_vms_cache_account(server):
    from azure.mgmt.storage import StorageManagementClient
    rg, vault_name = "doctor-sr", "doctor-sr-vault"
    asr.groups(server, (rg, "eastus"), (f"{rg}-asr", "westus"))
    net = server.client(NetworkManagementClient)
    vnet = net.virtual_networks.begin_create_or_update(rg, "app", {"location": "eastus", "properties": {
        "addressSpace": {"addressPrefixes": ["10.77.0.0/16"]},
        "subnets": [{"name": "vms", "properties": {"addressPrefix": "10.77.1.0/24"}}]}}).result()
    vm = asr.vm(server, rg, "srvm", vnet.subnets[0].id, os_gb=1)
    sr, pol, tc = asr.vault(server, rg, vault_name)
    cache = asr.cache(server, rg, "doctorcache1")
    asr.protect(server, sr, rg, vault_name, "srvm", vm, pol, tc, cache.id, f"{rg}-asr")
    vault = server.client(RecoveryServicesClient).vaults.get(rg, vault_name)
    report = doctor(server, vm, vault)
    assert report["passed"] is True, failing(report)
    checks = {c["check"]: c for c in report["checks"]}
    assert checks["cache storage account doctorcache1"]["status"] == "pass"
    assert checks["vault endpoints"]["status"] == "warn"  # public URLs, allowed
    # A firewall without trusted Microsoft services shuts Site Recovery out of the cache.
    storage = server.client(StorageManagementClient)
    storage.storage_accounts.update(rg, "doctorcache1", {"properties": {"networkAcls": {"defaultAction": "Deny", "bypass": "None"}}})
    acct = storage.storage_accounts.get_properties(rg, "doctorcache1")
    assert acct.network_rule_set.default_action == "Deny", acct.network_rule_set
    after = doctor(server, vm, vault)
    [bad] = [c for c in failing(after) if c["check"] == "cache storage account doctorcache1"]
    assert "trusted" in bad["evidence"].lower(), bad
    storage.storage_accounts.update(rg, "doctorcache1", {"properties": {"networkAcls": {"defaultAction": "Allow", "bypass": "AzureServices"}}})
    again = {c["check"]: c for c in doctor(server, vm, vault)["checks"]}
    assert again["cache storage account doctorcache1"]["status"] == "pass", again


def test_doctor_names_a_full_endpoint_subnet_and_an_authenticating_proxy(server):
    from azure.mgmt.compute import ComputeManagementClient
    rg = "doctor-ips"
    asr.groups(server, (rg, "eastus"))
    net = server.client(NetworkManagementClient)
    # A /28 holds 11 usable addresses; the vault's endpoint takes 5 (document 000).
    vnet = net.virtual_networks.begin_create_or_update(rg, "tight", {"location": "eastus", "properties": {
        "addressSpace": {"addressPrefixes": ["10.79.0.0/16"]},
        "subnets": [{"name": "vms", "properties": {"addressPrefix": "10.79.1.0/24"}},
                    {"name": "pe", "properties": {"addressPrefix": "10.79.2.0/28"}}]}}).result()
    vm = asr.vm(server, rg, "ipvm", vnet.subnets[0].id, os_gb=1)
    vault = server.client(RecoveryServicesClient).vaults.begin_create_or_update(rg, "ips-vault", {
        "location": "westus", "sku": {"name": "Standard"}}).result()
    net.private_endpoints.begin_create_or_update(rg, "ips-pe", {"location": "eastus", "properties": {
        "subnet": {"id": vnet.subnets[1].id}, "privateLinkServiceConnections": [{"name": "c", "properties": {
            "privateLinkServiceId": vault.id, "groupIds": ["AzureSiteRecovery"]}}]}}).result()

    def ip_check():
        [c] = [c for c in doctor(server, vm, vault)["checks"] if c["check"].startswith("free addresses")]
        return c
    assert ip_check()["status"] == "pass" and ip_check()["evidence"].startswith("6 free"), ip_check()
    # Other holders take the subnet's addresses until one is left.
    for i in range(5):
        net.network_interfaces.begin_create_or_update(rg, f"filler-{i}", {"location": "eastus", "properties": {
            "ipConfigurations": [{"name": "c", "properties": {"subnet": {"id": vnet.subnets[1].id}}}]}}).result()
    full = ip_check()
    assert full["status"] == "fail" and full["evidence"].startswith("1 free") and "2 private link" in full["evidence"], full

    # Document 003: an authenticating proxy is not supported.
    compute = server.client(ComputeManagementClient)
    compute.virtual_machines.begin_update(rg, "ipvm", {"tags": {"recoverite-proxy": "ops:pw@proxy.corp:3128"}}).result()
    [proxy] = [c for c in doctor(server, vm, vault)["checks"] if c["check"] == "proxy"]
    assert proxy["status"] == "fail" and "authentication prox" in proxy["evidence"], proxy
    compute.virtual_machines.begin_update(rg, "ipvm", {"tags": {"recoverite-proxy": "proxy.corp:3128"}}).result()
    [proxy] = [c for c in doctor(server, vm, vault)["checks"] if c["check"] == "proxy"]
    assert proxy["status"] == "pass", proxy
