"""The everyday operations automation calls besides create and delete: VM
power (start, power off, deallocate, restart) seen in the instance view,
snapshots as point-in-time copies of a disk's bytes that new disks copy
from, and storage account keys that sign Shared Key requests to the Blob
service."""

import base64
import shutil
import subprocess

import pytest
from blobplane import raw_blob, shared_key_get, shared_key_request
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.mgmt.storage import StorageManagementClient

RG = "everyday-rg"
QEMU_IO = shutil.which("qemu-io")


@pytest.fixture(scope="module")
def env(server):
    server.client(ResourceManagementClient).resource_groups.create_or_update(RG, {"location": "eastus"})
    net = server.client(NetworkManagementClient)
    vnet = net.virtual_networks.begin_create_or_update(RG, "net", {"location": "eastus", "properties": {
        "addressSpace": {"addressPrefixes": ["10.67.0.0/16"]},
        "subnets": [{"name": "vms", "properties": {"addressPrefix": "10.67.1.0/24"}}]}}).result()
    nic = net.network_interfaces.begin_create_or_update(RG, "nic", {"location": "eastus", "properties": {
        "ipConfigurations": [{"name": "c", "properties": {"subnet": {"id": vnet.subnets[0].id}}}]}}).result()
    compute = server.client(ComputeManagementClient)
    os_disk = compute.disks.begin_create_or_update(RG, "os", {"location": "eastus", "sku": {"name": "Standard_LRS"},
        "properties": {"creationData": {"createOption": "Empty"}, "diskSizeGB": 1, "osType": "Linux"}}).result()
    vm = compute.virtual_machines.begin_create_or_update(RG, "vm", {"location": "eastus", "properties": {
        "hardwareProfile": {"vmSize": "Standard_B1s"},
        "storageProfile": {"osDisk": {"createOption": "Attach", "osType": "Linux", "managedDisk": {"id": os_disk.id}}},
        "networkProfile": {"networkInterfaces": [{"id": nic.id}]}}}).result()
    nbd = server.http("GET", "/recoverite/nbd").json()["endpoint"]
    yield {"compute": compute, "vm": vm, "os": os_disk, "nic": nic, "net": net, "nbd": nbd}
    server.client(ResourceManagementClient).resource_groups.begin_delete(RG).result()


def power(env):
    iv = env["compute"].virtual_machines.instance_view(RG, "vm")
    return [s.code for s in iv.statuses if s.code.startswith("PowerState/")]


def test_vm_power_state_follows_start_stop_deallocate(env):
    c = env["compute"]
    assert power(env) == ["PowerState/running"]
    c.virtual_machines.begin_power_off(RG, "vm").result()
    assert power(env) == ["PowerState/stopped"]
    c.virtual_machines.begin_start(RG, "vm").result()
    c.virtual_machines.begin_deallocate(RG, "vm").result()
    assert power(env) == ["PowerState/deallocated"]
    # A deallocated VM keeps its disks and its NIC's address.
    vm = c.virtual_machines.get(RG, "vm", expand="instanceView")
    assert vm.storage_profile.os_disk.managed_disk.id.lower() == env["os"].id.lower()
    assert [s.code for s in vm.instance_view.statuses][-1] == "PowerState/deallocated"
    nic = env["net"].network_interfaces.get(RG, "nic")
    assert nic.ip_configurations[0].private_ip_address == env["nic"].ip_configurations[0].private_ip_address
    with pytest.raises(HttpResponseError) as e:
        c.virtual_machines.begin_restart(RG, "vm").result()
    assert e.value.error.code == "OperationNotAllowed"
    c.virtual_machines.begin_start(RG, "vm").result()
    c.virtual_machines.begin_restart(RG, "vm").result()
    assert power(env) == ["PowerState/running"]


def io(env, disk, *cmds):
    out = subprocess.run([QEMU_IO, "-f", "raw", *[x for c in cmds for x in ("-c", c)], f"{env['nbd']}/{RG}/{disk}"],
                         capture_output=True, text=True, timeout=60)
    return out.returncode == 0 and "Pattern verification failed" not in out.stdout, out.stdout + out.stderr


