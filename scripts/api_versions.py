#!/usr/bin/env python3
"""Regenerates each provider's `api-versions.txt`: which api-versions every
served resource type takes.

Azure publishes an api-version for a type when the REST API specification
has an api-version folder (`specification/<service>/resource-manager/<ns>/
{stable,preview}/<version>/`) whose operations cover it. The official SDKs
are generated from those folders and keep one sub-package per folder
(multi-api releases) or the folder's version in every request builder, so
their request templates tell, operation by operation, which type each
published version serves. This script reads them:

- the multi-api Python releases (downloaded, not installed, into a cache);
- the pinned Python SDKs in `.venv` (tests/sdk/requirements.txt);
- the pinned JavaScript SDKs in `tests/js/node_modules`;
- the pinned azure-cli in `.cli-venv` (its SDKs and its aaz commands);

and adds every (type, version) it finds to the tables, keeping what they
already hold, each version with where it was seen. Run it after changing a
pin: `python3 scripts/api_versions.py [--download]`.
"""

import argparse
import io
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "target" / "api-version-sources"

# Multi-api Python releases: one sub-package per spec api-version folder.
MULTI_API = ["azure-mgmt-compute==30.6.0", "azure-mgmt-storage==21.2.1", "azure-mgmt-resource==23.1.1",
             "azure-mgmt-authorization==4.0.0", "azure-mgmt-msi==7.0.0", "azure-mgmt-network==19.3.0",
             "azure-mgmt-privatedns==1.2.0", "azure-mgmt-recoveryservices==3.0.0",
             "azure-mgmt-recoveryservicesbackup==9.1.0", "azure-mgmt-recoveryservicessiterecovery==1.2.0",
             "azure-mgmt-managementgroups==1.0.0", "azure-mgmt-subscription==3.1.1"]

VERSION = r"20\d\d-\d\d-\d\d(?:-preview|-privatepreview|-beta)?"

# api-version folders read from the specification's own readme tags (path at
# a commit), for services whose SDKs are single-version releases.
SPEC_READMES = {
    ("Microsoft.RecoveryServices", ("vaults",)): (
        "specification/recoveryservices/resource-manager/readme.md@bf5e09a",
        ["2016-06-01", "2020-02-02", "2020-10-01", "2021-01-01", "2021-02-10", "2021-03-01",
         "2021-04-01", "2021-06-01", "2021-07-01", "2021-08-01"]),
}


def tables():
    """data file → (namespace, [(section types, matcher)]); a matcher takes
    the URL's type names after the namespace and says whether it belongs."""
    def first(*names):
        low = {n.lower() for n in names}
        return lambda t: bool(t) and t[0].lower() in low

    def rs(kind):
        def m(t):
            if not t or t[0].lower() not in ("vaults", "locations"):
                return False
            second = t[1].lower() if len(t) > 1 else ""
            if kind == "sr":
                return second.startswith("replication")
            if kind == "backup":
                return second.startswith("backup") or (t[0].lower() == "locations" and second.startswith("backup"))
            return not second.startswith("replication") and not second.startswith("backup")
        return m

    return {
        "crates/rp-network/api-versions.txt": ("Microsoft.Network", [
            (["virtualNetworks", "networkSecurityGroups", "routeTables", "networkInterfaces", "networkWatchers", "privateEndpoints"],
             first("virtualNetworks", "networkSecurityGroups", "routeTables", "networkInterfaces", "networkWatchers", "privateEndpoints"))]),
        "crates/rp-privatedns/api-versions.txt": ("Microsoft.Network", [
            (["privateDnsZones"], first("privateDnsZones"))]),
        "crates/rp-compute/api-versions.txt": ("Microsoft.Compute", [
            (["virtualMachines", "availabilitySets"], first("virtualMachines", "availabilitySets")),
            (["disks", "snapshots"], first("disks", "snapshots")),
            (["restorePointCollections"], first("restorePointCollections"))]),
        "crates/rp-storage/api-versions.txt": ("Microsoft.Storage", [
            (["storageAccounts", "checkNameAvailability", "operations"], first("storageAccounts", "checkNameAvailability"))]),
        "crates/rp-msi/api-versions.txt": ("Microsoft.ManagedIdentity", [
            (["userAssignedIdentities", "identities"], first("userAssignedIdentities", "identities"))]),
        "crates/rs-core/api-versions.txt": ("Microsoft.RecoveryServices", [
            (["vaults", "locations"], rs("vaults")),
            (["vaults/replicationFabrics", "vaults/replicationProtectionContainers", "vaults/replicationProtectionContainerMappings",
              "vaults/replicationPolicies", "vaults/replicationJobs", "vaults/replicationProtectedItems",
              "vaults/replicationNetworkMappings", "vaults/replicationUsages"], rs("sr")),
            (["vaults/backupFabrics", "vaults/backupProtectionContainers", "vaults/backupPolicies", "vaults/backupProtectableItems",
              "vaults/backupProtectedItems", "vaults/backupJobs", "vaults/backupstorageconfig", "vaults/backupconfig",
              "vaults/backupOperations", "vaults/backupOperationResults",
              "vaults/backupEncryptionConfigs", "vaults/backupResourceGuardProxies",
              "locations/backupAadProperties", "locations/backupCrossRegionRestore", "locations/backupCrrJob",
              "locations/backupCrrJobs", "locations/backupCrrOperationResults", "locations/backupCrrOperationsStatus"],
             rs("backup"))]),
        "crates/identity/api-versions.txt": ("Microsoft.Authorization", [
            (["roleAssignments"], first("roleAssignments")),
            (["roleDefinitions", "permissions"], first("roleDefinitions", "permissions"))]),
        "crates/rp-resources/api-versions.txt": ("Microsoft.Resources", [
            (["tenants", "subscriptions", "resourceGroups"], first("tenants", "subscriptions", "resourceGroups"))]),
        "crates/rp-deployments/api-versions.txt": ("Microsoft.Resources", [
            (["deployments"], first("deployments"))]),
        "crates/rp-management/api-versions.txt": ("Microsoft.Management", [
            (["managementGroups", "checkNameAvailability"], first("managementGroups"))]),
        "crates/rp-management/subscription-api-versions.txt": ("Microsoft.Subscription", [
            (["aliases", "rename"], first("aliases"))]),
    }


