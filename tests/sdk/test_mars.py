"""The MARS agent (issue 14) against a vault with private endpoints, as
documents 001 and 004 describe it: vault credentials and registration, files
and folders backed up encrypted and deduplicated through the vault's private
URL, the public URL only when the vault allows it, Microsoft Entra ID through
the network, restore byte for byte; the control plane seen through
`azure-mgmt-recoveryservicesbackup` (containers, items, points, jobs) and
`azure-mgmt-recoveryservices` (registered identities)."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.privatedns import PrivateDnsManagementClient
from azure.mgmt.recoveryservices import RecoveryServicesClient
from azure.mgmt.recoveryservicesbackup import RecoveryServicesBackupClient

import asr
from conftest import BIN
from mars_agent import mars

RG, VAULT, VM = "mars-rg", "mars-vault", "marsvm"
ZONE = "privatelink.eus.backup.windowsazure.com"
SECRET = b"MARS-PLAINTEXT-MARKER-7f3a9c"
PASSPHRASE = "correct horse battery staple"


def tree(root: Path):
    """Every entry's kind, mode, mtime, content and link target."""
    out = {}
    for p in [root, *root.rglob("*")]:
        st = p.lstat()
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = ("link", os.readlink(p), int(st.st_mtime))
        elif p.is_dir():
            out[rel] = ("dir", st.st_mode & 0o7777, int(st.st_mtime))
        else:
            out[rel] = ("file", st.st_mode & 0o7777, int(st.st_mtime), p.read_bytes())
    return out


def make_data(root: Path):
    (root / "docs" / "empty").mkdir(parents=True)
    (root / "docs" / "secret.txt").write_bytes(SECRET * 100)
    (root / "docs" / "secret.txt").chmod(0o600)
    (root / "big.bin").write_bytes(os.urandom(3 << 20))
    (root / "same1.bin").write_bytes(b"z" * 500_000)
    (root / "same2.bin").write_bytes(b"z" * 500_000)
    os.symlink("docs/secret.txt", root / "link")
    os.utime(root / "big.bin", (1_600_000_000, 1_600_000_000))


@pytest.fixture(scope="module")
def env(server, tmp_path_factory):
    asr.groups(server, (RG, "eastus"))
    net = server.client(NetworkManagementClient)
    net.network_security_groups.begin_create_or_update(RG, "mars-nsg", {"location": "eastus"}).result()
    nsg_id = f"/subscriptions/{server.sub}/resourceGroups/{RG}/providers/Microsoft.Network/networkSecurityGroups/mars-nsg"
    vnet = net.virtual_networks.begin_create_or_update(RG, "mars-net", {"location": "eastus", "properties": {
        "addressSpace": {"addressPrefixes": ["10.81.0.0/16"]},
        "subnets": [{"name": "vms", "properties": {"addressPrefix": "10.81.1.0/24", "networkSecurityGroup": {"id": nsg_id}}},
                    {"name": "pe", "properties": {"addressPrefix": "10.81.2.0/25"}}]}}).result()
    vm = asr.vm(server, RG, VM, vnet.subnets[0].id, os_gb=1)
    vm2 = asr.vm(server, RG, "marsvm2", vnet.subnets[0].id, os_gb=1)
    rs = server.client(RecoveryServicesClient)
    vault = rs.vaults.begin_create_or_update(RG, VAULT, {"location": "eastus", "sku": {"name": "Standard"},
                                                          "properties": {"publicNetworkAccess": "Disabled"}}).result()
    net.private_endpoints.begin_create_or_update(RG, "mars-pe", {"location": "eastus", "properties": {
        "subnet": {"id": vnet.subnets[1].id},
        "privateLinkServiceConnections": [{"name": "c", "properties": {
            "privateLinkServiceId": vault.id, "groupIds": ["AzureBackup"]}}]}}).result()
    pdns = server.client(PrivateDnsManagementClient)
    pdns.private_zones.begin_create_or_update(RG, ZONE, {"location": "global"}).result()
    pdns.virtual_network_links.begin_create_or_update(RG, ZONE, "mars", {"location": "global", "properties": {
        "virtualNetwork": {"id": vnet.id}}}).result()
    zone_id = f"/subscriptions/{server.sub}/resourceGroups/{RG}/providers/Microsoft.Network/privateDnsZones/{ZONE}"
    net.private_dns_zone_groups.begin_create_or_update(RG, "mars-pe", "default", {"properties": {
        "privateDnsZoneConfigs": [{"name": "z", "properties": {"privateDnsZoneId": zone_id}}]}}).result()
    tmp = tmp_path_factory.mktemp("mars")
    (tmp / "pass").write_text(PASSPHRASE)
    (tmp / "short").write_text("too short")
    data = tmp / "data"
    make_data(data)
    mars(server, "credentials", "--vault", vault.id, "--out", str(tmp / "creds.json"))
    return {"vm": vm, "vm2": vm2, "vault": vault, "tmp": tmp, "data": data, "net": net, "pdns": pdns, "vnet": vnet,
            "rs": rs, "bk": server.client(RecoveryServicesBackupClient)}


