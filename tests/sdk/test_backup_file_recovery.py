"""File recovery of Azure VM backups (item-level recovery, issue 12) through
a vault's private endpoint, as document 001 says it works: "file recovery
from a vault that contains private endpoints would be restricted to virtual
networks that contain a private endpoint for the vault". Driven by
`azure-mgmt-recoveryservicesbackup` (provision, the operation, the script,
revoke); the handed-out script runs, and the disks are read with qemu-io."""

import base64
import os
import shutil
import subprocess
import time

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.privatedns import PrivateDnsManagementClient
from azure.mgmt.recoveryservices import RecoveryServicesClient
from azure.mgmt.recoveryservicesbackup import RecoveryServicesBackupClient

import asr
from conftest import BIN, backup_and_wait

RG, VAULT, VM = "ilr-rg", "ilr-vault", "ilrvm"
CONTAINER, ITEM = f"iaasvmcontainer;iaasvmcontainerv2;{RG};{VM}", f"vm;iaasvmcontainerv2;{RG};{VM}"
QEMU_IO = shutil.which("qemu-io")
pytestmark = pytest.mark.skipif(QEMU_IO is None, reason="qemu-io (qemu-utils) is not installed")
ZONE = "privatelink.eus.backup.windowsazure.com"


def qemu(uri, *cmds, ok=True, ro=False):
    args = [QEMU_IO, "-f", "raw"] + (["-r"] if ro else [])
    for c in cmds:
        args += ["-c", c]
    out = subprocess.run(args + [uri], capture_output=True, text=True, timeout=120)
    text = out.stdout + out.stderr
    if ok:
        assert out.returncode == 0 and "failed" not in text, text
    return text


@pytest.fixture(scope="module")
def env(server):
    asr.groups(server, (RG, "eastus"))
    net = server.client(NetworkManagementClient)
    nets = {}
    for name, prefix in (("ilr-a", "10.71"), ("ilr-b", "10.72")):
        nets[name] = net.virtual_networks.begin_create_or_update(RG, name, {"location": "eastus", "properties": {
            "addressSpace": {"addressPrefixes": [f"{prefix}.0.0/16"]},
            "subnets": [{"name": "vms", "properties": {"addressPrefix": f"{prefix}.1.0/24"}},
                        {"name": "pe", "properties": {"addressPrefix": f"{prefix}.2.0/24"}}]}}).result()
    vm = asr.vm(server, RG, VM, nets["ilr-a"].subnets[0].id, os_gb=1, data_gb=2)
    other = asr.vm(server, RG, "ilrvm-b", nets["ilr-b"].subnets[0].id, os_gb=1)
    vault = server.client(RecoveryServicesClient).vaults.begin_create_or_update(
        RG, VAULT, {"location": "eastus", "sku": {"name": "Standard"}}).result()
    # The vault's Backup endpoint in network A, its zone linked there only.
    net.private_endpoints.begin_create_or_update(RG, "ilr-pe", {"location": "eastus", "properties": {
        "subnet": {"id": nets["ilr-a"].subnets[1].id},
        "privateLinkServiceConnections": [{"name": "c", "properties": {
            "privateLinkServiceId": vault.id, "groupIds": ["AzureBackup"]}}]}}).result()
    pdns = server.client(PrivateDnsManagementClient)
    pdns.private_zones.begin_create_or_update(RG, ZONE, {"location": "global"}).result()
    pdns.virtual_network_links.begin_create_or_update(RG, ZONE, "a", {"location": "global", "properties": {
        "virtualNetwork": {"id": nets["ilr-a"].id}}}).result()
    zone_id = f"/subscriptions/{server.sub}/resourceGroups/{RG}/providers/Microsoft.Network/privateDnsZones/{ZONE}"
    net.private_dns_zone_groups.begin_create_or_update(RG, "ilr-pe", "default", {"properties": {
        "privateDnsZoneConfigs": [{"name": "z", "properties": {"privateDnsZoneId": zone_id}}]}}).result()

    bk = server.client(RecoveryServicesBackupClient)
    policy = bk.protection_policies.get(VAULT, RG, "DefaultPolicy").id
    bk.protected_items.begin_create_or_update(VAULT, RG, "Azure", CONTAINER, ITEM, {"properties": {
        "protectedItemType": "Microsoft.Compute/virtualMachines", "sourceResourceId": vm.id, "policyId": policy}}).result()
    nbd = server.http("GET", "/recoverite/nbd").json()["endpoint"]
    qemu(f"{nbd}/{RG}/{VM}_DataDisk_0", "write -P 0x5a 0 1M", "write -P 0x6b 1536k 64k")
    backup_and_wait(bk, VAULT, RG, CONTAINER, ITEM)
    # Later writes are not in the point.
    qemu(f"{nbd}/{RG}/{VM}_DataDisk_0", "write -P 0x77 0 1M")
    point = next(iter(bk.recovery_points.list(VAULT, RG, "Azure", CONTAINER, ITEM)))
    return {"bk": bk, "vm": vm, "other": other, "point": point, "vault": vault, "nbd": nbd}


def provision(bk, env):
    headers = bk.item_level_recovery_connections.provision(
        VAULT, RG, "Azure", CONTAINER, ITEM, env["point"].name,
        {"properties": {"objectType": "IaasVMILRRegistrationRequest", "recoveryPointId": env["point"].name,
                        "virtualMachineId": env["vm"].id}},
        cls=lambda resp, body, h: resp.http_response.headers)
    # azure-cli: the operation's id from Azure-AsyncOperation, polled until done.
    op = headers["Azure-AsyncOperation"].split("?")[0].rstrip("/").split("/")[-1]
    assert bk.backup_operation_statuses.get(VAULT, RG, op).status == "Succeeded"
    target = bk.item_level_recovery_connections.list_instant_item_recovery_operation_result(
        RG, VAULT, "Azure", CONTAINER, ITEM, env["point"].name,
        {"provisionInstantItemRecoveryOperationId": op})
    return target.client_scripts[0]