def test_a_snapshot_is_a_point_in_time_copy_that_disks_copy_from(env):
    c = env["compute"]
    assert io(env, "os", "write -P 0x11 0 1M")[0]
    snap = c.snapshots.begin_create_or_update(RG, "os-snap", {"location": "eastus", "properties": {
        "creationData": {"createOption": "Copy", "sourceResourceId": env["os"].id}, "incremental": True}}).result()
    assert snap.type == "Microsoft.Compute/snapshots" and snap.incremental and snap.disk_size_gb == 1
    # Later writes to the disk do not reach the snapshot.
    assert io(env, "os", "write -P 0x22 0 1M")[0]
    restored = c.disks.begin_create_or_update(RG, "from-snap", {"location": "eastus", "properties": {
        "creationData": {"createOption": "Copy", "sourceResourceId": snap.id}}}).result()
    ok, out = io(env, "from-snap", "read -P 0x11 0 1M")
    assert ok, out
    assert restored.creation_data.source_resource_id.lower() == snap.id.lower()
    assert [s.name for s in c.snapshots.list_by_resource_group(RG)] == ["os-snap"]
    with pytest.raises(HttpResponseError) as e:
        c.snapshots.begin_create_or_update(RG, "empty-snap", {"location": "eastus", "properties": {
            "creationData": {"createOption": "Empty"}, "diskSizeGB": 1}}).result()
    assert e.value.status_code == 400
    c.snapshots.begin_delete(RG, "os-snap").result()
    assert list(c.snapshots.list_by_resource_group(RG)) == []


def test_vm_restore_points_copy_every_disk_and_new_disks_restore_from_them(server, env):
    c = env["compute"]
    assert io(env, "os", "write -P 0x33 0 1M")[0]
    with pytest.raises(HttpResponseError) as e:
        c.restore_point_collections.create_or_update(RG, "far", {"location": "westus", "properties": {"source": {"id": env["vm"].id}}})
    assert "region" in e.value.message
    coll = c.restore_point_collections.create_or_update(RG, "vm-points", {"location": "eastus", "properties": {"source": {"id": env["vm"].id}}})
    assert coll.source.id.lower() == env["vm"].id.lower()
    with pytest.raises(HttpResponseError) as e:
        c.restore_points.begin_create(RG, "vm-points", "app", {"properties": {"consistencyMode": "ApplicationConsistent"}}).result()
    assert e.value.error.code == "OperationNotAllowed"
    rp = c.restore_points.begin_create(RG, "vm-points", "rp1", {}).result()
    assert rp.consistency_mode == "CrashConsistent"
    drp_id = rp.source_metadata.storage_profile.os_disk.disk_restore_point.id
    listed = list(c.disk_restore_point.list_by_restore_point(RG, "vm-points", "rp1"))
    assert [d.id.lower() for d in listed] == [drp_id.lower()]
    assert listed[0].source_resource_id.lower() == env["os"].id.lower()
    # Later writes to the disk do not reach the restore point.
    assert io(env, "os", "write -P 0x44 0 1M")[0]
    restored = c.disks.begin_create_or_update(RG, "from-rp", {"location": "eastus", "properties": {
        "creationData": {"createOption": "Restore", "sourceResourceId": drp_id}}}).result()
    ok, out = io(env, "from-rp", "read -P 0x33 0 1M")
    assert ok, out
    assert restored.disk_size_gb == 1
    expanded = c.restore_point_collections.get(RG, "vm-points", expand="restorePoints")
    assert [p.name for p in expanded.restore_points] == ["rp1"]
    c.restore_points.begin_delete(RG, "vm-points", "rp1").result()
    with pytest.raises(HttpResponseError):
        c.disk_restore_point.get(RG, "vm-points", "rp1", drp_id.rsplit("/", 1)[1])
    c.restore_point_collections.begin_delete(RG, "vm-points").result()
    assert [x.name for x in c.restore_point_collections.list(RG)] == []


def test_availability_set_patch_changes_only_what_it_names(server, env):
    c = env["compute"]
    c.availability_sets.create_or_update(RG, "avset", {"location": "eastus", "sku": {"name": "Aligned"}, "properties": {
        "platformFaultDomainCount": 2, "platformUpdateDomainCount": 5}})
    s = c.availability_sets.update(RG, "avset", {"tags": {"tier": "web"}})
    assert s.tags == {"tier": "web"} and s.platform_fault_domain_count == 2 and s.platform_update_domain_count == 5
    s = c.availability_sets.update(RG, "avset", {"properties": {"platformUpdateDomainCount": 10}})
    assert s.tags == {"tier": "web"} and s.platform_update_domain_count == 10
    with pytest.raises(HttpResponseError):
        c.availability_sets.update(RG, "avset", {"properties": {"platformFaultDomainCount": 9}})
    assert c.availability_sets.get(RG, "avset").platform_fault_domain_count == 2


