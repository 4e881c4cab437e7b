"""The authorization matrix: served operations × built-in roles.

Each operation's RBAC action is derived the way Azure derives it from the
request (`{namespace}/{types}/{read|write|delete}`, `…/{verb}/action` for
POSTs). A principal holding each role on the estate's resource group sends
each request; the expected answer follows only from that role's real
`actions`/`notActions`, read back through the role definitions API:

- a denied read, write, delete or action is 403 `AuthorizationFailed`, an
  allowed one is anything else (writes carry a body that fails validation
  and deletes name nothing, so the estate does not change);
- a list is never refused: it holds the estate's item exactly when the role
  may read that item.

It prints operations × roles checked and every mismatch; the goal is 0.
"""

import re
import uuid

import pytest
import requests
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.msi import ManagedServiceIdentityClient
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.privatedns import PrivateDnsManagementClient
from azure.mgmt.recoveryservices import RecoveryServicesClient
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.mgmt.storage import StorageManagementClient

RG = "matrix-rg"
ROLES = ["Owner", "Contributor", "Reader", "User Access Administrator",
         "Site Recovery Contributor", "Site Recovery Operator", "Site Recovery Reader",
         "Backup Contributor", "Backup Operator", "Backup Reader",
         "Storage Blob Data Contributor", None]
BAD_BODY = {"location": 5, "properties": 5}


def matches(pattern, action):
    rx = "^" + ".*".join(re.escape(p) for p in pattern.split("*")) + "$"
    return re.match(rx, action, re.IGNORECASE) is not None


def role_allows(role, action):
    if role is None:
        return False
    for p in role.permissions:
        if any(matches(a, action) for a in p.actions) and not any(matches(n, action) for n in (p.not_actions or [])):
            return True
    return False


def action_of(method, path):
    """Azure's RBAC action for a request path (after the last /providers/)."""
    tail = path.split("?")[0].split("/providers/")[-1].strip("/").split("/")
    ns, rest = tail[0], tail[1:]
    types = rest[0::2]
    is_resource = len(rest) % 2 == 0
    if method == "POST" and not is_resource:
        return f"{ns}/{'/'.join(types)}/action"
    verb = {"GET": "read", "PUT": "write", "PATCH": "write", "DELETE": "delete"}[method] if is_resource else "read"
    return f"{ns}/{'/'.join(types)}/{verb}"


