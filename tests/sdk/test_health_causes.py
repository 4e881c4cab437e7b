"""Run-time health names the root cause (issue 13): document 000's set-up —
a vault with a private endpoint, its zone linked, the vault identity's roles
on the cache — broken the way teams break it. Each break turns the item
Critical (or, for monitoring, Warning) with the code Azure documents for the
cause, the first hop that failed and its fix; each clears when fixed."""

import shutil
import subprocess
import time
import uuid

import pytest
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.privatedns import PrivateDnsManagementClient
from azure.mgmt.recoveryservices import RecoveryServicesClient
from azure.mgmt.recoveryservicessiterecovery import SiteRecoveryManagementClient

import asr

RG, VAULT = "health-rg", "health-causes-vault"
ZONE = "privatelink.siterecovery.windowsazure.com"
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
BLOB_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
QEMU_IO = shutil.which("qemu-io")

pytestmark = pytest.mark.skipif(QEMU_IO is None, reason="qemu-io (qemu-utils) is not installed")


def rule(name, priority, tag, access="Deny"):
    return name, {"properties": {
        "priority": priority, "direction": "Outbound", "access": access, "protocol": "Tcp", "sourcePortRange": "*",
        "destinationPortRange": "443", "sourceAddressPrefix": "*", "destinationAddressPrefix": tag}}


@pytest.fixture(scope="module")
def env(server):
    asr.groups(server, (RG, "eastus"), (f"{RG}-asr", "westus"))
    net = server.client(NetworkManagementClient)
    nsg = net.network_security_groups.begin_create_or_update(RG, "vms-nsg", {"location": "eastus"}).result()
    vnet = net.virtual_networks.begin_create_or_update(RG, "app", {"location": "eastus", "properties": {
        "addressSpace": {"addressPrefixes": ["10.78.0.0/16"]},
        "subnets": [{"name": "vms", "properties": {"addressPrefix": "10.78.1.0/24", "networkSecurityGroup": {"id": nsg.id}}},
                    {"name": "pe", "properties": {"addressPrefix": "10.78.2.0/24"}}]}}).result()
    vm = asr.vm(server, RG, "hvm", vnet.subnets[0].id, os_gb=1)
    vault = server.client(RecoveryServicesClient).vaults.begin_create_or_update(RG, VAULT, {
        "location": "westus", "sku": {"name": "Standard"}, "identity": {"type": "SystemAssigned"},
        "properties": {"publicNetworkAccess": "Disabled"}}).result()
    # Document 000: the private endpoint first, its zone linked to the VMs' network.
    net.private_endpoints.begin_create_or_update(RG, "health-pe", {"location": "eastus", "properties": {
        "subnet": {"id": vnet.subnets[1].id}, "privateLinkServiceConnections": [{"name": "c", "properties": {
            "privateLinkServiceId": vault.id, "groupIds": ["AzureSiteRecovery"]}}]}}).result()
    pdns = server.client(PrivateDnsManagementClient)
    pdns.private_zones.begin_create_or_update(RG, ZONE, {"location": "global"}).result()
    link = {"location": "global", "properties": {"virtualNetwork": {"id": vnet.id}, "registrationEnabled": False}}
    pdns.virtual_network_links.begin_create_or_update(RG, ZONE, "app", link).result()
    zone_id = f"/subscriptions/{server.sub}/resourceGroups/{RG}/providers/Microsoft.Network/privateDnsZones/{ZONE}"
    net.private_dns_zone_groups.begin_create_or_update(RG, "health-pe", "default", {"properties": {
        "privateDnsZoneConfigs": [{"name": "z", "properties": {"privateDnsZoneId": zone_id}}]}}).result()
    # The vault identity's roles on the cache account.
    cache = asr.cache(server, RG, "healthcause1")
    auth = server.client(AuthorizationManagementClient)
    assignments = {}
    for role in (CONTRIBUTOR, BLOB_CONTRIBUTOR):
        name = str(uuid.uuid4())
        auth.role_assignments.create(cache.id, name, {
            "role_definition_id": f"/subscriptions/{server.sub}/providers/Microsoft.Authorization/roleDefinitions/{role}",
            "principal_id": vault.identity.principal_id, "principal_type": "ServicePrincipal"})
        assignments[role] = name
    sr = server.client(SiteRecoveryManagementClient)
    for fabric, loc in (("east", "eastus"), ("west", "westus")):
        sr.replication_fabrics.begin_create(RG, VAULT, fabric, {"properties": {"customDetails": {"instanceType": "Azure", "location": loc}}}).result()
        sr.replication_protection_containers.begin_create(RG, VAULT, fabric, f"{fabric}-c", {"properties": {"providerSpecificInput": [{"instanceType": "A2A"}]}}).result()
    pol = sr.replication_policies.begin_create(RG, VAULT, "p", {"properties": {"providerSpecificInput": {
        "instanceType": "A2A", "recoveryPointHistory": 1440, "multiVmSyncStatus": "Disable"}}}).result()
    tc = sr.replication_protection_containers.get(RG, VAULT, "west", "west-c")
    sr.replication_protection_container_mappings.begin_create(RG, VAULT, "east", "east-c", "m", {"properties": {
        "targetProtectionContainerId": tc.id, "policyId": pol.id, "providerSpecificInput": {"instanceType": "A2A"}}}).result()
    item = asr.protect(server, sr, RG, VAULT, "hvm", vm, pol, tc, cache.id, f"{RG}-asr")
    e = {"server": server, "net": net, "pdns": pdns, "link": link, "sr": sr, "item": item, "vm": vm, "cache": cache,
         "auth": auth, "assignments": assignments, "principal": vault.identity.principal_id,
         "nbd": server.http("GET", "/recoverite/nbd").json()["endpoint"]}
    wait(e, "Normal")
    yield e
    sr.replication_protected_items.begin_delete(RG, VAULT, "east", "east-c", "hvm", {"properties": {"disableProtectionReason": "NotSpecified"}}).result()