def test_account_keys_sign_shared_key_requests(server, env):
    st = server.client(StorageManagementClient)
    st.storage_accounts.begin_create(RG, "everydaykeys1", {"location": "eastus", "sku": {"name": "Standard_LRS"}, "kind": "StorageV2"}).result()
    # The model's `keys` field is shadowed by Mapping.keys(); read it as a mapping.
    keys = [dict(k) for k in st.storage_accounts.list_keys(RG, "everydaykeys1")["keys"]]
    assert [k["keyName"] for k in keys] == ["key1", "key2"] and all(k["permissions"] == "FULL" for k in keys)
    assert len(base64.b64decode(keys[0]["value"])) == 64
    ip = server.http("GET", "/recoverite/network/resolve", params={"name": "everydaykeys1.blob.core.windows.net"}).json()["answers"][-1]["value"]
    alias = "127.200." + ".".join(ip.split(".")[2:])
    # The container does not exist: a request that authenticates gets 404, one that does not 403.
    assert "ContainerNotFound" in shared_key_get("everydaykeys1", keys[1]["value"], alias, "/data", "restype=container&comp=list")
    wrong = base64.b64encode(b"x" * 64).decode()
    assert "AuthenticationFailed" in shared_key_get("everydaykeys1", wrong, alias, "/data", "restype=container&comp=list")
    new = [dict(k) for k in st.storage_accounts.regenerate_key(RG, "everydaykeys1", {"keyName": "key2"})["keys"]]
    assert new[0]["value"] == keys[0]["value"] and new[1]["value"] != keys[1]["value"]
    assert "AuthenticationFailed" in shared_key_get("everydaykeys1", keys[1]["value"], alias, "/data", "restype=container&comp=list")
    # A Reader may read the account but not list its keys.
    p = server.http("POST", "/recoverite/principals", json={"displayName": "keys-reader", "role": "Reader"}).json()
    reader = server.client(StorageManagementClient, credential=server.credential(p["clientId"], p["clientSecret"]))
    assert reader.storage_accounts.get_properties(RG, "everydaykeys1").name == "everydaykeys1"
    with pytest.raises(HttpResponseError) as e:
        reader.storage_accounts.list_keys(RG, "everydaykeys1")
    assert e.value.status_code == 403 and "listKeys/action" in e.value.message
    st.storage_accounts.update(RG, "everydaykeys1", {"properties": {"allowSharedKeyAccess": False}})
    assert "KeyBasedAuthenticationNotPermitted" in shared_key_get("everydaykeys1", new[0]["value"], alias, "/data", "restype=container&comp=list")


def test_update_tags_changes_tags_and_nothing_else(env):
    net = env["net"]
    nsg = net.network_security_groups.begin_create_or_update(RG, "tagged-nsg", {"location": "eastus", "properties": {"securityRules": [
        {"name": "r1", "properties": {"protocol": "Tcp", "access": "Allow", "direction": "Inbound", "priority": 100,
                                      "sourceAddressPrefix": "*", "sourcePortRange": "*", "destinationAddressPrefix": "*", "destinationPortRange": "22"}}]}}).result()
    tagged = net.network_security_groups.update_tags(RG, "tagged-nsg", {"tags": {"env": "dr"}})
    assert tagged.tags == {"env": "dr"} and [r.name for r in tagged.security_rules] == ["r1"] and tagged.etag != nsg.etag
    assert net.virtual_networks.update_tags(RG, "net", {"tags": {"tier": "app"}}).tags == {"tier": "app"}
    nic = net.network_interfaces.update_tags(RG, "nic", {"tags": {"a": "b"}})
    assert nic.tags == {"a": "b"} and nic.ip_configurations[0].private_ip_address == env["nic"].ip_configurations[0].private_ip_address
    rt = net.route_tables.begin_create_or_update(RG, "rt", {"location": "eastus"}).result()
    assert net.route_tables.update_tags(RG, "rt", {"tags": {}}).tags in ({}, None) and rt.name == "rt"
    with pytest.raises(HttpResponseError) as e:
        net.network_security_groups.update_tags(RG, "tagged-nsg", {"tags": {"bad<": "x"}})
    assert e.value.status_code == 400
    assert net.network_security_groups.get(RG, "tagged-nsg").tags == {"env": "dr"}


