"""Site Recovery's preconditions and run-time health (issue 5), through the
official SDKs: the vault's region, cache storage account rules (region,
firewall, trusted services, a rule for the source subnet), the vault
identity's roles when the vault uses private endpoints, document 003's
recovery-side defaults, and an agent the network blocks (NSG, proxy) turning
the item Critical with the reason, then recovering."""

import time
import uuid

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.recoveryservices import RecoveryServicesClient
from azure.mgmt.recoveryservicessiterecovery import SiteRecoveryManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.mgmt.storage import StorageManagementClient

RG = "rules-rg"
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
BLOB_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
BLOB_OWNER = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"


def vault_with_mapping(server, name, location, pe_subnet=None):
    """A vault (system identity) with East US → Central US fabrics, containers, policy and mapping."""
    vault = server.client(RecoveryServicesClient).vaults.begin_create_or_update(RG, name, {
        "location": location, "sku": {"name": "Standard"}, "identity": {"type": "SystemAssigned"}}).result()
    if pe_subnet:
        server.client(NetworkManagementClient).private_endpoints.begin_create_or_update(RG, f"{name}-pe", {
            "location": "eastus", "properties": {"subnet": {"id": pe_subnet}, "privateLinkServiceConnections": [
                {"name": "asr", "properties": {"privateLinkServiceId": vault.id, "groupIds": ["AzureSiteRecovery"]}}]}}).result()
    sr = server.client(SiteRecoveryManagementClient)
    for fabric, loc in (("east", "eastus"), ("central", "centralus")):
        sr.replication_fabrics.begin_create(RG, name, fabric, {"properties": {"customDetails": {"instanceType": "Azure", "location": loc}}}).result()
        sr.replication_protection_containers.begin_create(RG, name, fabric, f"{fabric}-c", {"properties": {"providerSpecificInput": [{"instanceType": "A2A"}]}}).result()
    policy = sr.replication_policies.begin_create(RG, name, "p", {"properties": {"providerSpecificInput": {
        "instanceType": "A2A", "recoveryPointHistory": 1440, "multiVmSyncStatus": "Disable"}}}).result()
    target = sr.replication_protection_containers.get(RG, name, "central", "central-c")
    sr.replication_protection_container_mappings.begin_create(RG, name, "east", "east-c", "m", {"properties": {
        "targetProtectionContainerId": target.id, "policyId": policy.id, "providerSpecificInput": {"instanceType": "A2A"}}}).result()
    return {"vault": vault, "policy": policy, "target": target, "name": name}


@pytest.fixture(scope="module")
def env(server):
    rm = server.client(ResourceManagementClient)
    rm.resource_groups.create_or_update(RG, {"location": "eastus"})
    rm.resource_groups.create_or_update("rules-other", {"location": "centralus"})
    net = server.client(NetworkManagementClient)
    nsg = net.network_security_groups.begin_create_or_update(RG, "vms-nsg", {"location": "eastus"}).result()
    vnet = net.virtual_networks.begin_create_or_update(RG, "rules-vnet", {"location": "eastus", "properties": {
        "addressSpace": {"addressPrefixes": ["10.60.0.0/16"]},
        "subnets": [{"name": "vms", "properties": {"addressPrefix": "10.60.1.0/24", "networkSecurityGroup": {"id": nsg.id},
                                                   "serviceEndpoints": [{"service": "Microsoft.Storage"}]}},
                    {"name": "plain", "properties": {"addressPrefix": "10.60.2.0/24"}}]}}).result()
    subnet = {s.name: s.id for s in vnet.subnets}
    compute = server.client(ComputeManagementClient)
    aset = compute.availability_sets.create_or_update(RG, "web-set", {"location": "eastus", "sku": {"name": "Aligned"},
        "properties": {"platformFaultDomainCount": 2, "platformUpdateDomainCount": 5}})
    vms = {}
    for name in ("r1", "r2", "r3"):
        nic = net.network_interfaces.begin_create_or_update(RG, f"{name}-nic", {"location": "eastus", "properties": {
            "ipConfigurations": [{"name": "c", "properties": {"subnet": {"id": subnet["vms"]}}}]}}).result()
        osd = compute.disks.begin_create_or_update(RG, f"{name}-os", {"location": "eastus", "sku": {"name": "Premium_LRS"},
            "properties": {"creationData": {"createOption": "Empty"}, "diskSizeGB": 4, "osType": "Linux"}}).result()
        vms[name] = compute.virtual_machines.begin_create_or_update(RG, name, {"location": "eastus", "properties": {
            "hardwareProfile": {"vmSize": "Standard_D2s_v3"}, "availabilitySet": {"id": aset.id},
            "storageProfile": {"osDisk": {"createOption": "Attach", "osType": "Linux", "managedDisk": {"id": osd.id}}},
            "networkProfile": {"networkInterfaces": [{"id": nic.id}]}}}).result()
    return {"vms": vms, "subnet": subnet, "nsg": nsg, "net": net, "st": server.client(StorageManagementClient),
            "sr": server.client(SiteRecoveryManagementClient), "auth": server.client(AuthorizationManagementClient),
            "compute": compute, "rm": rm}


