"""Requests to the Blob data plane through the gateway, signed with an
account key (Shared Key), as the storage SDKs send them."""

import base64
import hashlib
import hmac
import socket
from email.utils import formatdate

from conftest import gw_port, wait_listening


def shared_key_request(method, account, key, alias, path, query, headers=None):
    """A Shared Key request; `headers` are extra `x-ms-*` headers (signed)."""
    ms = {"x-ms-date": formatdate(usegmt=True), "x-ms-version": "2025-01-05", **(headers or {})}
    canon = "".join(f"{k}:{v}\n" for k, v in sorted(ms.items()))
    params = sorted((k.lower(), v) for k, v in (p.split("=", 1) for p in query.split("&") if p))
    text = f"{method}\n" + "\n" * 11 + canon + f"/{account}{path}" + "".join(f"\n{k}:{v}" for k, v in params)
    sig = base64.b64encode(hmac.new(base64.b64decode(key), text.encode(), hashlib.sha256).digest()).decode()
    head = "".join(f"{k}: {v}\r\n" for k, v in ms.items() if k != "x-ms-version")
    return raw_blob(method, account, alias, path, query, f"{head}Authorization: SharedKey {account}:{sig}\r\n")


def shared_key_get(account, key, alias, path, query):
    return shared_key_request("GET", account, key, alias, path, query)


def raw_blob(method, account, alias, path, query, headers=""):
    """One HTTP request to the Blob service through the gateway's alias."""
    wait_listening((alias, gw_port(443)))
    s = socket.socket()
    s.settimeout(5)
    s.connect((alias, gw_port(443)))
    target = f"{path}?{query}" if query else path
    s.sendall((f"{method} {target} HTTP/1.1\r\nHost: {account}.blob.core.windows.net\r\nx-ms-version: 2025-01-05\r\n"
               f"{headers}Content-Length: 0\r\nConnection: close\r\n\r\n").encode())
    data = b""
    while chunk := s.recv(4096):
        data += chunk
    s.close()
    return data.decode(errors="replace")


def status_of(answer):
    return int(answer.split(" ", 2)[1])