def test_check_ip_address_availability(env):
    net = env["net"]
    taken = env["nic"].ip_configurations[0].private_ip_address
    r = net.virtual_networks.check_ip_address_availability(RG, "net", ip_address=taken)
    assert r.available is False and len(r.available_ip_addresses) == 5 and taken not in r.available_ip_addresses
    assert net.virtual_networks.check_ip_address_availability(RG, "net", ip_address=r.available_ip_addresses[0]).available is True
    with pytest.raises(HttpResponseError) as e:
        net.virtual_networks.check_ip_address_availability(RG, "net", ip_address="192.168.9.9")
    assert e.value.error.code == "PrivateIPAddressNotInAnySubnet"


def test_every_provider_lists_its_operations(server):
    for ns, expect in (("Microsoft.Network", "Microsoft.Network/virtualNetworks/write"),
                       ("Microsoft.Compute", "Microsoft.Compute/snapshots/read"),
                       ("Microsoft.RecoveryServices", "Microsoft.RecoveryServices/vaults/delete"),
                       ("Microsoft.Storage", "Microsoft.Storage/storageAccounts/read")):
        r = server.http("GET", f"/providers/{ns}/operations?api-version=2024-01-01")
        assert r.status_code == 200, r.text
        names = [o["name"] for o in r.json()["value"]]
        assert expect in names and all(n.startswith(ns + "/") for n in names)
    ops = list(server.client(NetworkManagementClient).operations.list())
    assert any(o.name == "Microsoft.Network/networkSecurityGroups/delete" for o in ops)
    # Site Recovery's client asks under a resource group, as Azure serves it.
    from azure.mgmt.recoveryservicessiterecovery import SiteRecoveryManagementClient
    sr = server.client(SiteRecoveryManagementClient)
    assert any(o.name == "Microsoft.RecoveryServices/vaults/read" for o in sr.operations.list(RG))


def test_a_resent_vm_put_keeps_its_data_disk(env):
    c, net = env["compute"], env["net"]
    subnet = net.subnets.get(RG, "net", "vms")
    nic = net.network_interfaces.begin_create_or_update(RG, "nic2", {"location": "eastus", "properties": {
        "ipConfigurations": [{"name": "c", "properties": {"subnet": {"id": subnet.id}}}]}}).result()
    os2 = c.disks.begin_create_or_update(RG, "os2", {"location": "eastus", "sku": {"name": "Standard_LRS"},
        "properties": {"creationData": {"createOption": "Empty"}, "diskSizeGB": 1, "osType": "Linux"}}).result()
    body = {"location": "eastus", "properties": {
        "hardwareProfile": {"vmSize": "Standard_B1s"},
        "storageProfile": {"osDisk": {"createOption": "Attach", "osType": "Linux", "managedDisk": {"id": os2.id}},
                           "dataDisks": [{"lun": 0, "createOption": "Empty", "diskSizeGB": 1}]},
        "networkProfile": {"networkInterfaces": [{"id": nic.id}]}}}
    c.virtual_machines.begin_create_or_update(RG, "vm2", body).result()
    assert io(env, "vm2_DataDisk_0", "write -P 0x5e 0 1M")[0]
    # Terraform sends the same PUT on every apply.
    c.virtual_machines.begin_create_or_update(RG, "vm2", body).result()
    ok, out = io(env, "vm2_DataDisk_0", "read -P 0x5e 0 1M")
    assert ok, out
    with pytest.raises(HttpResponseError) as e:
        c.virtual_machines.begin_create_or_update(RG, "vm2", {**body, "properties": {**body["properties"], "storageProfile": {
            **body["properties"]["storageProfile"], "dataDisks": [{"lun": 1, "createOption": "Empty", "diskSizeGB": 99999}]}}}).result()
    assert e.value.status_code == 400 and "32767" in e.value.message


def test_virtual_network_usages_count_addresses_per_subnet(env):
    u = list(env["net"].virtual_networks.list_usage(RG, "net"))
    assert len(u) == 1 and u[0].name.value == "SubnetSpace" and u[0].unit == "Count"
    # A /24 offers 251 addresses; the NICs made above use some.
    assert u[0].limit == 251 and 1 <= u[0].current_value <= 251
    assert u[0].id.lower().endswith("/subnets/vms")