def account(env, name, location="eastus", sku="Standard_LRS", acls=None, rg=RG):
    body = {"location": location, "kind": "StorageV2", "sku": {"name": sku}}
    if acls:
        body["properties"] = {"networkAcls": acls}
    return env["st"].storage_accounts.begin_create(rg, name, body).result()


def enable(env, v, vm="r1", cache=None, rg=None, name=None):
    vmo = env["vms"][vm]
    a2a = {"instanceType": "A2A", "fabricObjectId": vmo.id, "recoveryContainerId": v["target"].id,
           "vmManagedDisks": [{"diskId": vmo.storage_profile.os_disk.managed_disk.id, "primaryStagingAzureStorageAccountId": cache}]}
    if rg:
        a2a["recoveryResourceGroupId"] = rg
    return env["sr"].replication_protected_items.begin_create(RG, v["name"], "east", "east-c", name or vm, {
        "properties": {"policyId": v["policy"].id, "providerSpecificDetails": a2a}}).result()


def refused(fn):
    with pytest.raises(HttpResponseError) as e:
        fn()
    return e.value.error


def grant(env, principal, role, scope):
    env["auth"].role_assignments.create(scope, str(uuid.uuid4()), {
        "role_definition_id": f"{scope.split('/resourceGroups')[0]}/providers/Microsoft.Authorization/roleDefinitions/{role}",
        "principal_id": principal, "principal_type": "ServicePrincipal"})


def test_storage_accounts_validate_names_kinds_and_network_rules(env):
    st = env["st"]
    assert refused(lambda: account(env, "Bad_Name")).code == "AccountNameInvalid"
    e = refused(lambda: st.storage_accounts.begin_create(RG, "nokind1", {"location": "eastus", "sku": {"name": "Standard_LRS"}, "kind": "Weird"}).result())
    assert e.code == "InvalidParameter" and "StorageV2" in e.message
    # A VNet rule needs the subnet's Microsoft.Storage service endpoint (document 002).
    e = refused(lambda: account(env, "aclbad1", acls={"defaultAction": "Deny", "virtualNetworkRules": [{"id": env["subnet"]["plain"]}]}))
    assert e.code == "NetworkAclsValidationFailure" and "ServiceEndpoints" in e.message
    acct = account(env, "aclgood1", acls={"defaultAction": "Deny", "bypass": "AzureServices", "virtualNetworkRules": [{"id": env["subnet"]["vms"]}]})
    assert acct.network_rule_set.default_action == "Deny" and acct.primary_endpoints.blob == "https://aclgood1.blob.core.windows.net/"
    assert not st.storage_accounts.check_name_availability({"name": "aclgood1", "type": "Microsoft.Storage/storageAccounts"}).name_available
    assert refused(lambda: account(env, "aclgood1", rg="rules-other", location="centralus")).code == "StorageAccountAlreadyTaken"
    groups = {r.group_id for r in st.private_link_resources.list_by_storage_account(RG, "aclgood1").value}
    assert {"blob", "queue"} <= groups
    # Private endpoints for storage only on General Purpose v2 (document 000).
    st.storage_accounts.begin_create(RG, "classicv1", {"location": "eastus", "kind": "Storage", "sku": {"name": "Standard_LRS"}}).result()
    e = refused(lambda: env["net"].private_endpoints.begin_create_or_update(RG, "v1-pe", {"location": "eastus", "properties": {
        "subnet": {"id": env["subnet"]["plain"]}, "privateLinkServiceConnections": [{"name": "b", "properties": {
            "privateLinkServiceId": f"{acct.id.rsplit('/', 1)[0]}/classicv1", "groupIds": ["blob"]}}]}}).result())
    assert e.code == "PrivateEndpointRequiresGeneralPurposeV2"


def test_vault_must_not_be_in_the_source_region(server, env):
    v = vault_with_mapping(server, "east-vault", "eastus")
    cache = account(env, "eastcache1").id
    e = refused(lambda: enable(env, v, cache=cache))
    assert e.code == "VaultInSourceRegion" and "any other region" in e.message


