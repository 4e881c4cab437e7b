"""The MARS agent with a version 1 vault (issue 14, document 001): the
agent reaches the vault's service-managed storage account at
`*.blob.core.windows.net` (data) and `*.queue.core.windows.net` (the
communication channel). They resolve privately only where the
`privatelink.blob` / `privatelink.queue` zones are linked and hold the
records, which the service adds when the zones are integrated (the private
endpoint's zone group); otherwise the records must be added by hand — here
in the machine's hosts file, from what `/recoverite/network/hosts` exports."""

import os

from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.privatedns import PrivateDnsManagementClient
from azure.mgmt.recoveryservices import RecoveryServicesClient
from azure.mgmt.recoveryservicesbackup import RecoveryServicesBackupClient

import asr
from mars_agent import mars

RG, VAULT, VM = "mars-v1-rg", "mars-v1-vault", "marsv1vm"
ZONES = ["privatelink.eus.backup.windowsazure.com", "privatelink.blob.core.windows.net", "privatelink.queue.core.windows.net"]


def zone_group(net, sub, zones):
    ids = [f"/subscriptions/{sub}/resourceGroups/{RG}/providers/Microsoft.Network/privateDnsZones/{z}" for z in zones]
    net.private_dns_zone_groups.begin_create_or_update(RG, "v1-pe", "default", {"properties": {
        "privateDnsZoneConfigs": [{"name": f"z{i}", "properties": {"privateDnsZoneId": z}} for i, z in enumerate(ids)]}}).result()


def test_a_version_1_vault_takes_data_through_its_blob_endpoint(server, tmp_path):
    asr.groups(server, (RG, "eastus"))
    net = server.client(NetworkManagementClient)
    vnet = net.virtual_networks.begin_create_or_update(RG, "v1-net", {"location": "eastus", "properties": {
        "addressSpace": {"addressPrefixes": ["10.83.0.0/16"]},
        "subnets": [{"name": "vms", "properties": {"addressPrefix": "10.83.1.0/24"}},
                    {"name": "pe", "properties": {"addressPrefix": "10.83.2.0/24"}}]}}).result()
    vm = asr.vm(server, RG, VM, vnet.subnets[0].id, os_gb=1)
    rs = server.client(RecoveryServicesClient)
    vault = rs.vaults.begin_create_or_update(RG, VAULT, {
        "location": "eastus", "sku": {"name": "Standard"}, "identity": {"type": "SystemAssigned"},
        "tags": {"recoverite-backup-private-endpoint-version": "v1"},
        "properties": {"publicNetworkAccess": "Disabled"}}).result()
    pe = net.private_endpoints.begin_create_or_update(RG, "v1-pe", {"location": "eastus", "properties": {
        "subnet": {"id": vnet.subnets[1].id},
        "privateLinkServiceConnections": [{"name": "c", "properties": {
            "privateLinkServiceId": vault.id, "groupIds": ["AzureBackup"]}}]}}).result()
    storage = {c.fqdn: c.ip_addresses[0] for c in pe.custom_dns_configs if ".privatelink.blob." in c.fqdn or ".privatelink.queue." in c.fqdn}
    assert len(storage) == 2, pe.custom_dns_configs
    pdns = server.client(PrivateDnsManagementClient)
    for z in ZONES:
        pdns.private_zones.begin_create_or_update(RG, z, {"location": "global"}).result()
        pdns.virtual_network_links.begin_create_or_update(RG, z, "v1", {"location": "global", "properties": {
            "virtualNetwork": {"id": vnet.id}}}).result()
    # Integrated with the zones: the records for blob and queue are added automatically.
    zone_group(net, server.sub, ZONES)

    (tmp_path / "pass").write_text("version one passphrase")
    mars(server, "credentials", "--vault", vault.id, "--out", str(tmp_path / "creds.json"))
    agent = tmp_path / "agent"
    mars(server, "register", "--credentials", str(tmp_path / "creds.json"), "--passphrase-file", str(tmp_path / "pass"),
         "--agent-dir", str(agent), "--vm", vm.id)
    data = tmp_path / "data"
    data.mkdir()
    (data / "ledger.csv").write_bytes(os.urandom(200_000))
    out = mars(server, "backup", "--agent-dir", str(agent), "--path", str(data))
    assert "(data via bkp" in out.stdout and ".blob.core.windows.net through private endpoint v1-pe" in out.stdout, out.stdout
    bk = server.client(RecoveryServicesBackupClient)
    [item] = list(bk.backup_protected_items.list(VAULT, RG, filter="backupManagementType eq 'MAB'"))
    [point] = list(bk.recovery_points.list(VAULT, RG, "Azure", VM, item.name))
    target = tmp_path / "restored"
    mars(server, "restore", "--agent-dir", str(agent), "--point", point.id, "--target", str(target))
    assert (target / "data" / "ledger.csv").read_bytes() == (data / "ledger.csv").read_bytes()

    # Only the Backup zone integrated: the storage names no longer resolve
    # privately, and the agent says which one.
    zone_group(net, server.sub, ZONES[:1])
    out = mars(server, "backup", "--agent-dir", str(agent), "--path", str(data), ok=False)
    assert out.returncode != 0
    assert "storage queue endpoint is unreachable" in out.stderr and ".queue.core.windows.net did not resolve" in out.stderr, out.stderr

    # Records added by hand: the machine's hosts file, with the endpoint's
    # addresses (its DNS configuration) for the storage names.
    exported = server.http("GET", "/recoverite/network/hosts", params={"vnet": vnet.id}).text
    assert "privatelink.eus.backup.windowsazure.com" in exported
    lines = [exported] + [f"{ip}\t{fqdn.replace('.privatelink.', '.')}" for fqdn, ip in storage.items()]
    (agent / "hosts").write_text("\n".join(lines) + "\n")
    (data / "more.txt").write_text("after the records were added by hand\n")
    out = mars(server, "backup", "--agent-dir", str(agent), "--path", str(data))
    assert "(data via bkp" in out.stdout, out.stdout
    assert len(list(bk.recovery_points.list(VAULT, RG, "Azure", VM, item.name))) == 2
