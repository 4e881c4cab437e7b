"""Document 000 end to end with the Python SDK and qemu-io: protect a VM
through private endpoints, write data, fail over, check the bytes,
reprotect, fail back.

    python examples/doc000_replication.py .recoverite/connection.json

- A vault in Central US with its managed identity, locked down
  (publicNetworkAccess Disabled): Site Recovery traffic must use its private
  endpoints, one in the source network (East US) and one in the recovery
  network (Central US), each with its own `privatelink.siterecovery` zone.
- A cache storage account per region, firewalled (deny by default, trusted
  Microsoft services allowed) with a blob private endpoint and zone, and the
  vault's identity granted Contributor + Storage Blob Data Contributor on it.
- A VM whose disks are written with qemu-io over NBD; its agent resolves the
  vault and the cache through the DNS server from the VM's network and
  connects through the gateway.
- Failover, byte check, commit; reprotect (first with the recovery network's
  zone link removed: refused, with the reason; then for real); more writes in
  Central US; failback to East US; the original disk holds them."""

import json
import shutil
import subprocess
import sys
import time
import uuid

from azure.identity import ClientSecretCredential
from azure.core.exceptions import HttpResponseError
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.privatedns import PrivateDnsManagementClient
from azure.mgmt.recoveryservices import RecoveryServicesClient
from azure.mgmt.recoveryservicessiterecovery import SiteRecoveryManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.mgmt.storage import StorageManagementClient

SRC_RG, DST_RG = "dr-app", "dr-app-asr"
VAULT = "dr-vault"
ROLES = {"Contributor": "b24988ac-6180-42a0-ab88-20f7382dd24c",
         "Storage Blob Data Contributor": "ba92f5b4-2d11-453d-a403-e96b0029c9fe"}


