"""azure-cli 2.91.0 runs the set-up a DR engineer scripts — networks with
service tags, private DNS, private endpoints to a vault and a storage
account, a Backup vault with its identity, a firewalled storage account and
its keys, role assignments, disks, snapshots, VM power, IP flow verify —
against recoverite, with no api-version pinned or rewritten."""

import uuid

RG = "cli-dr"


def test_login_and_resource_group(az):
    acct = az.run("account", "show")
    assert acct["id"] == az.server.sub and acct["environmentName"] == "recoverite"
    g = az.run("group", "create", "-n", RG, "-l", "eastus")
    assert g["properties"]["provisioningState"] == "Succeeded"


def test_network_with_service_tags_and_service_endpoints(az):
    az.run("network", "vnet", "create", "-g", RG, "-n", "app-vnet", "--address-prefix", "10.40.0.0/16",
           "--subnet-name", "vms", "--subnet-prefixes", "10.40.1.0/24")
    az.run("network", "vnet", "subnet", "create", "-g", RG, "--vnet-name", "app-vnet", "-n", "pe", "--address-prefixes", "10.40.2.0/24")
    az.run("network", "nsg", "create", "-g", RG, "-n", "vms-nsg")
    rule = az.run("network", "nsg", "rule", "create", "-g", RG, "--nsg-name", "vms-nsg", "-n", "allow-asr", "--priority", "100",
                  "--direction", "Outbound", "--access", "Allow", "--protocol", "Tcp",
                  "--destination-address-prefixes", "AzureSiteRecovery", "--destination-port-ranges", "443")
    assert rule["destinationAddressPrefix"] == "AzureSiteRecovery"
    s = az.run("network", "vnet", "subnet", "update", "-g", RG, "--vnet-name", "app-vnet", "-n", "vms",
               "--service-endpoints", "Microsoft.Storage", "--network-security-group", "vms-nsg")
    assert s["serviceEndpoints"][0]["service"] == "Microsoft.Storage"
    assert s["networkSecurityGroup"]["id"].endswith("/vms-nsg")
    names = [x["name"] for x in az.run("network", "vnet", "subnet", "list", "-g", RG, "--vnet-name", "app-vnet")]
    assert names == ["vms", "pe"]


def test_backup_vault_with_identity_and_private_endpoints(az):
    v = az.run("backup", "vault", "create", "-g", RG, "-n", "cli-vault", "-l", "westus")
    assert v["type"] == "Microsoft.RecoveryServices/vaults"
    assert az.run("backup", "vault", "show", "-g", RG, "-n", "cli-vault")["id"] == v["id"]
    ident = az.run("backup", "vault", "identity", "assign", "-g", RG, "-n", "cli-vault", "--system-assigned")
    assert ident["identity"]["principalId"]
    for zone in ("privatelink.siterecovery.windowsazure.com", "privatelink.wus.backup.windowsazure.com"):
        az.run("network", "private-dns", "zone", "create", "-g", RG, "-n", zone)
        az.run("network", "private-dns", "link", "vnet", "create", "-g", RG, "-z", zone, "-n", "app-link", "-v", "app-vnet", "-e", "false")
    for group, zone in (("AzureSiteRecovery", "privatelink.siterecovery.windowsazure.com"), ("AzureBackup", "privatelink.wus.backup.windowsazure.com")):
        pe = az.run("network", "private-endpoint", "create", "-g", RG, "-n", f"pe-{group.lower()}", "--vnet-name", "app-vnet", "--subnet", "pe",
                    "--private-connection-resource-id", v["id"], "--group-id", group, "--connection-name", group, "-l", "eastus")
        assert pe["privateLinkServiceConnections"][0]["privateLinkServiceConnectionState"]["status"] == "Approved"
        az.run("network", "private-endpoint", "dns-zone-group", "create", "-g", RG, "--endpoint-name", f"pe-{group.lower()}", "-n", "default",
               "--private-dns-zone", zone, "--zone-name", group.lower())
    conns = az.run("network", "private-endpoint-connection", "list", "--id", v["id"])
    assert len(conns) == 2 and all(c["properties"]["privateLinkServiceConnectionState"]["status"] == "Approved" for c in conns)


