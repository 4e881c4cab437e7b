"""Instances side by side (issue 15): two more recoverites start while the
suite's server runs, each takes its own instance slot (its gateway, IMDS
and default ports move with it), and both run document 000's network
walkthrough at the same time — the same loopback aliases in both models,
each connection decided by its own instance."""

import tempfile
import threading
from pathlib import Path

from conftest import Server
from test_examples import load


def test_two_instances_run_document_000_at_once(server):
    dirs = [tempfile.TemporaryDirectory(prefix="recoverite-side-") for _ in range(2)]
    others = []
    try:
        for d in dirs:
            others.append(Server(Path(d.name)).start())
        slots = {server.slot, *(s.slot for s in others)}
        assert len(slots) == 3, slots
        # Each keeps its slot across a restart.
        before = others[0].slot
        others[0].restart()
        assert others[0].slot == before
        results, errors = {}, []

        def walk(s):
            try:
                results[s.slot] = load("doc000_network").main(str(s.data_dir / "connection.json"))
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(repr(e))

        threads = [threading.Thread(target=walk, args=(s,)) for s in others]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=240)
        assert not errors, errors
        assert len(results) == 2
        for slot, out in results.items():
            # The NSG of that instance refuses, then its test target answers.
            assert out["first"] == "" and "securityRules/deny-internet" in out["first_reason"], (slot, out)
            assert out["second"].startswith("recoverite test target drtarget via public endpoint"), (slot, out)
    finally:
        for s in others:
            s.stop()
        for d in dirs:
            d.cleanup()
        # Helpers talk to the suite's server again (the last started sets the slot).
        import conftest
        conftest.CURRENT_SLOT = server.slot
        # The suite's server was never stopped: it still answers.
        assert server.http("GET", "/subscriptions?api-version=2022-12-01").status_code == 200
