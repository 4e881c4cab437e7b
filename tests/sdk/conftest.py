"""Starts recoverite for the SDK tests: a fresh data directory, a free port,
and the connection file as the readiness signal."""

import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("RECOVERITE_BIN", ROOT / "target" / "debug" / "recoverite"))


# The slot of the server started last (the one the tests talk to).
CURRENT_SLOT = 0


def gw_port(model):
    """Where model port `model` of a loopback alias is served (recoverite_listen::instance)."""
    return (model + 10000 if model < 1024 else model) + CURRENT_SLOT


class Server:
    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.proc = None
        self.conn = None

    def start(self, timeout=20.0):
        conn_file = self.data_dir / "connection.json"
        if conn_file.exists():
            conn_file.unlink()
        self.log = open(self.data_dir / "server.log", "ab")
        self.proc = subprocess.Popen(
            [str(BIN), "serve", "--data-dir", str(self.data_dir), "--port", "0", "--dns-port", "0", "--nbd-port", "0"],
            stdout=self.log,
            stderr=self.log,
        )
        deadline = time.time() + timeout
        while not conn_file.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"recoverite exited: {(self.data_dir / 'server.log').read_text()}")
            if time.time() > deadline:
                raise TimeoutError("recoverite did not write connection.json")
            time.sleep(0.02)
        self.conn = json.loads(conn_file.read_text())
        global CURRENT_SLOT
        CURRENT_SLOT = self.slot
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=10)
        self.proc = None

    def restart(self):
        self.stop()
        return self.start()

    # Helpers -------------------------------------------------------------
    @property
    def slot(self):
        """The instance slot: its gateway serves model port p on p+10000 (p<1024) or p, plus the slot."""
        return self.conn.get("instanceSlot", 0)

    @property
    def ca(self):
        return self.conn["caCertFile"]

    @property
    def sub(self):
        return self.conn["subscriptionId"]

    def credential(self, client_id=None, secret=None):
        # Imported here so the azure-cli suite can use this harness without it.
        from azure.identity import ClientSecretCredential

        return ClientSecretCredential(
            self.conn["tenantId"],
            client_id or self.conn["clientId"],
            secret or self.conn["clientSecret"],
            authority=self.conn["authority"],
            connection_verify=self.ca,
            disable_instance_discovery=True,
        )

    def client(self, cls, credential=None, **kw):
        return cls(
            credential or self.credential(),
            self.sub,
            base_url=self.conn["armEndpoint"],
            connection_verify=self.ca,
            polling_interval=1,
            **kw,
        )

    def token(self, credential=None, scope="https://management.azure.com/.default"):
        return (credential or self.credential()).get_token(scope).token

    def http(self, method, path, token=None, **kw):
        headers = kw.pop("headers", {})
        if token is not False:
            headers.setdefault("Authorization", f"Bearer {token or self.token()}")
        return requests.request(method, self.conn["armEndpoint"] + path, headers=headers, verify=self.ca, **kw)

    def cli(self, *args):
        out = subprocess.run([str(BIN), *args, "--data-dir", str(self.data_dir)], capture_output=True, text=True, check=True)
        return json.loads(out.stdout)


def kill_during(server, fn, delay):
    """Runs fn in a thread, SIGKILLs the server after `delay` seconds, waits
    for fn to end (its connection dies with the server) and restarts it.
    Returns {"value": …} or {"error": …}."""
    import threading
    result = {}

    def run():
        try:
            result["value"] = fn()
        except Exception as e:  # the connection dies with the server
            result["error"] = e

    t = threading.Thread(target=run)
    t.start()
    time.sleep(delay)
    server.proc.kill()
    server.proc.wait()
    t.join(timeout=60)
    server.proc = None
    server.start()
    return result


@pytest.fixture(scope="session")
def server():
    yield from _serve("recoverite-sdk-")


@pytest.fixture(scope="module")
def isolated_server(server):
    """A server of the module's own, for tests that change the tenant
    (subscriptions, management groups) which every other test would see.
    The shared server stops meanwhile, so the helpers' instance slot
    (`gw_port`) is the one the test talks to."""
    server.stop()
    try:
        yield from _serve("recoverite-sdk-own-")
    finally:
        server.start()


@pytest.fixture
def own_server(server):
    """Like `isolated_server`, for one test only."""
    server.stop()
    try:
        yield from _serve("recoverite-sdk-own-")
    finally:
        server.start()


def _serve(prefix):
    with tempfile.TemporaryDirectory(prefix=prefix) as d:
        s = Server(Path(d)).start()
        try:
            yield s
        finally:
            died = s.proc is not None and s.proc.poll() is not None
            s.stop()
            log = (Path(d) / "server.log").read_text(errors="replace")
            if died or "panicked" in log:
                print(f"\nrecoverite exited or panicked during the tests; its log ends with:\n{log[-4000:]}")


def wait_listening(addr, timeout=10):
    """The gateway starts listening on a new alias (an account's, an
    endpoint's) when it next reconciles, right after the write that made it."""
    import socket
    end = time.time() + timeout
    while True:
        try:
            socket.create_connection(addr, timeout=0.5).close()
            return
        except OSError:
            if time.time() > end:
                raise
            time.sleep(0.05)


def wait_job(bk, vault, rg, job_id, timeout=180):
    """A Backup job as `az backup job wait` follows it: until it is neither
    InProgress nor Cancelling (an Azure VM backup runs after its 202, as in
    Azure; a cancelled one is Cancelling until it has stopped)."""
    deadline = time.time() + timeout
    while True:
        job = bk.job_details.get(vault, rg, job_id)
        if job.properties.status not in ("InProgress", "Cancelling"):
            return job
        assert time.time() < deadline, f"job {job_id} still InProgress after {timeout} s"
        time.sleep(0.1)


def backup_and_wait(bk, vault, rg, container, item, body=None, timeout=180):
    """Backup now as azure-cli runs it: trigger, the Azure-AsyncOperation's
    last segment → backupOperations/{id} → jobId, then wait for the job."""
    headers = bk.backups.trigger(vault, rg, "Azure", container, item,
                                 body or {"properties": {"objectType": "IaasVMBackupRequest"}},
                                 cls=lambda resp, b, h: resp.http_response.headers)
    op_id = headers["Azure-AsyncOperation"].split("?")[0].rstrip("/").split("/")[-1]
    status = bk.backup_operation_statuses.get(vault, rg, op_id)
    assert status.status == "Succeeded", status
    return wait_job(bk, vault, rg, status.properties.job_id, timeout)


def wait_no_running_backups(bk, vault, rg, timeout=180):
    """Until no Backup job of the vault is InProgress (backups accepted
    before a restart run again when the service is back)."""
    deadline = time.time() + timeout
    while any(j.properties.status == "InProgress" for j in bk.backup_jobs.list(vault, rg)):
        assert time.time() < deadline, "backups still running"
        time.sleep(0.2)


def restore_and_wait(bk, vault, rg, container, item, point, body, timeout=180):
    """A restore as azure-cli runs it: trigger, backupOperations/{id} →
    jobId, then wait for the Restore job (it runs after the 202, as in Azure)."""
    headers = bk.restores.begin_trigger(vault, rg, "Azure", container, item, point, body, polling=False,
                                        cls=lambda resp, b, h: resp.http_response.headers).result()
    op_id = headers["Azure-AsyncOperation"].split("?")[0].rstrip("/").split("/")[-1]
    status = bk.backup_operation_statuses.get(vault, rg, op_id)
    assert status.status == "Succeeded", status
    return wait_job(bk, vault, rg, status.properties.job_id, timeout)