def run_script(path, tmp, **extra):
    env = dict(os.environ, RECOVERITE=str(BIN), ILR_DIR=str(tmp), **extra)
    return subprocess.Popen(["bash", str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def wait_ready(proc, timeout=30):
    deadline = time.time() + timeout
    lines = []
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.strip() == "ready":
            return lines
    proc.kill()
    raise AssertionError("".join(lines) + proc.stderr.read())


def test_file_recovery_is_served_only_to_networks_with_a_vault_endpoint(server, env, tmp_path):
    bk = env["bk"]
    script = provision(bk, env)
    assert script.os_type == "Linux" and script.script_extension == ".sh"
    # azure-cli cuts the password out of the suffix, 33 characters after its last '_'.
    i = script.script_name_suffix.rfind("_")
    password = script.script_name_suffix[i + 33:i + 48]
    content = base64.b64decode(script.script_content).decode()
    assert f'TargetPassword="{password}"' in content
    point = bk.recovery_points.get(VAULT, RG, "Azure", CONTAINER, ITEM, env["point"].name)
    assert point.properties.is_instant_ilr_session_active is True
    path = tmp_path / "ilr.sh"
    # As azure-cli writes it: the password replaced, then asked for.
    path.write_text(content.replace(f'TargetPassword="{password}"', 'TargetPassword="UserInput012345"'))
    env_vars = {"RECOVERITE_DATA_DIR": str(server.data_dir)}

    # From the backed-up VM's network, which holds the vault's endpoint.
    proc = run_script(path, tmp_path / "a", ILR_PASSWORD=password, **env_vars)
    try:
        out = "".join(wait_ready(proc))
        assert ".rec2.privatelink.eus.backup.windowsazure.com" in out and "(10.71.2." in out, out
        sock = tmp_path / "a" / "lun0.sock"
        # The point's bytes, not the write made after the backup.
        qemu(f"nbd+unix:///lun0?socket={sock}", "read -P 0x5a 0 1M", "read -P 0 1M 512k", "read -P 0x6b 1536k 64k", ro=True)
        # Read-only: the export cannot even be opened for writing.
        assert "Permission denied" in qemu(f"nbd+unix:///lun0?socket={sock}", "write -P 1 0 4k", ok=False)
        qemu(f"nbd+unix:///os?socket={tmp_path / 'a' / 'os.sock'}", "read -P 0 0 64k", ro=True)
    finally:
        proc.kill()
        proc.wait()

    # From a network without an endpoint for the vault: the private name is
    # not found there, and the public name does not serve file recovery for
    # a vault with private endpoints.
    proc = run_script(path, tmp_path / "b", ILR_PASSWORD=password, SOURCE_VM=env["other"].id, **env_vars)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert "file recovery is served only to networks that contain one of them" in err, err

    # A wrong password reads nothing.
    proc = run_script(path, tmp_path / "c", ILR_PASSWORD="WrongWrongWrong", **env_vars)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "wrong password" in err, err

    # Provisioning again renews the same connection; revoking ends it.
    again = provision(bk, env)
    assert again.script_name_suffix == script.script_name_suffix
    bk.item_level_recovery_connections.revoke(VAULT, RG, "Azure", CONTAINER, ITEM, env["point"].name)
    point = bk.recovery_points.get(VAULT, RG, "Azure", CONTAINER, ITEM, env["point"].name)
    assert point.properties.is_instant_ilr_session_active is False
    proc = run_script(path, tmp_path / "d", ILR_PASSWORD=password, **env_vars)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "revoked" in err, err


def test_file_recovery_requests_are_checked(server, env):
    bk = env["bk"]
    with pytest.raises(HttpResponseError) as e:
        bk.item_level_recovery_connections.provision(VAULT, RG, "Azure", CONTAINER, ITEM, env["point"].name,
                                                     {"properties": {"objectType": "AzureFileShareProvisionILRRequest"}})
    assert e.value.status_code == 400
    with pytest.raises(HttpResponseError) as e:
        bk.item_level_recovery_connections.provision(VAULT, RG, "Azure", CONTAINER, ITEM, "12345",
                                                     {"properties": {"objectType": "IaasVMILRRegistrationRequest"}})
    assert e.value.status_code == 404


def test_nine_on_demand_backups_a_day(server, env):
    """Azure VM support matrix: one scheduled backup a day, up to nine on-demand ones."""
    bk = env["bk"]
    body = {"properties": {"objectType": "IaasVMBackupRequest"}}
    today = [j for j in bk.backup_jobs.list(VAULT, RG, filter="operation eq 'Backup'") if j.properties.is_user_triggered]
    for _ in range(9 - len(today)):
        backup_and_wait(bk, VAULT, RG, CONTAINER, ITEM, body)
    with pytest.raises(HttpResponseError) as e:
        bk.backups.trigger(VAULT, RG, "Azure", CONTAINER, ITEM, body)
    assert e.value.status_code == 400 and e.value.error.code == "BMSUserErrorOnDemandBackupLimitReached"
    assert len(list(bk.recovery_points.list(VAULT, RG, "Azure", CONTAINER, ITEM))) == 9