def test_cache_account_rules(server, env):
    v = vault_with_mapping(server, "cache-vault", "centralus")
    missing = f"/subscriptions/{server.sub}/resourceGroups/{RG}/providers/Microsoft.Storage/storageAccounts/nosuchcache"
    assert refused(lambda: enable(env, v, cache=missing)).code == "CacheStorageAccountNotFound"
    wrong = account(env, "centralcache1", location="centralus", rg="rules-other").id
    assert refused(lambda: enable(env, v, cache=wrong)).code == "CacheStorageAccountWrongRegion"
    closed = account(env, "notrusted1", acls={"defaultAction": "Deny", "bypass": "None", "virtualNetworkRules": [{"id": env["subnet"]["vms"]}]}).id
    e = refused(lambda: enable(env, v, cache=closed))
    assert e.code == "CacheStorageAccountFirewall" and "trusted Microsoft services" in e.message
    nosubnet = account(env, "nosubnet1", acls={"defaultAction": "Deny", "bypass": "AzureServices"}).id
    e = refused(lambda: enable(env, v, cache=nosubnet))
    assert e.code == "CacheStorageAccountFirewall" and "rules-vnet" in e.message
    assert list(env["sr"].replication_protected_items.list(RG, "cache-vault")) == []
    # With the source subnet allowed (over its service endpoint) it works, and the agent ships.
    ok = account(env, "subnetok1", acls={"defaultAction": "Deny", "bypass": "AzureServices", "virtualNetworkRules": [{"id": env["subnet"]["vms"]}]}).id
    item = enable(env, v, cache=ok, rg=f"/subscriptions/{server.sub}/resourceGroups/rules-other")
    r = server.http("POST", "/recoverite/replication/points", json={"protectedItemId": item.id})
    assert r.status_code == 200, r.text


def test_vault_identity_needs_roles_on_the_cache_when_private(server, env):
    v = vault_with_mapping(server, "pe-vault", "centralus", pe_subnet=env["subnet"]["plain"])
    principal = v["vault"].identity.principal_id
    std = account(env, "stdcache1")
    e = refused(lambda: enable(env, v, cache=std.id))
    assert e.code == "VaultIdentityLacksStorageRoles" and "Contributor and Storage Blob Data Contributor" in e.message
    grant(env, principal, CONTRIBUTOR, std.id)
    e = refused(lambda: enable(env, v, cache=std.id))
    assert "Storage Blob Data Contributor" in e.message and "lacks Contributor" not in e.message
    prem = account(env, "premcache1", sku="Premium_LRS")
    grant(env, principal, CONTRIBUTOR, prem.id)
    grant(env, principal, BLOB_CONTRIBUTOR, prem.id)
    e = refused(lambda: enable(env, v, cache=prem.id))
    assert "Storage Blob Data Owner" in e.message, e.message
    grant(env, principal, BLOB_CONTRIBUTOR, std.id)
    item = enable(env, v, cache=std.id, vm="r2", name="r2")
    assert item.properties.protection_state == "Protected"