@pytest.fixture(scope="module")
def estate(server):
    sub = f"/subscriptions/{server.sub}"
    g = f"{sub}/resourceGroups/{RG}"
    server.client(ResourceManagementClient).resource_groups.create_or_update(RG, {"location": "eastus"})
    net = server.client(NetworkManagementClient)
    nsg = net.network_security_groups.begin_create_or_update(RG, "m-nsg", {"location": "eastus"}).result()
    vnet = net.virtual_networks.begin_create_or_update(RG, "m-net", {"location": "eastus", "properties": {
        "addressSpace": {"addressPrefixes": ["10.90.0.0/16"]},
        "subnets": [{"name": "vms", "properties": {"addressPrefix": "10.90.1.0/24"}}]}}).result()
    nic = net.network_interfaces.begin_create_or_update(RG, "m-nic", {"location": "eastus", "properties": {
        "ipConfigurations": [{"name": "c", "properties": {"subnet": {"id": vnet.subnets[0].id}}}]}}).result()
    rt = net.route_tables.begin_create_or_update(RG, "m-rt", {"location": "eastus", "properties": {"routes": [
        {"name": "r1", "properties": {"addressPrefix": "10.0.0.0/8", "nextHopType": "VnetLocal"}}]}}).result()
    disk = server.client(ComputeManagementClient).disks.begin_create_or_update(RG, "m-disk", {
        "location": "eastus", "sku": {"name": "Standard_LRS"},
        "properties": {"creationData": {"createOption": "Empty"}, "diskSizeGB": 1}}).result()
    acct = server.client(StorageManagementClient).storage_accounts.begin_create(RG, "matrixacct1", {
        "location": "eastus", "sku": {"name": "Standard_LRS"}, "kind": "StorageV2"}).result()
    uai = server.client(ManagedServiceIdentityClient).user_assigned_identities.create_or_update(RG, "m-uai", {"location": "eastus"})
    vault = server.client(RecoveryServicesClient).vaults.begin_create_or_update(RG, "m-vault", {
        "location": "westus", "sku": {"name": "Standard"}, "properties": {"publicNetworkAccess": "Enabled"}}).result()
    zone = server.client(PrivateDnsManagementClient).private_zones.begin_create_or_update(RG, "privatelink.matrix.test", {"location": "global"}).result()
    ids = {"nsg": nsg.id, "vnet": vnet.id, "subnet": vnet.subnets[0].id, "nic": nic.id, "rt": rt.id, "disk": disk.id,
           "acct": acct.id, "uai": uai.id, "vault": vault.id, "zone": zone.id, "rule": f"{rt.id}/routes/r1"}
    # The vault's Site Recovery and Backup children that lists will show.
    fabric = f"{vault.id}/replicationFabrics/m-fabric"
    r = server.http("PUT", f"{fabric}?api-version=2025-08-01", json={"properties": {"customDetails": {"instanceType": "Azure", "location": "westus"}}})
    assert r.status_code in (200, 201, 202), r.text
    ids["fabric"] = fabric
    ids["policy"] = f"{vault.id}/backupPolicies/DefaultPolicy"
    defs = {}
    from azure.mgmt.authorization import AuthorizationManagementClient
    auth = server.client(AuthorizationManagementClient)
    for role in ROLES:
        if role:
            d = list(auth.role_definitions.list(sub, filter=f"roleName eq '{role}'"))
            assert len(d) == 1, role
            defs[role] = d[0]
    tokens = {}
    for role in ROLES:
        body = {"displayName": f"matrix-{role or 'none'}".replace(" ", "-").lower(), "scope": g}
        if role:
            body["role"] = role
        p = server.http("POST", "/recoverite/principals", json=body)
        assert p.status_code == 201, p.text
        p = p.json()
        tokens[role] = server.token(server.credential(p["clientId"], p["clientSecret"]))
    versions = {}
    for ns in ("Microsoft.Network", "Microsoft.Compute", "Microsoft.Storage", "Microsoft.ManagedIdentity",
               "Microsoft.RecoveryServices", "Microsoft.Authorization", "Microsoft.Resources"):
        body = server.http("GET", f"{sub}/providers/{ns}?api-version=2021-04-01").json()
        for t in body.get("resourceTypes", []):
            versions[f"{ns}/{t['resourceType']}".lower()] = t["apiVersions"][0]
    yield {"g": g, "ids": ids, "defs": defs, "tokens": tokens, "versions": versions, "sub": sub}
    server.client(ResourceManagementClient).resource_groups.begin_delete(RG).result()


