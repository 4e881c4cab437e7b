"""Deletes free their bytes (issue 15): deleting a resource group frees the
images of its disks and snapshots and purges its storage accounts' blobs, so
the data directory's disk usage returns to what it was; a new account with
a deleted account's name starts empty."""

import shutil
import subprocess
import time

import pytest
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.mgmt.storage import StorageManagementClient

RG = "free-rg"
ACCOUNT = "freebytes01"
QEMU_IO = shutil.which("qemu-io")


def used(paths):
    """Bytes allocated by `paths` and everything under them (sparse-aware)."""
    total = 0
    for p in paths:
        for f in [p, *p.rglob("*")] if p.is_dir() else [p]:
            if f.is_file():
                total += f.stat().st_blocks * 512
    return total


@pytest.mark.skipif(QEMU_IO is None, reason="qemu-io (qemu-utils) is not installed")
def test_deleting_a_group_frees_its_disks_and_blobs(server):
    rm = server.client(ResourceManagementClient)
    compute = server.client(ComputeManagementClient)
    storage = server.client(StorageManagementClient)
    rm.resource_groups.create_or_update(RG, {"location": "eastus"})
    d = compute.disks.begin_create_or_update(RG, "data", {
        "location": "eastus", "sku": {"name": "Standard_LRS"},
        "properties": {"creationData": {"createOption": "Empty"}, "diskSizeGB": 1}}).result()
    nbd = server.http("GET", "/recoverite/nbd").json()["endpoint"]
    out = subprocess.run([QEMU_IO, "-f", "raw", "-c", "write -P 0xab 0 16M", f"{nbd}/{RG}/data"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    compute.snapshots.begin_create_or_update(RG, "snap", {
        "location": "eastus", "properties": {"creationData": {"createOption": "Copy", "sourceResourceId": d.id}}}).result()
    storage.storage_accounts.begin_create(RG, ACCOUNT, {
        "location": "eastus", "kind": "StorageV2", "sku": {"name": "Standard_LRS"}}).result()
    storage.blob_containers.create(RG, ACCOUNT, "kept", {})
    snap = compute.snapshots.get(RG, "snap")
    mine = [server.data_dir / "disks" / f"{u}.img" for u in (d.unique_id, snap.unique_id)]
    mine += [server.data_dir / "disks" / f"{d.unique_id}.changes", server.data_dir / "blobs" / ACCOUNT]
    assert used(mine) >= 2 * 16 * 2**20, used(mine)

    rm.resource_groups.begin_delete(RG).result()
    for _ in range(100):
        if used(mine) == 0:
            break
        time.sleep(0.1)
    assert used(mine) == 0, [(str(p), used([p])) for p in mine if used([p])]

    # The same name again: nothing of the deleted account comes back.
    rm.resource_groups.create_or_update(RG, {"location": "eastus"})
    storage.storage_accounts.begin_create(RG, ACCOUNT, {
        "location": "eastus", "kind": "StorageV2", "sku": {"name": "Standard_LRS"}}).result()
    assert [c.name for c in storage.blob_containers.list(RG, ACCOUNT)] == []
    rm.resource_groups.begin_delete(RG).result()