def url_types(url):
    """(namespace, type names) of a request template, or None."""
    url = url.split("{?")[0].split("?")[0]
    if "/providers/" not in url:
        if re.search(r"/resourcegroups/\{[^}]+\}$", url, re.I) or re.search(r"/resourcegroups$", url, re.I):
            return ("Microsoft.Resources", ("resourceGroups",))
        if re.fullmatch(r"/subscriptions(/\{[^}]+\})?", url):
            return ("Microsoft.Resources", ("subscriptions",))
        if url == "/tenants":
            return ("Microsoft.Resources", ("tenants",))
        return None
    tail = url.split("/providers/")[-1].strip("/").split("/")
    ns, rest = tail[0], tail[1:]
    types = tuple(s for s in rest[0::2] if not s.startswith("{"))
    return (ns, types)


def python_pairs(text):
    """(url, version) for each request builder of a Python SDK module."""
    for body in re.split(r"\ndef build_", text)[1:]:
        body = body.split("\ndef ")[0].split("\nclass ")[0]
        url = re.search(r'(?:template_url",\s*|_url\s*=\s*)"(/[^"]*)"', body)
        ver = re.search(r'api[-_]version[^\n]*?"(' + VERSION + ')"', body)
        if url and ver:
            yield url.group(1), ver.group(1)
    # Older generated code: each method's `metadata = {'url': …}` and the
    # module's one `api_version = "…"` (one module per version folder).
    if "\ndef build_" not in text:
        versions = set(re.findall(r'api_version\s*=\s*["\'](' + VERSION + ')["\']', text))
        for url in re.findall(r"metadata\s*=\s*\{\s*['\"]url['\"]\s*:\s*['\"](/[^'\"]+)['\"]", text):
            for v in versions:
                yield url, v


def js_pairs(text):
    """(url, version): each template followed by its api-version literal."""
    for m in re.finditer(r'"(/(?:subscriptions|providers|\{)[^"]*)"', text):
        url = m.group(1)
        after = text[m.end():m.end() + 600]
        v = re.search(r'(?:api%2Dversion"|apiVersion)\s*:\s*[^"\n]{0,40}"(' + VERSION + ')"', after)
        if v:
            yield url, v.group(1)


def scan_python_tree(files, label, found):
    for name, text in files:
        for url, v in python_pairs(text):
            t = url_types(url)
            if t:
                found.setdefault(t, {}).setdefault(v, set()).add(label)


