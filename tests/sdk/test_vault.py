"""Recovery Services vaults with private endpoints (documents 000, 001, 004),
driven by azure-mgmt-recoveryservices and azure-mgmt-recoveryservicesbackup:
the vault, its private link resources, Site Recovery endpoints with five
FQDNs in each network's own zone, approval, lock-down, and the documented
rules."""

import socket
import time
import uuid

import dns.message
import dns.query
import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.privatedns import PrivateDnsManagementClient
from azure.mgmt.recoveryservices import RecoveryServicesClient
from azure.mgmt.recoveryservicesbackup import RecoveryServicesBackupClient
from azure.mgmt.resource.resources import ResourceManagementClient
from conftest import gw_port

RG = "vault-rg"
ASR_ZONE = "privatelink.siterecovery.windowsazure.com"


@pytest.fixture(scope="module")
def v(server):
    rm = server.client(ResourceManagementClient)
    rm.resource_groups.create_or_update(RG, {"location": "eastus"})
    net = server.client(NetworkManagementClient)
    base = f"/subscriptions/{server.sub}/resourceGroups/{RG}/providers/Microsoft.Network"
    for name, loc, prefix in (("src", "eastus", "10.60"), ("rec", "centralus", "10.61"), ("lonely", "eastus", "10.62")):
        net.virtual_networks.begin_create_or_update(RG, name, {"location": loc, "properties": {
            "addressSpace": {"addressPrefixes": [f"{prefix}.0.0/16"]},
            "subnets": [{"name": "vms", "properties": {"addressPrefix": f"{prefix}.1.0/24"}},
                        {"name": "pe", "properties": {"addressPrefix": f"{prefix}.2.0/24"}},
                        {"name": "small", "properties": {"addressPrefix": f"{prefix}.3.0/28"}}]}}).result()
    rs = server.client(RecoveryServicesClient)
    vault = rs.vaults.begin_create_or_update(RG, "dr-vault", {
        "location": "eastus", "sku": {"name": "Standard"}, "identity": {"type": "SystemAssigned"},
        "properties": {"publicNetworkAccess": "Enabled"}}).result()
    yield {"rs": rs, "net": net, "base": base, "vault": vault,
           "backup": server.client(RecoveryServicesBackupClient), "dns": server.client(PrivateDnsManagementClient)}
    for pe in net.private_endpoints.list(RG):
        net.private_endpoints.begin_delete(RG, pe.name).result()
    rm.resource_groups.begin_delete(RG).result()


def subnet(v, vnet, name="pe"):
    return f"{v['base']}/virtualNetworks/{vnet}/subnets/{name}"


def pe_body(v, vnet, location, group, subnet_name="pe", manual=False, static=None):
    key = "manualPrivateLinkServiceConnections" if manual else "privateLinkServiceConnections"
    props = {"subnet": {"id": subnet(v, vnet, subnet_name)},
             key: [{"name": "c", "properties": {"privateLinkServiceId": v["vault"].id, "groupIds": [group]}}]}
    if static:
        props["ipConfigurations"] = [{"name": f"s{i}", "properties": {"groupId": group, "memberName": m, "privateIPAddress": ip}}
                                     for i, (m, ip) in enumerate(static.items())]
    return {"location": location, "properties": props}


def test_vault_with_system_identity_and_private_link_resources(server, v):
    vault = v["vault"]
    assert vault.identity.type == "SystemAssigned" and vault.identity.principal_id
    assert vault.properties.private_endpoint_state_for_site_recovery == "None"
    assert vault.sku.name == "RS0"
    plr = {r.name: r for r in v["rs"].private_link_resources.list(RG, "dr-vault")}
    assert {r.properties.group_id for r in plr.values()} == {"AzureSiteRecovery", "AzureBackup", "AzureBackup_secondary"}
    assert "privatelink.eus.backup.windowsazure.com" in plr["backupResource"].properties.required_zone_names
    avail = v["rs"].recovery_services.check_name_availability(RG, "eastus", {"type": "Microsoft.RecoveryServices/Vaults", "name": "dr-vault"})
    assert avail.name_available is False and avail.reason == "AlreadyExists"
    assert [u.name.value for u in v["rs"].usages.list_by_vaults(RG, "dr-vault")][0] == "ProtectedItemCount"