def register(server, env, agent, vm=None, name=None, ok=True):
    args = ["register", "--credentials", str(env["tmp"] / "creds.json"), "--passphrase-file", str(env["tmp"] / "pass"),
            "--agent-dir", str(agent)]
    if vm:
        args += ["--vm", vm.id]
    if name:
        args += ["--name", name]
    return mars(server, *args, ok=ok)


def set_public_access(env, access):
    env["rs"].vaults.begin_update(RG, VAULT, {"properties": {"publicNetworkAccess": access}}).result()


def points(bk, container, item):
    return list(bk.recovery_points.list(VAULT, RG, "Azure", container, item))


def test_backup_and_restore_through_the_private_url(server, env):
    tmp, bk = env["tmp"], env["bk"]
    agent = tmp / "agent1"
    # The passphrase must be at least 16 characters; it is checked before anything else.
    short = mars(server, "register", "--credentials", str(tmp / "creds.json"), "--passphrase-file", str(tmp / "short"),
                 "--agent-dir", str(agent), "--vm", env["vm"].id, ok=False)
    assert short.returncode != 0 and "at least 16" in short.stderr
    out = register(server, env, agent, env["vm"])
    assert ".prot1.privatelink.eus.backup.windowsazure.com" in out.stdout, out.stdout
    # The machine is a MAB container; the vault now counts as having items.
    [c] = [c for c in bk.backup_protection_containers.list(VAULT, RG, filter="backupManagementType eq 'MAB'")]
    assert c.name == VM and c.properties.container_type == "Windows" and c.properties.backup_management_type == "MAB"
    # The doctor walks the agent's hops from the VM: Entra ID, every Backup
    # name through the endpoint, the registration, the public fallback.
    report = server.http("GET", "/recoverite/doctor", params={
        "vm": env["vm"].id, "vault": env["vault"].id, "scenario": "mars"}).json()
    checks = {c["check"]: c for c in report["checks"]}
    assert report["passed"] is True, [c for c in report["checks"] if c["status"] == "fail"]
    assert checks["MARS agent registration"]["status"] == "pass" and VM in checks["MARS agent registration"]["evidence"]
    assert checks["public URL fallback"]["status"] == "pass"
    assert any(".prot1.privatelink.eus.backup.windowsazure.com" in name for name in checks)
    other = server.http("GET", "/recoverite/doctor", params={
        "vm": env["vm2"].id, "vault": env["vault"].id, "scenario": "mars"}).json()
    [bad] = [c for c in other["checks"] if c["status"] == "fail"]
    assert bad["check"] == "MARS agent registration" and "recoverite mars register" in bad["fix"], bad

    first = mars(server, "backup", "--agent-dir", str(agent), "--path", str(env["data"]))
    assert "through private endpoint mars-pe" in first.stdout, first.stdout
    [item] = [i for i in bk.backup_protected_items.list(VAULT, RG, filter="backupManagementType eq 'MAB'")]
    assert item.properties.protected_item_type == "MabFileFolderProtectedItem"
    assert item.properties.friendly_name == str(env["data"].resolve())
    assert item.properties.computer_name == VM and item.properties.protection_state == "Protected"
    [p1] = points(bk, VM, item.name)
    assert p1.properties.object_type == "GenericRecoveryPoint"
    # The machine's folder lives in the container it registered: listing
    # every container shows that one once, not an Azure VM container too.
    named = [c for c in bk.backup_protection_containers.list(VAULT, RG) if c.name.lower() == VM.lower()]
    assert [c.properties.backup_management_type for c in named] == ["MAB"], named

    # Unchanged data: the second backup reads and sends nothing.
    second = mars(server, "backup", "--agent-dir", str(agent), "--path", str(env["data"]))
    assert " 0 read, 0 new chunks, 0 bytes sent" in second.stdout, second.stdout
    jobs = [j for j in bk.backup_jobs.list(VAULT, RG, filter="backupManagementType eq 'MAB'")]
    backups = [j for j in jobs if j.properties.operation == "Backup"]
    assert len(backups) == 2 and all(j.properties.job_type == "MabJob" and j.properties.status == "Completed" for j in backups)
    assert all(j.properties.mab_server_name == VM for j in backups)
    bags = [j.properties.extended_info.property_bag for j in backups]
    assert sorted(str(b["New chunks"]) for b in bags)[0] == "0", bags

    # The vault holds no plaintext of a known file.
    tier = server.data_dir / "backup"
    stored = b"".join(p.read_bytes() for p in tier.rglob("*") if p.is_file())
    assert stored and SECRET not in stored

    # Restore: byte-identical, with modes, mtimes, symlinks and empty directories.
    target = tmp / "restored"
    mars(server, "restore", "--agent-dir", str(agent), "--point", p1.id, "--target", str(target))
    assert tree(target / "data") == tree(env["data"])
    restores = [j for j in bk.backup_jobs.list(VAULT, RG, filter="operation eq 'Restore'")]
    assert restores and restores[0].properties.status == "Completed"

    # Only some paths.
    part = tmp / "part"
    mars(server, "restore", "--agent-dir", str(agent), "--point", p1.id, "--path", str(env["data"].resolve() / "docs"),
         "--target", str(part))
    assert (part / "data" / "docs" / "secret.txt").read_bytes() == SECRET * 100
    assert not (part / "data" / "big.bin").exists()


