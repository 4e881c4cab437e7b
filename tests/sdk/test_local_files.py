"""The local trust boundary (issue 10, first part): the data directory is the
instance's alone, and the files holding secrets or state are readable by
its owner only, from the moment they exist."""

import stat


def mode(p):
    return stat.S_IMODE(p.stat().st_mode)


def test_data_directory_and_secrets_are_private(server):
    d = server.data_dir
    server.token()  # the signing key is made on first use
    assert mode(d) == 0o700
    keys = list((d / "tls").glob("*key*"))
    assert keys and all(mode(k) == 0o600 for k in keys), [(k.name, oct(mode(k))) for k in keys]
    for f in ("connection.json", "state.redb", "keys/token-signing.pem"):
        assert mode(d / f) == 0o600, (f, oct(mode(d / f)))
    # A restart keeps it so (connection.json is written anew).
    server.restart()
    assert mode(d) == 0o700 and mode(d / "connection.json") == 0o600


def test_unserved_types_say_recoverite_does_not_implement_them(server):
    r = server.http("GET", f"/subscriptions/{server.sub}/resourceGroups/x/providers/Microsoft.Compute/galleries?api-version=2024-03-03")
    body = r.json()["error"]
    # Azure's code, so SDKs behave; a message that says what is going on.
    assert r.status_code == 400 and body["code"] == "InvalidResourceType"
    assert "recoverite does not implement it" in body["message"], body


def test_disks_are_served_on_an_owner_only_unix_socket(server):
    import shutil
    import subprocess
    from azure.mgmt.compute import ComputeManagementClient
    from azure.mgmt.resource.resources import ResourceManagementClient

    info = server.http("GET", "/recoverite/nbd").json()
    sock = server.data_dir / "nbd.sock"
    assert info["socket"] == str(sock) and stat.S_ISSOCK(sock.stat().st_mode)
    assert mode(sock) == 0o600
    server.client(ResourceManagementClient).resource_groups.create_or_update("nbd-unix-rg", {"location": "eastus"})
    server.client(ComputeManagementClient).disks.begin_create_or_update("nbd-unix-rg", "d1", {
        "location": "eastus", "sku": {"name": "Standard_LRS"},
        "properties": {"creationData": {"createOption": "Empty"}, "diskSizeGB": 1}}).result()
    uri = info["unixUri"].replace("{resourceGroup}", "nbd-unix-rg").replace("{diskName}", "d1")
    assert uri == f"nbd+unix:///nbd-unix-rg/d1?socket={sock}"
    out = subprocess.run([shutil.which("qemu-io"), "-f", "raw", "-c", "write -P 0x3c 0 64k", "-c", "read -P 0x3c 0 64k", uri],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "Pattern verification failed" not in out.stdout, out.stdout + out.stderr
