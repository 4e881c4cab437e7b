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

import asr
from conftest import backup_and_wait, wait_job

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
    return {"bk": bk}


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