def test_vault_extended_info(server):
    from azure.mgmt.recoveryservices import RecoveryServicesClient
    rs = server.client(RecoveryServicesClient)
    rs.vaults.begin_create_or_update(RG, "ext-vault", {"location": "westus", "sku": {"name": "Standard"},
                                                       "properties": {"publicNetworkAccess": "Enabled"}}).result()
    with pytest.raises(HttpResponseError) as e:
        rs.vault_extended_info.get(RG, "ext-vault")
    assert e.value.status_code == 404
    made = rs.vault_extended_info.create_or_update(RG, "ext-vault", {"properties": {"integrityKey": "k1", "algorithm": "None"}})
    assert made.integrity_key == "k1"
    upd = rs.vault_extended_info.update(RG, "ext-vault", {"properties": {"encryptionKey": "e1"}})
    assert upd.integrity_key == "k1" and upd.encryption_key == "e1"
    assert rs.vault_extended_info.get(RG, "ext-vault").encryption_key == "e1"
    rs.vaults.begin_delete(RG, "ext-vault").result()
    with pytest.raises(HttpResponseError):
        rs.vault_extended_info.get(RG, "ext-vault")


def test_blob_containers_through_arm_are_the_blob_services_containers(server, env):
    st = server.client(StorageManagementClient)
    st.storage_accounts.begin_create(RG, "everydayblobs1", {"location": "eastus", "sku": {"name": "Standard_LRS"}, "kind": "StorageV2"}).result()
    key = dict(st.storage_accounts.list_keys(RG, "everydayblobs1")["keys"][0])["value"]
    ip = server.http("GET", "/recoverite/network/resolve", params={"name": "everydayblobs1.blob.core.windows.net"}).json()["answers"][-1]["value"]
    alias = "127.200." + ".".join(ip.split(".")[2:])
    made = st.blob_containers.create(RG, "everydayblobs1", "asr-cache", {"properties": {"metadata": {"owner": "dr"}}})
    assert made.type == "Microsoft.Storage/storageAccounts/blobServices/containers" and made.public_access == "None"
    # The Blob API sees it at once, and a container it makes is listed by ARM.
    assert "EnumerationResults" in shared_key_get("everydayblobs1", key, alias, "/asr-cache", "restype=container&comp=list")
    assert " 201 " in shared_key_request("PUT", "everydayblobs1", key, alias, "/from-blob-api", "restype=container").split("\r\n")[0] + " "
    assert [c.name for c in st.blob_containers.list(RG, "everydayblobs1")] == ["asr-cache", "from-blob-api"]
    got = st.blob_containers.get(RG, "everydayblobs1", "asr-cache")
    assert got.metadata == {"owner": "dr"}
    with pytest.raises(HttpResponseError) as e:
        st.blob_containers.update(RG, "everydayblobs1", "asr-cache", {"properties": {"publicAccess": "Blob"}})
    assert e.value.error.code == "PublicAccessNotPermitted"
    with pytest.raises(HttpResponseError) as e:
        st.blob_containers.create(RG, "everydayblobs1", "Bad--Name", {})
    assert e.value.status_code == 400
    with pytest.raises(HttpResponseError) as e:
        st.blob_containers.get(RG, "everydayblobs1", "missing")
    assert e.value.status_code == 404
    st.blob_containers.delete(RG, "everydayblobs1", "asr-cache")
    assert "ContainerNotFound" in shared_key_get("everydayblobs1", key, alias, "/asr-cache", "restype=container&comp=list")
    props = st.blob_services.set_service_properties(RG, "everydayblobs1", {"properties": {"deleteRetentionPolicy": {"enabled": True, "days": 7}}})
    assert props.delete_retention_policy.days == 7
    assert st.blob_services.get_service_properties(RG, "everydayblobs1").delete_retention_policy.enabled
    # Deleting the account deletes its containers: a new account of the name starts empty.
    st.storage_accounts.delete(RG, "everydayblobs1")
    st.storage_accounts.begin_create(RG, "everydayblobs1", {"location": "eastus", "sku": {"name": "Standard_LRS"}, "kind": "StorageV2"}).result()
    assert list(st.blob_containers.list(RG, "everydayblobs1")) == []



