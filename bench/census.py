#!/usr/bin/env python3
"""Operation census: how much of the official Python SDKs recoverite serves.

Every `build_*_request` of the pinned packages (tests/sdk/requirements.txt)
is called with names from a small realistic estate, and the request it
builds — its method, URL and the api-version the package sends — goes to a
fresh recoverite. An operation is *served* when the answer is anything but
"recoverite does not serve this" (400 InvalidResourceType, 400
NoRegisteredProviderFound, 405 MethodNotAllowed); a validation error or a
404 for a missing child still counts as served. 5xx answers are counted
apart: there should be none.

    .venv/bin/python bench/census.py [--verbose [--why]] [--only=PACKAGE_SUFFIX]

--why prints each unserved operation's answer; --only=recoveryservicesbackup
runs one package.
"""

import importlib
import inspect
import json
import pkgutil
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "sdk"))
from conftest import Server  # noqa: E402

PACKAGES = ["azure.mgmt.resource.resources", "azure.mgmt.authorization", "azure.mgmt.msi", "azure.mgmt.network",
            "azure.mgmt.privatedns", "azure.mgmt.compute", "azure.mgmt.storage", "azure.mgmt.recoveryservices",
            "azure.mgmt.recoveryservicessiterecovery", "azure.mgmt.recoveryservicesbackup",
            "azure.mgmt.subscription", "azure.mgmt.managementgroups"]
RG = "census-rg"
# Parameter name → the estate's name for it.
NAMES = {"resource_group_name": RG, "virtual_network_name": "census-net", "subnet_name": "vms",
         "network_security_group_name": "census-nsg", "network_interface_name": "census-nic", "vm_name": "census-vm",
         "disk_name": "census-disk", "account_name": "censusacct1", "vault_name": "census-vault", "resource_name": "census-vault",
         "private_zone_name": "privatelink.census.test", "resource_name_param": "census-identity",
         "location": "eastus", "fabric_name": "census-fabric", "policy_name": "DefaultPolicy", "container_name": "census"}


# Azure Backup names its fabric and Azure VM containers and items so.
BACKUP_NAMES = {"fabric_name": "Azure", "container_name": "iaasvmcontainer;iaasvmcontainerv2;census-rg;census-vm",
                "protected_item_name": "vm;iaasvmcontainerv2;census-rg;census-vm"}


def builders(package):
    """(qualified name, function) of every request builder in a package."""
    pkg = importlib.import_module(package)
    seen = set()
    for info in pkgutil.walk_packages(pkg.__path__, package + "."):
        if ".aio" in info.name or "operations" not in info.name:
            continue
        try:
            mod = importlib.import_module(info.name)
        except Exception:
            continue
        for name, fn in inspect.getmembers(mod, inspect.isfunction):
            if name.startswith("build_") and name.endswith("_request") and fn.__module__ == mod.__name__ and name not in seen:
                seen.add(name)
                yield name, fn


def request_of(fn, sub, package=""):
    names = {**NAMES, **(BACKUP_NAMES if package.endswith("recoveryservicesbackup") else {})}
    kw = {}
    for p in inspect.signature(fn).parameters.values():
        if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) or p.default is not p.empty:
            continue
        if p.name == "subscription_id":
            kw[p.name] = sub
        elif p.name == "scope":
            kw[p.name] = f"/subscriptions/{sub}/resourceGroups/{RG}"
        elif p.name == "content_type":
            kw[p.name] = "application/json"
        else:
            kw[p.name] = names.get(p.name, "census-x")
    return fn(**kw)


def not_served(status, body):
    code = ""
    try:
        code = json.loads(body).get("error", {}).get("code", "")
    except Exception:
        pass
    return status == 405 or code in ("InvalidResourceType", "NoRegisteredProviderFound") or (
        status == 400 and "does not implement" in body)


def estate(server):
    sub = server.sub
    g = f"/subscriptions/{sub}/resourceGroups/{RG}"
    put = lambda path, body, v: server.http("PUT", f"{path}?api-version={v}", json=body)
    put(g, {"location": "eastus"}, "2021-04-01")
    put(f"{g}/providers/Microsoft.Network/networkSecurityGroups/census-nsg", {"location": "eastus"}, "2024-05-01")
    put(f"{g}/providers/Microsoft.Network/virtualNetworks/census-net", {"location": "eastus", "properties": {
        "addressSpace": {"addressPrefixes": ["10.99.0.0/16"]}, "subnets": [{"name": "vms", "properties": {"addressPrefix": "10.99.1.0/24"}}]}}, "2024-05-01")
    put(f"{g}/providers/Microsoft.Storage/storageAccounts/censusacct1", {"location": "eastus", "sku": {"name": "Standard_LRS"}, "kind": "StorageV2"}, "2025-01-01")
    put(f"{g}/providers/Microsoft.RecoveryServices/vaults/census-vault", {"location": "westus", "sku": {"name": "Standard"}, "properties": {"publicNetworkAccess": "Enabled"}}, "2025-02-01")


def send(server, token, method, url, body):
    import requests
    return requests.request(method, url, headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
                            data=body, verify=server.ca, timeout=60)


def main():
    verbose = "--verbose" in sys.argv
    server = Server(Path(tempfile.mkdtemp(prefix="recoverite-census-"))).start()
    try:
        estate(server)
        token = server.token()
        totals, errors = {}, defaultdict(list)
        only = [a.split("=", 1)[1] for a in sys.argv if a.startswith("--only=")]
        for package in [p for p in PACKAGES if not only or any(p.endswith(o) for o in only)]:
            served = total = 0
            for name, fn in builders(package):
                try:
                    req = request_of(fn, server.sub, package)
                except Exception:
                    continue
                total += 1
                url = req.url if req.url.startswith("http") else server.conn["armEndpoint"] + req.url
                body = json.dumps({}) if req.method in ("PUT", "PATCH", "POST") else None
                r = send(server, token, req.method, url, body)
                if r.status_code == 404 and "ResourceGroupNotFound" in r.text:
                    # An earlier delete took the group: every operation is
                    # judged against the same estate, so build it again.
                    estate(server)
                    r = send(server, token, req.method, url, body)
                if r.status_code >= 500:
                    errors[package].append(f"{r.status_code} {name}")
                if not not_served(r.status_code, r.text):
                    served += 1
                elif verbose:
                    print(f"  not served: {package} {name} ({req.method} {req.url.split('?')[0]})")
                    if "--why" in sys.argv:
                        print("     ", r.status_code, r.text[:200])
            totals[package] = (served, total)
        width = max(len(p) for p in totals)
        all_s = sum(s for s, _ in totals.values())
        all_t = sum(t for _, t in totals.values())
        for p, (s, t) in totals.items():
            print(f"{p:<{width}}  {s:>4} / {t:<4} served")
        print(f"{'all packages':<{width}}  {all_s:>4} / {all_t:<4} served; 5xx answers: {sum(len(v) for v in errors.values())}")
        for p, es in errors.items():
            for e in es:
                print(f"  5xx: {p} {e}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
