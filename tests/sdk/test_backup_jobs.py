"""Azure VM backups run after their 202, as Azure runs them (issue 12): the
job is InProgress with its steps and can be cancelled; one backup of an
item runs at a time; a cancelled backup leaves no point, and the next one
works and holds the disk's bytes."""

import os
import time

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.recoveryservices import RecoveryServicesClient
from azure.mgmt.recoveryservicesbackup import RecoveryServicesBackupClient
from azure.mgmt.storage import StorageManagementClient

import asr
from conftest import backup_and_wait, restore_and_wait, wait_job

RG, VAULT, VM = "bjob-rg", "bjob-vault", "jobvm"
CONTAINER, ITEM = f"iaasvmcontainer;iaasvmcontainerv2;{RG};{VM}", f"vm;iaasvmcontainerv2;{RG};{VM}"
BIG = 384 << 20


@pytest.fixture(scope="module")
def env(server):
    asr.groups(server, (RG, "eastus"))
    vnet = server.client(NetworkManagementClient).virtual_networks.begin_create_or_update(RG, "v", {"location": "eastus", "properties": {
        "addressSpace": {"addressPrefixes": ["10.66.0.0/16"]}, "subnets": [{"name": "vms", "properties": {"addressPrefix": "10.66.1.0/24"}}]}}).result()
    vm = asr.vm(server, RG, VM, vnet.subnets[0].id, os_gb=1, data_gb=1)
    server.client(RecoveryServicesClient).vaults.begin_create_or_update(RG, VAULT, {"location": "eastus", "sku": {"name": "Standard"}}).result()
    bk = server.client(RecoveryServicesBackupClient)
    bk.protected_items.begin_create_or_update(VAULT, RG, "Azure", CONTAINER, ITEM, {"properties": {
        "protectedItemType": "Microsoft.Compute/virtualMachines", "sourceResourceId": vm.id,
        "policyId": bk.protection_policies.get(VAULT, RG, "DefaultPolicy").id}}).result()
    # Random bytes (nothing to deduplicate) written straight into the data
    # disk's image, so the vault transfer takes long enough to watch.
    disk = server.client(ComputeManagementClient).disks.get(RG, f"{VM}_DataDisk_0")
    image = server.data_dir / "disks" / f"{disk.unique_id}.img"
    with open(image, "r+b") as f:
        f.write(os.urandom(BIG))
    staging = server.client(StorageManagementClient).storage_accounts.begin_create(RG, "bjobstaging", {
        "location": "eastus", "kind": "StorageV2", "sku": {"name": "Standard_LRS"}}).result()
    return {"bk": bk, "image": image, "vm": vm, "staging": staging}


def trigger(bk):
    headers = bk.backups.trigger(VAULT, RG, "Azure", CONTAINER, ITEM, {"properties": {"objectType": "IaasVMBackupRequest"}},
                                 cls=lambda resp, body, h: resp.http_response.headers)
    op = headers["Azure-AsyncOperation"].split("?")[0].rstrip("/").split("/")[-1]
    status = bk.backup_operation_statuses.get(VAULT, RG, op)
    assert status.status == "Succeeded"
    return status.properties.job_id


def test_a_running_backup_shows_its_steps_holds_its_item_and_cancels(env):
    bk = env["bk"]
    job_id = trigger(bk)
    job = bk.job_details.get(VAULT, RG, job_id)
    # Answered before the work is done: the job runs, and says it can be cancelled.
    assert job.properties.status == "InProgress", job.properties.status
    assert job.properties.actions_info == ["Cancellable"]
    assert job.properties.end_time is None
    tasks = {t.task_id: t.status for t in job.properties.extended_info.tasks_list}
    assert list(tasks) == ["Take Snapshot", "Transfer data to vault"]
    assert tasks["Transfer data to vault"] in ("NotStarted", "InProgress"), tasks
    # One backup of an item at a time.
    with pytest.raises(HttpResponseError) as e:
        trigger(bk)
    assert e.value.status_code == 409 and e.value.error.code == "UserErrorBackupOperationInProgress"
    assert job_id in e.value.error.message
    # Cancelled while it runs: it ends Cancelled and makes no point.
    bk.job_cancellations.trigger(VAULT, RG, job_id)
    # Cancelling until the runner has stopped (or already Cancelled); no longer cancellable.
    stopping = bk.job_details.get(VAULT, RG, job_id)
    assert stopping.properties.status in ("Cancelling", "Cancelled"), stopping.properties.status
    assert stopping.properties.actions_info in (None, [])
    done = wait_job(bk, VAULT, RG, job_id)
    assert done.properties.status == "Cancelled", done.properties
    assert done.properties.actions_info in (None, [])
    assert "Completed" not in [t.status for t in done.properties.extended_info.tasks_list][-1:]
    time.sleep(0.5)  # whatever was running has seen the cancel by now
    assert list(bk.recovery_points.list(VAULT, RG, "Azure", CONTAINER, ITEM)) == []
    assert wait_job(bk, VAULT, RG, job_id).properties.status == "Cancelled"

    # The next backup runs to the end: its steps completed, its point made.
    t0 = time.time()
    job = backup_and_wait(bk, VAULT, RG, CONTAINER, ITEM)
    print(f"a backup of {BIG >> 20} MiB of random data took {time.time() - t0:.2f} s")
    assert job.properties.status == "Completed"
    assert [t.status for t in job.properties.extended_info.tasks_list] == ["Completed", "Completed"]
    assert job.properties.extended_info.progress_percentage == 100.0
    assert job.properties.extended_info.property_bag["Backup Size"] == f"{BIG / (1 << 20) + 0:.2f} MB"
    [point] = list(bk.recovery_points.list(VAULT, RG, "Azure", CONTAINER, ITEM))
    assert job.properties.extended_info.property_bag["Recovery point"] == point.name
    # A finished job cannot be cancelled.
    with pytest.raises(HttpResponseError) as e:
        bk.job_cancellations.trigger(VAULT, RG, job.name)
    assert e.value.error.code == "BMSUserErrorJobNotCancellable"


