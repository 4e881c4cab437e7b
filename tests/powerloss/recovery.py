#!/usr/bin/env python3
"""Power cuts during recovery work: recovery points being sealed, failover,
reprotect, failback and a Backup run, with recoverite's data directory on
lazyfs (tests/lazyfs) as in powerloss.py.

Set-up (once, made durable by a first cut): a VM in East US with a 1 GiB
data disk, replicated by a Site Recovery vault to Central US and protected by
a Backup vault in East US. The test writes whole 64 KiB regions of the data
disk through NBD (then FLUSH), so the disk only ever passes through known
states: `states` lists every one of them.

Each trial cuts the power (lazyfs killed, unsynced bytes lost; every third
cut torn) at a random moment of one operation, restarts recoverite on what
the disk kept, and checks:

  * point:    a recovery point requested after a write. Every point that was
              acknowledged still exists; every point that exists, acknowledged
              or not, holds exactly one state the disk passed through (a test
              failover of it is read back) — none is missing or mixes two
              moments; an acknowledged one holds the state it was asked for.
  * failover: an unplanned failover to the newest acknowledged point. After
              the cut the item is either untouched (Protected, primary active)
              or failed over whole (commit pending) with the replica disk
              holding exactly that point; never in between. The cycle goes on:
              commit, a cut during reprotect (it either finished or is redone
              from FailedOver), a cut during failback (the original disk holds
              exactly the state at failover, or nothing happened), commit, a
              cut during the reprotect back.
  * backup:   an on-demand Backup of the VM. Afterwards every listed recovery
              point restores (RestoreDisks) to exactly one state, the
              acknowledged ones to theirs, and the item is Protected.

Usage: recovery.py [--trials N] [--seed S]   (trials cycle point, point,
failover, backup; prints one line per trial and a summary; exits 1 on any
failure).
"""

import argparse
import json
import logging
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "sdk"))

import asr  # noqa: E402  (tests/sdk)
import conftest  # noqa: E402
from azure.mgmt.compute import ComputeManagementClient  # noqa: E402
from azure.mgmt.network import NetworkManagementClient  # noqa: E402
from azure.mgmt.recoveryservices import RecoveryServicesClient  # noqa: E402
from azure.mgmt.recoveryservicesbackup import RecoveryServicesBackupClient  # noqa: E402
from azure.mgmt.recoveryservicessiterecovery import SiteRecoveryManagementClient  # noqa: E402
from powerloss import Machine, Nbd  # noqa: E402

# A cut makes the credential's CA file vanish mid-request; that is expected.
logging.getLogger("azure.identity").setLevel(logging.CRITICAL)

RG, ASR_RG, RESTORE_RG = "plr", "plr-asr", "plr-restore"
VM, SR_VAULT, BK_VAULT = "plvm", "plr-sr", "plr-bk"
SRC = (RG, SR_VAULT, "east", "east-c", VM)
CONTAINER, ITEM = f"iaasvmcontainer;iaasvmcontainerv2;{RG};{VM}", f"vm;iaasvmcontainerv2;{RG};{VM}"
DATA = f"{VM}_DataDisk_0"
REGION, REGIONS, MiB = 64 << 10, 4, 1 << 20
DEBUG = bool(__import__("os").environ.get("RECOVERITE_DEBUG"))


