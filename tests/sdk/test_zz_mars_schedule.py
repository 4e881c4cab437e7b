"""MARS scheduled backups and retention on the emulator clock (issue 14): a
MabProtectionPolicy (at most three backups a day) created with
`azure-mgmt-recoveryservicesbackup`, a folder put on it by the agent, the
backups the clock makes due run by the agent's scheduler, and points pruned
when their retention ends. Runs late: it moves the server's clock."""

import time

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.recoveryservices import RecoveryServicesClient
from azure.mgmt.recoveryservicesbackup import RecoveryServicesBackupClient

import asr
from mars_agent import mars

RG, VAULT = "mars-sched-rg", "mars-sched-vault"


def policy(times, days=7):
    return {"properties": {
        "backupManagementType": "MAB",
        "schedulePolicy": {"schedulePolicyType": "SimpleSchedulePolicy", "scheduleRunFrequency": "Daily",
                           "scheduleRunTimes": times},
        "retentionPolicy": {"retentionPolicyType": "LongTermRetentionPolicy", "dailySchedule": {
            "retentionTimes": times[:1], "retentionDuration": {"count": days, "durationType": "Days"}}}}}


def advance(server, hours):
    r = server.http("POST", "/recoverite/clock/advance", json={"hours": hours})
    assert r.status_code == 200, r.text
    time.sleep(2.5)  # the clock's tick runs every second


def test_scheduled_backups_and_retention(server, tmp_path):
    asr.groups(server, (RG, "eastus"))
    vault = server.client(RecoveryServicesClient).vaults.begin_create_or_update(RG, VAULT, {
        "location": "eastus", "sku": {"name": "Standard"}, "properties": {"publicNetworkAccess": "Enabled"}}).result()
    bk = server.client(RecoveryServicesBackupClient)
    # "At most three backups a day."
    four = ["2026-01-01T01:00:00Z", "2026-01-01T07:00:00Z", "2026-01-01T13:00:00Z", "2026-01-01T19:00:00Z"]
    with pytest.raises(HttpResponseError) as e:
        bk.protection_policies.create_or_update(VAULT, RG, "too-often", policy(four))
    assert e.value.error.code == "BMSUserErrorInvalidPolicyInput"
    got = bk.protection_policies.create_or_update(VAULT, RG, "twice-daily", policy(["2026-01-01T02:00:00Z", "2026-01-01T14:00:00Z"]))
    assert got.properties.backup_management_type == "MAB"

    (tmp_path / "pass").write_text("scheduled passphrase 123")
    mars(server, "credentials", "--vault", vault.id, "--out", str(tmp_path / "creds.json"))
    agent = tmp_path / "agent"
    mars(server, "register", "--credentials", str(tmp_path / "creds.json"), "--passphrase-file", str(tmp_path / "pass"),
         "--agent-dir", str(agent), "--name", "sched-srv")
    data = tmp_path / "data"
    data.mkdir()
    (data / "a").write_bytes(b"first" * 1000)
    mars(server, "backup", "--agent-dir", str(agent), "--path", str(data), "--policy", "twice-daily")
    [item] = [i for i in bk.backup_protected_items.list(VAULT, RG, filter="backupManagementType eq 'MAB'")]
    assert item.properties.policy_name == "twice-daily"
    pts = list(bk.recovery_points.list(VAULT, RG, "Azure", "sched-srv", item.name))
    assert len(pts) == 1

    # Nothing is due yet.
    out = mars(server, "run", "--agent-dir", str(agent), "--once")
    assert "scheduled backup" not in out.stdout
    # Half a day later one slot has passed: the agent's scheduler runs it.
    (data / "b").write_bytes(b"second" * 1000)
    advance(server, 13)
    out = mars(server, "run", "--agent-dir", str(agent), "--once")
    assert f"scheduled backup of {data.resolve()}" in out.stdout, out.stdout
    pts = list(bk.recovery_points.list(VAULT, RG, "Azure", "sched-srv", item.name))
    assert len(pts) == 2
    # Ran once: nothing more is due until the next slot.
    out = mars(server, "run", "--agent-dir", str(agent), "--once")
    assert "scheduled backup" not in out.stdout

    # Past the 7 days of retention the old points go; the newest stays.
    advance(server, 24 * 8)
    deadline = time.time() + 10
    while time.time() < deadline:
        pts = list(bk.recovery_points.list(VAULT, RG, "Azure", "sched-srv", item.name))
        if len(pts) == 1:
            break
        time.sleep(0.5)
    assert len(pts) == 1
    # What is left still restores.
    target = tmp_path / "restored"
    mars(server, "restore", "--agent-dir", str(agent), "--point", pts[0].id, "--target", str(target))
    assert (target / "data" / "b").read_bytes() == b"second" * 1000