def test_another_server_restores_with_the_passphrase_only(server, env):
    tmp, bk = env["tmp"], env["bk"]
    other = tmp / "agent2"
    (tmp / "pass2").write_text("another machine's passphrase")
    mars(server, "register", "--credentials", str(tmp / "creds.json"), "--passphrase-file", str(tmp / "pass2"),
         "--agent-dir", str(other), "--vm", env["vm2"].id)
    [item] = [i for i in bk.backup_protected_items.list(VAULT, RG, filter="backupManagementType eq 'MAB'")
              if i.properties.computer_name == VM]
    p = points(bk, VM, item.name)[0]
    # Its own passphrase opens nothing of the first machine, and nothing is written.
    wrong = tmp / "wrong"
    out = mars(server, "restore", "--agent-dir", str(other), "--point", p.id, "--target", str(wrong), ok=False)
    assert out.returncode != 0 and "cannot be decrypted" in out.stderr, out.stderr
    assert not wrong.exists() or not any(wrong.iterdir())
    failed = [j for j in bk.backup_jobs.list(VAULT, RG, filter="operation eq 'Restore'") if j.properties.status == "Failed"]
    assert failed
    # The first machine's passphrase does.
    target = tmp / "elsewhere"
    mars(server, "restore", "--agent-dir", str(other), "--point", p.id, "--target", str(target),
         "--passphrase-file", str(tmp / "pass"))
    assert tree(target / "data") == tree(env["data"])


def test_an_unregistered_machine_is_refused_at_the_private_url(server, env):
    tmp, rs = env["tmp"], env["rs"]
    agent = tmp / "agent3"
    register(server, env, agent, env["vm2"], name="tempbox")
    # Unregistering (registeredIdentities delete) ends its right to the private URLs.
    rs.registered_identities.delete(RG, VAULT, "tempbox")
    out = mars(server, "backup", "--agent-dir", str(agent), "--path", str(env["data"]), ok=False)
    assert out.returncode != 0
    assert "only agents registered to the vault can use its private URLs" in out.stderr, out.stderr
    assert "only agents registered to the vault" in (agent / "agent.log").read_text()


