"""A hub-and-spoke estate across three subscriptions of one tenant, with the
Python SDK and qemu-io:

    python examples/hub_spoke.py .recoverite/connection.json

- hub (connectivity): the `privatelink.siterecovery.windowsazure.com` and
  `privatelink.blob.core.windows.net` zones, linked to both spokes' networks
  (document 000: "one private DNS zone for the entire setup"; document 001:
  DNS can live in another subscription);
- spoke 1 (East US): the application VM, its network, and a firewalled
  cache storage account with a blob endpoint;
- spoke 2 (Central US): the Recovery Services vault with its managed
  identity, the recovery network and the recovery resource group (document
  003: the target subscription may differ from the source's);
- the spokes' networks are peered across the subscriptions; each has a vault
  endpoint whose zone group writes into the hub's zone;
- a principal with Contributor on spoke 1 only asks for an endpoint to the
  vault in spoke 2: it stays Pending until the vault's owner approves;
- replication from spoke 1 into spoke 2, a failover there, and the bytes
  checked on the replica disk."""

import json
import shutil
import subprocess
import sys
import time
import uuid

import requests
from azure.core.exceptions import HttpResponseError
from azure.identity import ClientSecretCredential
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.privatedns import PrivateDnsManagementClient
from azure.mgmt.recoveryservices import RecoveryServicesClient
from azure.mgmt.recoveryservicessiterecovery import SiteRecoveryManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.mgmt.storage import StorageManagementClient
from azure.mgmt.subscription import SubscriptionClient

ASR_ZONE, BLOB_ZONE = "privatelink.siterecovery.windowsazure.com", "privatelink.blob.core.windows.net"
ROLES = {"Contributor": "b24988ac-6180-42a0-ab88-20f7382dd24c",
         "Storage Blob Data Contributor": "ba92f5b4-2d11-453d-a403-e96b0029c9fe"}