def test_account_and_service_sas_tokens_open_exactly_what_they_sign(server, env):
    from datetime import datetime, timedelta, timezone
    st = server.client(StorageManagementClient)
    st.storage_accounts.begin_create(RG, "everydaysas1", {"location": "eastus", "sku": {"name": "Standard_LRS"}, "kind": "StorageV2"}).result()
    for c in ("cache", "other"):
        st.blob_containers.create(RG, "everydaysas1", c, {})
    ip = server.http("GET", "/recoverite/network/resolve", params={"name": "everydaysas1.blob.core.windows.net"}).json()["answers"][-1]["value"]
    alias = "127.200." + ".".join(ip.split(".")[2:])
    expiry = (datetime.now(timezone.utc) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    read_list = st.storage_accounts.list_account_sas(RG, "everydaysas1", {
        "signedServices": "b", "signedResourceTypes": "co", "signedPermission": "rl", "signedExpiry": expiry})["accountSasToken"]
    assert "sig=" in read_list and "ss=b" in read_list
    assert "EnumerationResults" in raw_blob("GET", "everydaysas1", alias, "/cache", f"restype=container&comp=list&{read_list}")
    assert "AuthorizationPermissionMismatch" in raw_blob("PUT", "everydaysas1", alias, "/cache/x.bin", read_list)
    assert "AuthenticationFailed" in raw_blob("GET", "everydaysas1", alias, "/cache", f"restype=container&comp=list&{read_list.replace('sp=rl', 'sp=rwl')}")
    write = st.storage_accounts.list_account_sas(RG, "everydaysas1", {
        "signedServices": "b", "signedResourceTypes": "o", "signedPermission": "rwc", "signedExpiry": expiry, "keyToSign": "key2"})["accountSasToken"]
    assert " 201 " in raw_blob("PUT", "everydaysas1", alias, "/cache/x.bin", write + "").split("\r\n")[0] + " "
    # A service SAS for one container opens that container only.
    svc = st.storage_accounts.list_service_sas(RG, "everydaysas1", {
        "canonicalizedResource": "/blob/everydaysas1/cache", "signedResource": "c", "signedPermission": "rl", "signedExpiry": expiry})["serviceSasToken"]
    assert "sr=c" in svc
    assert "EnumerationResults" in raw_blob("GET", "everydaysas1", alias, "/cache", f"restype=container&comp=list&{svc}")
    assert "AuthenticationFailed" in raw_blob("GET", "everydaysas1", alias, "/other", f"restype=container&comp=list&{svc}")
    # Regenerating the key that signed a token revokes it.
    st.storage_accounts.regenerate_key(RG, "everydaysas1", {"keyName": "key1"})
    assert "AuthenticationFailed" in raw_blob("GET", "everydaysas1", alias, "/cache", f"restype=container&comp=list&{read_list}")
    with pytest.raises(HttpResponseError) as e:
        st.storage_accounts.list_account_sas(RG, "everydaysas1", {
            "signedServices": "b", "signedResourceTypes": "x", "signedPermission": "r", "signedExpiry": expiry})
    assert e.value.status_code == 400
    p = server.http("POST", "/recoverite/principals", json={"displayName": "sas-reader", "role": "Reader"}).json()
    reader = server.client(StorageManagementClient, credential=server.credential(p["clientId"], p["clientSecret"]))
    with pytest.raises(HttpResponseError) as e:
        reader.storage_accounts.list_account_sas(RG, "everydaysas1", {
            "signedServices": "b", "signedResourceTypes": "o", "signedPermission": "r", "signedExpiry": expiry})
    assert e.value.status_code == 403


def test_disk_access_urls_download_the_disks_bytes_until_revoked(server, env):
    import requests
    c = env["compute"]
    with pytest.raises(HttpResponseError) as e:
        c.disks.begin_grant_access(RG, "os", {"access": "Read", "durationInSeconds": 600}).result()
    assert e.value.error.code == "OperationNotAllowed", "the VM is running"
    c.disks.begin_create_or_update(RG, "exportme", {"location": "eastus", "properties": {
        "creationData": {"createOption": "Empty"}, "diskSizeGB": 1}}).result()
    assert io(env, "exportme", "write -P 0x77 0 1M")[0]
    with pytest.raises(HttpResponseError):
        c.disks.begin_grant_access(RG, "exportme", {"access": "Write", "durationInSeconds": 600}).result()
    url = c.disks.begin_grant_access(RG, "exportme", {"access": "Read", "durationInSeconds": 600}).result().access_sas
    assert c.disks.get(RG, "exportme").disk_state == "ActiveSAS"
    head = requests.head(url, verify=server.ca)
    assert head.status_code == 200 and int(head.headers["Content-Length"]) == 1 << 30
    part = requests.get(url, headers={"Range": "bytes=0-1048575"}, verify=server.ca)
    assert part.status_code == 206 and part.content == b"\x77" * (1 << 20)
    assert part.headers["Content-Range"] == f"bytes 0-1048575/{1 << 30}"
    tail = requests.get(url, headers={"Range": "bytes=1048576-1048591"}, verify=server.ca)
    assert tail.content == b"\x00" * 16
    with pytest.raises(HttpResponseError) as e:
        c.disks.begin_delete(RG, "exportme").result()
    assert e.value.error.code == "OperationNotAllowed"
    c.disks.begin_revoke_access(RG, "exportme").result()
    assert c.disks.get(RG, "exportme").disk_state == "Unattached"
    assert requests.get(url, headers={"Range": "bytes=0-15"}, verify=server.ca).status_code == 403
    c.disks.begin_delete(RG, "exportme").result()


def test_attach_detach_data_disks_in_one_call(env):
    c = env["compute"]
    disk = lambda n: c.disks.begin_create_or_update(RG, n, {"location": "eastus", "sku": {"name": "Standard_LRS"},
        "properties": {"creationData": {"createOption": "Empty"}, "diskSizeGB": 1}}).result()
    a, b = disk("attach-a"), disk("attach-b")
    profile = c.virtual_machines.begin_attach_detach_data_disks(RG, "vm", {
        "dataDisksToAttach": [{"diskId": a.id}, {"diskId": b.id, "lun": 5, "caching": "ReadOnly"}]}).result()
    got = {d.managed_disk.id.lower(): d.lun for d in profile.data_disks}
    assert got[a.id.lower()] not in (None, 5) and got[b.id.lower()] == 5
    assert c.disks.get(RG, "attach-a").managed_by.lower() == env["vm"].id.lower()
    assert c.disks.get(RG, "attach-b").disk_state == "Attached"
    # Detaching one and re-attaching it at another LUN in the same call.
    profile = c.virtual_machines.begin_attach_detach_data_disks(RG, "vm", {
        "dataDisksToDetach": [{"diskId": a.id}]}).result()
    assert [d.lun for d in profile.data_disks if d.managed_disk.id.lower() == a.id.lower()] == []
    assert c.disks.get(RG, "attach-a").disk_state == "Unattached"
    with pytest.raises(HttpResponseError) as e:
        c.virtual_machines.begin_attach_detach_data_disks(RG, "vm", {"dataDisksToDetach": [{"diskId": a.id}]}).result()
    assert e.value.status_code == 400
    with pytest.raises(HttpResponseError) as e:
        c.virtual_machines.begin_attach_detach_data_disks(RG, "vm", {"dataDisksToAttach": [{"diskId": a.id, "lun": 5}]}).result()
    assert e.value.status_code == 400
    c.virtual_machines.begin_attach_detach_data_disks(RG, "vm", {"dataDisksToDetach": [{"diskId": b.id}]}).result()
    assert c.disks.get(RG, "attach-b").managed_by is None


def test_updates_keep_a_vms_identity_unless_they_name_one(env):
    """An update (PATCH, attachDetachDataDisks) that names no identity keeps
    the VM's (they used to drop it)."""
    c = env["compute"]
    vm = c.virtual_machines.get(RG, "vm")
    vm.identity = {"type": "SystemAssigned"}
    with_id = c.virtual_machines.begin_create_or_update(RG, "vm", vm).result()
    principal = with_id.identity.principal_id
    assert principal
    patched = c.virtual_machines.begin_update(RG, "vm", {"tags": {"kept": "identity"}}).result()
    assert patched.tags == {"kept": "identity"}
    assert patched.identity is not None and patched.identity.principal_id == principal
    disk = c.disks.begin_create_or_update(RG, "keep-id", {"location": "eastus", "sku": {"name": "Standard_LRS"},
        "properties": {"creationData": {"createOption": "Empty"}, "diskSizeGB": 1}}).result()
    c.virtual_machines.begin_attach_detach_data_disks(RG, "vm", {"dataDisksToAttach": [{"diskId": disk.id}]}).result()
    c.virtual_machines.begin_attach_detach_data_disks(RG, "vm", {"dataDisksToDetach": [{"diskId": disk.id}]}).result()
    assert c.virtual_machines.get(RG, "vm").identity.principal_id == principal
    c.disks.begin_delete(RG, "keep-id").result()