def test_zone_unlinked_the_public_fallback_needs_public_access(server, env):
    tmp, pdns = env["tmp"], env["pdns"]
    agent = tmp / "agent1"
    pdns.virtual_network_links.begin_delete(RG, ZONE, "mars").result()
    try:
        out = mars(server, "backup", "--agent-dir", str(agent), "--path", str(env["data"]), ok=False)
        assert out.returncode != 0
        err = out.stderr
        # The private URL does not resolve privately; the public one is refused by the vault.
        assert "prot1.privatelink.eus.backup.windowsazure.com" in err and "prot1.eus.backup.windowsazure.com" in err, err
        assert "public network access is disabled" in err, err
        # With public access allowed, the requests go to the vault over its
        # public address (public DNS answers the private name with it too).
        set_public_access(env, "Enabled")
        mars(server, "backup", "--agent-dir", str(agent), "--path", str(env["data"]))
        job = [j for j in env["bk"].backup_jobs.list(VAULT, RG, filter="operation eq 'Backup'")][0]
        notes = job.properties.extended_info.property_bag["Notes"]
        assert "connected through the public URL" in notes, notes
    finally:
        set_public_access(env, "Disabled")
        pdns.virtual_network_links.begin_create_or_update(RG, ZONE, "mars", {"location": "global", "properties": {
            "virtualNetwork": {"id": env["vnet"].id}}}).result()


def test_entra_id_must_be_allowed_by_the_nsg(server, env):
    net, agent = env["net"], env["tmp"] / "agent1"
    net.security_rules.begin_create_or_update(RG, "mars-nsg", "deny-entra", {"properties": {
        "priority": 100, "direction": "Outbound", "access": "Deny", "protocol": "*", "sourcePortRange": "*",
        "destinationPortRange": "*", "sourceAddressPrefix": "*", "destinationAddressPrefix": "AzureActiveDirectory"}}).result()
    try:
        out = mars(server, "backup", "--agent-dir", str(agent), "--path", str(env["data"]), ok=False)
        assert out.returncode != 0
        assert "sign-in at Microsoft Entra ID" in out.stderr and "deny-entra" in out.stderr, out.stderr
    finally:
        net.security_rules.begin_delete(RG, "mars-nsg", "deny-entra").result()


def test_an_on_premises_server_uses_the_public_urls(server, env):
    tmp = env["tmp"]
    agent = tmp / "onprem"
    # No network position: public DNS only, and the vault denies public access.
    out = register(server, env, agent, name="onprem-srv", ok=False)
    assert out.returncode != 0 and "public network access is disabled" in out.stderr, out.stderr
    set_public_access(env, "Enabled")
    try:
        out = register(server, env, agent, name="onprem-srv")
        assert "through the public URL" in out.stdout, out.stdout
        data = tmp / "onprem-data"
        data.mkdir()
        (data / "a.txt").write_bytes(b"on premises " * 1000)
        (data / "shared.bin").write_bytes(b"z" * 500_000)
        out = mars(server, "backup", "--agent-dir", str(agent), "--path", str(data))
        assert "through the public URL" in out.stdout, out.stdout
        # Deduplicated across machines of the vault: shared.bin's content was
        # stored by the first machine already; only a.txt's chunk is new.
        assert ": 2 files," in out.stdout and " 1 new chunks" in out.stdout, out.stdout
        bk = env["bk"]
        [item] = [i for i in bk.backup_protected_items.list(VAULT, RG, filter="backupManagementType eq 'MAB'")
                  if i.properties.computer_name == "onprem-srv"]
        assert item.properties.last_backup_status == "Completed"
    finally:
        set_public_access(env, "Disabled")


