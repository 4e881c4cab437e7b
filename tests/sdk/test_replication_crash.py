"""kill -9 during replication, failover and reprotect (issue 5): no
acknowledged recovery point is lost, no disk ever mixes two points, and
after a restart replication resumes from where it was (no full resync)."""

import random
import shutil
import subprocess
import time

import pytest
import requests

import asr
import conftest
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.recoveryservicessiterecovery import SiteRecoveryManagementClient

RG, VAULT = "crash-rg", "crash-vault"
PATH = (RG, VAULT, "east", "east-c", "crashy")
QEMU_IO = shutil.which("qemu-io")
pytestmark = pytest.mark.skipif(QEMU_IO is None, reason="qemu-io (qemu-utils) is not installed")
MiB = 1 << 20


def sr(server):
    return server.client(SiteRecoveryManagementClient)


def io(server, disk, *cmds):
    nbd = server.http("GET", "/recoverite/nbd").json()["endpoint"]
    args = [QEMU_IO, "-f", "raw"] + [x for c in cmds for x in ("-c", c)] + [f"{nbd}/{disk}"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=60)
    return out.returncode == 0 and "Pattern verification failed" not in out.stdout + out.stderr, out.stdout + out.stderr


def kill_during(server, fn, rng, window=0.08):
    """SIGKILLs the server at a random moment of fn; restarts it."""
    return conftest.kill_during(server, fn, rng.uniform(0, window))


@pytest.fixture(scope="module")
def env(server):
    asr.groups(server, (RG, "eastus"), (f"{RG}-asr", "centralus"))
    net = server.client(NetworkManagementClient)
    vnet = net.virtual_networks.begin_create_or_update(RG, "crash-vnet", {"location": "eastus", "properties": {
        "addressSpace": {"addressPrefixes": ["10.90.0.0/16"]}, "subnets": [{"name": "s", "properties": {"addressPrefix": "10.90.1.0/24"}}]}}).result()
    drill = net.virtual_networks.begin_create_or_update(f"{RG}-asr", "drill", {"location": "centralus", "properties": {
        "addressSpace": {"addressPrefixes": ["10.91.0.0/16"]}, "subnets": [{"name": "s", "properties": {"addressPrefix": "10.91.1.0/24"}}]}}).result()
    v = asr.vm(server, RG, "crashy", vnet.subnets[0].id, data_gb=16)
    s, pol, tc = asr.vault(server, RG, VAULT, target="centralus")
    asr.protect(server, s, RG, VAULT, "crashy", v, pol, tc, asr.cache(server, RG, "crashcache").id, f"{RG}-asr")
    return {"drill": drill.id}


def point_now(server):
    item = sr(server).replication_protected_items.get(*PATH)
    r = requests.post(server.conn["armEndpoint"] + "/recoverite/replication/points", json={"protectedItemId": item.id},
                      headers={"Authorization": f"Bearer {server.token()}"}, verify=server.ca, timeout=30)
    return r.status_code, r.json()


def check_point(server, env, name, state):
    """The disks at point `name`, via a drill, hold exactly `state` (region → byte)."""
    s = sr(server)
    item = s.replication_protected_items.get(*PATH)
    s.replication_protected_items.begin_test_failover(*PATH, {"properties": {"networkId": env["drill"], "providerSpecificDetails": {
        "instanceType": "A2A", "recoveryPointId": f"{item.id}/recoveryPoints/{name}"}}}).result()
    reads = [f"read -P {state.get(r, 0)} {r * MiB} {MiB}" for r in range(4)]
    ok = io(server, f"{RG}-asr/crashy_DataDisk_0-ASRTest", *reads)
    s.replication_protected_items.begin_test_failover_cleanup(*PATH, {"properties": {"comments": "crash check"}}).result()
    return ok


def test_kill_9_during_points_failover_and_reprotect(server, env):
    rng = random.Random(2026)
    state, acked = {}, []
    for rnd in range(6):
        region, byte = rnd % 4, 0x20 + rnd
        ok, out = io(server, f"{RG}/crashy_DataDisk_0", f"write -P {byte} {region * MiB} {MiB}")
        assert ok, out
        state[region] = byte
        result = kill_during(server, lambda: point_now(server), rng, window=0.25)
        if result.get("value", (0,))[0] == 200:
            acked.append((result["value"][1]["name"], dict(state)))
    print(f"\n{len(acked)} of 6 points acknowledged before the kill")
    # Every acknowledged point survived, and each is exactly its moment.
    names = {p.name for p in sr(server).recovery_points.list_by_replication_protected_items(*PATH)}
    for name, expected in acked:
        assert name in names, (name, names)
    code, last = point_now(server)
    assert code == 200, last
    acked.append((last["name"], dict(state)))
    # Replication resumed where it was: the next point ships only the next write.
    ok, out = io(server, f"{RG}/crashy_DataDisk_0", f"write -P 0x5a {5 * MiB} 64k")
    assert ok, out
    code, small = point_now(server)
    assert code == 200 and small["changedBytes"] <= 64 * 1024 + 64, small
    for name, expected in acked:
        ok, out = check_point(server, env, name, expected)
        assert ok, (name, expected, out)

    # Failover, killed at a random moment: afterwards it either happened whole or not at all.
    target = acked[-1][0]
    body = {"properties": {"failoverDirection": "PrimaryToRecovery", "providerSpecificDetails": {
        "instanceType": "A2A", "recoveryPointId": f"{sr(server).replication_protected_items.get(*PATH).id}/recoveryPoints/{target}"}}}
    kill_during(server, lambda: sr(server).replication_protected_items.begin_unplanned_failover(*PATH, body).result(), rng, window=0.3)
    item = sr(server).replication_protected_items.get(*PATH)
    assert item.properties.protection_state in ("Protected", "UnplannedFailoverCommitPending"), item.properties.protection_state
    if item.properties.protection_state == "Protected":
        sr(server).replication_protected_items.begin_unplanned_failover(*PATH, body).result()
    ok, out = io(server, f"{RG}-asr/crashy_DataDisk_0-ASRReplica", *[f"read -P {acked[-1][1].get(r, 0)} {r * MiB} {MiB}" for r in range(4)])
    assert ok, out
    sr(server).replication_protected_items.begin_failover_commit(*PATH).result()

    # Reprotect, killed at a random moment: it completes on retry and only the difference crosses.
    rp = {"properties": {"failoverDirection": "RecoveryToPrimary", "providerSpecificDetails": {"instanceType": "A2A"}}}
    kill_during(server, lambda: sr(server).replication_protected_items.begin_reprotect(*PATH, rp).result(), rng, window=0.3)
    item = sr(server).replication_protected_items.get(*PATH)
    if item.properties.protection_state == "FailedOver":
        item = sr(server).replication_protected_items.begin_reprotect(*PATH, rp).result()
    assert item.properties.protection_state == "Protected" and item.properties.active_location == "Recovery"
    assert item.properties.provider_specific_details["resyncBytes"] <= 64 * 1024, item.properties.provider_specific_details["resyncBytes"]
