"""`recoverite agent --vm ID` (issue 5): the mobility agent as its own
process. While it checks in, the built-in agent stands aside and the bytes
still arrive through DNS and the gateway; an authenticating proxy makes it
refuse to run; when it stops, the built-in agent takes over again."""

import os
import shutil
import subprocess
import time

import pytest
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.recoveryservicessiterecovery import SiteRecoveryManagementClient

import asr
from conftest import BIN

RG, VAULT = "agentproc-rg", "agentproc-vault"
PATH = (RG, VAULT, "east", "east-c", "solo")
QEMU_IO = shutil.which("qemu-io")
pytestmark = pytest.mark.skipif(QEMU_IO is None, reason="qemu-io (qemu-utils) is not installed")


@pytest.fixture(scope="module")
def vm(server):
    asr.groups(server, (RG, "eastus"), (f"{RG}-asr", "westus"))
    vnet = server.client(NetworkManagementClient).virtual_networks.begin_create_or_update(RG, "v", {"location": "eastus", "properties": {
        "addressSpace": {"addressPrefixes": ["10.95.0.0/16"]}, "subnets": [{"name": "s", "properties": {"addressPrefix": "10.95.1.0/24"}}]}}).result()
    v = asr.vm(server, RG, "solo", vnet.subnets[0].id, os_gb=2)
    sr, pol, tc = asr.vault(server, RG, VAULT)
    asr.protect(server, sr, RG, VAULT, "solo", v, pol, tc, asr.cache(server, RG, "agentproccache").id, f"{RG}-asr")
    return v


def io(server, disk, *cmds):
    nbd = server.http("GET", "/recoverite/nbd").json()["endpoint"]
    out = subprocess.run([QEMU_IO, "-f", "raw"] + [x for c in cmds for x in ("-c", c)] + [f"{nbd}/{disk}"], capture_output=True, text=True)
    assert out.returncode == 0 and "Pattern verification failed" not in out.stdout + out.stderr, out.stdout + out.stderr


def shipped(sr, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        it = sr.replication_protected_items.get(*PATH)
        if not any(d.data_pending_at_source_agent_in_mb for d in it.properties.provider_specific_details.protected_managed_disks):
            return it
        time.sleep(0.2)
    raise AssertionError(f"not shipped: {it.properties.health_errors}")


def agent(server, vm, **env):
    return subprocess.Popen([str(BIN), "agent", "--vm", vm.id, "--data-dir", str(server.data_dir)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **env})


def test_the_agent_as_its_own_process(server, vm):
    sr = server.client(SiteRecoveryManagementClient)
    # An authenticating proxy: the agent refuses to run (document 003).
    p = agent(server, vm, HTTPS_PROXY="http://ops:secret@proxy.corp:3128")
    assert p.wait(timeout=20) != 0
    assert "authentication prox" in p.stderr.read()

    p = agent(server, vm)
    try:
        line = p.stdout.readline()  # its first cycle
        assert "ok" in line, line + p.stderr.read() if p.poll() is not None else line
        io(server, f"{RG}/solo-os", "write -P 0x61 0 1M")
        deadline = time.time() + 20
        seen = ""
        while "shipped 0 bytes" in seen or "shipped" not in seen:
            assert time.time() < deadline, seen
            seen = p.stdout.readline()
        assert "ok, shipped" in seen and int(seen.split("shipped ")[1].split()[0]) >= 1 << 20, seen
        shipped(sr)
    finally:
        p.terminate()
        p.wait(timeout=10)
    # Its lease runs out and the built-in agent ships again.
    time.sleep(5.5)
    io(server, f"{RG}/solo-os", "write -P 0x62 1M 1M")
    shipped(sr)
    sr.replication_protected_items.begin_unplanned_failover(*PATH, {"properties": {
        "failoverDirection": "PrimaryToRecovery", "providerSpecificDetails": {"instanceType": "A2A"}}}).result()
    io(server, f"{RG}-asr/solo-os-ASRReplica", "read -P 0x61 0 1M", "read -P 0x62 1M 1M")