class Rig:
    """The machine, and SDK clients for whichever recoverite runs on it now."""

    def __init__(self, work):
        self.m = Machine(work)
        self.server = conftest.Server(self.m.mnt / "data")
        self.restarts = []
        self.cutting = False
        self.cut_short = 0  # cuts that came before the operation's answer

    def boot(self):
        self.m.boot()
        self.server.conn = json.loads((self.m.mnt / "data" / "connection.json").read_text())
        self.restarts.append(self.m.started_ms)

    def client(self, cls):
        # While a cut is coming, no retries: a request the power cut ends
        # must fail at once, not poll a dead server for minutes.
        return self.server.client(cls, retry_total=0) if self.cutting else self.server.client(cls)

    def sr(self):
        return self.client(SiteRecoveryManagementClient)

    def bk(self):
        return self.client(RecoveryServicesBackupClient)

    def nbd(self, rg, disk):
        return Nbd(self.m.nbd_port, f"{rg}/{disk}")

    def cut_during(self, fn, delay, torn):
        """Runs fn, cuts the power after `delay` s, restarts. Returns fn's
        value if it was answered before the cut, else None."""
        out = {}

        def run():
            try:
                out["value"] = fn()
            except Exception as e:  # noqa: BLE001 - the connection dies with the power
                out["error"] = e

        self.cutting = True
        t = threading.Thread(target=run, daemon=True)
        t.start()
        t.join(timeout=delay)
        self.m.cut(torn)
        t.join(timeout=30)
        self.cutting = False
        self.boot()
        self.cut_short += "value" not in out
        return out.get("value")


def read_state(rig, rg, disk):
    c = rig.nbd(rg, disk)
    try:
        state = []
        for r in range(REGIONS):
            got = c.read_at(r * MiB, REGION)
            state.append(got[0] if got == bytes([got[0]]) * REGION else None)
        return tuple(state)
    finally:
        c.close()


def write_region(rig, state, states, byte):
    """Writes one whole region and flushes: the disk moves to a new known state."""
    r = byte % REGIONS
    c = rig.nbd(RG, DATA)
    try:
        c.write(r * MiB, bytes([byte]) * REGION)
        c.flush()
    finally:
        c.close()
    state[r] = byte
    states.add(tuple(state))


def set_up(rig):
    s = rig.server
    asr.groups(s, (RG, "eastus"), (ASR_RG, "centralus"), (RESTORE_RG, "eastus"))
    net = s.client(NetworkManagementClient)
    vnet = net.virtual_networks.begin_create_or_update(RG, "v", {"location": "eastus", "properties": {
        "addressSpace": {"addressPrefixes": ["10.70.0.0/16"]}, "subnets": [{"name": "s", "properties": {"addressPrefix": "10.70.1.0/24"}}]}}).result()
    drill = net.virtual_networks.begin_create_or_update(ASR_RG, "drill", {"location": "centralus", "properties": {
        "addressSpace": {"addressPrefixes": ["10.71.0.0/16"]}, "subnets": [{"name": "s", "properties": {"addressPrefix": "10.71.1.0/24"}}]}}).result()
    vm = asr.vm(s, RG, VM, vnet.subnets[0].id, os_gb=1, data_gb=1)
    sr, pol, tc = asr.vault(s, RG, SR_VAULT, target="centralus")
    asr.protect(s, sr, RG, SR_VAULT, VM, vm, pol, tc, asr.cache(s, RG, "plrcache").id, ASR_RG)
    s.client(RecoveryServicesClient).vaults.begin_create_or_update(RG, BK_VAULT, {"location": "eastus", "sku": {"name": "Standard"}}).result()
    staging = asr.cache(s, RG, "plrstaging")
    bk = rig.bk()
    bk.protected_items.begin_create_or_update(BK_VAULT, RG, "Azure", CONTAINER, ITEM, {"properties": {
        "protectedItemType": "Microsoft.Compute/virtualMachines", "sourceResourceId": vm.id,
        "policyId": bk.protection_policies.get(BK_VAULT, RG, "DefaultPolicy").id}}).result()
    return {"vm": vm.id, "drill": drill.id, "staging": staging.id, "policy": pol.id,
            "src_container": sr.replication_protection_containers.get(RG, SR_VAULT, "east", "east-c").id}


def take_point(rig):
    item = rig.sr().replication_protected_items.get(*SRC)
    r = rig.server.http("POST", "/recoverite/replication/points", json={"protectedItemId": item.id}, timeout=60)
    if r.status_code != 200 and DEBUG:
        print("point refused:", r.status_code, r.text[:400])
    return r.json()["name"] if r.status_code == 200 else None