def scan_js_tree(root, label, found):
    for p in Path(root).rglob("*.js"):
        if "/esm/" in str(p) or "/browser/" in str(p):
            continue
        text = p.read_text(errors="replace")
        pairs = list(js_pairs(text))
        if not pairs:
            # AutoRest-style bundles: operation specs name an `api-version`
            # parameter whose default is the package's version.
            versions = set(re.findall(r'defaultValue:\s*"(' + VERSION + ')",\s*isConstant:\s*true,\s*serializedName:\s*"api-version"', text))
            pairs = [(u, v) for u in re.findall(r'path:\s*"(/[^"]+)"', text) for v in versions]
        for url, v in pairs:
            t = url_types(url)
            if t:
                found.setdefault(t, {}).setdefault(v, set()).add(label)
    # AutoRest JS: every operation spec of the package takes the package's one version.
    params = list(Path(root).rglob("commonjs/models/parameters.js"))
    for pf in params:
        versions = set(re.findall(r'defaultValue:\s*"(' + VERSION + ')"[^}]*serializedName:\s*"api-version"', pf.read_text(), re.S))
        ops = Path(pf).parent.parent / "operations"
        for op in ops.glob("*.js"):
            for url in re.findall(r'path:\s*"(/[^"]+)"', op.read_text()):
                t = url_types(url)
                for v in versions:
                    if t:
                        found.setdefault(t, {}).setdefault(v, set()).add(label)


def wheel_files(path):
    with zipfile.ZipFile(path) as z:
        for n in z.namelist():
            if n.endswith(".py") and "/operations/" in n or n.endswith("_operations.py"):
                yield n, z.read(n).decode(errors="replace")


def installed(site):
    for p in Path(site).glob("azure/mgmt/**/*.py"):
        if "operations" in p.name or "/operations/" in str(p):
            yield str(p), p.read_text(errors="replace")


def parse_table(path):
    sections, cur = [], None
    if not path.exists():
        return sections
    for line in path.read_text().splitlines():
        body = line.split("#")[0].strip()
        if body.startswith("["):
            cur = (body[1:-1].split(), {})
            sections.append(cur)
        elif body and cur is not None:
            v, *src = body.split(None, 1)
            cur[1][v] = set(s.strip() for s in (src[0].split(";") if src else []) if s.strip())
    return sections


def write_table(path, namespace, sections):
    out = [f"# {namespace} api-versions by resource type (see crates/arm/src/api_version.rs).",
           "# Each version is one Azure publishes (an api-version folder of the REST API",
           "# specification), with the official clients it was found in. Regenerate with",
           "# scripts/api_versions.py; do not hand-edit a version in without its source.", ""]
    for types, versions in sections:
        out.append("[" + " ".join(types) + "]")
        for v in sorted(versions):
            src = "; ".join(sorted(versions[v]))
            out.append(f"{v:<22}{src}".rstrip())
        out.append("")
    path.write_text("\n".join(out))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--download", action="store_true", help="fetch the multi-api releases into the cache first")
    args = ap.parse_args()
    CACHE.mkdir(parents=True, exist_ok=True)
    if args.download:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(CACHE), *MULTI_API], check=True)
    found = {}
    for w in sorted(CACHE.glob("*.whl")):
        scan_python_tree(wheel_files(w), w.name.split("-py")[0].replace("_", "-"), found)
    for site in (ROOT / ".venv").glob("lib/python3*/site-packages"):
        scan_python_tree(installed(site), "pinned Python SDK", found)
    for site in (ROOT / ".cli-venv").glob("lib/python3*/site-packages"):
        scan_python_tree(installed(site), "azure-cli", found)
        # aaz commands: each request's URL, then its api-version a little later.
        for p in Path(site).glob("azure/cli/command_modules/**/aaz/**/*.py"):
            text = p.read_text(errors="replace")
            for m in re.finditer(r'format_url\(\s*"(/subscriptions/[^"]+)"', text):
                v = re.search(r'"api-version",\s*"(' + VERSION + ')"', text[m.end():m.end() + 2500])
                t = url_types(m.group(1))
                if v and t:
                    found.setdefault(t, {}).setdefault(v.group(1), set()).add("azure-cli aaz")
    for (ns, types), (src, versions) in SPEC_READMES.items():
        for v in versions:
            found.setdefault((ns, types), {}).setdefault(v, set()).add(src)
    js = ROOT / "tests" / "js" / "node_modules" / "@azure"
    if js.exists():
        for pkg in js.glob("arm-*"):
            scan_js_tree(pkg / "dist", "pinned JS SDK", found)
    for rel, (ns, config) in tables().items():
        path = ROOT / rel
        old = parse_table(path)
        sections = []
        for types, matcher in config:
            versions = next((v for t, v in old if [x.lower() for x in t] == [x.lower() for x in types]), {})
            for (fns, ftypes), vs in found.items():
                if fns.lower() == ns.lower() and matcher(ftypes):
                    for v, srcs in vs.items():
                        versions.setdefault(v, set()).update(srcs)
            sections.append((types, versions))
        write_table(path, ns, sections)
        print(f"{rel}: " + ", ".join(f"{t[0]}… {len(v)} versions" for t, v in sections))


if __name__ == "__main__":
    main()
