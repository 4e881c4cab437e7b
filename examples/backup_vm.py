"""Azure Backup for an Azure VM, with the Python SDK and qemu-io:

    python examples/backup_vm.py .recoverite/connection.json

Protect a VM with the vault's DefaultPolicy, write data, back up, change
the data, back up again, restore the earlier point's disks into another
resource group and check its bytes (the earlier ones, not the later)."""

import json
import shutil
import subprocess
import sys
import time

import requests
from azure.identity import ClientSecretCredential
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.recoveryservices import RecoveryServicesClient
from azure.mgmt.recoveryservicesbackup import RecoveryServicesBackupClient
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.mgmt.storage import StorageManagementClient

RG, VAULT, VM = "backup-demo", "backup-demo-vault", "app"
CONTAINER, ITEM = f"iaasvmcontainer;iaasvmcontainerv2;{RG};{VM}", f"vm;iaasvmcontainerv2;{RG};{VM}"


def main(conn_file):
    c = json.load(open(conn_file))
    cred = ClientSecretCredential(c["tenantId"], c["clientId"], c["clientSecret"], authority=c["authority"],
                                  connection_verify=c["caCertFile"], disable_instance_discovery=True)
    kw = dict(base_url=c["armEndpoint"], connection_verify=c["caCertFile"], polling_interval=1)
    sub = c["subscriptionId"]
    rm, net, compute = ResourceManagementClient(cred, sub, **kw), NetworkManagementClient(cred, sub, **kw), ComputeManagementClient(cred, sub, **kw)
    bk = RecoveryServicesBackupClient(cred, sub, **kw)
    token = cred.get_token("https://management.azure.com/.default").token
    nbd = requests.get(c["armEndpoint"] + "/recoverite/nbd", verify=c["caCertFile"], headers={"Authorization": f"Bearer {token}"}).json()["endpoint"]
    qemu_io = shutil.which("qemu-io") or sys.exit("qemu-io (qemu-utils) is needed to write the VM's disks")

    def io(rg, disk, *cmds):
        out = subprocess.run([qemu_io, "-f", "raw", *[x for cmd in cmds for x in ("-c", cmd)], f"{nbd}/{rg}/{disk}"],
                             capture_output=True, text=True, timeout=120)
        return out.returncode == 0 and "Pattern verification failed" not in out.stdout + out.stderr

    def step(msg):
        print(f"== {msg}")

    step("a VM in East US with a 16 GiB data disk, a vault and a staging account in the same region")
    for rg in (RG, f"{RG}-restored"):
        rm.resource_groups.create_or_update(rg, {"location": "eastus"})
    vnet = net.virtual_networks.begin_create_or_update(RG, "vnet", {"location": "eastus", "properties": {
        "addressSpace": {"addressPrefixes": ["10.63.0.0/16"]}, "subnets": [{"name": "vms", "properties": {"addressPrefix": "10.63.1.0/24"}}]}}).result()
    nic = net.network_interfaces.begin_create_or_update(RG, "app-nic", {"location": "eastus", "properties": {
        "ipConfigurations": [{"name": "c", "properties": {"subnet": {"id": vnet.subnets[0].id}}}]}}).result()
    osd = compute.disks.begin_create_or_update(RG, "app-os", {"location": "eastus", "sku": {"name": "Premium_LRS"},
        "properties": {"creationData": {"createOption": "Empty"}, "diskSizeGB": 4, "osType": "Linux"}}).result()
    vm = compute.virtual_machines.begin_create_or_update(RG, VM, {"location": "eastus", "properties": {
        "hardwareProfile": {"vmSize": "Standard_D2s_v3"},
        "storageProfile": {"osDisk": {"createOption": "Attach", "osType": "Linux", "managedDisk": {"id": osd.id}},
                           "dataDisks": [{"lun": 0, "createOption": "Empty", "diskSizeGB": 16, "managedDisk": {"storageAccountType": "Premium_LRS"}}]},
        "networkProfile": {"networkInterfaces": [{"id": nic.id}]}}}).result()
    RecoveryServicesClient(cred, sub, **kw).vaults.begin_create_or_update(RG, VAULT, {"location": "eastus", "sku": {"name": "Standard"}}).result()
    staging = StorageManagementClient(cred, sub, **kw).storage_accounts.begin_create(RG, "backupdemostaging", {
        "location": "eastus", "kind": "StorageV2", "sku": {"name": "Standard_LRS"}}).result()

    step("discover and protect with DefaultPolicy (daily, 30 days, 2 days of instant restore)")
    bk.protection_containers.refresh(VAULT, RG, "Azure", filter="backupManagementType eq 'AzureIaasVM'")
    policy = bk.protection_policies.get(VAULT, RG, "DefaultPolicy")
    bk.protected_items.begin_create_or_update(VAULT, RG, "Azure", CONTAINER, ITEM, {"properties": {
        "protectedItemType": "Microsoft.Compute/virtualMachines", "sourceResourceId": vm.id, "policyId": policy.id}}).result()

    def wait_job(h):
        # Backups and restores run after their 202, as in Azure: the
        # operation names the job, waited for as `az backup job wait` does.
        op = h["Azure-AsyncOperation"].split("?")[0].rsplit("/", 1)[-1]
        job_id = bk.backup_operation_statuses.get(VAULT, RG, op).properties.job_id
        while (job := bk.job_details.get(VAULT, RG, job_id)).properties.status == "InProgress":
            time.sleep(0.2)
        assert job.properties.status == "Completed", job.properties
        return job

    def backup_now():
        h = bk.backups.trigger(VAULT, RG, "Azure", CONTAINER, ITEM, {"properties": {"objectType": "IaasVMBackupRequest"}},
                               cls=lambda resp, body, headers: resp.http_response.headers)
        job = wait_job(h)
        print(f"   job {job.name}: {job.properties.operation} {job.properties.status}, {job.properties.extended_info.property_bag}")
        return job

    step("write 0xa1, back up; write 0xb2 over it, back up again")
    io(RG, f"{VM}_DataDisk_0", "write -P 0xa1 0 4M")
    first = backup_now()
    io(RG, f"{VM}_DataDisk_0", "write -P 0xb2 0 1M")
    second = backup_now()
    points = sorted(bk.recovery_points.list(VAULT, RG, "Azure", CONTAINER, ITEM), key=lambda p: p.properties.recovery_point_time)
    print(f"   points: {[p.name for p in points]}")

    step("restore the first point's disks into backup-demo-restored and check them")
    h = bk.restores.begin_trigger(VAULT, RG, "Azure", CONTAINER, ITEM, points[0].name, {"properties": {
        "objectType": "IaasVMRestoreRequest", "recoveryPointId": points[0].name, "recoveryType": "RestoreDisks",
        "sourceResourceId": vm.id, "targetResourceGroupId": f"/subscriptions/{sub}/resourceGroups/{RG}-restored",
        "storageAccountId": staging.id, "region": "eastus"}}, polling=False,
        cls=lambda resp, body, headers: resp.http_response.headers).result()
    wait_job(h)
    restored = [d.name for d in compute.disks.list_by_resource_group(f"{RG}-restored")]
    data = next(n for n in restored if n.startswith(f"{VM}_DataDisk_0"))
    ok = io(f"{RG}-restored", data, "read -P 0xa1 0 4M")
    print(f"   restored {restored}; the first point's bytes: {'match' if ok else 'DIFFER'}")
    return {"jobs": [first.properties.status, second.properties.status], "points": len(points), "restored": restored, "bytes": ok}


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".recoverite/connection.json")