def test_storage_account_firewall_keys_and_a_manual_endpoint(az):
    az.run("storage", "account", "create", "-g", RG, "-n", "clidrcache1", "-l", "eastus", "--sku", "Standard_LRS")
    a = az.run("storage", "account", "update", "-g", RG, "-n", "clidrcache1", "--default-action", "Deny", "--bypass", "AzureServices")
    assert a["networkRuleSet"]["defaultAction"] == "Deny" and a["networkRuleSet"]["bypass"] == "AzureServices"
    rules = az.run("storage", "account", "network-rule", "add", "-g", RG, "--account-name", "clidrcache1", "--vnet-name", "app-vnet", "--subnet", "vms")
    assert rules["networkRuleSet"]["virtualNetworkRules"][0]["virtualNetworkResourceId"].lower().endswith("/subnets/vms")
    keys = az.run("storage", "account", "keys", "list", "-g", RG, "-n", "clidrcache1")
    assert [k["keyName"] for k in keys] == ["key1", "key2"]
    pe = az.run("network", "private-endpoint", "create", "-g", RG, "-n", "pe-blob", "--vnet-name", "app-vnet", "--subnet", "pe",
                "--private-connection-resource-id", a["id"], "--group-id", "blob", "--connection-name", "blob", "-l", "eastus",
                "--manual-request", "true")
    assert pe["manualPrivateLinkServiceConnections"][0]["privateLinkServiceConnectionState"]["status"] == "Pending"
    conn = az.run("network", "private-endpoint-connection", "list", "--id", a["id"])[0]
    approved = az.run("network", "private-endpoint-connection", "approve", "--id", conn["id"], "--description", "ok")
    assert approved["properties"]["privateLinkServiceConnectionState"]["status"] == "Approved"
    rejected = az.run("network", "private-endpoint-connection", "reject", "--id", conn["id"], "--description", "no")
    assert rejected["properties"]["privateLinkServiceConnectionState"]["status"] == "Rejected"


def test_role_assignments_by_object_id(az):
    p = az.server.cli("principal", "create", "--name", "cli-operator")
    scope = f"/subscriptions/{az.server.sub}/resourceGroups/{RG}"
    ra = az.run("role", "assignment", "create", "--assignee-object-id", p["objectId"], "--assignee-principal-type", "ServicePrincipal",
                "--role", "Site Recovery Operator", "--scope", scope)
    assert ra["principalId"] == p["objectId"] and ra["scope"] == scope
    listed = az.run("role", "assignment", "list", "--scope", scope, "--fill-principal-name", "false")
    assert any(x["principalId"] == p["objectId"] and x["roleDefinitionName"] == "Site Recovery Operator" for x in listed)


def test_disks_snapshots_vm_power_and_ip_flow(az):
    d = az.run("disk", "create", "-g", RG, "-n", "app-os", "--size-gb", "4", "--os-type", "Linux")
    assert d["diskSizeGB"] == 4
    snap = az.run("snapshot", "create", "-g", RG, "-n", "app-os-snap", "--source", "app-os")
    assert snap["creationData"]["sourceResourceId"].lower() == d["id"].lower()
    nic = az.run("network", "nic", "create", "-g", RG, "-n", "app-nic", "--vnet-name", "app-vnet", "--subnet", "vms")["NewNIC"]
    az.run("vm", "create", "-g", RG, "-n", "app", "--attach-os-disk", "app-os", "--os-type", "linux", "--nics", "app-nic", "--size", "Standard_B1s")
    ip = nic["ipConfigurations"][0]["privateIPAddress"]
    assert az.run("vm", "show", "-d", "-g", RG, "-n", "app")["powerState"] == "VM running"
    az.run("vm", "stop", "-g", RG, "-n", "app")
    assert az.run("vm", "show", "-d", "-g", RG, "-n", "app")["powerState"] == "VM stopped"
    az.run("vm", "deallocate", "-g", RG, "-n", "app")
    shown = az.run("vm", "show", "-d", "-g", RG, "-n", "app")
    assert shown["powerState"] == "VM deallocated" and shown["privateIps"] == ip
    az.run("vm", "start", "-g", RG, "-n", "app")
    assert az.run("vm", "show", "-d", "-g", RG, "-n", "app")["powerState"] == "VM running"
    az.run("group", "create", "-n", "NetworkWatcherRG", "-l", "eastus")
    az.run("network", "watcher", "configure", "-g", "NetworkWatcherRG", "-l", "eastus", "--enabled", "true")
    flow = az.run("network", "watcher", "test-ip-flow", "-g", RG, "--vm", "app", "--direction", "Outbound", "--protocol", "TCP",
                  "--local", f"{ip}:60000", "--remote", "52.136.1.10:443")
    assert flow["access"] == "Allow" and flow["ruleName"].endswith("allow-asr"), flow
