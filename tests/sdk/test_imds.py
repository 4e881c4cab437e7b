"""VMs' own identities through IMDS: `azure.identity.ManagedIdentityCredential`,
unmodified, run by a process bound to a VM's NIC alias, gets a token for
that VM's identity and for no other VM's; a connection from outside any VM
gets none."""

import base64
import json
import subprocess
import sys
import textwrap

import pytest
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.msi import ManagedServiceIdentityClient
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient
from conftest import gw_port

RG = "imds-rg"
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
def imds():
    """IMDS's address for the instance under test (its slot moves the port)."""
    return f"http://127.169.254.254:{gw_port(80)}"

# Run "inside a VM": every outgoing connection leaves from the VM's alias.
INSIDE = textwrap.dedent("""
    import json, sys
    import urllib3.util.connection as conn
    alias = sys.argv[1]
    plain = conn.create_connection
    conn.create_connection = lambda address, *a, **kw: plain(address, *a, **{**kw, "source_address": (alias, 0)})
    from azure.identity import ManagedIdentityCredential
    kw = json.loads(sys.argv[2])
    try:
        print(json.dumps({"token": ManagedIdentityCredential(**kw).get_token(sys.argv[3]).token}))
    except Exception as e:
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
""")


def inside(alias, scope="https://management.azure.com/.default", **kw):
    out = subprocess.run([sys.executable, "-c", INSIDE, alias, json.dumps(kw), scope], capture_output=True, text=True, timeout=120,
                         env={"AZURE_POD_IDENTITY_AUTHORITY_HOST": imds(), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def claims(token):
    body = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


@pytest.fixture(scope="module")
def vms(server):
    server.client(ResourceManagementClient).resource_groups.create_or_update(RG, {"location": "eastus"})
    net = server.client(NetworkManagementClient)
    vnet = net.virtual_networks.begin_create_or_update(RG, "net", {"location": "eastus", "properties": {
        "addressSpace": {"addressPrefixes": ["10.66.0.0/16"]},
        "subnets": [{"name": "vms", "properties": {"addressPrefix": "10.66.1.0/24"}}]}}).result()
    uai = server.client(ManagedServiceIdentityClient).user_assigned_identities.create_or_update(RG, "app-identity", {"location": "eastus"})
    compute = server.client(ComputeManagementClient)
    out = {"uai": uai}
    for name, identity in (("vm-a", {"type": "SystemAssigned, UserAssigned", "userAssignedIdentities": {uai.id: {}}}),
                           ("vm-b", {"type": "SystemAssigned"}), ("vm-none", None)):
        nic = net.network_interfaces.begin_create_or_update(RG, f"{name}-nic", {"location": "eastus", "properties": {
            "ipConfigurations": [{"name": "c", "properties": {"subnet": {"id": vnet.subnets[0].id}}}]}}).result()
        disk = compute.disks.begin_create_or_update(RG, f"{name}-os", {"location": "eastus", "sku": {"name": "Standard_LRS"},
            "properties": {"creationData": {"createOption": "Empty"}, "diskSizeGB": 1, "osType": "Linux"}}).result()
        body = {"location": "eastus", "properties": {
            "hardwareProfile": {"vmSize": "Standard_B1s"},
            "storageProfile": {"osDisk": {"createOption": "Attach", "osType": "Linux", "managedDisk": {"id": disk.id}}},
            "networkProfile": {"networkInterfaces": [{"id": nic.id}]}}}
        if identity:
            body["identity"] = identity
        vm = compute.virtual_machines.begin_create_or_update(RG, name, body).result()
        ip = nic.ip_configurations[0].private_ip_address
        alias = [a["alias"] for a in server.http("GET", "/recoverite/network/aliases").json()["value"]
                 if a["privateIPAddress"] == ip and a["virtualNetworkId"].lower() == vnet.id.lower()][0]
        out[name] = {"vm": vm, "alias": alias}
    yield out
    server.client(ResourceManagementClient).resource_groups.begin_delete(RG).result()


def test_a_vm_gets_tokens_for_its_own_identities(server, vms):
    a = vms["vm-a"]
    assert a["vm"].identity.principal_id and vms["uai"].principal_id in [
        v.principal_id for v in a["vm"].identity.user_assigned_identities.values()]
    t = inside(a["alias"])
    assert "token" in t, t
    assert claims(t["token"])["oid"] == a["vm"].identity.principal_id
    # The VM's identity works against ARM once it has a role.
    server.client(AuthorizationManagementClient).role_assignments.create(
        f"/subscriptions/{server.sub}/resourceGroups/{RG}", "8d2e1b1c-7f53-4f0a-9a39-0a6f1e2c3d4e",
        {"role_definition_id": f"/subscriptions/{server.sub}/providers/Microsoft.Authorization/roleDefinitions/{READER}",
         "principal_id": a["vm"].identity.principal_id})
    r = server.http("GET", f"/subscriptions/{server.sub}/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachines?api-version=2024-07-01",
                    token=t["token"])
    assert r.status_code == 200 and len(r.json()["value"]) == 3, r.text
    # Its user-assigned identity, chosen by client id; storage as the audience.
    u = inside(a["alias"], scope="https://storage.azure.com/.default", client_id=vms["uai"].client_id)
    assert "token" in u, u
    c = claims(u["token"])
    assert c["oid"] == vms["uai"].principal_id and c["aud"].rstrip("/") == "https://storage.azure.com"


def test_no_vm_gets_another_vms_identity(server, vms):
    b = vms["vm-b"]
    t = inside(b["alias"])
    assert claims(t["token"])["oid"] == b["vm"].identity.principal_id != vms["vm-a"]["vm"].identity.principal_id
    # vm-a's user-assigned identity is not vm-b's to use.
    assert "error" in inside(b["alias"], client_id=vms["uai"].client_id)
    # A VM without identities gets none.
    assert "error" in inside(vms["vm-none"]["alias"])


def test_connections_from_outside_any_vm_are_refused(server, vms):
    import requests
    r = requests.get(f"{imds()}/metadata/identity/oauth2/token", params={"api-version": "2018-02-01", "resource": "https://management.azure.com/"},
                     headers={"Metadata": "true"}, timeout=10)
    assert r.status_code == 403 and r.json()["error"] == "invalid_request", r.text
    assert "error" in inside("127.0.0.1")
    # IMDS's own rule: no Metadata header, no answer.
    s = __import__("socket").socket()
    s.bind((vms["vm-a"]["alias"], 0))
    s.connect(("127.169.254.254", gw_port(80)))
    s.sendall(b"GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://management.azure.com/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = s.recv(4096).decode()
    s.close()
    assert data.startswith("HTTP/1.1 400") and "Required metadata header" in data, data