def test_site_recovery_endpoints_in_source_and_recovery_networks(server, v):
    net, pdns = v["net"], v["dns"]
    fqdns = {}
    for vnet, loc in (("src", "eastus"), ("rec", "centralus")):
        pe = net.private_endpoints.begin_create_or_update(RG, f"asr-{vnet}", pe_body(v, vnet, loc, "AzureSiteRecovery")).result()
        assert pe.private_link_service_connections[0].private_link_service_connection_state.status == "Approved"
        names = [c.fqdn for c in pe.custom_dns_configs]
        assert len(names) == 5 and all(".eus.privatelink.siterecovery.windowsazure.com" in n for n in names)
        assert {n.split("-asr-pod01-")[1].split(".")[0] for n in names} == {"rcm1", "prot2", "tel1", "srs1", "id1"}
        fqdns[vnet] = {c.fqdn: c.ip_addresses[0] for c in pe.custom_dns_configs}
        # Each network gets its own zone (document 000), linked to it, with a zone group.
        zrg = f"vault-dns-{vnet}"
        server.client(ResourceManagementClient).resource_groups.create_or_update(zrg, {"location": loc})
        pdns.private_zones.begin_create_or_update(zrg, ASR_ZONE, {"location": "global"}).result()
        pdns.virtual_network_links.begin_create_or_update(zrg, ASR_ZONE, "link", {"location": "global", "properties": {
            "virtualNetwork": {"id": f"{v['base']}/virtualNetworks/{vnet}"}}}).result()
        zone_id = f"/subscriptions/{server.sub}/resourceGroups/{zrg}/providers/Microsoft.Network/privateDnsZones/{ASR_ZONE}"
        net.private_dns_zone_groups.begin_create_or_update(RG, f"asr-{vnet}", "default", {"properties": {
            "privateDnsZoneConfigs": [{"name": "asr", "properties": {"privateDnsZoneId": zone_id}}]}}).result()
    vault = v["rs"].vaults.get(RG, "dr-vault")
    assert vault.properties.private_endpoint_state_for_site_recovery == "Enabled"
    assert len(vault.properties.private_endpoint_connections) == 2
    # The same names resolve to each network's own endpoint, and to public outside.
    aliases = server.http("GET", "/recoverite/network/aliases").json()["value"]
    vnet_alias = {a["virtualNetworkId"].rsplit("/", 1)[1]: a["alias"] for a in aliases if a["kind"] == "virtualNetwork"}
    host, port = "127.0.0.1", int(server.conn["dnsServer"].split(":")[1])
    name = next(iter(fqdns["src"])).replace(".privatelink.", ".")
    for vnet in ("src", "rec"):
        r = dns.query.udp(dns.message.make_query(name, "A"), host, port=port, source=vnet_alias[vnet], timeout=3)
        got = [x.address for rr in r.answer for x in rr if rr.rdtype == 1]
        assert got == [fqdns[vnet][name.replace(".siterecovery.", ".privatelink.siterecovery.")]], vnet
    r = dns.query.udp(dns.message.make_query(name, "A"), host, port=port, source=vnet_alias["lonely"], timeout=3)
    assert [x.address for rr in r.answer for x in rr if rr.rdtype == 1][0].startswith("52.136.")
    v["fqdns"] = fqdns


def connect(src, dst, port=None):
    port = port or gw_port(443)
    for _ in range(60):
        s = socket.socket()
        s.settimeout(3)
        s.bind((src, 0))
        try:
            s.connect((dst, port))
            data = s.recv(200)
            s.close()
            return data.decode()
        except ConnectionRefusedError:
            s.close()
            time.sleep(0.05)
    return None


def connect_naming(src, dst, vault_id, port=None):
    port = port or gw_port(443)
    """A client of a shared public service address names its vault first."""
    for _ in range(60):
        s = socket.socket()
        s.settimeout(3)
        s.bind((src, 0))
        try:
            s.connect((dst, port))
            s.sendall(f"vault {vault_id}\n".encode())
            return s.recv(200).decode()
        except ConnectionRefusedError:
            time.sleep(0.05)
        finally:
            s.close()
    return None