def test_a_backup_accepted_before_kill_9_runs_again_after_the_restart(server, env):
    """An acknowledged request survives kill -9: the backup accepted (202,
    job InProgress) runs again from the start when the service is back, and
    its point holds the disk's bytes."""
    bk = env["bk"]
    data = os.urandom(BIG)
    with open(env["image"], "r+b") as f:
        f.write(data)
    before = {p.name for p in bk.recovery_points.list(VAULT, RG, "Azure", CONTAINER, ITEM)}
    job_id = trigger(bk)
    assert bk.job_details.get(VAULT, RG, job_id).properties.status == "InProgress"
    server.proc.kill()
    server.proc.wait()
    server.proc = None
    server.start()
    bk = server.client(RecoveryServicesBackupClient)
    job = wait_job(bk, VAULT, RG, job_id)
    assert job.properties.status == "Completed", job.properties
    [new] = sorted({p.name for p in bk.recovery_points.list(VAULT, RG, "Azure", CONTAINER, ITEM)} - before)
    assert job.properties.extended_info.property_bag["Recovery point"] == new
    # Restored, the data disk holds exactly the bytes written before the backup.
    restored_job = restore_and_wait(bk, VAULT, RG, CONTAINER, ITEM, new, {"properties": {
        "objectType": "IaasVMRestoreRequest", "recoveryPointId": new, "recoveryType": "RestoreDisks",
        "sourceResourceId": env["vm"].id, "storageAccountId": env["staging"].id, "region": "eastus",
        "restoreDiskLunList": [0], "targetResourceGroupId": f"/subscriptions/{server.sub}/resourceGroups/{RG}"}})
    assert restored_job.properties.status == "Completed"
    compute = server.client(ComputeManagementClient)
    [restored] = [d for d in compute.disks.list_by_resource_group(RG) if d.name.startswith(f"{VM}_DataDisk_0-")]
    with open(server.data_dir / "disks" / f"{restored.unique_id}.img", "rb") as f:
        assert f.read(BIG) == data


def test_a_restore_cut_short_by_kill_9_ends_failed_and_keeps_no_disk(server, env):
    """A restore is not run again after a restart (the caller's token that
    would finish it is gone): its job ends Failed, and no restored disk is
    left; one that finished before the kill is whole."""
    bk = server.client(RecoveryServicesBackupClient)  # the server restarted above
    point = sorted(bk.recovery_points.list(VAULT, RG, "Azure", CONTAINER, ITEM),
                   key=lambda p: p.properties.recovery_point_time)[-1].name
    compute = server.client(ComputeManagementClient)
    before = {d.name for d in compute.disks.list_by_resource_group(RG)}
    headers = bk.restores.begin_trigger(VAULT, RG, "Azure", CONTAINER, ITEM, point, {"properties": {
        "objectType": "IaasVMRestoreRequest", "recoveryPointId": point, "recoveryType": "RestoreDisks",
        "sourceResourceId": env["vm"].id, "storageAccountId": env["staging"].id, "region": "eastus",
        "restoreDiskLunList": [0], "targetResourceGroupId": f"/subscriptions/{server.sub}/resourceGroups/{RG}"}},
        polling=False, cls=lambda resp, b, h: resp.http_response.headers).result()
    server.proc.kill()
    server.proc.wait()
    server.proc = None
    server.start()
    bk = server.client(RecoveryServicesBackupClient)
    op = headers["Azure-AsyncOperation"].split("?")[0].rstrip("/").split("/")[-1]
    job = wait_job(bk, VAULT, RG, bk.backup_operation_statuses.get(VAULT, RG, op).properties.job_id)
    new = {d.name for d in server.client(ComputeManagementClient).disks.list_by_resource_group(RG)} - before
    print(f"the restore cut short ended {job.properties.status}")
    if job.properties.status == "Failed":
        assert job.properties.error_details[0].error_title == "BMSUserErrorRestoreInterrupted"
        assert new == set(), new
    else:
        assert job.properties.status == "Completed" and len(new) == 1, (job.properties.status, new)