def operations(e):
    """(method, path, the item a list must show or hide, kind)."""
    i, g, new = e["ids"], e["g"], "m-" + uuid.uuid4().hex[:6]
    net, cmp_, st = f"{g}/providers/Microsoft.Network", f"{g}/providers/Microsoft.Compute", f"{g}/providers/Microsoft.Storage"
    v = i["vault"]
    ops = []

    def resource(coll, item_id):
        ops.append(("GET", item_id, None, "read"))
        ops.append(("GET", coll, item_id, "list"))
        ops.append(("PUT", f"{coll}/{new}", None, "write"))
        ops.append(("DELETE", f"{coll}/{new}", None, "delete"))

    resource(f"{net}/virtualNetworks", i["vnet"])
    resource(f"{i['vnet']}/subnets", i["subnet"])
    resource(f"{net}/networkSecurityGroups", i["nsg"])
    ops.append(("GET", f"{i['nsg']}/defaultSecurityRules", f"{i['nsg']}/defaultSecurityRules/AllowVnetInBound", "list"))
    resource(f"{net}/networkInterfaces", i["nic"])
    resource(f"{net}/routeTables", i["rt"])
    resource(f"{i['rt']}/routes", i["rule"])
    resource(f"{net}/privateDnsZones", i["zone"])
    resource(f"{cmp_}/disks", i["disk"])
    ops.append(("GET", f"{cmp_}/virtualMachines", None, "list"))
    resource(f"{st}/storageAccounts", i["acct"])
    resource(f"{g}/providers/Microsoft.ManagedIdentity/userAssignedIdentities", i["uai"])
    resource(f"{g}/providers/Microsoft.RecoveryServices/vaults", v)
    resource(f"{v}/replicationFabrics", i["fabric"])
    for coll in ("replicationPolicies", "replicationJobs", "backupProtectedItems", "backupJobs"):
        ops.append(("GET", f"{v}/{coll}", None, "list"))
    resource(f"{v}/backupPolicies", i["policy"])
    item = f"{i['fabric']}/replicationProtectionContainers/m-c/replicationProtectedItems/m-i"
    for verb in ("testFailover", "testFailoverCleanup", "unplannedFailover", "failoverCommit", "reProtect", "plannedFailover"):
        ops.append(("POST", f"{item}/{verb}", None, "action"))
    bitem = f"{v}/backupFabrics/Azure/protectionContainers/iaasvmcontainer;iaasvmcontainerv2;{RG};m-vm/protectedItems/vm;iaasvmcontainerv2;{RG};m-vm"
    ops.append(("POST", f"{bitem}/backup", None, "action"))
    ops.append(("POST", f"{bitem}/recoveryPoints/1/restore", None, "action"))
    ops.append(("POST", f"{v}/backupFabrics/Azure/refreshContainers", None, "action"))
    ops.append(("GET", f"{g}/providers/Microsoft.Authorization/roleAssignments", None, "list"))
    ops.append(("PUT", f"{g}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}", None, "write"))
    ops.append(("PUT", f"{g}/providers/Microsoft.Authorization/roleDefinitions/{uuid.uuid4()}", None, "write"))
    ops.append(("GET", g, None, "read"))
    ops.append(("PUT", g, None, "write"))
    return ops


def version_for(e, path):
    """The newest api-version the providers API lists for the path's type."""
    if re.fullmatch(r"/subscriptions/[^/]+/resourceGroups/[^/]+", path):
        return "2021-04-01"
    tail = path.split("/providers/")[-1].strip("/").split("/")
    ns, types = tail[0], tail[1:][0::2]
    for n in range(len(types), 0, -1):
        v = e["versions"].get(f"{ns}/{'/'.join(types[:n])}".lower())
        if v:
            return v
    raise AssertionError(f"no api-version listed for {path}")


def rbac_action(method, path):
    if re.fullmatch(r"/subscriptions/[^/]+/resourceGroups/[^/]+", path):
        return {"GET": "Microsoft.Resources/subscriptions/resourceGroups/read",
                "PUT": "Microsoft.Resources/subscriptions/resourceGroups/write"}[method]
    return action_of(method, path)


def test_every_operation_answers_each_role_as_its_permissions_say(server, estate):
    e = estate
    checked, mismatches = 0, []
    ops = operations(e)
    for role in ROLES:
        token = e["tokens"][role]
        d = e["defs"].get(role)
        for method, path, item, kind in ops:
            action = rbac_action(method, path)
            url = f"{path}?api-version={version_for(e, path)}"
            kw = {"json": BAD_BODY} if method in ("PUT", "POST") else {}
            r = server.http(method, url, token=token, **kw)
            checked += 1
            who = role or "no role"
            if kind == "list":
                # Lists are filtered, never refused.
                shown = r.status_code == 200 and item is not None and any(
                    x.get("id", "").lower() == item.lower() for x in r.json().get("value", []))
                want = item is not None and role_allows(d, action_of("GET", item))
                if r.status_code != 200 or want != shown:
                    mismatches.append(f"{who}: list {path} → {r.status_code}, shows the item: {shown}, its role {'may' if want else 'may not'} read it ({r.text[:120]})")
                continue
            want = role_allows(d, action)
            denied = r.status_code == 403 and "AuthorizationFailed" in r.text
            if want == denied:
                mismatches.append(f"{who}: {method} {path} → {r.status_code} {r.text[:160]} (role {'allows' if want else 'denies'} {action})")
    print(f"\nauthorization matrix: {len(ops)} operations × {len(ROLES)} roles = {checked} checked, {len(mismatches)} mismatches")
    for m in mismatches:
        print("  " + m)
    assert not mismatches, "\n".join(mismatches[:40])