def test_pending_endpoint_then_owner_approval_and_lock_down(server, v):
    from azure.mgmt.authorization import AuthorizationManagementClient
    net = v["net"]
    auth = server.client(AuthorizationManagementClient)
    role = str(uuid.uuid4())
    auth.role_definitions.create_or_update(f"/subscriptions/{server.sub}", role, {
        "role_name": "Vault network builder", "permissions": [{"actions": ["Microsoft.Network/*", "*/read"]}],
        "assignable_scopes": [f"/subscriptions/{server.sub}"]})
    p = server.cli("principal", "create", "--name", "vault-net-builder")
    auth.role_assignments.create(f"/subscriptions/{server.sub}/resourceGroups/{RG}", str(uuid.uuid4()), {
        "role_definition_id": f"/subscriptions/{server.sub}/providers/Microsoft.Authorization/roleDefinitions/{role}",
        "principal_id": p["objectId"]})
    builder = server.client(NetworkManagementClient, credential=server.credential(p["clientId"], p["clientSecret"]))
    pe = builder.private_endpoints.begin_create_or_update(RG, "asr-pending", pe_body(v, "lonely", "eastus", "AzureSiteRecovery")).result()
    assert pe.private_link_service_connections[0].private_link_service_connection_state.status == "Pending"
    vm = net.network_interfaces.begin_create_or_update(RG, "lonely-vm", {"location": "eastus", "properties": {
        "ipConfigurations": [{"name": "c", "properties": {"subnet": {"id": subnet(v, "lonely", "vms")}}}]}}).result()
    aliases = server.http("GET", "/recoverite/network/aliases").json()["value"]
    by_ip = {(a["privateIPAddress"], a["virtualNetworkId"].rsplit("/", 1)[1]): a["alias"] for a in aliases}
    vm_alias = by_ip[(vm.ip_configurations[0].private_ip_address, "lonely")]
    pe_alias = by_ip[(pe.custom_dns_configs[0].ip_addresses[0], "lonely")]
    assert connect(vm_alias, pe_alias) == ""
    flows = server.http("GET", "/recoverite/network/flowlog").json()["value"]
    assert "is Pending" in [f for f in flows if f["destinationAlias"] == pe_alias][-1]["reason"]
    # The owner approves through the Backup SDK's connection API.
    backup = v["backup"]
    conn = [c for c in v["rs"].vaults.get(RG, "dr-vault").properties.private_endpoint_connections
            if c.properties.private_endpoint.id == pe.id][0]
    approved = backup.private_endpoint_connection.begin_put("dr-vault", RG, conn.name, {"properties": {
        "privateLinkServiceConnectionState": {"status": "Approved", "description": "ok"}}}).result()
    assert approved.properties.private_link_service_connection_state.status == "Approved"
    assert backup.private_endpoint_connection.get("dr-vault", RG, conn.name).properties.private_link_service_connection_state.status == "Approved"
    assert connect(vm_alias, pe_alias).startswith("recoverite Microsoft.RecoveryServices/vaults dr-vault via private endpoint asr-pending")
    # Public network access Disabled refuses a connection to the vault's public address.
    public_ip = server.http("GET", "/recoverite/network/resolve", params={"name": pe.custom_dns_configs[0].fqdn}).json()["answers"][-1]["value"]
    public_alias = "127.202." + ".".join(public_ip.split(".")[2:])
    assert connect_naming(vm_alias, public_alias, v["vault"].id).startswith("recoverite Microsoft.RecoveryServices/vaults dr-vault via public URL")
    v["rs"].vaults.begin_update(RG, "dr-vault", {"properties": {"publicNetworkAccess": "Disabled"}}).result()
    time.sleep(0.3)
    # The vault answers the request it denies (the network let it through).
    assert connect_naming(vm_alias, public_alias, v["vault"].id).startswith("refused ")
    assert "public network access is disabled" in [f for f in server.http("GET", "/recoverite/network/flowlog").json()["value"]
                                                    if f["destinationAlias"] == public_alias and f["sourceAlias"] == vm_alias][-1]["reason"]
    assert connect(vm_alias, pe_alias).startswith("recoverite")


