"""The emulator clock (issue 5): time-based behaviour happens in seconds.
Crash-consistent points every 5 emulated minutes, app-consistent ones at the
policy's frequency, every point of the last two hours kept and older ones
thinned to one an hour, nothing older than the retention, and an item whose
agent is silenced turning Critical after 60 minutes without a point.

(Named to run last: moving the shared server's clock forward is harmless to
tests that already ran, and every test after it would see hours pass.)"""

import time

import pytest

import asr
from azure.mgmt.network import NetworkManagementClient

RG, VAULT = "clock-rg", "clock-vault"
PATH = (RG, VAULT, "east", "east-c", "timed")


@pytest.fixture(scope="module")
def server(isolated_server):
    """Its own server: the test times replication cycles in wall-clock
    seconds, which must not depend on what earlier tests left replicating."""
    return isolated_server


@pytest.fixture(scope="module")
def env(server):
    asr.groups(server, (RG, "eastus"), (f"{RG}-asr", "westus"))
    net = server.client(NetworkManagementClient)
    nsg = net.network_security_groups.begin_create_or_update(RG, "clock-nsg", {"location": "eastus"}).result()
    vnet = net.virtual_networks.begin_create_or_update(RG, "clock-vnet", {"location": "eastus", "properties": {
        "addressSpace": {"addressPrefixes": ["10.80.0.0/16"]},
        "subnets": [{"name": "s", "properties": {"addressPrefix": "10.80.1.0/24", "networkSecurityGroup": {"id": nsg.id}}}]}}).result()
    v = asr.vm(server, RG, "timed", vnet.subnets[0].id)
    sr, pol, tc = asr.vault(server, RG, VAULT, policy={
        "instanceType": "A2A", "recoveryPointHistory": 180, "appConsistentFrequencyInMinutes": 60, "multiVmSyncStatus": "Disable"})
    item = asr.protect(server, sr, RG, VAULT, "timed", v, pol, tc, asr.cache(server, RG, "clockcache").id, f"{RG}-asr")
    return {"sr": sr, "item": item, "net": net}


def advance(server, minutes):
    r = server.http("POST", "/recoverite/clock/advance", json={"minutes": minutes})
    assert r.status_code == 200, r.text
    return r.json()["now"]


def points(env):
    return list(env["sr"].recovery_points.list_by_replication_protected_items(*PATH))


def wait_points(env, n, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = points(env)
        if len(got) >= n:
            return got
        time.sleep(0.1)
    raise AssertionError(f"expected {n} points, have {len(points(env))}")


def wait_newer(env, than, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        pts = points(env)
        if pts and max(p.properties.recovery_point_time for p in pts) > than:
            return pts
        time.sleep(0.1)
    raise AssertionError(f"no point newer than {than}")


def test_clock_drives_points_retention_thinning_and_health(server, env):
    clock = server.http("GET", "/recoverite/clock").json()
    assert clock["scale"] == 1
    assert server.http("POST", "/recoverite/clock/advance", json={"minutes": -5}).status_code == 400
    assert points(env) == []
    # Every 5 emulated minutes a crash-consistent point; hourly an app-consistent one.
    for i in range(1, 13):
        advance(server, 5)
        wait_points(env, i)
    kinds = [p.properties.recovery_point_type for p in reversed(points(env))]
    assert kinds.count("AppConsistent") == 1 and kinds[11] == "AppConsistent", kinds
    # Two more hours in 30-minute steps: points older than two hours are thinned to one an hour.
    for _ in range(4):
        newest = max(p.properties.recovery_point_time for p in points(env))
        advance(server, 30)
        wait_newer(env, newest)
    now = server.http("GET", "/recoverite/clock").json()["now"]
    pts = points(env)
    old = [p for p in pts if (time.mktime(time.strptime(now[:19], "%Y-%m-%dT%H:%M:%S")) -
                              time.mktime(time.strptime(p.properties.recovery_point_time.strftime("%Y-%m-%dT%H:%M:%S"), "%Y-%m-%dT%H:%M:%S"))) > 2 * 3600]
    hours = [p.properties.recovery_point_time.replace(minute=0, second=0, microsecond=0) for p in old if p.properties.recovery_point_type == "CrashConsistent"]
    assert len(hours) == len(set(hours)), [p.properties.recovery_point_time for p in old]
    assert len(pts) < 16
    # Past the 3-hour retention nothing is left from the start.
    newest = max(p.properties.recovery_point_time for p in points(env))
    advance(server, 200)
    wait_newer(env, newest)
    oldest = min(p.properties.recovery_point_time for p in points(env))
    newest = max(p.properties.recovery_point_time for p in points(env))
    assert (newest - oldest).total_seconds() <= 3 * 3600

    # Silence the agent (NSG): no more points; after 60 minutes the item is Critical.
    env["net"].security_rules.begin_create_or_update(RG, "clock-nsg", "deny-out", {"properties": {
        "protocol": "*", "access": "Deny", "direction": "Outbound", "priority": 100, "sourceAddressPrefix": "*",
        "sourcePortRange": "*", "destinationAddressPrefix": "*", "destinationPortRange": "*"}}).result()
    time.sleep(1.5)
    count = len(points(env))
    advance(server, 61)
    time.sleep(1.5)
    item = env["sr"].replication_protected_items.get(*PATH)
    assert len(points(env)) == count, "a silent agent makes no points"
    assert item.properties.replication_health == "Critical"
    assert item.properties.provider_specific_details.rpo_in_seconds >= 3600
    summaries = [e.summary_message for e in item.properties.health_errors]
    assert any("60 minutes" in s for s in summaries), summaries
    env["net"].security_rules.begin_delete(RG, "clock-nsg", "deny-out").result()
    # Recovery takes a few replication cycles; with every earlier test's
    # items still replicating on this server, a cycle can take seconds.
    deadline = time.time() + 40
    while time.time() < deadline and env["sr"].replication_protected_items.get(*PATH).properties.replication_health != "Normal":
        advance(server, 1)
        time.sleep(0.5)
    item = env["sr"].replication_protected_items.get(*PATH)
    assert item.properties.replication_health == "Normal", [e.error_message for e in item.properties.health_errors or []]
