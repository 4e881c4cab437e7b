"""The README's walkthroughs run as tests, so they keep working."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_document_000_network_walkthrough(server, capsys):
    out = load("doc000_network").main(str(server.data_dir / "connection.json"))
    assert out["first"] == "" and "securityRules/deny-internet" in out["first_reason"]
    assert out["second"].startswith("recoverite test target drtarget via public endpoint")
    printed = capsys.readouterr().out
    assert "source   VM" in printed and "-> 10.0.2.4" in printed
    assert "recovery VM" in printed and "-> 10.1.2.4" in printed


def test_document_000_vault_walkthrough(server):
    out = load("doc000_vault").main(str(server.data_dir / "connection.json"))
    assert len(out["answers"]) == 5
    for public_name, row in out["answers"].items():
        private_name = public_name.replace(".siterecovery.", ".privatelink.siterecovery.")
        assert row["source"] == out["endpoint_ips"]["source"][private_name]
        assert row["recovery"] == out["endpoint_ips"]["recovery"][private_name]
        assert row["source"].startswith("10.10.") and row["recovery"].startswith("10.11.")
        assert row["unlinked"].startswith("52.136.")


def test_document_000_replication_walkthrough(server):
    import shutil
    import pytest
    if shutil.which("qemu-io") is None:
        pytest.skip("qemu-io (qemu-utils) is not installed")
    out = load("doc000_replication").main(str(server.data_dir / "connection.json"))
    # The doctor gates the walkthrough: document 000's set-up passes every check.
    failed = [c for c in out["doctor"]["checks"] if c["status"] == "fail"]
    assert out["doctor"]["passed"] is True and not failed, failed
    names = [c["check"] for c in out["doctor"]["checks"]]
    assert any(n.startswith("cache storage account") for n in names) and any(n.startswith("Site Recovery monitoring") for n in names), names
    assert out["failover"][0], out["failover"][1]
    assert out["failback"][0], out["failback"][1]
    # Unlinked: the name resolves publicly, and the locked-down vault refuses.
    assert out["trap"] and "52.136." in out["trap"] and "public network access is disabled" in out["trap"], out["trap"]
    # 0xd4 was written after the failover point, nothing else differs.
    assert out["resync"] == 0 and out["again"] == 0, (out["resync"], out["again"])
    assert out["vm"].endswith("/resourceGroups/dr-app-asr/providers/Microsoft.Compute/virtualMachines/app")
    for s in ("EnableDr", "UnplannedFailover", "CommitFailover", "SwitchProtection"):
        assert s in out["jobs"]


def test_hub_and_spoke_walkthrough(own_server):
    """Issue 16: three subscriptions, the hub's zones answering both spokes,
    cross-subscription endpoints, peering, roles and Site Recovery."""
    import shutil
    import pytest
    if shutil.which("qemu-io") is None:
        pytest.skip("qemu-io (qemu-utils) is not installed")
    out = load("hub_spoke").main(str(own_server.data_dir / "connection.json"))
    assert len(set(out["subs"].values())) == 3
    # Contributor on spoke 1 only: the vault in spoke 2 is not theirs to approve.
    assert out["requested"] == "Pending"
    # …nor may they write into the hub's zone or peer with spoke 2's network.
    assert out["linked"] == {"zone group": "LinkedAuthorizationFailed", "peering": "LinkedAuthorizationFailed"}
    assert out["endpoints"] == {"s1-vnet": "Approved", "s2-vnet": "Approved"}
    assert out["peering"] == "Connected"
    for public, row in out["answers"].items():
        # Both spokes are answered from the hub's zone, with the record it holds.
        assert row["s1-vm"] == [row["hub"]] and row["s2-vnet"] == [row["hub"]], (public, row)
        assert any("privatelink.siterecovery.windowsazure.com" in t and out["subs"]["hub"] in t for t in row["trace"]), row["trace"]
    assert out["health"] == "Normal"
    assert out["bytes"][0], out["bytes"][1]
    assert out["vm"].startswith(f"/subscriptions/{out['subs']['spoke-2']}/resourceGroups/s2-recovery/"), out["vm"]
    assert "app_DataDisk_0-ASRReplica" in out["replica_disks"]


def test_backup_walkthrough(server):
    import shutil
    import pytest
    if shutil.which("qemu-io") is None:
        pytest.skip("qemu-io (qemu-utils) is not installed")
    out = load("backup_vm").main(str(server.data_dir / "connection.json"))
    assert out["jobs"] == ["Completed", "Completed"] and out["points"] == 2
    assert len(out["restored"]) == 2 and out["bytes"]