def test_rules_static_ip_name_reuse_and_subnet_capacity(server, v):
    net = v["net"]
    with pytest.raises(HttpResponseError) as e:
        net.private_endpoints.begin_create_or_update(RG, "asr-static", pe_body(v, "src", "eastus", "AzureSiteRecovery", static={"siteRecovery-rcm1": "10.60.2.200"})).result()
    assert e.value.error.code == "StaticIpNotSupportedForSiteRecoveryPrivateEndpoint"
    server.client(ResourceManagementClient).resource_groups.create_or_update("vault-rg-2", {"location": "eastus"})
    with pytest.raises(HttpResponseError) as e:
        net.private_endpoints.begin_create_or_update("vault-rg-2", "asr-src", pe_body(v, "src", "eastus", "AzureSiteRecovery")).result()
    assert e.value.error.code == "PrivateEndpointNameAlreadyUsed"
    # A /28 has 11 usable addresses: Site Recovery takes 5, then Backup v2 needs 10.
    net.private_endpoints.begin_create_or_update(RG, "asr-small", pe_body(v, "src", "eastus", "AzureSiteRecovery", subnet_name="small")).result()
    with pytest.raises(HttpResponseError) as e:
        net.private_endpoints.begin_create_or_update(RG, "bkp-small", pe_body(v, "src", "eastus", "AzureBackup", subnet_name="small")).result()
    assert e.value.error.code == "SubnetIsFull" and "needs 10" in e.value.error.message and "has 6" in e.value.error.message


def test_backup_v2_uses_ten_ips_and_static_ips_break_later_registration(server, v):
    net = v["net"]
    pe = net.private_endpoints.begin_create_or_update(RG, "bkp-src", pe_body(
        v, "src", "eastus", "AzureBackup", static={"backup-fab1": "10.60.2.100", "backup-rec2": "10.60.2.101"})).result()
    nic = net.network_interfaces.get(RG, pe.network_interfaces[0].id.rsplit("/", 1)[1])
    assert len(nic.ip_configurations) == 10
    names = [c.fqdn for c in pe.custom_dns_configs]
    assert len(names) == 8 and all(".privatelink.eus.backup.windowsazure.com" in n for n in names)
    assert not any("blob.core" in n or "queue.core" in n for n in names)  # no storage endpoints in v2
    backup = v["backup"]
    container = {"properties": {"containerType": "VMAppContainer", "backupManagementType": "AzureWorkload", "friendlyName": "sqlvm1"}}
    backup.protection_containers.begin_register("dr-vault", RG, "Azure", "VMAppContainer;compute;rg;sqlvm1", container).result()
    with pytest.raises(HttpResponseError) as e:
        backup.protection_containers.begin_register("dr-vault", RG, "Azure", "VMAppContainer;compute;rg;sqlvm2", container).result()
    assert e.value.error.code == "UserErrorPrivateEndpointStaticIpExpansionFailed"
    v["registered"] = True


def test_no_new_endpoints_once_items_were_registered_even_after_removal(server, v):
    net, backup = v["net"], v["backup"]
    assert v.get("registered")
    with pytest.raises(HttpResponseError) as e:
        net.private_endpoints.begin_create_or_update(RG, "asr-late", pe_body(v, "rec", "centralus", "AzureSiteRecovery")).result()
    assert e.value.error.code == "PrivateEndpointNotSupportedForVaultWithRegisteredItems"
    backup.protection_containers.unregister("dr-vault", RG, "Azure", "VMAppContainer;compute;rg;sqlvm1")
    with pytest.raises(HttpResponseError) as e:
        net.private_endpoints.begin_create_or_update(RG, "asr-late", pe_body(v, "rec", "centralus", "AzureSiteRecovery")).result()
    assert e.value.error.code == "PrivateEndpointNotSupportedForVaultWithRegisteredItems"
    # Cross-region restore endpoints may come after items are protected.
    sec = net.private_endpoints.begin_create_or_update(RG, "bkp-secondary", pe_body(v, "rec", "centralus", "AzureBackup_secondary")).result()
    assert all(".privatelink.wus.backup.windowsazure.com" in c.fqdn for c in sec.custom_dns_configs)


def test_twelve_endpoints_at_most(server, v):
    net, rs = v["net"], v["rs"]
    rs.vaults.begin_create_or_update(RG, "busy-vault", {"location": "eastus", "sku": {"name": "Standard"}}).result()
    busy = rs.vaults.get(RG, "busy-vault")
    body = lambda: {"location": "eastus", "properties": {"subnet": {"id": subnet(v, "lonely")},
                    "privateLinkServiceConnections": [{"name": "c", "properties": {"privateLinkServiceId": busy.id, "groupIds": ["AzureSiteRecovery"]}}]}}
    for i in range(12):
        net.private_endpoints.begin_create_or_update(RG, f"busy-{i}", body()).result()
    with pytest.raises(HttpResponseError) as e:
        net.private_endpoints.begin_create_or_update(RG, "busy-12", body()).result()
    assert e.value.error.code == "PrivateEndpointLimitReached"
    for i in range(12):
        net.private_endpoints.begin_delete(RG, f"busy-{i}").result()
    rs.vaults.begin_delete(RG, "busy-vault").result()


