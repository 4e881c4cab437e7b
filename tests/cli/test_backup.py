"""Azure Backup for a VM the way a DR engineer scripts it with azure-cli:
vault and storage redundancy, protection with the default policy, an
on-demand backup followed with `job wait`, recovery points, a disk restore
whose bytes are the point's (written and checked with qemu-io over NBD),
containers, stopping protection with the data deleted, and a running
backup seen InProgress and stopped with `job stop`."""

import os
import shutil
import subprocess

import pytest

QEMU_IO = shutil.which("qemu-io")
pytestmark = pytest.mark.skipif(QEMU_IO is None, reason="qemu-io (qemu-utils) is not installed")
RG = "cli-backup"


def io(az, disk, *cmds):
    nbd = az.run("rest", "--method", "get", "--url", az.server.conn["armEndpoint"] + "/recoverite/nbd")["endpoint"]
    out = subprocess.run([QEMU_IO, "-f", "raw", *[x for c in cmds for x in ("-c", c)], f"{nbd}/{RG}/{disk}"],
                         capture_output=True, text=True, timeout=60)
    return out.returncode == 0 and "Pattern verification failed" not in out.stdout, out.stdout + out.stderr


def test_protect_back_up_restore_disks_and_delete_data(az):
    az.run("group", "create", "-n", RG, "-l", "eastus")
    az.run("network", "vnet", "create", "-g", RG, "-n", "net", "--address-prefix", "10.61.0.0/16",
           "--subnet-name", "vms", "--subnet-prefix", "10.61.1.0/24")
    az.run("disk", "create", "-g", RG, "-n", "app-os", "--size-gb", "1", "--os-type", "Linux")
    az.run("network", "nic", "create", "-g", RG, "-n", "app-nic", "--vnet-name", "net", "--subnet", "vms")
    az.run("vm", "create", "-g", RG, "-n", "app", "--attach-os-disk", "app-os", "--os-type", "linux", "--nics", "app-nic")
    az.run("backup", "vault", "create", "-g", RG, "-n", "cli-bk-vault", "-l", "eastus")
    az.run("backup", "vault", "backup-properties", "set", "-g", RG, "-n", "cli-bk-vault", "--backup-storage-redundancy", "LocallyRedundant")
    props = az.run("backup", "vault", "backup-properties", "show", "-g", RG, "-n", "cli-bk-vault")
    assert props[0]["properties"]["storageModelType"] == "LocallyRedundant"
    assert "DefaultPolicy" in [p["name"] for p in az.run("backup", "policy", "list", "-g", RG, "-v", "cli-bk-vault")]
    az.run("backup", "protection", "enable-for-vm", "-g", RG, "-v", "cli-bk-vault", "--vm", "app", "--policy-name", "DefaultPolicy")
    items = az.run("backup", "item", "list", "-g", RG, "-v", "cli-bk-vault")
    assert [i["properties"]["friendlyName"] for i in items] == ["app"]
    containers = az.run("backup", "container", "list", "-g", RG, "-v", "cli-bk-vault", "--backup-management-type", "AzureIaasVM")
    assert [c["properties"]["friendlyName"] for c in containers] == ["app"]

    assert io(az, "app-os", "write -P 0x5a 0 1M")[0]
    job = az.run("backup", "protection", "backup-now", "-g", RG, "-v", "cli-bk-vault", "-c", "app", "-i", "app",
                 "--backup-management-type", "AzureIaasVM", "--retain-until", "01-01-2030")
    done = az.run("backup", "job", "wait", "-g", RG, "-v", "cli-bk-vault", "-n", job["name"])
    assert done["properties"]["status"] == "Completed", done
    assert io(az, "app-os", "write -P 0x6b 0 1M")[0]
    points = az.run("backup", "recoverypoint", "list", "-g", RG, "-v", "cli-bk-vault", "-c", "app", "-i", "app",
                    "--backup-management-type", "AzureIaasVM")
    assert len(points) == 1
    az.run("storage", "account", "create", "-g", RG, "-n", "clibkstaging1", "-l", "eastus", "--sku", "Standard_LRS")
    before = {d["name"] for d in az.run("disk", "list", "-g", RG)}
    restore = az.run("backup", "restore", "restore-disks", "-g", RG, "-v", "cli-bk-vault", "-c", "app", "-i", "app",
                     "-r", points[0]["name"], "--storage-account", "clibkstaging1", "--target-resource-group", RG)
    restored = az.run("backup", "job", "wait", "-g", RG, "-v", "cli-bk-vault", "-n", restore["name"])
    assert restored["properties"]["status"] == "Completed" and restored["properties"]["operation"] == "Restore"
    new = {d["name"] for d in az.run("disk", "list", "-g", RG)} - before
    assert len(new) == 1, new
    ok, out = io(az, new.pop(), "read -P 0x5a 0 1M")
    assert ok, out
    ops = {j["properties"]["operation"] for j in az.run("backup", "job", "list", "-g", RG, "-v", "cli-bk-vault")}
    assert {"ConfigureBackup", "Backup", "Restore"} <= ops

    az.run("backup", "protection", "disable", "-g", RG, "-v", "cli-bk-vault", "-c", "app", "-i", "app",
           "--backup-management-type", "AzureIaasVM", "--delete-backup-data", "true", "--yes")
    left = az.run("backup", "item", "list", "-g", RG, "-v", "cli-bk-vault")
    # Soft delete keeps the data 14 days; the item says so.
    assert [i["properties"]["isScheduledForDeferredDelete"] for i in left] == [True]