def get(env):
    return env["sr"].replication_protected_items.get(RG, VAULT, "east", "east-c", "hvm")


def wait(env, health, timeout=25):
    deadline = time.time() + timeout
    while True:
        item = get(env)
        if item.properties.replication_health == health:
            return item
        if time.time() > deadline:
            raise AssertionError(f"stayed {item.properties.replication_health}: "
                                 f"{[(e.error_code, e.error_message) for e in item.properties.health_errors or []]}")
        time.sleep(0.25)


def write(env, pattern):
    """Writes 64 KiB through NBD, so the agent has changes to ship."""
    out = subprocess.run([QEMU_IO, "-f", "raw", "-c", f"write -P {pattern} 0 64k",
                          f"{env['nbd']}/{RG}/hvm-os"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def only_error(item):
    [e] = item.properties.health_errors
    return e


def test_an_nsg_denying_storage_is_named_as_the_storage_cause(env):
    net = env["net"]
    name, body = rule("deny-storage", 100, "Storage")
    net.security_rules.begin_create_or_update(RG, "vms-nsg", name, body).result()
    write(env, 0x11)
    e = only_error(wait(env, "Critical"))
    assert e.error_code == "151037" and e.error_level == "Error", e
    assert "cache storage" in e.error_message and "deny-storage" in e.error_message, e.error_message
    assert "Storage.EastUS" in e.possible_causes and "security rule" in e.recommended_action, e
    assert e.entity_id.endswith("/networkSecurityGroups/vms-nsg"), e.entity_id
    assert e.creation_time_utc is not None
    net.security_rules.begin_delete(RG, "vms-nsg", name).result()
    assert wait(env, "Normal").properties.health_errors == []


def test_an_unlinked_zone_is_named_as_dns_not_as_the_vaults_refusal(env):
    env["pdns"].virtual_network_links.begin_delete(RG, ZONE, "app").result()
    e = only_error(wait(env, "Critical"))
    # The vault's name went public and the locked-down vault refused it: the
    # root cause is the zone, not the vault's public access.
    assert e.error_code == "151195" and e.error_type == "DnsResolution", e
    assert "public" in e.error_message and "not linked" in e.possible_causes, e
    assert ZONE in e.recommended_action and "/virtualNetworks/app" in e.recommended_action, e.recommended_action
    first_seen = e.creation_time_utc
    time.sleep(2)
    assert only_error(get(env)).creation_time_utc == first_seen  # a persisting cause keeps its time
    env["pdns"].virtual_network_links.begin_create_or_update(RG, ZONE, "app", env["link"]).result()
    wait(env, "Normal")


def test_removed_roles_are_named_with_the_principal(env):
    scope = env["cache"].id
    env["auth"].role_assignments.delete(scope, env["assignments"][BLOB_CONTRIBUTOR])
    write(env, 0x22)
    e = only_error(wait(env, "Critical"))
    assert e.error_type == "Authorization", e
    assert "Storage Blob Data Contributor" in e.error_message and env["principal"] in e.error_message, e.error_message
    assert "Storage Blob Data Contributor" in e.recommended_action and e.entity_id == scope, e
    name = str(uuid.uuid4())
    env["auth"].role_assignments.create(scope, name, {
        "role_definition_id": f"/subscriptions/{env['server'].sub}/providers/Microsoft.Authorization/roleDefinitions/{BLOB_CONTRIBUTOR}",
        "principal_id": env["principal"], "principal_type": "ServicePrincipal"})
    env["assignments"][BLOB_CONTRIBUTOR] = name
    wait(env, "Normal")


def test_entra_id_denied_is_not_healthy(env):
    net = env["net"]
    name, body = rule("deny-entra", 100, "AzureActiveDirectory")
    net.security_rules.begin_create_or_update(RG, "vms-nsg", name, body).result()
    e = only_error(wait(env, "Critical"))
    assert e.error_code == "151196", e
    assert "Microsoft Entra ID" in e.error_message and "deny-entra" in e.error_message, e.error_message
    assert "AzureActiveDirectory" in e.recommended_action, e.recommended_action
    net.security_rules.begin_delete(RG, "vms-nsg", name).result()
    wait(env, "Normal")


def test_monitoring_denied_is_a_warning_and_replication_goes_on(env):
    server, net = env["server"], env["net"]
    name, body = rule("deny-eventhub", 100, "EventHub.WestUS")
    net.security_rules.begin_create_or_update(RG, "vms-nsg", name, body).result()
    item = wait(env, "Warning")
    e = only_error(item)
    assert e.error_level == "Warning" and e.error_code == "151037", e
    assert "monitoring" in e.error_message and "deny-eventhub" in e.error_message, e.error_message
    assert "EventHub.WestUS" in e.recommended_action, e.recommended_action
    # The doctor sees the same: a warning, not a failure.
    vault_id = item.id.split("/replicationFabrics/")[0]
    report = server.http("GET", "/recoverite/doctor", params={"vm": env["vm"].id, "vault": vault_id, "scenario": "sr"}).json()
    [mon] = [c for c in report["checks"] if c["check"].startswith("Site Recovery monitoring")]
    assert mon["status"] == "warn" and "deny-eventhub" in mon["evidence"] and "EventHub.westus" in mon["fix"], mon
    assert report["passed"] is True, report
    # Replication goes on: new writes are shipped and a point is taken.
    write(env, 0x33)
    r = server.http("POST", "/recoverite/replication/points", json={"protectedItemId": item.id})
    assert r.status_code == 200, r.text
    assert get(env).properties.replication_health == "Warning"
    net.security_rules.begin_delete(RG, "vms-nsg", name).result()
    wait(env, "Normal")