def main(conn_file):
    c = json.load(open(conn_file))
    cred = ClientSecretCredential(c["tenantId"], c["clientId"], c["clientSecret"], authority=c["authority"],
                                  connection_verify=c["caCertFile"], disable_instance_discovery=True)
    kw = dict(base_url=c["armEndpoint"], connection_verify=c["caCertFile"], polling_interval=1)
    sub = c["subscriptionId"]
    rm, net, pdns = ResourceManagementClient(cred, sub, **kw), NetworkManagementClient(cred, sub, **kw), PrivateDnsManagementClient(cred, sub, **kw)
    rs, sr, st = RecoveryServicesClient(cred, sub, **kw), SiteRecoveryManagementClient(cred, sub, **kw), StorageManagementClient(cred, sub, **kw)
    compute, auth = ComputeManagementClient(cred, sub, **kw), AuthorizationManagementClient(cred, sub, **kw)
    import requests
    token = lambda: cred.get_token("https://management.azure.com/.default").token
    nbd = requests.get(c["armEndpoint"] + "/recoverite/nbd", verify=c["caCertFile"], headers={"Authorization": f"Bearer {token()}"}).json()["endpoint"]
    qemu_io = shutil.which("qemu-io") or sys.exit("qemu-io (qemu-utils) is needed to write the VM's disks")

    def io(rg, disk, *cmds):
        args = [qemu_io, "-f", "raw"] + [x for cmd in cmds for x in ("-c", cmd)] + [f"{nbd}/{rg}/{disk}"]
        out = subprocess.run(args, capture_output=True, text=True, timeout=120)
        ok = out.returncode == 0 and "Pattern verification failed" not in out.stdout + out.stderr
        return ok, out.stdout + out.stderr

    def step(msg):
        print(f"== {msg}")

    step("resource groups, vault with its managed identity, locked down")
    rm.resource_groups.create_or_update(SRC_RG, {"location": "eastus"})
    rm.resource_groups.create_or_update(DST_RG, {"location": "centralus"})
    vault = rs.vaults.begin_create_or_update(SRC_RG, VAULT, {"location": "centralus", "sku": {"name": "Standard"},
        "identity": {"type": "SystemAssigned"}, "properties": {"publicNetworkAccess": "Disabled"}}).result()
    base = lambda rg: f"/subscriptions/{sub}/resourceGroups/{rg}/providers"

    step("networks: app-vnet in East US, app-vnet-asr (Site Recovery's default name) in Central US")
    sites = {"source": (SRC_RG, "eastus", "app-vnet"), "recovery": (DST_RG, "centralus", "app-vnet-asr")}
    for rg, region, name in sites.values():
        net.virtual_networks.begin_create_or_update(rg, name, {"location": region, "properties": {
            "addressSpace": {"addressPrefixes": ["10.30.0.0/16"]},
            "subnets": [{"name": "vms", "properties": {"addressPrefix": "10.30.1.0/24"}}]}}).result()
    subnet = {s: f"{base(rg)}/Microsoft.Network/virtualNetworks/{name}/subnets/vms" for s, (rg, _, name) in sites.items()}

    def endpoint(site, pe_name, target, group, zone):
        rg, region, vnet = sites[site]
        net.private_endpoints.begin_create_or_update(rg, pe_name, {"location": region, "properties": {
            "subnet": {"id": subnet[site]}, "privateLinkServiceConnections": [{"name": group, "properties": {
                "privateLinkServiceId": target, "groupIds": [group]}}]}}).result()
        pdns.private_zones.begin_create_or_update(rg, zone, {"location": "global"}).result()
        pdns.virtual_network_links.begin_create_or_update(rg, zone, f"{vnet}-link", {"location": "global", "properties": {
            "virtualNetwork": {"id": subnet[site].rsplit("/subnets/", 1)[0]}}}).result()
        net.private_dns_zone_groups.begin_create_or_update(rg, pe_name, "default", {"properties": {"privateDnsZoneConfigs": [
            {"name": group, "properties": {"privateDnsZoneId": f"{base(rg)}/Microsoft.Network/privateDnsZones/{zone}"}}]}}).result()

    step("Site Recovery private endpoints, one per network, each with its own zone")
    for site in sites:
        endpoint(site, f"{site}-asr-pe", vault.id, "AzureSiteRecovery", "privatelink.siterecovery.windowsazure.com")

    def cache_account(site, name):
        rg, region, _ = sites[site]
        acct = st.storage_accounts.begin_create(rg, name, {"location": region, "kind": "StorageV2", "sku": {"name": "Standard_LRS"},
            "properties": {"networkAcls": {"defaultAction": "Deny", "bypass": "AzureServices"}}}).result()
        endpoint(site, f"{name}-blob-pe", acct.id, "blob", "privatelink.blob.core.windows.net")
        for role, guid in ROLES.items():
            auth.role_assignments.create(acct.id, str(uuid.uuid4()), {"role_definition_id": f"/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{guid}",
                "principal_id": vault.identity.principal_id, "principal_type": "ServicePrincipal"})
        return acct

    step("cache storage account in East US: firewalled, private endpoint, vault identity roles")
    cache = cache_account("source", "drcacheeast")

    step("the VM: a NIC in app-vnet, an OS disk and a 64 GiB data disk")
    nic = net.network_interfaces.begin_create_or_update(SRC_RG, "app-nic", {"location": "eastus", "properties": {
        "ipConfigurations": [{"name": "ipconfig1", "properties": {"subnet": {"id": subnet["source"]}}}]}}).result()
    os_disk = compute.disks.begin_create_or_update(SRC_RG, "app-os", {"location": "eastus", "sku": {"name": "Premium_LRS"},
        "properties": {"creationData": {"createOption": "Empty"}, "diskSizeGB": 32, "osType": "Linux"}}).result()
    vm = compute.virtual_machines.begin_create_or_update(SRC_RG, "app", {"location": "eastus", "properties": {
        "hardwareProfile": {"vmSize": "Standard_D2s_v3"},
        "storageProfile": {"osDisk": {"createOption": "Attach", "osType": "Linux", "managedDisk": {"id": os_disk.id}},
                           "dataDisks": [{"lun": 0, "createOption": "Empty", "diskSizeGB": 64, "managedDisk": {"storageAccountType": "Premium_LRS"}}]},
        "networkProfile": {"networkInterfaces": [{"id": nic.id}]}}}).result()

    step("Site Recovery: fabrics, containers, a 24-hour policy, the East US → Central US mapping")
    for fabric, region in (("asr-eastus", "eastus"), ("asr-centralus", "centralus")):
        sr.replication_fabrics.begin_create(SRC_RG, VAULT, fabric, {"properties": {"customDetails": {"instanceType": "Azure", "location": region}}}).result()
        sr.replication_protection_containers.begin_create(SRC_RG, VAULT, fabric, f"{fabric}-c", {"properties": {"providerSpecificInput": [{"instanceType": "A2A"}]}}).result()
    policy = sr.replication_policies.begin_create(SRC_RG, VAULT, "24-hour-retention", {"properties": {"providerSpecificInput": {
        "instanceType": "A2A", "recoveryPointHistory": 1440, "appConsistentFrequencyInMinutes": 240, "multiVmSyncStatus": "Disable"}}}).result()
    target_c = sr.replication_protection_containers.get(SRC_RG, VAULT, "asr-centralus", "asr-centralus-c")
    sr.replication_protection_container_mappings.begin_create(SRC_RG, VAULT, "asr-eastus", "asr-eastus-c", "eastus-to-centralus", {"properties": {
        "targetProtectionContainerId": target_c.id, "policyId": policy.id, "providerSpecificInput": {"instanceType": "A2A"}}}).result()
    item_path = (SRC_RG, VAULT, "asr-eastus", "asr-eastus-c", "app")

    step("write known bytes, enable replication")
    io(SRC_RG, "app_DataDisk_0", "write -P 0xa1 0 4M")
    disks = [os_disk.id] + [d.managed_disk.id for d in vm.storage_profile.data_disks]
    item = sr.replication_protected_items.begin_create(*item_path, {"properties": {"policyId": policy.id, "providerSpecificDetails": {
        "instanceType": "A2A", "fabricObjectId": vm.id, "recoveryContainerId": target_c.id,
        "recoveryResourceGroupId": f"/subscriptions/{sub}/resourceGroups/{DST_RG}",
        "vmManagedDisks": [{"diskId": d, "primaryStagingAzureStorageAccountId": cache.id,
                            "recoveryResourceGroupId": f"/subscriptions/{sub}/resourceGroups/{DST_RG}"} for d in disks]}}}).result()
    print(f"   {item.properties.protection_state}; recovery network {item.properties.provider_specific_details.selected_recovery_azure_network_id}")

    def shipped(timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            it = sr.replication_protected_items.get(*item_path)
            pend = [d.data_pending_at_source_agent_in_mb or 0 for d in it.properties.provider_specific_details.protected_managed_disks]
            if not any(pend):
                return it
            time.sleep(0.2)
        raise RuntimeError(f"replication did not catch up: {it.properties.health_errors}")

    step("the application writes; the agent ships through the private endpoints")
    io(SRC_RG, "app_DataDisk_0", "write -P 0xb2 1M 1M", "write -P 0xc3 40G 256k")
    it = shipped()
    print(f"   health {it.properties.replication_health}, RPO {it.properties.provider_specific_details.rpo_in_seconds} s")

    step("recoverite doctor: every hop from the VM passes (a CI gate before the failover)")
    doctor = requests.get(c["armEndpoint"] + "/recoverite/doctor", verify=c["caCertFile"],
                          headers={"Authorization": f"Bearer {token()}"},
                          params={"vm": vm.id, "vault": vault.id, "scenario": "sr"}).json()
    for check in doctor["checks"]:
        print(f"   {check['status']:4} {check['check']}")

    step("unplanned failover to Central US (Latest), then the bytes are checked")
    failed = sr.replication_protected_items.begin_unplanned_failover(*item_path, {"properties": {
        "failoverDirection": "PrimaryToRecovery", "sourceSiteOperations": "NotRequired",
        "providerSpecificDetails": {"instanceType": "A2A"}}}).result()
    failover_check = io(DST_RG, "app_DataDisk_0-ASRReplica", "read -P 0xa1 0 1M", "read -P 0xb2 1M 1M", "read -P 0xa1 2M 2M", "read -P 0xc3 40G 256k")
    print(f"   failed over VM: {failed.properties.provider_specific_details.recovery_fabric_object_id}; bytes {'match' if failover_check[0] else 'DIFFER'}")
    sr.replication_protected_items.begin_failover_commit(*item_path).result()

    step("reprotect needs a cache account in Central US too")
    dst_cache = cache_account("recovery", "drcachecentral")
    reprotect = {"properties": {"failoverDirection": "RecoveryToPrimary", "providerSpecificDetails": {"instanceType": "A2A",
        "vmDisks": [{"diskUri": "managed", "primaryStagingAzureStorageAccountId": dst_cache.id}]}}}

    step("what if the recovery network's zone were not linked (document 000's warning)?")
    zone = "privatelink.siterecovery.windowsazure.com"
    pdns.virtual_network_links.begin_delete(DST_RG, zone, "app-vnet-asr-link").result()
    try:
        sr.replication_protected_items.begin_reprotect(*item_path, reprotect).result()
        trap = None
    except HttpResponseError as e:
        trap = e.error.message
        print(f"   refused: {trap}")
    pdns.virtual_network_links.begin_create_or_update(DST_RG, zone, "app-vnet-asr-link", {"location": "global", "properties": {
        "virtualNetwork": {"id": subnet["recovery"].rsplit("/subnets/", 1)[0]}}}).result()

    step("reprotect: only the difference crosses back")
    back = sr.replication_protected_items.begin_reprotect(*item_path, reprotect).result()
    print(f"   {back.properties.protection_state}, active in {back.properties.active_location}, resync {back.properties.provider_specific_details['resyncBytes']} bytes")

    step("the application writes in Central US; then failback to East US")
    io(DST_RG, "app_DataDisk_0-ASRReplica", "write -P 0xd4 8M 512k")
    shipped()
    sr.replication_protected_items.begin_unplanned_failover(*item_path, {"properties": {
        "failoverDirection": "RecoveryToPrimary", "providerSpecificDetails": {"instanceType": "A2A"}}}).result()
    failback_check = io(SRC_RG, "app_DataDisk_0", "read -P 0xa1 0 1M", "read -P 0xb2 1M 1M", "read -P 0xd4 8M 512k", "read -P 0xc3 40G 256k")
    print(f"   original disk after failback: bytes {'match' if failback_check[0] else 'DIFFER'}")
    sr.replication_protected_items.begin_failover_commit(*item_path).result()
    again = sr.replication_protected_items.begin_reprotect(*item_path, {"properties": {
        "failoverDirection": "PrimaryToRecovery", "providerSpecificDetails": {"instanceType": "A2A"}}}).result()
    print(f"   protected again from {again.properties.active_location}; resync {again.properties.provider_specific_details['resyncBytes']} bytes")
    jobs = [j.properties.scenario_name for j in sr.replication_jobs.list(SRC_RG, VAULT)]
    return {"doctor": doctor, "failover": failover_check, "failback": failback_check, "trap": trap, "resync": back.properties.provider_specific_details["resyncBytes"],
            "again": again.properties.provider_specific_details["resyncBytes"], "jobs": jobs, "vm": failed.properties.provider_specific_details.recovery_fabric_object_id}


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".recoverite/connection.json")
