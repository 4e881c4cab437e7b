"""The MARS agent seen through azure-cli (issue 14): a server registered
and backed up with `recoverite mars`, then `az backup container list`,
`az backup item list --backup-management-type MAB` and `az backup job list`
show it as Azure shows MARS machines."""

import subprocess

from conftest import _harness

BIN = _harness.BIN
RG = "cli-mars"


def mars(az, *args):
    out = subprocess.run([str(BIN), "mars", *args, "--data-dir", str(az.server.data_dir)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    return out


def test_mars_machines_items_points_and_jobs_in_az_backup(az, tmp_path):
    az.run("group", "create", "-n", RG, "-l", "eastus")
    vault = az.run("backup", "vault", "create", "-g", RG, "-n", "cli-mars-vault", "-l", "eastus")
    (tmp_path / "pass").write_text("a passphrase of 16+ chars")
    mars(az, "credentials", "--vault", vault["id"], "--out", str(tmp_path / "creds.json"))
    agent = tmp_path / "agent"
    mars(az, "register", "--credentials", str(tmp_path / "creds.json"), "--passphrase-file", str(tmp_path / "pass"),
         "--agent-dir", str(agent), "--name", "fileserver")
    data = tmp_path / "share"
    data.mkdir()
    (data / "report.txt").write_text("quarterly numbers\n" * 100)
    mars(az, "backup", "--agent-dir", str(agent), "--path", str(data))

    containers = az.run("backup", "container", "list", "-g", RG, "-v", "cli-mars-vault", "--backup-management-type", "MAB")
    assert [c["properties"]["friendlyName"] for c in containers] == ["fileserver"]
    assert containers[0]["properties"]["containerType"] == "Windows"
    items = az.run("backup", "item", "list", "-g", RG, "-v", "cli-mars-vault", "--backup-management-type", "MAB")
    assert len(items) == 1
    item = items[0]
    assert item["properties"]["protectedItemType"] == "MabFileFolderProtectedItem"
    assert item["properties"]["friendlyName"] == str(data.resolve())
    assert item["properties"]["lastBackupStatus"] == "Completed"
    jobs = az.run("backup", "job", "list", "-g", RG, "-v", "cli-mars-vault", "--backup-management-type", "MAB")
    assert [j["properties"]["operation"] for j in jobs] == ["Backup"]
    assert jobs[0]["properties"]["jobType"] == "MabJob" and jobs[0]["properties"]["status"] == "Completed"
    assert jobs[0]["properties"]["mabServerName"] == "fileserver"
    # `az backup recoverypoint list` takes no MAB items (its allowed values
    # stop at AzureIaasVM, AzureStorage, AzureWorkload): the points by `az rest`.
    url = az.server.conn["armEndpoint"] + item["id"] + "/recoveryPoints?api-version=2025-08-01"
    points = az.run("rest", "--method", "get", "--url", url)["value"]
    assert len(points) == 1 and points[0]["properties"]["objectType"] == "GenericRecoveryPoint"