def wait_health(sr, vault, name, want, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        item = sr.replication_protected_items.get(RG, vault, "east", "east-c", name)
        if item.properties.replication_health == want:
            return item
        time.sleep(0.25)
    raise AssertionError(f"{name} stayed {item.properties.replication_health}: {item.properties.health_errors}")


def test_defaults_and_a_blocked_agent_turns_critical_then_recovers(server, env):
    sr, net, compute = env["sr"], env["net"], env["compute"]
    v = vault_with_mapping(server, "health-vault", "centralus")
    cache = account(env, "healthcache1").id
    item = enable(env, v, vm="r1", cache=cache, name="r1")  # no recovery group: {rg}-asr
    d = item.properties.provider_specific_details
    assert d.recovery_azure_resource_group_id.endswith("/resourceGroups/rules-rg-asr")
    assert env["rm"].resource_groups.get("rules-rg-asr").location == "centralus"
    assert d.selected_recovery_azure_network_id.endswith("/resourceGroups/rules-rg-asr/providers/Microsoft.Network/virtualNetworks/rules-vnet-asr")
    asr_vnet = net.virtual_networks.get("rules-rg-asr", "rules-vnet-asr")
    assert asr_vnet.location == "centralus" and sorted(s.name for s in asr_vnet.subnets) == ["plain", "vms"]
    assert d.recovery_availability_set.endswith("/availabilitySets/web-set-asr")
    assert compute.availability_sets.get("rules-rg-asr", "web-set-asr").platform_fault_domain_count == 2
    assert d.protected_managed_disks[0].recovery_replica_disk_account_type == "Premium_LRS"
    wait_health(sr, "health-vault", "r1", "Normal")

    # An NSG rule denying HTTPS to Site Recovery blocks the agent: Critical, with the rule named.
    net.security_rules.begin_create_or_update(RG, "vms-nsg", "deny-asr", {"properties": {
        "protocol": "Tcp", "access": "Deny", "direction": "Outbound", "priority": 100, "sourceAddressPrefix": "*",
        "sourcePortRange": "*", "destinationAddressPrefix": "AzureSiteRecovery", "destinationPortRange": "443"}}).result()
    bad = wait_health(sr, "health-vault", "r1", "Critical")
    msg = bad.properties.health_errors[0].error_message
    assert "vault" in msg and "deny-asr" in msg, msg
    r = server.http("POST", "/recoverite/replication/points", json={"protectedItemId": item.id})
    assert r.status_code == 409 and r.json()["error"]["code"] == "ReplicationBlocked"
    net.security_rules.begin_delete(RG, "vms-nsg", "deny-asr").result()
    wait_health(sr, "health-vault", "r1", "Normal")

    # Site Recovery does not support authenticating proxies (document 003).
    vm = compute.virtual_machines.get(RG, "r1")
    compute.virtual_machines.begin_update(RG, "r1", {"tags": {"recoverite-proxy": "ops:secret@proxy.corp:8080"}}).result()
    bad = wait_health(sr, "health-vault", "r1", "Critical")
    assert "authentication prox" in bad.properties.health_errors[0].error_message
    compute.virtual_machines.begin_update(RG, "r1", {"tags": vm.tags or {}}).result()
    wait_health(sr, "health-vault", "r1", "Normal")


def test_network_mapping_picks_the_recovery_network(server, env):
    sr, net = env["sr"], env["net"]
    v = vault_with_mapping(server, "map-vault", "centralus")
    mapped = net.virtual_networks.begin_create_or_update("rules-other", "mapped-vnet", {"location": "centralus", "properties": {
        "addressSpace": {"addressPrefixes": ["10.61.0.0/16"]}, "subnets": [{"name": "vms", "properties": {"addressPrefix": "10.61.1.0/24"}}]}}).result()
    source = env["subnet"]["vms"].split("/subnets/")[0]
    body = {"properties": {"recoveryFabricName": "central", "recoveryNetworkId": mapped.id,
                           "fabricSpecificDetails": {"instanceType": "AzureToAzure", "primaryNetworkId": source}}}
    bad = {"properties": {**body["properties"], "recoveryNetworkId": source}}
    e = refused(lambda: sr.replication_network_mappings.begin_create(RG, "map-vault", "east", "rules-vnet", "to-mapped", bad).result())
    assert e.code == "NetworkNotInFabricRegion"
    m = sr.replication_network_mappings.begin_create(RG, "map-vault", "east", "rules-vnet", "to-mapped", body).result()
    assert m.properties.recovery_network_id == mapped.id and m.properties.state == "Paired"
    assert m.properties.fabric_specific_settings.instance_type == "AzureToAzure"
    assert [x.name for x in sr.replication_network_mappings.list(RG, "map-vault")] == ["to-mapped"]
    item = enable(env, v, vm="r3", cache=account(env, "mapcache1").id, rg=f"/subscriptions/{server.sub}/resourceGroups/rules-other", name="r3")
    assert item.properties.provider_specific_details.selected_recovery_azure_network_id == mapped.id


def test_enabling_needs_the_callers_rights_on_the_recovery_side(server, env):
    # Contributor on the source group only: Site Recovery checks, as the
    # caller, the right to create VMs in the recovery group.
    v = vault_with_mapping(server, "linked-vault", "centralus")
    cache = account(env, "linkedcache1").id
    p = server.http("POST", "/recoverite/principals", json={"displayName": "src-only", "role": "Contributor",
                                                            "scope": f"/subscriptions/{server.sub}/resourceGroups/{RG}"}).json()
    sr = server.client(SiteRecoveryManagementClient, credential=server.credential(p["clientId"], p["clientSecret"]))
    vmo = env["vms"]["r3"]
    body = {"properties": {"policyId": v["policy"].id, "providerSpecificDetails": {
        "instanceType": "A2A", "fabricObjectId": vmo.id, "recoveryContainerId": v["target"].id,
        "recoveryResourceGroupId": f"/subscriptions/{server.sub}/resourceGroups/rules-other",
        "vmManagedDisks": [{"diskId": vmo.storage_profile.os_disk.managed_disk.id, "primaryStagingAzureStorageAccountId": cache}]}}}
    with pytest.raises(HttpResponseError) as e:
        sr.replication_protected_items.begin_create(RG, "linked-vault", "east", "east-c", "r3", body).result()
    assert e.value.status_code == 403 and e.value.error.code == "LinkedAuthorizationFailed", e.value.message
    assert "Microsoft.Compute/virtualMachines/write" in e.value.message and "rules-other" in e.value.message
    assert list(env["sr"].replication_protected_items.list(RG, "linked-vault")) == []