def test_v1_endpoints_need_identity_and_block_the_v2_upgrade(server, v):
    net, rs = v["net"], v["rs"]
    tag = {"recoverite-backup-private-endpoint-version": "v1"}
    rs.vaults.begin_create_or_update(RG, "v1-vault", {"location": "eastus", "sku": {"name": "Standard"}, "tags": tag}).result()
    vid = rs.vaults.get(RG, "v1-vault").id
    body = {"location": "eastus", "properties": {"subnet": {"id": subnet(v, "lonely")},
            "privateLinkServiceConnections": [{"name": "c", "properties": {"privateLinkServiceId": vid, "groupIds": ["AzureBackup"]}}]}}
    with pytest.raises(HttpResponseError) as e:
        net.private_endpoints.begin_create_or_update(RG, "v1-pe", body).result()
    assert e.value.error.code == "UserErrorVaultManagedIdentityNotEnabled"
    rs.vaults.begin_create_or_update(RG, "v1-vault", {"location": "eastus", "sku": {"name": "Standard"}, "tags": tag,
                                                      "identity": {"type": "SystemAssigned"}}).result()
    pe = net.private_endpoints.begin_create_or_update(RG, "v1-pe", body).result()
    assert any(".privatelink.blob.core.windows.net" in c.fqdn for c in pe.custom_dns_configs)
    with pytest.raises(HttpResponseError) as e:
        rs.vaults.begin_update(RG, "v1-vault", {"tags": {"recoverite-backup-private-endpoint-version": "v2"}}).result()
    assert e.value.error.code == "PrivateEndpointVersionUpgradeNotSupported"
    net.private_endpoints.begin_delete(RG, "v1-pe").result()
    rs.vaults.begin_update(RG, "v1-vault", {"tags": {"recoverite-backup-private-endpoint-version": "v2"}}).result()
    rs.vaults.begin_delete(RG, "v1-vault").result()


def test_old_provider_registration_must_be_renewed(server, v):
    net, rs = v["net"], v["rs"]
    rs.vaults.begin_create_or_update(RG, "old-reg-vault", {"location": "eastus", "sku": {"name": "Standard"}}).result()
    vid = rs.vaults.get(RG, "old-reg-vault").id
    r = server.http("PUT", "/recoverite/providers/Microsoft.RecoveryServices/registration", json={"registeredAt": "2019-06-01T00:00:00Z"})
    assert r.status_code == 200, r.text
    body = {"location": "eastus", "properties": {"subnet": {"id": subnet(v, "lonely")},
            "privateLinkServiceConnections": [{"name": "c", "properties": {"privateLinkServiceId": vid, "groupIds": ["AzureSiteRecovery"]}}]}}
    with pytest.raises(HttpResponseError) as e:
        net.private_endpoints.begin_create_or_update(RG, "old-reg-pe", body).result()
    assert e.value.error.code == "ResourceProviderReregistrationRequired"
    server.client(ResourceManagementClient).providers.register("Microsoft.RecoveryServices")
    net.private_endpoints.begin_create_or_update(RG, "old-reg-pe", body).result()
    net.private_endpoints.begin_delete(RG, "old-reg-pe").result()
    with pytest.raises(HttpResponseError):
        rs.vaults.begin_delete(RG, "dr-vault").result()


def test_backup_vaults_do_not_support_private_endpoints(server, v):
    bv = f"/subscriptions/{server.sub}/resourceGroups/{RG}/providers/Microsoft.DataProtection/backupVaults/dp-vault"
    r = server.http("PUT", f"{bv}?api-version=2025-01-01", json={"location": "eastus", "properties": {}})
    assert r.status_code == 201, r.text
    with pytest.raises(HttpResponseError) as e:
        v["net"].private_endpoints.begin_create_or_update(RG, "dp-pe", {"location": "eastus", "properties": {
            "subnet": {"id": subnet(v, "lonely")},
            "privateLinkServiceConnections": [{"name": "c", "properties": {"privateLinkServiceId": bv, "groupIds": ["AzureBackup"]}}]}}).result()
    assert e.value.error.code == "PrivateEndpointNotSupportedForBackupVault"