def main(conn_file):
    c = json.load(open(conn_file))
    kw = dict(base_url=c["armEndpoint"], connection_verify=c["caCertFile"], polling_interval=1)

    def cred_of(client_id, secret):
        return ClientSecretCredential(c["tenantId"], client_id, secret, authority=c["authority"],
                                      connection_verify=c["caCertFile"], disable_instance_discovery=True)

    cred = cred_of(c["clientId"], c["clientSecret"])
    token = lambda: cred.get_token("https://management.azure.com/.default").token
    admin = lambda method, path, **a: requests.request(method, c["armEndpoint"] + path, verify=c["caCertFile"],
                                                      headers={"Authorization": f"Bearer {token()}"}, **a)

    def step(msg):
        print(f"== {msg}")

    step("three subscriptions: hub, spoke-1, spoke-2 (azure-mgmt-subscription aliases)")
    aliases = SubscriptionClient(cred, **kw)
    subs = {}
    for name in ("hub", "spoke-1", "spoke-2"):
        a = aliases.alias.begin_create(f"{name}-{uuid.uuid4().hex[:6]}", {"properties": {
            "displayName": name, "workload": "Production"}}).result()
        subs[name] = a.properties.subscription_id
        print(f"   {name}: {subs[name]}")
    hub, s1, s2 = subs["hub"], subs["spoke-1"], subs["spoke-2"]
    client = lambda cls, sub, cr=None: cls(cr or cred, sub, **kw)
    rid = lambda sub, rg: f"/subscriptions/{sub}/resourceGroups/{rg}"

    step("resource groups and networks; the spokes peered across subscriptions")
    for sub, rg, loc in ((hub, "hub-dns", "eastus"), (s1, "s1-app", "eastus"), (s2, "s2-dr", "centralus"), (s2, "s2-recovery", "centralus")):
        client(ResourceManagementClient, sub).resource_groups.create_or_update(rg, {"location": loc})
    vnets = {}
    for sub, rg, name, loc, prefix in ((s1, "s1-app", "s1-vnet", "eastus", "10.41"), (s2, "s2-dr", "s2-vnet", "centralus", "10.42")):
        vnets[name] = client(NetworkManagementClient, sub).virtual_networks.begin_create_or_update(rg, name, {"location": loc, "properties": {
            "addressSpace": {"addressPrefixes": [f"{prefix}.0.0/16"]},
            "subnets": [{"name": "vms", "properties": {"addressPrefix": f"{prefix}.1.0/24"}},
                        {"name": "pe", "properties": {"addressPrefix": f"{prefix}.2.0/24"}}]}}).result()
    for (sub, rg, name), other in (((s1, "s1-app", "s1-vnet"), "s2-vnet"), ((s2, "s2-dr", "s2-vnet"), "s1-vnet")):
        client(NetworkManagementClient, sub).virtual_network_peerings.begin_create_or_update(rg, name, f"to-{other}", {"properties": {
            "remoteVirtualNetwork": {"id": vnets[other].id}, "allowVirtualNetworkAccess": True}}).result()
    peering = client(NetworkManagementClient, s1).virtual_network_peerings.get("s1-app", "s1-vnet", "to-s2-vnet")
    print(f"   peering s1-vnet -> s2-vnet: {peering.peering_state}")
    subnet = lambda vnet, sn: f"{vnets[vnet].id}/subnets/{sn}"

    step("the hub's zones, linked to both spokes' networks")
    hub_dns = client(PrivateDnsManagementClient, hub)
    zone_id = {}
    for zone in (ASR_ZONE, BLOB_ZONE):
        zone_id[zone] = hub_dns.private_zones.begin_create_or_update("hub-dns", zone, {"location": "global"}).result().id
        for vnet in vnets:
            hub_dns.virtual_network_links.begin_create_or_update("hub-dns", zone, f"{vnet}-link", {"location": "global", "properties": {
                "virtualNetwork": {"id": vnets[vnet].id}}}).result()

    step("the vault in spoke 2, with its managed identity")
    vault = client(RecoveryServicesClient, s2).vaults.begin_create_or_update("s2-dr", "hub-vault", {
        "location": "centralus", "sku": {"name": "Standard"}, "identity": {"type": "SystemAssigned"},
        "properties": {"publicNetworkAccess": "Disabled"}}).result()

    def endpoint(sub, rg, name, vnet, loc, target, group, zone, cr=None):
        net = client(NetworkManagementClient, sub, cr)
        pe = net.private_endpoints.begin_create_or_update(rg, name, {"location": loc, "properties": {
            "subnet": {"id": subnet(vnet, "pe")}, "privateLinkServiceConnections": [{"name": group, "properties": {
                "privateLinkServiceId": target, "groupIds": [group]}}]}}).result()
        if zone:
            net.private_dns_zone_groups.begin_create_or_update(rg, name, "default", {"properties": {"privateDnsZoneConfigs": [
                {"name": group, "properties": {"privateDnsZoneId": zone_id[zone]}}]}}).result()
        return pe

    step("a principal with Contributor on spoke 1 only asks for an endpoint to spoke 2's vault")
    p = admin("POST", "/recoverite/principals", json={"displayName": "spoke1-contributor", "role": "Contributor",
                                                      "scope": f"/subscriptions/{s1}"}).json()
    pending = endpoint(s1, "s1-app", "requested-pe", "s1-vnet", "eastus", vault.id, "AzureSiteRecovery", None,
                       cred_of(p["clientId"], p["clientSecret"]))
    requested = pending.private_link_service_connections[0].private_link_service_connection_state.status
    print(f"   requested-pe: {requested}")
    # Nor may they write into the hub's zone or peer with spoke 2's network:
    # each needs a linked action on the other subscription's resource.
    outsider = client(NetworkManagementClient, s1, cred_of(p["clientId"], p["clientSecret"]))
    linked = {}
    for what, call in (
        ("zone group", lambda: outsider.private_dns_zone_groups.begin_create_or_update("s1-app", "requested-pe", "default", {
            "properties": {"privateDnsZoneConfigs": [{"name": "asr", "properties": {"privateDnsZoneId": zone_id[ASR_ZONE]}}]}}).result()),
        ("peering", lambda: outsider.virtual_network_peerings.begin_create_or_update("s1-app", "s1-vnet", "sneaky", {"properties": {
            "remoteVirtualNetwork": {"id": vnets["s2-vnet"].id}}}).result()),
    ):
        try:
            call()
            linked[what] = "allowed"
        except HttpResponseError as e:
            linked[what] = e.error.code
        print(f"   {what} by the spoke-1 Contributor: {linked[what]}")
    client(NetworkManagementClient, s1).private_endpoints.begin_delete("s1-app", "requested-pe").result()

    step("vault endpoints in both spokes, their zone groups writing into the hub's zone")
    pes = {}
    for sub, rg, vnet, loc in ((s1, "s1-app", "s1-vnet", "eastus"), (s2, "s2-dr", "s2-vnet", "centralus")):
        pe = endpoint(sub, rg, f"{vnet}-asr-pe", vnet, loc, vault.id, "AzureSiteRecovery", ASR_ZONE)
        pes[vnet] = pe
        print(f"   {vnet}-asr-pe: {pe.private_link_service_connections[0].private_link_service_connection_state.status}, "
              f"{len(pe.custom_dns_configs)} FQDNs")

    step("the cache account in spoke 1: firewalled, a blob endpoint, roles for the vault's identity (in spoke 2)")
    cache = client(StorageManagementClient, s1).storage_accounts.begin_create("s1-app", "s1hubcache", {
        "location": "eastus", "kind": "StorageV2", "sku": {"name": "Standard_LRS"},
        "properties": {"networkAcls": {"defaultAction": "Deny", "bypass": "AzureServices"}}}).result()
    endpoint(s1, "s1-app", "s1hubcache-blob-pe", "s1-vnet", "eastus", cache.id, "blob", BLOB_ZONE)
    auth = client(AuthorizationManagementClient, s1)
    for role, guid in ROLES.items():
        auth.role_assignments.create(cache.id, str(uuid.uuid4()), {
            "role_definition_id": f"/subscriptions/{s1}/providers/Microsoft.Authorization/roleDefinitions/{guid}",
            "principal_id": vault.identity.principal_id, "principal_type": "ServicePrincipal"})

    step("the VM in spoke 1")
    net1, compute1 = client(NetworkManagementClient, s1), client(ComputeManagementClient, s1)
    nic = net1.network_interfaces.begin_create_or_update("s1-app", "app-nic", {"location": "eastus", "properties": {
        "ipConfigurations": [{"name": "ipconfig1", "properties": {"subnet": {"id": subnet("s1-vnet", "vms")}}}]}}).result()
    os_disk = compute1.disks.begin_create_or_update("s1-app", "app-os", {"location": "eastus", "sku": {"name": "Premium_LRS"},
        "properties": {"creationData": {"createOption": "Empty"}, "diskSizeGB": 8, "osType": "Linux"}}).result()
    vm = compute1.virtual_machines.begin_create_or_update("s1-app", "app", {"location": "eastus", "properties": {
        "hardwareProfile": {"vmSize": "Standard_D2s_v3"},
        "storageProfile": {"osDisk": {"createOption": "Attach", "osType": "Linux", "managedDisk": {"id": os_disk.id}},
                           "dataDisks": [{"lun": 0, "createOption": "Empty", "diskSizeGB": 16, "managedDisk": {"storageAccountType": "Premium_LRS"}}]},
        "networkProfile": {"networkInterfaces": [{"id": nic.id}]}}}).result()

    step("what the vault's names resolve to from each spoke (DNS server, from the VM's and the network's addresses)")
    import dns.message
    import dns.query
    aliases_of = {a["owner"].lower(): a["alias"] for a in admin("GET", "/recoverite/network/aliases").json()["value"]}
    dns_host, dns_port = c["dnsServer"].split(":")
    records = {r.name: r.a_records[0].ipv4_address for r in hub_dns.record_sets.list_by_type("hub-dns", ASR_ZONE, "A")}
    sources = {"s1-vm": aliases_of[f"{nic.id}/ipConfigurations/ipconfig1".lower()], "s2-vnet": aliases_of[vnets["s2-vnet"].id.lower()]}
    answers = {}
    for fqdn in [d.fqdn for d in pes["s1-vnet"].custom_dns_configs]:
        public = fqdn.replace(".privatelink.", ".")
        row = {}
        for who, src in sources.items():
            resp = dns.query.udp(dns.message.make_query(public, "A"), dns_host, port=int(dns_port), source=src, timeout=3)
            row[who] = [r.address for rr in resp.answer for r in rr if rr.rdtype == 1]
        explained = admin("GET", "/recoverite/network/resolve", params={"name": public, "vnet": vnets["s1-vnet"].id}).json()
        row["trace"] = explained.get("trace", [])
        row["hub"] = records[fqdn[: -len(ASR_ZONE) - 1]]
        answers[public] = row
        print(f"   {public}: s1 {row['s1-vm']}  s2 {row['s2-vnet']}  (hub record {row['hub']})")

    step("Site Recovery in the vault: fabrics, containers, policy, mapping")
    sr = client(SiteRecoveryManagementClient, s2)
    for fabric, region in (("asr-eastus", "eastus"), ("asr-centralus", "centralus")):
        sr.replication_fabrics.begin_create("s2-dr", "hub-vault", fabric, {"properties": {"customDetails": {"instanceType": "Azure", "location": region}}}).result()
        sr.replication_protection_containers.begin_create("s2-dr", "hub-vault", fabric, f"{fabric}-c", {"properties": {"providerSpecificInput": [{"instanceType": "A2A"}]}}).result()
    policy = sr.replication_policies.begin_create("s2-dr", "hub-vault", "24h", {"properties": {"providerSpecificInput": {
        "instanceType": "A2A", "recoveryPointHistory": 1440, "appConsistentFrequencyInMinutes": 240, "multiVmSyncStatus": "Disable"}}}).result()
    target_c = sr.replication_protection_containers.get("s2-dr", "hub-vault", "asr-centralus", "asr-centralus-c")
    sr.replication_protection_container_mappings.begin_create("s2-dr", "hub-vault", "asr-eastus", "asr-eastus-c", "e2c", {"properties": {
        "targetProtectionContainerId": target_c.id, "policyId": policy.id, "providerSpecificInput": {"instanceType": "A2A"}}}).result()

    nbd = admin("GET", "/recoverite/nbd").json()["endpoint"]
    qemu_io = shutil.which("qemu-io") or sys.exit("qemu-io (qemu-utils) is needed to write the VM's disks")

    def io(sub, rg, disk, *cmds):
        args = [qemu_io, "-f", "raw"] + [x for cmd in cmds for x in ("-c", cmd)] + [f"{nbd}/{sub}/{rg}/{disk}"]
        out = subprocess.run(args, capture_output=True, text=True, timeout=120)
        return out.returncode == 0 and "Pattern verification failed" not in out.stdout + out.stderr, out.stdout + out.stderr

    step("replication from spoke 1 into spoke 2 (recovery group and network in spoke 2)")
    io(s1, "s1-app", "app_DataDisk_0", "write -P 0x5a 0 2M")
    item_path = ("s2-dr", "hub-vault", "asr-eastus", "asr-eastus-c", "app")
    disks = [os_disk.id] + [d.managed_disk.id for d in vm.storage_profile.data_disks]
    item = sr.replication_protected_items.begin_create(*item_path, {"properties": {"policyId": policy.id, "providerSpecificDetails": {
        "instanceType": "A2A", "fabricObjectId": vm.id, "recoveryContainerId": target_c.id,
        "recoveryResourceGroupId": rid(s2, "s2-recovery"), "recoveryAzureNetworkId": vnets["s2-vnet"].id,
        "vmManagedDisks": [{"diskId": d, "primaryStagingAzureStorageAccountId": cache.id,
                            "recoveryResourceGroupId": rid(s2, "s2-recovery")} for d in disks]}}}).result()
    print(f"   {item.properties.protection_state}")
    io(s1, "s1-app", "app_DataDisk_0", "write -P 0x6b 1M 1M")
    deadline = time.time() + 30
    while time.time() < deadline:
        it = sr.replication_protected_items.get(*item_path)
        if not any(d.data_pending_at_source_agent_in_mb for d in it.properties.provider_specific_details.protected_managed_disks):
            break
        time.sleep(0.2)
    print(f"   health {it.properties.replication_health} {[e.error_message for e in it.properties.health_errors or []]}")

    step("failover into spoke 2, then the bytes")
    failed = sr.replication_protected_items.begin_unplanned_failover(*item_path, {"properties": {
        "failoverDirection": "PrimaryToRecovery", "sourceSiteOperations": "NotRequired",
        "providerSpecificDetails": {"instanceType": "A2A"}}}).result()
    recovery_vm = failed.properties.provider_specific_details.recovery_fabric_object_id
    check = io(s2, "s2-recovery", "app_DataDisk_0-ASRReplica", "read -P 0x5a 0 1M", "read -P 0x6b 1M 1M", "read -P 0 2M 1M")
    print(f"   failed over VM: {recovery_vm}; bytes {'match' if check[0] else 'DIFFER'}")
    sr.replication_protected_items.begin_failover_commit(*item_path).result()
    return {"subs": subs, "requested": requested, "linked": linked, "peering": peering.peering_state,
            "endpoints": {k: v.private_link_service_connections[0].private_link_service_connection_state.status for k, v in pes.items()},
            "pe_ips": {k: sorted(d.ip_addresses[0] for d in v.custom_dns_configs) for k, v in pes.items()},
            "answers": answers, "health": it.properties.replication_health, "vm": recovery_vm, "bytes": check,
            "replica_disks": [d.name for d in client(ComputeManagementClient, s2).disks.list_by_resource_group("s2-recovery")]}


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".recoverite/connection.json")