def start_big_backup(server, env, folder, files):
    """Starts `mars backup` of `files` × 16 MiB of random data and returns
    the folder, the agent's process and its running job (once InProgress)."""
    big = env["tmp"] / folder
    big.mkdir()
    for i in range(files):
        (big / f"f{i}.bin").write_bytes(os.urandom(16 << 20))
    proc = subprocess.Popen([str(BIN), "mars", "backup", "--agent-dir", str(env["tmp"] / "agent1"), "--path", str(big),
                             "--data-dir", str(server.data_dir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        for j in env["bk"].backup_jobs.list(VAULT, RG, filter="operation eq 'Backup' and status eq 'InProgress'"):
            if j.properties.entity_friendly_name == str(big.resolve()):
                return big, proc, j
        time.sleep(0.05)
    raise AssertionError(f"no backup of {big} in progress")


def test_kill_9_mid_backup_then_the_next_backup_completes(server, env):
    tmp, bk = env["tmp"], env["bk"]
    agent = tmp / "agent1"
    # Kill it once it is sending.
    big, proc, _ = start_big_backup(server, env, "bigdata", 6)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # The job ends Failed; no point was made.
    deadline = time.time() + 20
    while time.time() < deadline:
        jobs = [j for j in bk.backup_jobs.list(VAULT, RG, filter="operation eq 'Backup'")
                if j.properties.entity_friendly_name == str(big.resolve())]
        if jobs and jobs[0].properties.status != "InProgress":
            break
        time.sleep(0.1)
    assert jobs[0].properties.status == "Failed", jobs[0].properties
    mars(server, "backup", "--agent-dir", str(agent), "--path", str(big))
    [item] = [i for i in bk.backup_protected_items.list(VAULT, RG, filter="backupManagementType eq 'MAB'")
              if i.properties.friendly_name == str(big.resolve())]
    [p] = points(bk, VM, item.name)
    target = tmp / "big-restored"
    mars(server, "restore", "--agent-dir", str(agent), "--point", p.id, "--target", str(target))
    assert tree(target / "bigdata") == tree(big)


def test_cancel_a_running_backup_then_no_point_is_made(server, env):
    """A MARS backup is a job in progress while the agent sends; cancelling
    it ends it Cancelled, the agent stops, and no point is made. A job that
    already ended cannot be cancelled."""
    bk = env["bk"]
    data, proc, running = start_big_backup(server, env, "canceldata", 8)
    assert "Cancellable" in running.properties.actions_info
    headers = bk.job_cancellations.trigger(VAULT, RG, running.name, cls=lambda resp, body, h: resp.http_response.headers)
    op = headers["Location"].split("?")[0].rstrip("/").split("/")[-1]
    bk.job_operation_results.get(VAULT, RG, running.name, op)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode != 0 and "BMSUserErrorJobCancelled" in err, (out, err)
    job = bk.job_details.get(VAULT, RG, running.name)
    assert job.properties.status == "Cancelled" and job.properties.end_time is not None, job.properties
    [item] = [i for i in bk.backup_protected_items.list(VAULT, RG, filter="backupManagementType eq 'MAB'")
              if i.properties.friendly_name == str(data.resolve())]
    assert points(bk, VM, item.name) == []
    # An ended job stays as it ended.
    with pytest.raises(HttpResponseError) as e:
        bk.job_cancellations.trigger(VAULT, RG, running.name)
    assert e.value.error.code == "BMSUserErrorJobNotCancellable"
    [done] = [j for j in bk.backup_jobs.list(VAULT, RG, filter="operation eq 'Backup' and status eq 'Completed'")][:1]
    with pytest.raises(HttpResponseError) as e:
        bk.job_cancellations.trigger(VAULT, RG, done.name)
    assert e.value.error.code == "BMSUserErrorJobNotCancellable"


def test_stop_protection_soft_delete_and_unregister(server, env):
    bk, rs = env["bk"], env["rs"]
    items = [i for i in bk.backup_protected_items.list(VAULT, RG, filter="backupManagementType eq 'MAB'")
             if i.properties.computer_name == "onprem-srv"]
    [item] = items
    # ARM does not back MARS items up: the agent does.
    with pytest.raises(HttpResponseError) as e:
        bk.backups.trigger(VAULT, RG, "Azure", "onprem-srv", item.name, {"properties": {"objectType": "IaasVMBackupRequest"}})
    assert e.value.error.code == "BMSUserErrorNotSupported"
    # Unregistering a machine that still protects data is refused.
    with pytest.raises(HttpResponseError) as e:
        rs.registered_identities.delete(RG, VAULT, "onprem-srv")
    assert e.value.error.code == "BMSUserErrorContainerHasDatasources"
    # Stop protection keeping data, then delete the data: soft-deleted, 14 days.
    bk.protected_items.begin_create_or_update(VAULT, RG, "Azure", "onprem-srv", item.name, {"properties": {
        "protectedItemType": "MabFileFolderProtectedItem", "protectionState": "ProtectionStopped"}}).result()
    assert bk.protected_items.get(VAULT, RG, "Azure", "onprem-srv", item.name).properties.protection_state == "ProtectionStopped"
    bk.protected_items.delete(VAULT, RG, "Azure", "onprem-srv", item.name)
    got = bk.protected_items.get(VAULT, RG, "Azure", "onprem-srv", item.name)
    assert got.properties.is_scheduled_for_deferred_delete is True
    # Undelete within the window.
    bk.protected_items.begin_create_or_update(VAULT, RG, "Azure", "onprem-srv", item.name, {"properties": {
        "protectedItemType": "MabFileFolderProtectedItem", "isRehydrate": True}}).result()
    assert bk.protected_items.get(VAULT, RG, "Azure", "onprem-srv", item.name).properties.is_scheduled_for_deferred_delete is False