def test_cmk_in_a_restricted_key_vault_excludes_private_endpoints(server, v):
    net, rs = v["net"], v["rs"]
    kv = f"/subscriptions/{server.sub}/resourceGroups/{RG}/providers/Microsoft.KeyVault/vaults/locked-kv"
    r = server.http("PUT", f"{kv}?api-version=2023-07-01", json={"location": "eastus", "properties": {
        "tenantId": server.conn["tenantId"], "sku": {"family": "A", "name": "standard"}, "networkAcls": {"defaultAction": "Deny"}}})
    assert r.status_code == 201, r.text
    enc = {"keyVaultProperties": {"keyUri": "https://locked-kv.vault.azure.net/keys/k1/0123"}, "kekIdentity": {"useSystemAssignedIdentity": True}}
    rs.vaults.begin_create_or_update(RG, "cmk-vault", {"location": "eastus", "sku": {"name": "Standard"},
                                                       "identity": {"type": "SystemAssigned"}, "properties": {"encryption": enc}}).result()
    vid = rs.vaults.get(RG, "cmk-vault").id
    body = {"location": "eastus", "properties": {"subnet": {"id": subnet(v, "lonely")},
            "privateLinkServiceConnections": [{"name": "c", "properties": {"privateLinkServiceId": vid, "groupIds": ["AzureBackup"]}}]}}
    with pytest.raises(HttpResponseError) as e:
        net.private_endpoints.begin_create_or_update(RG, "cmk-pe", body).result()
    assert e.value.error.code == "CmkWithRestrictedKeyVaultNotSupportedWithPrivateEndpoints"
    # With an open key vault the endpoint is fine; restricting the key a vault uses afterwards is refused.
    server.http("PUT", f"{kv}?api-version=2023-07-01", json={"location": "eastus", "properties": {"networkAcls": {"defaultAction": "Allow"}}})
    net.private_endpoints.begin_create_or_update(RG, "cmk-pe", body).result()
    server.http("PUT", f"{kv}?api-version=2023-07-01", json={"location": "eastus", "properties": {"networkAcls": {"defaultAction": "Deny"}}})
    with pytest.raises(HttpResponseError) as e:
        rs.vaults.begin_create_or_update(RG, "cmk-vault", {"location": "eastus", "sku": {"name": "Standard"},
                                                           "identity": {"type": "SystemAssigned"}, "properties": {"encryption": enc}}).result()
    assert e.value.error.code == "CmkWithRestrictedKeyVaultNotSupportedWithPrivateEndpoints"
    net.private_endpoints.begin_delete(RG, "cmk-pe").result()


def resolve_from(server, alias, name):
    host, port = "127.0.0.1", int(server.conn["dnsServer"].split(":")[1])
    r = dns.query.udp(dns.message.make_query(name, "A"), host, port=port, source=alias, timeout=3)
    ips = [x.address for rr in r.answer for x in rr if rr.rdtype == 1]
    return ips[-1] if ips else None


def alias_for(server, ip, vnet):
    if ip.startswith("10."):
        for a in server.http("GET", "/recoverite/network/aliases").json()["value"]:
            if a["privateIPAddress"] == ip and a["virtualNetworkId"].lower().endswith("/" + vnet):
                return a["alias"]
        return None
    plan = {"52.136": 202, "20.40": 203}  # AzureSiteRecovery, AzureBackup in the address plan
    o = ip.split(".")
    return f"127.{plan['.'.join(o[:2])]}.{o[2]}.{o[3]}"


def backup_agent(server, vm_alias, vnet, vault_id, num, svc="wbcm1", geo="eus"):
    """What the workload extension does (document 001): the vault's private
    URL first, then the shared public URL, naming the vault."""
    ip = resolve_from(server, vm_alias, f"{num}.{svc}.privatelink.{geo}.backup.windowsazure.com")
    if ip and ip.startswith("10."):
        got = connect(vm_alias, alias_for(server, ip, vnet))
        if got:
            return "private", got
    ip = resolve_from(server, vm_alias, f"{svc}.{geo}.backup.windowsazure.com")
    dst = alias_for(server, ip, vnet)
    for _ in range(60):
        s = socket.socket()
        s.settimeout(3)
        s.bind((vm_alias, 0))
        try:
            s.connect((dst, gw_port(443)))
            s.sendall(f"vault {vault_id}\n".encode())
            data = s.recv(200).decode()
            return "public", data
        except ConnectionRefusedError:
            time.sleep(0.05)
        finally:
            s.close()
    return "public", None