def point_state(rig, env, name):
    """The data disk at Site Recovery point `name`, read from a test failover."""
    sr = rig.sr()
    item = sr.replication_protected_items.get(*SRC)
    sr.replication_protected_items.begin_test_failover(*SRC, {"properties": {"networkId": env["drill"], "providerSpecificDetails": {
        "instanceType": "A2A", "recoveryPointId": f"{item.id}/recoveryPoints/{name}"}}}).result()
    try:
        return read_state(rig, ASR_RG, f"{DATA}-ASRTest")
    finally:
        sr.replication_protected_items.begin_test_failover_cleanup(*SRC, {"properties": {"comments": "power-loss check"}}).result()


class Trials:
    def __init__(self, rig, env, rng):
        self.rig, self.env, self.rng = rig, env, rng
        self.state = [0] * REGIONS
        self.states = {tuple(self.state)}
        self.byte = 0x10
        self.acked = {}      # Site Recovery point -> state it was asked for
        self.checked = set()  # points whose bytes were read back
        self.bk_acked = {}   # Backup point -> state it was asked for
        self.bk_checked = set()
        self.cuts = 0
        self.sr_reads = 0
        self.backups = 0

    def cut(self, fn, window):
        self.cuts += 1
        return self.rig.cut_during(fn, self.rng.uniform(0.0, window), torn=self.cuts % 3 == 0)

    def write(self):
        self.byte = 0x10 + (self.byte - 0x0f) % 0xe0
        write_region(self.rig, self.state, self.states, self.byte)

    # -- trials ---------------------------------------------------------------
    def point(self):
        self.write()
        asked = tuple(self.state)
        name = self.cut(lambda: take_point(self.rig), 0.5)
        if name:
            self.acked[name] = asked
        problems = []
        names = {p.name for p in self.rig.sr().recovery_points.list_by_replication_protected_items(*SRC)}
        for n in self.acked:
            if n not in names:
                problems.append(f"acknowledged point {n} is gone")
        for n in sorted(names - self.checked):
            got = point_state(self.rig, self.env, n)
            self.checked.add(n)
            self.sr_reads += 1
            if n in self.acked and got != self.acked[n]:
                problems.append(f"point {n} holds {got}, not the state it was taken at {self.acked[n]}")
            elif got not in self.states:
                problems.append(f"point {n} holds {got}, a mix no moment of the disk had")
        return problems, f"point {'acknowledged' if name else 'cut short'}, {len(names)} points"

    def newest_acked(self):
        # The list is newest first.
        names = [p.name for p in self.rig.sr().recovery_points.list_by_replication_protected_items(*SRC) if p.name in self.acked]
        return names[0] if names else None

    def failover(self):
        problems = []
        target = self.newest_acked() or take_point(self.rig)
        if target not in self.acked:
            self.acked[target] = tuple(self.state)
        want = self.acked[target]
        ops = lambda: self.rig.sr().replication_protected_items  # noqa: E731
        item_id = ops().get(*SRC).id
        fo = {"properties": {"failoverDirection": "PrimaryToRecovery", "providerSpecificDetails": {
            "instanceType": "A2A", "recoveryPointId": f"{item_id}/recoveryPoints/{target}"}}}
        self.cut(lambda: ops().begin_unplanned_failover(*SRC, fo).result(), 0.3)
        p = ops().get(*SRC).properties
        if p.protection_state == "Protected" and p.active_location == "Primary":
            ops().begin_unplanned_failover(*SRC, fo).result()  # nothing happened: do it now
        elif p.protection_state != "UnplannedFailoverCommitPending":
            problems.append(f"after a cut during failover the item is {p.protection_state}/{p.active_location}")
            return problems, "failover left half-done"
        got = read_state(self.rig, ASR_RG, f"{DATA}-ASRReplica")
        if got != want:
            problems.append(f"the failed-over disk holds {got}, not point {target}'s {want}")
        ops().begin_failover_commit(*SRC).result()

        back = {"properties": {"failoverDirection": "RecoveryToPrimary", "providerSpecificDetails": {
            "instanceType": "A2A", "recoveryContainerId": self.env["src_container"],
            "recoveryResourceGroupId": f"/subscriptions/{self.rig.server.sub}/resourceGroups/{RG}", "policyId": self.env["policy"]}}}
        self.reprotect(ops, back, "Recovery", problems)

        fb = {"properties": {"failoverDirection": "RecoveryToPrimary", "providerSpecificDetails": {"instanceType": "A2A"}}}
        self.wait_shipped()
        self.cut(lambda: ops().begin_unplanned_failover(*SRC, fb).result(), 0.3)
        p = ops().get(*SRC).properties
        if p.protection_state == "Protected" and p.active_location == "Recovery":
            self.wait_shipped()
            ops().begin_unplanned_failover(*SRC, fb).result()
        elif p.protection_state != "UnplannedFailoverCommitPending":
            problems.append(f"after a cut during failback the item is {p.protection_state}/{p.active_location}")
            return problems, "failback left half-done"
        got = read_state(self.rig, RG, DATA)
        if got != want:
            problems.append(f"after failback the original disk holds {got}, not {want}")
        ops().begin_failover_commit(*SRC).result()
        again = {"properties": {"failoverDirection": "PrimaryToRecovery", "providerSpecificDetails": {"instanceType": "A2A"}}}
        self.reprotect(ops, again, "Primary", problems)
        # The disk's state is what it failed back with; replication starts
        # over from it, so earlier points are gone, as in Azure.
        self.state = list(want)
        self.acked, self.checked = {}, set()
        return problems, f"failover to {target}, reprotect, failback, reprotect"

    def reprotect(self, ops, body, active, problems):
        self.cut(lambda: ops().begin_reprotect(*SRC, body).result(), 0.3)
        p = ops().get(*SRC).properties
        if p.protection_state == "FailedOver":
            p = ops().begin_reprotect(*SRC, body).result().properties
        if p.protection_state != "Protected" or p.active_location != active:
            problems.append(f"after a cut during reprotect the item is {p.protection_state}/{p.active_location}")

    def wait_shipped(self, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            item = self.rig.sr().replication_protected_items.get(*SRC)
            if all((d.data_pending_at_source_agent_in_mb or 0) == 0
                   for d in item.properties.provider_specific_details.protected_managed_disks):
                return
            time.sleep(0.2)

    def wait_backups(self):
        deadline = time.time() + 120
        while any(j.properties.status == "InProgress"
                  for j in self.rig.bk().backup_jobs.list(BK_VAULT, RG, filter="operation eq 'Backup'")):
            if time.time() > deadline:
                raise AssertionError("a Backup job stayed InProgress for 120 s")
            time.sleep(0.1)

    def backup(self):
        # Azure takes at most nine on-demand backups of a VM a day: every
        # eighth run moves the emulator clock a day on. Site Recovery keeps
        # points for a day (the policy's 1440 minutes), so the points known
        # so far may go by retention, rightly, and are no longer tracked.
        self.backups += 1
        if self.backups % 8 == 0:
            r = self.rig.server.http("POST", "/recoverite/clock/advance", json={"minutes": 1440}, timeout=30)
            r.raise_for_status()
            self.acked, self.checked = {}, set()
        bk = self.rig.bk
        # A backup accepted before an earlier cut runs again once the service
        # is back (its job InProgress meanwhile): wait for it, as `az backup
        # job wait` would, so its point is not taken for this one.
        self.wait_backups()
        self.write()
        asked = tuple(self.state)
        before = {p.name for p in bk().recovery_points.list(BK_VAULT, RG, "Azure", CONTAINER, ITEM)}

        def run():
            bk().backups.trigger(BK_VAULT, RG, "Azure", CONTAINER, ITEM, {"properties": {"objectType": "IaasVMBackupRequest"}})
            while True:
                now = {p.name for p in bk().recovery_points.list(BK_VAULT, RG, "Azure", CONTAINER, ITEM)}
                if now - before:
                    return (now - before).pop()
                time.sleep(0.05)

        name = self.cut(run, 1.0)
        if name:
            self.bk_acked[name] = asked
        self.wait_backups()
        problems = []
        points = {p.name for p in bk().recovery_points.list(BK_VAULT, RG, "Azure", CONTAINER, ITEM)}
        for n in self.bk_acked:
            if n not in points:
                problems.append(f"acknowledged backup point {n} is gone")
        compute = self.rig.server.client(ComputeManagementClient)
        for n in sorted(points - self.bk_checked):
            job = conftest.restore_and_wait(bk(), BK_VAULT, RG, CONTAINER, ITEM, n, {"properties": {
                "objectType": "IaasVMRestoreRequest", "recoveryPointId": n, "recoveryType": "RestoreDisks",
                "sourceResourceId": self.env["vm"], "storageAccountId": self.env["staging"], "region": "eastus",
                "restoreDiskLunList": [0], "targetResourceGroupId": f"/subscriptions/{self.rig.server.sub}/resourceGroups/{RESTORE_RG}"}})
            if job.properties.status != "Completed":
                problems.append(f"restoring backup point {n}: job {job.properties.status}")
            for d in compute.disks.list_by_resource_group(RESTORE_RG):
                if d.name.startswith(DATA):
                    got = read_state(self.rig, RESTORE_RG, d.name)
                    if n in self.bk_acked and got != self.bk_acked[n]:
                        problems.append(f"backup point {n} restores to {got}, not {self.bk_acked[n]}")
                    elif got not in self.states:
                        problems.append(f"backup point {n} restores to {got}, a mix no moment had")
                compute.disks.begin_delete(RESTORE_RG, d.name).result()
            self.bk_checked.add(n)
        state = bk().protected_items.get(BK_VAULT, RG, "Azure", CONTAINER, ITEM).properties["protectionState"]
        # IRPending: protected, its first backup not made yet (Azure's word).
        if state != ("Protected" if points else "IRPending"):
            problems.append(f"after the cut the Backup item is {state}")
        return problems, f"backup {'acknowledged' if name else 'cut short'}, {len(points)} points"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    a = ap.parse_args()
    rng = random.Random(a.seed)
    print(f"power cuts during recovery work: {a.trials} trials, seed {a.seed}")
    failed, kinds = 0, {}
    with tempfile.TemporaryDirectory(prefix="recoverite-powerloss-rec-") as work:
        rig = Rig(Path(work))
        try:
            rig.boot()
            env = set_up(rig)
            rig.m.cut(torn=False)  # the set-up, as a cut finds it
            rig.boot()
            trials = Trials(rig, env, rng)
            cycle = ["point", "point", "failover", "backup"]
            for i in range(a.trials):
                kind = cycle[i % len(cycle)]
                cuts0 = trials.cuts
                t0 = time.monotonic()
                try:
                    problems, what = getattr(trials, kind)()
                except Exception as e:  # noqa: BLE001 - not coming back is the finding
                    problems, what = [f"{type(e).__name__}: {e}"], "did not come back"
                k = kinds.setdefault(kind, [0, 0])
                k[0] += 1
                k[1] += trials.cuts - cuts0
                status = "ok" if not problems else "FAILED"
                print(f"trial {i + 1:3} {kind:8}: {status}  {what}; {trials.cuts - cuts0} cut(s), {time.monotonic() - t0:.1f} s")
                for p in problems[:5]:
                    print(f"    {p}")
                failed += bool(problems)
        finally:
            rig.m.shutdown()
    s = sorted(rig.restarts[1:]) or [0]
    print(f"\n{a.trials - failed}/{a.trials} trials passed; cuts: "
          + ", ".join(f"{k} {v[1]} in {v[0]} trials" for k, v in kinds.items())
          + f"; {trials.sr_reads} Site Recovery and {len(trials.bk_checked)} Backup points read back; "
          f"{rig.cut_short} cuts came before the operation's answer; restart after a cut: median {s[len(s) // 2]:.0f} ms, max {s[-1]:.0f} ms")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
