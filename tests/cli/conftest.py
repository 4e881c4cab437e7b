"""One recoverite server for the azure-cli suite, and `az` logged in to it
the way the README tells a user to: cloud register, instance discovery off,
service-principal login, the CA bundle in REQUESTS_CA_BUNDLE."""

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

import importlib.util

# The SDK suite's server harness, loaded under its own name.
_spec = importlib.util.spec_from_file_location("sdk_harness", Path(__file__).resolve().parent.parent / "sdk" / "conftest.py")
_harness = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_harness)
Server = _harness.Server

AZ = os.environ.get("AZ", str(Path(__file__).resolve().parents[2] / ".cli-venv" / "bin" / "az"))


class Az:
    def __init__(self, server, config_dir):
        self.server = server
        self.env = {**os.environ, "AZURE_CONFIG_DIR": config_dir, "REQUESTS_CA_BUNDLE": server.ca,
                    "AZURE_CORE_COLLECT_TELEMETRY": "0", "AZURE_CORE_NO_COLOR": "1", "AZURE_CORE_SURVEY_MESSAGE": "0"}

    def run(self, *args, check=True):
        out = subprocess.run([AZ, *args, "-o", "json"], capture_output=True, text=True, env=self.env, timeout=300)
        if check and out.returncode != 0:
            raise AssertionError(f"az {' '.join(args)} failed ({out.returncode}):\n{out.stderr[-3000:]}")
        if not check:
            return out
        text = out.stdout.strip()
        return json.loads(text) if text else None


@pytest.fixture(scope="session")
def az():
    d = Path(tempfile.mkdtemp(prefix="recoverite-cli-"))
    server = Server(d).start()
    try:
        a = Az(server, str(d / "azure-config"))
        c = server.conn
        a.run("cloud", "register", "-n", "recoverite", "--endpoint-resource-manager", c["armEndpoint"])
        a.run("cloud", "set", "-n", "recoverite")
        a.run("config", "set", "core.instance_discovery=false")
        # `--password=` because a secret may start with "-".
        a.run("login", "--service-principal", "-u", c["clientId"], f"--password={c['clientSecret']}", "--tenant", c["tenantId"])
        yield a
    finally:
        # Also when setting up failed: a server left running would hold the
        # loopback aliases and IMDS address the next run needs. Its data
        # (disk images of gigabytes) goes with it.
        server.stop()
        shutil.rmtree(d, ignore_errors=True)
