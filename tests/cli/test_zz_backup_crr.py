"""Cross-region restore with azure-cli (issue 12): `--use-secondary-region`
on `backup item list`, `recoverypoint list`, `restore restore-disks` and
`job list`, against a vault with GeoRedundant storage and cross-region
restore on, after the 12-hour replication lag on the emulator clock. Runs
last in the suite: it moves emulated time."""

import shutil
import subprocess
import time

import pytest

QEMU_IO = shutil.which("qemu-io")
pytestmark = pytest.mark.skipif(QEMU_IO is None, reason="qemu-io (qemu-utils) is not installed")
RG, VAULT = "cli-crr", "cli-crr-vault"


def io(az, rg, disk, *cmds):
    nbd = az.run("rest", "--method", "get", "--url", az.server.conn["armEndpoint"] + "/recoverite/nbd")["endpoint"]
    out = subprocess.run([QEMU_IO, "-f", "raw", *[x for c in cmds for x in ("-c", c)], f"{nbd}/{rg}/{disk}"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "Pattern verification failed" not in out.stdout, out.stdout + out.stderr


def test_cross_region_restore_settings_and_secondary_jobs(az):
    az.run("group", "create", "-n", RG, "-l", "eastus")
    az.run("group", "create", "-n", "cli-crr-west", "-l", "westus")
    az.run("network", "vnet", "create", "-g", RG, "-n", "net", "--address-prefix", "10.75.0.0/16",
           "--subnet-name", "vms", "--subnet-prefix", "10.75.1.0/24")
    az.run("disk", "create", "-g", RG, "-n", "geo-os", "--size-gb", "1", "--os-type", "Linux")
    az.run("network", "nic", "create", "-g", RG, "-n", "geo-nic", "--vnet-name", "net", "--subnet", "vms")
    az.run("vm", "create", "-g", RG, "-n", "geo", "--attach-os-disk", "geo-os", "--os-type", "linux", "--nics", "geo-nic")
    az.run("backup", "vault", "create", "-g", RG, "-n", VAULT, "-l", "eastus")
    az.run("backup", "vault", "backup-properties", "set", "-g", RG, "-n", VAULT,
           "--backup-storage-redundancy", "GeoRedundant", "--cross-region-restore-flag", "True")
    props = az.run("backup", "vault", "backup-properties", "show", "-g", RG, "-n", VAULT)
    assert props[0]["properties"]["crossRegionRestoreFlag"] is True
    az.run("backup", "protection", "enable-for-vm", "-g", RG, "-v", VAULT, "--vm", "geo", "--policy-name", "DefaultPolicy")
    io(az, RG, "geo-os", "write -P 0x2e 0 1M")
    job = az.run("backup", "protection", "backup-now", "-g", RG, "-v", VAULT, "-c", "geo", "-i", "geo",
                 "--backup-management-type", "AzureIaasVM", "--retain-until", "01-01-2030")
    az.run("backup", "job", "wait", "-g", RG, "-v", VAULT, "-n", job["name"])
    # Once on, cross-region restore stays on.
    az.run("backup", "vault", "backup-properties", "set", "-g", RG, "-n", VAULT, "--cross-region-restore-flag", "False", check=False)
    props = az.run("backup", "vault", "backup-properties", "show", "-g", RG, "-n", VAULT)
    assert props[0]["properties"]["crossRegionRestoreFlag"] is True
    # The secondary region's job list (backupCrrJobs) is empty until a cross-region restore.
    assert az.run("backup", "job", "list", "-g", RG, "-v", VAULT, "--use-secondary-region") == []
    az.run("rest", "--method", "post", "--url", az.server.conn["armEndpoint"] + "/recoverite/clock/advance",
           "--body", '{"minutes": 780}')


# azure-cli 2.91 fails before sending anything here: its shared show_item
# (custom_help.set_container_subscription_id) assigns into the item's
# properties as into a mapping, but the passive-stamp SDK it uses for
# --use-secondary-region returns a model object (TypeError: object does not
# support item assignment). The same calls through that SDK are tested in
# tests/sdk/test_zzz_backup_crr.py; when azure-cli is fixed this test passes
# and the strict mark makes it fail, to be removed.
@pytest.mark.xfail(strict=True, reason="azure-cli 2.91: --use-secondary-region crashes in set_container_subscription_id")
def test_restore_disks_in_the_secondary_region(az):
    deadline = time.time() + 60
    points = []
    while time.time() < deadline and not points:
        points = az.run("backup", "recoverypoint", "list", "-g", RG, "-v", VAULT, "-c", "geo", "-i", "geo",
                        "--backup-management-type", "AzureIaasVM", "--use-secondary-region")
        time.sleep(1)
    assert len(points) == 1, points
    items = az.run("backup", "item", "list", "-g", RG, "-v", VAULT, "--use-secondary-region")
    assert [i["properties"]["friendlyName"] for i in items] == ["geo"]

    az.run("storage", "account", "create", "-g", RG, "-n", "clicrrwest", "-l", "westus", "--sku", "Standard_LRS")
    restored = az.run("backup", "restore", "restore-disks", "-g", RG, "-v", VAULT, "-c", "geo", "-i", "geo",
                      "-r", points[0]["name"], "--storage-account", "clicrrwest",
                      "--target-resource-group", "cli-crr-west", "--use-secondary-region")
    assert restored["properties"]["operation"] == "CrossRegionRestore" and restored["properties"]["status"] == "Completed", restored
    jobs = az.run("backup", "job", "list", "-g", RG, "-v", VAULT, "--use-secondary-region")
    assert [j["name"] for j in jobs] == [restored["name"]]
    disks = az.run("disk", "list", "-g", "cli-crr-west")
    assert len(disks) == 1 and disks[0]["location"] == "westus"
    io(az, "cli-crr-west", disks[0]["name"], "read -P 0x2e 0 1M", "read -P 0 1M 64k")
