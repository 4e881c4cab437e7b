"""Bad input changes nothing and never panics the server (issue 15's
findings): a huge skip token, a clock moved past year 9999, an unplanned
failover with an empty body, removing a protected item that does not
exist, and an empty container registration."""

from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.recoveryservices import RecoveryServicesClient

import asr

API = "api-version=2025-04-01"


def test_a_skip_token_past_the_end_is_an_empty_last_page(server):
    r = server.http("GET", f"/subscriptions/{server.sub}/resourcegroups?{API}&$skiptoken=18446744073709551615")
    assert r.status_code == 200, r.text
    assert r.json()["value"] == [] and not r.json().get("nextLink")
    r = server.http("GET", f"/subscriptions/{server.sub}/resourcegroups?{API}&$skiptoken=99999999999999999999999")
    assert r.status_code == 400 and r.json()["error"]["code"] == "InvalidSkipToken"


def test_the_clock_cannot_be_moved_past_year_9999(server):
    before = server.http("GET", "/recoverite/clock").json()["now"]
    for body in ({"hours": 1e300}, {"seconds": 9.3e18}, {"hours": 24 * 365 * 9000}):
        r = server.http("POST", "/recoverite/clock/advance", json=body)
        assert r.status_code == 400, (body, r.text)
    after = server.http("GET", "/recoverite/clock").json()["now"]
    assert after[:4] == before[:4], (before, after)
    assert server.proc.poll() is None, "the server is still up"


def test_empty_bodies_change_nothing(server):
    asr.groups(server, ("hostile-rg", "eastus"), ("hostile-rg-asr", "centralus"))
    net = server.client(NetworkManagementClient)
    vnet = net.virtual_networks.begin_create_or_update("hostile-rg", "v", {"location": "eastus", "properties": {
        "addressSpace": {"addressPrefixes": ["10.65.0.0/16"]},
        "subnets": [{"name": "vms", "properties": {"addressPrefix": "10.65.1.0/24"}},
                    {"name": "pe", "properties": {"addressPrefix": "10.65.2.0/24"}}]}}).result()
    vm = asr.vm(server, "hostile-rg", "hvm", vnet.subnets[0].id, os_gb=1)
    sr, pol, tc = asr.vault(server, "hostile-rg", "hostile-vault", target="centralus")
    cache = asr.cache(server, "hostile-rg", "hostilecache")
    item = asr.protect(server, sr, "hostile-rg", "hostile-vault", "hvm", vm, pol, tc, cache.id, "hostile-rg-asr")
    base = item.id
    # An unplanned failover with no body fails nothing over.
    for body in (None, {}, {"properties": "now"}):
        r = server.http("POST", f"{base}/unplannedFailover?api-version=2025-08-01", json=body)
        assert r.status_code == 400 and r.json()["error"]["code"] == "InvalidRequestContent", r.text
    assert sr.replication_protected_items.get("hostile-rg", "hostile-vault", "east", "east-c", "hvm").properties.protection_state == "Protected"
    # Removing or purging an item that does not exist is a 404, as in Azure.
    missing = base.rsplit("/", 1)[0] + "/nope"
    r = server.http("POST", f"{missing}/remove?api-version=2025-08-01", json={"properties": {"disableProtectionReason": "NotSpecified"}})
    assert r.status_code == 404, r.text
    r = server.http("DELETE", f"{missing}?api-version=2025-08-01")
    assert r.status_code == 404, r.text
    # Stop replicating (agents of later tests share the server).
    sr.replication_protected_items.begin_delete("hostile-rg", "hostile-vault", "east", "east-c", "hvm", {
        "properties": {"disableProtectionReason": "NotSpecified"}}).result()

    # An empty container registration does not mark a vault (its endpoints stay possible).
    rs = server.client(RecoveryServicesClient)
    v = rs.vaults.begin_create_or_update("hostile-rg", "hostile-empty", {"location": "eastus", "sku": {"name": "Standard"}}).result()
    for body in (None, {}, {"properties": {}}):
        r = server.http("PUT", f"{v.id}/backupFabrics/Azure/protectionContainers/VMAppContainer;compute;hostile-rg;x?api-version=2026-10-01", json=body)
        assert r.status_code == 400, r.text
    pe = net.private_endpoints.begin_create_or_update("hostile-rg", "still-ok", {"location": "eastus", "properties": {
        "subnet": {"id": vnet.subnets[1].id}, "privateLinkServiceConnections": [{"name": "b", "properties": {
            "privateLinkServiceId": v.id, "groupIds": ["AzureBackup"]}}]}}).result()
    assert pe.provisioning_state == "Succeeded"


def test_token_endpoints_refuse_large_bodies_before_reading_them(server):
    import requests
    c = server.conn
    url = f"{c['authority']}/{c['tenantId']}/oauth2/v2.0/token"
    # The server may answer and close while the body is still being sent
    # (it need not read it): the answer is read whether or not sending ends.
    import socket
    import ssl
    from urllib.parse import urlparse
    u = urlparse(url)
    tls = ssl.create_default_context(cafile=server.ca)
    body = "grant_type=client_credentials&pad=" + "x" * (1 << 20)
    with socket.create_connection((u.hostname, u.port), timeout=30) as raw:
        with tls.wrap_socket(raw, server_hostname=u.hostname) as s:
            try:
                s.sendall((f"POST {u.path} HTTP/1.1\r\nHost: {u.netloc}\r\nConnection: close\r\n"
                           f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n{body}").encode())
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                pass
            head = s.recv(4096).decode(errors="replace")
    assert head.startswith("HTTP/1.1 413"), head
    # An ordinary request still works.
    r = requests.post(url, data={"grant_type": "client_credentials", "client_id": c["clientId"], "client_secret": c["clientSecret"],
                                 "scope": "https://management.azure.com/.default"}, verify=server.ca, timeout=30)
    assert r.status_code == 200 and r.json()["access_token"]