def test_backup_agents_try_the_private_url_then_the_public_url(server, v):
    net, rs, pdns = v["net"], v["rs"], v["dns"]
    rs.vaults.begin_create_or_update(RG, "bkp-fallback", {"location": "eastus", "sku": {"name": "Standard"}}).result()
    vault = rs.vaults.get(RG, "bkp-fallback")
    pe = net.private_endpoints.begin_create_or_update(RG, "fb-pe", {"location": "eastus", "properties": {
        "subnet": {"id": subnet(v, "src")},
        "privateLinkServiceConnections": [{"name": "c", "properties": {"privateLinkServiceId": vault.id, "groupIds": ["AzureBackup"]}}]}}).result()
    num = pe.custom_dns_configs[0].fqdn.split(".")[0]
    zone = "privatelink.eus.backup.windowsazure.com"
    rm = server.client(ResourceManagementClient)
    for zrg, vnet in (("fb-dns-src", "src"), ("fb-dns-lonely", "lonely")):
        rm.resource_groups.create_or_update(zrg, {"location": "eastus"})
        pdns.private_zones.begin_create_or_update(zrg, zone, {"location": "global"}).result()
        pdns.virtual_network_links.begin_create_or_update(zrg, zone, "l", {"location": "global", "properties": {
            "virtualNetwork": {"id": f"{v['base']}/virtualNetworks/{vnet}"}}}).result()
    zone_id = f"/subscriptions/{server.sub}/resourceGroups/fb-dns-src/providers/Microsoft.Network/privateDnsZones/{zone}"
    net.private_dns_zone_groups.begin_create_or_update(RG, "fb-pe", "default", {"properties": {
        "privateDnsZoneConfigs": [{"name": "z", "properties": {"privateDnsZoneId": zone_id}}]}}).result()
    vms = {}
    for vnet in ("src", "lonely"):
        nic = net.network_interfaces.begin_create_or_update(RG, f"fb-vm-{vnet}", {"location": "eastus", "properties": {
            "ipConfigurations": [{"name": "c", "properties": {"subnet": {"id": subnet(v, vnet, "vms")}}}]}}).result()
        vms[vnet] = alias_for(server, nic.ip_configurations[0].private_ip_address, vnet)
    # Inside the endpoint's network the private URL works.
    path, got = backup_agent(server, vms["src"], "src", vault.id, num)
    assert path == "private" and "via private endpoint fb-pe" in got
    # Elsewhere the private name is not found, so the agent falls back to the public URL…
    path, got = backup_agent(server, vms["lonely"], "lonely", vault.id, num)
    assert path == "public" and got.startswith("recoverite Microsoft.RecoveryServices/vaults bkp-fallback via public URL")
    # …which the vault refuses once its public network access is denied.
    rs.vaults.begin_update(RG, "bkp-fallback", {"properties": {"publicNetworkAccess": "Disabled"}}).result()
    time.sleep(0.3)
    path, got = backup_agent(server, vms["lonely"], "lonely", vault.id, num)
    assert path == "public" and got.startswith("refused ") and "denies requests over public URLs" in got
    flows = server.http("GET", "/recoverite/network/flowlog").json()["value"]
    assert "denies requests over public URLs" in [f for f in flows if f["sourceAlias"] == vms["lonely"]][-1]["reason"]
    # The private path is unaffected.
    assert backup_agent(server, vms["src"], "src", vault.id, num)[0] == "private"
    net.private_endpoints.begin_delete(RG, "fb-pe").result()


