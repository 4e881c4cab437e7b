"""Microsoft.Compute driven by azure-mgmt-compute: managed disks backed by
sparse files and exported over NBD (written with qemu-io), copies that keep
the bytes, virtual machines that attach NICs and disks, availability sets."""

import shutil
import subprocess

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient

RG = "compute-rg"
QEMU_IO = shutil.which("qemu-io")


@pytest.fixture(scope="module")
def c(server):
    rm = server.client(ResourceManagementClient)
    rm.resource_groups.create_or_update(RG, {"location": "eastus"})
    net = server.client(NetworkManagementClient)
    net.virtual_networks.begin_create_or_update(RG, "vnet", {"location": "eastus", "properties": {
        "addressSpace": {"addressPrefixes": ["10.70.0.0/16"]},
        "subnets": [{"name": "vms", "properties": {"addressPrefix": "10.70.1.0/24"}}]}}).result()
    yield {"compute": server.client(ComputeManagementClient), "net": net,
           "nbd": server.http("GET", "/recoverite/nbd").json()["endpoint"]}
    rm.resource_groups.begin_delete(RG).result()


def disk(c, name, gb=64, sku="Premium_LRS", **creation):
    body = {"location": "eastus", "sku": {"name": sku},
            "properties": {"creationData": {"createOption": "Empty", **creation}, "diskSizeGB": gb}}
    return c["compute"].disks.begin_create_or_update(RG, name, body).result()


def qemu_io(c, name, *cmds):
    args = [QEMU_IO, "-f", "raw"]
    for cmd in cmds:
        args += ["-c", cmd]
    out = subprocess.run(args + [f"{c['nbd']}/{RG}/{name}"], capture_output=True, text=True, timeout=60)
    return out.returncode, out.stdout + out.stderr


def test_disk_lifecycle_and_validation(server, c):
    d = disk(c, "os-disk", 64)
    assert d.disk_size_gb == 64 and d.disk_state == "Unattached" and d.sku.tier == "Premium" and d.unique_id
    grown = c["compute"].disks.begin_create_or_update(RG, "os-disk", {"location": "eastus", "properties": {"diskSizeGB": 128}}).result()
    assert grown.disk_size_gb == 128
    with pytest.raises(HttpResponseError) as e:
        c["compute"].disks.begin_create_or_update(RG, "os-disk", {"location": "eastus", "properties": {"diskSizeGB": 32}}).result()
    assert "cannot be decreased" in e.value.error.message
    with pytest.raises(HttpResponseError) as e:
        disk(c, "bad-sku", sku="Golden_LRS")
    assert e.value.error.code == "InvalidParameter"


@pytest.mark.skipif(QEMU_IO is None, reason="qemu-io (qemu-utils) is not installed")
def test_nbd_writes_and_copies_keep_the_bytes(server, c):
    disk(c, "data-disk", 64, sku="Standard_LRS")
    rc, out = qemu_io(c, "data-disk", "write -P 0x5a 10M 8M", "write -P 0xc3 40G 1M")
    assert rc == 0, out
    rc, out = qemu_io(c, "data-disk", "read -P 0x5a 10M 8M", "read -P 0xc3 40G 1M", "read -P 0 0 10M")
    assert rc == 0 and "Pattern verification failed" not in out, out
    src = c["compute"].disks.get(RG, "data-disk")
    copy = disk(c, "data-copy", 64, sourceResourceId=src.id, createOption="Copy")
    assert copy.creation_data.source_resource_id == src.id
    rc, out = qemu_io(c, "data-copy", "read -P 0x5a 10M 8M", "read -P 0xc3 40G 1M", "read -P 0 18M 1M")
    assert rc == 0 and "Pattern verification failed" not in out, out
    # Out-of-range I/O is refused by the server, not by silence.
    rc, out = qemu_io(c, "data-copy", "read 64G 1M")
    assert "error" in out.lower() or rc != 0


def test_vm_attaches_nic_and_disks_and_releases_them(server, c):
    net, compute = c["net"], c["compute"]
    nic = net.network_interfaces.begin_create_or_update(RG, "vm1-nic", {"location": "eastus", "properties": {
        "ipConfigurations": [{"name": "c", "properties": {"subnet": {"id": net.virtual_networks.get(RG, "vnet").subnets[0].id}}}]}}).result()
    aset = compute.availability_sets.create_or_update(RG, "vm-set", {"location": "eastus", "sku": {"name": "Aligned"},
                                                                    "properties": {"platformFaultDomainCount": 2, "platformUpdateDomainCount": 5}})
    os_disk = compute.disks.get(RG, "os-disk")
    vm = compute.virtual_machines.begin_create_or_update(RG, "vm1", {"location": "eastus", "properties": {
        "hardwareProfile": {"vmSize": "Standard_D2s_v3"},
        "storageProfile": {"osDisk": {"createOption": "Attach", "osType": "Linux", "managedDisk": {"id": os_disk.id}},
                           "dataDisks": [{"lun": 0, "createOption": "Empty", "diskSizeGB": 16}]},
        "networkProfile": {"networkInterfaces": [{"id": nic.id, "properties": {"primary": True}}]},
        "availabilitySet": {"id": aset.id}}}).result()
    assert vm.provisioning_state == "Succeeded" and vm.vm_id
    assert vm.storage_profile.data_disks[0].name == "vm1_DataDisk_0"
    assert compute.disks.get(RG, "os-disk").managed_by == vm.id
    assert compute.disks.get(RG, "vm1_DataDisk_0").disk_state == "Attached"
    assert net.network_interfaces.get(RG, "vm1-nic").virtual_machine.id == vm.id
    assert [x.id for x in compute.availability_sets.get(RG, "vm-set").virtual_machines] == [vm.id]
    view = compute.virtual_machines.get(RG, "vm1", expand="instanceView")
    assert any(s.code == "PowerState/running" for s in view.instance_view.statuses)
    # An attached disk cannot be deleted or attached elsewhere.
    with pytest.raises(HttpResponseError) as e:
        compute.disks.begin_delete(RG, "os-disk").result()
    assert e.value.status_code == 409
    nic2 = net.network_interfaces.begin_create_or_update(RG, "vm2-nic", {"location": "eastus", "properties": {
        "ipConfigurations": [{"name": "c", "properties": {"subnet": {"id": net.virtual_networks.get(RG, "vnet").subnets[0].id}}}]}}).result()
    with pytest.raises(HttpResponseError) as e:
        compute.virtual_machines.begin_create_or_update(RG, "vm2", {"location": "eastus", "properties": {
            "storageProfile": {"osDisk": {"createOption": "Attach", "managedDisk": {"id": os_disk.id}}},
            "networkProfile": {"networkInterfaces": [{"id": nic2.id}]}}}).result()
    assert e.value.status_code == 409
    with pytest.raises(HttpResponseError) as e:
        net.network_interfaces.begin_delete(RG, "vm1-nic").result()
    assert e.value.error.code == "NicInUse"
    compute.virtual_machines.begin_delete(RG, "vm1").result()
    assert compute.disks.get(RG, "os-disk").disk_state == "Unattached"
    assert net.network_interfaces.get(RG, "vm1-nic").virtual_machine is None
    compute.disks.begin_delete(RG, "vm1_DataDisk_0").result()