def test_a_running_backup_shows_as_in_progress_and_job_stop_cancels_it(az):
    """`az backup protection backup-now` returns while the backup runs (as in
    Azure); `az backup job show`/`list` see it InProgress, and `az backup job
    stop` cancels it: no recovery point is made."""
    rg, vault = "cli-backup-jobs", "cli-jobs-vault"
    az.run("group", "create", "-n", rg, "-l", "eastus")
    az.run("network", "vnet", "create", "-g", rg, "-n", "net", "--address-prefix", "10.62.0.0/16",
           "--subnet-name", "vms", "--subnet-prefix", "10.62.1.0/24")
    disk = az.run("disk", "create", "-g", rg, "-n", "big-os", "--size-gb", "4", "--os-type", "Linux")
    az.run("network", "nic", "create", "-g", rg, "-n", "big-nic", "--vnet-name", "net", "--subnet", "vms")
    az.run("vm", "create", "-g", rg, "-n", "big", "--attach-os-disk", "big-os", "--os-type", "linux", "--nics", "big-nic")
    az.run("backup", "vault", "create", "-g", rg, "-n", vault, "-l", "eastus")
    az.run("backup", "protection", "enable-for-vm", "-g", rg, "-v", vault, "--vm", "big", "--policy-name", "DefaultPolicy")
    # 2 GiB of random bytes straight into the disk's image: a backup long enough to watch.
    with open(az.server.data_dir / "disks" / f"{disk['uniqueId']}.img", "r+b") as f:
        for _ in range(32):
            f.write(os.urandom(64 << 20))
    job = az.run("backup", "protection", "backup-now", "-g", rg, "-v", vault, "-c", "big", "-i", "big",
                 "--backup-management-type", "AzureIaasVM", "--retain-until", "01-01-2030")
    assert job["properties"]["status"] == "InProgress", job["properties"]
    running = az.run("backup", "job", "list", "-g", rg, "-v", vault, "--status", "InProgress")
    assert [j["name"] for j in running] == [job["name"]]
    az.run("backup", "job", "stop", "-g", rg, "-v", vault, "-n", job["name"])
    done = az.run("backup", "job", "wait", "-g", rg, "-v", vault, "-n", job["name"])
    assert done["properties"]["status"] == "Cancelled", done["properties"]
    points = az.run("backup", "recoverypoint", "list", "-g", rg, "-v", vault, "-c", "big", "-i", "big",
                    "--backup-management-type", "AzureIaasVM")
    assert points == []