def test_enabling_replication_adds_two_fqdns_or_is_refused_when_a_subnet_is_short(server, v):
    net, rs = v["net"], v["rs"]
    rs.vaults.begin_create_or_update(RG, "pair-vault", {"location": "eastus", "sku": {"name": "Standard"}}).result()
    vid = rs.vaults.get(RG, "pair-vault").id
    pe = net.private_endpoints.begin_create_or_update(RG, "pair-pe", {"location": "centralus", "properties": {
        "subnet": {"id": subnet(v, "rec", "small")},
        "privateLinkServiceConnections": [{"name": "c", "properties": {"privateLinkServiceId": vid, "groupIds": ["AzureSiteRecovery"]}}]}}).result()
    assert len(pe.custom_dns_configs) == 5
    # A /28 gives 11 addresses: 5 for the endpoint, fill 5 more so that only 1 is left.
    for i in range(5):
        net.network_interfaces.begin_create_or_update(RG, f"pair-fill-{i}", {"location": "centralus", "properties": {
            "ipConfigurations": [{"name": "c", "properties": {"subnet": {"id": subnet(v, "rec", "small")}}}]}}).result()
    r = server.http("POST", "/recoverite/vaults/replication-pair", json={"vaultId": vid, "source": "eastus", "target": "centralus"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "SubnetIsFull"
    assert "needs 2" in r.json()["error"]["message"] and "has 1" in r.json()["error"]["message"]
    assert len(net.private_endpoints.get(RG, "pair-pe").custom_dns_configs) == 5
    net.network_interfaces.begin_delete(RG, "pair-fill-0").result()
    r = server.http("POST", "/recoverite/vaults/replication-pair", json={"vaultId": vid, "source": "eastus", "target": "centralus"})
    assert r.status_code == 200, r.text
    added = r.json()["addedFqdns"]
    assert sorted(f.split(".")[1] for f in added) == ["cus", "eus"] and all("-asr-pod01-prot2b." in f for f in added)
    fqdns = {c.fqdn for c in net.private_endpoints.get(RG, "pair-pe").custom_dns_configs}
    assert len(fqdns) == 7 and set(added) <= fqdns
    # Endpoints created later get all seven from the start.
    later = net.private_endpoints.begin_create_or_update(RG, "pair-pe-2", {"location": "eastus", "properties": {
        "subnet": {"id": subnet(v, "lonely")},
        "privateLinkServiceConnections": [{"name": "c", "properties": {"privateLinkServiceId": vid, "groupIds": ["AzureSiteRecovery"]}}]}}).result()
    assert len(later.custom_dns_configs) == 7
    for name in ("pair-pe", "pair-pe-2"):
        net.private_endpoints.begin_delete(RG, name).result()


def test_vault_certificates_and_registered_identities(server, v):
    """The vault-credentials path (issue 11): a machine's certificate uploaded
    to the vault comes back with the Entra details an agent registers with;
    deleting a registered identity unregisters its container."""
    import datetime
    import hashlib
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    rs, backup = v["rs"], v["backup"]
    rs.vaults.begin_create_or_update(RG, "cred-vault", {"location": "eastus", "sku": {"name": "Standard"}}).result()
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "CN=machine1")])
    now = datetime.datetime.now(datetime.timezone.utc)

    def cert(start, end):
        return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
                .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER))
    der = cert(now - datetime.timedelta(hours=1), now + datetime.timedelta(days=10))
    got = rs.vault_certificates.create(RG, "cred-vault", "machine1-cert", {"properties": {"authType": "AAD", "certificate": der}})
    p = got.properties
    assert p.auth_type == "AzureActiveDirectory"
    assert p.thumbprint == hashlib.sha1(der).hexdigest().upper()
    assert "machine1" in p.subject and p.aad_tenant_id == server.conn["tenantId"]
    assert p.resource_id > 0
    assert p.valid_to > now
    expired = cert(now - datetime.timedelta(days=20), now - datetime.timedelta(days=10))
    with pytest.raises(HttpResponseError) as e:
        rs.vault_certificates.create(RG, "cred-vault", "old", {"properties": {"authType": "AAD", "certificate": expired}})
    assert e.value.status_code == 400 and e.value.error.code == "InvalidCertificate"

    container = {"properties": {"containerType": "VMAppContainer", "backupManagementType": "AzureWorkload", "friendlyName": "sqlvm9"}}
    backup.protection_containers.begin_register("cred-vault", RG, "Azure", "VMAppContainer;compute;rg;sqlvm9", container).result()
    assert [c.name for c in backup.backup_protection_containers.list("cred-vault", RG)] == ["VMAppContainer;compute;rg;sqlvm9"]
    rs.registered_identities.delete(RG, "cred-vault", "VMAppContainer;compute;rg;sqlvm9")
    assert list(backup.backup_protection_containers.list("cred-vault", RG)) == []
    rs.registered_identities.delete(RG, "cred-vault", "nothing-registered")  # idempotent
