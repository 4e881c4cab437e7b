#!/usr/bin/env python3
"""Template deployment benchmark: a 50-resource template (25 network security
groups with property-copied rules, 10 route tables, 10 virtual networks whose
subnets use those groups, 5 user-assigned identities) deployed with the
official SDK, and — in the same run, on the same server — the same 50
resources created the way a script without templates would: one SDK call
after another. With azure-cli installed (.cli-venv), `az deployment group
create` of the same template is timed too (CLI start-up included).

    bench/deploy.sh            # release build, then this script
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("RECOVERITE_BIN", str(ROOT / "target" / "release" / "recoverite"))
sys.path.insert(0, str(ROOT / "tests" / "sdk"))
from conftest import Server  # noqa: E402
from azure.mgmt.msi import ManagedServiceIdentityClient  # noqa: E402
from azure.mgmt.network import NetworkManagementClient  # noqa: E402
from azure.mgmt.resource.deployments import DeploymentsMgmtClient  # noqa: E402
from azure.mgmt.resource.resources import ResourceManagementClient  # noqa: E402

NSGS, ROUTES, VNETS, IDS = 25, 10, 10, 5


def template():
    rule = {"name": "[concat('r', copyIndex('securityRules'))]", "properties": {
        "priority": "[add(100, copyIndex('securityRules'))]", "direction": "Outbound", "access": "Allow", "protocol": "Tcp",
        "sourcePortRange": "*", "sourceAddressPrefix": "VirtualNetwork", "destinationPortRange": "443",
        "destinationAddressPrefix": "[variables('tags')[copyIndex('securityRules')]]"}}
    return {
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
        "contentVersion": "1.0.0.0",
        "variables": {"tags": ["AzureSiteRecovery", "AzureActiveDirectory"]},
        "resources": [
            {"type": "Microsoft.Network/networkSecurityGroups", "apiVersion": "2023-09-01", "name": "[concat('nsg', copyIndex())]",
             "location": "eastus", "copy": {"name": "nsgs", "count": NSGS},
             "properties": {"copy": [{"name": "securityRules", "count": 2, "input": rule}]}},
            {"type": "Microsoft.Network/routeTables", "apiVersion": "2023-09-01", "name": "[concat('rt', copyIndex())]",
             "location": "eastus", "copy": {"name": "routes", "count": ROUTES}},
            {"type": "Microsoft.Network/virtualNetworks", "apiVersion": "2023-09-01", "name": "[concat('net', copyIndex())]",
             "location": "eastus", "copy": {"name": "nets", "count": VNETS},
             "dependsOn": ["[resourceId('Microsoft.Network/networkSecurityGroups', concat('nsg', copyIndex()))]"],
             "properties": {"addressSpace": {"addressPrefixes": ["[format('10.{0}.0.0/16', copyIndex())]"]},
                            "subnets": [{"name": "vms", "properties": {"addressPrefix": "[format('10.{0}.1.0/24', copyIndex())]",
                                         "networkSecurityGroup": {"id": "[resourceId('Microsoft.Network/networkSecurityGroups', concat('nsg', copyIndex()))]"}}}]}},
            {"type": "Microsoft.ManagedIdentity/userAssignedIdentities", "apiVersion": "2023-01-31", "name": "[concat('id', copyIndex())]",
             "location": "eastus", "copy": {"name": "ids", "count": IDS}},
        ]}


def one_by_one(server, rg):
    net = server.client(NetworkManagementClient)
    msi = server.client(ManagedServiceIdentityClient)
    for i in range(NSGS):
        net.network_security_groups.begin_create_or_update(rg, f"nsg{i}", {"location": "eastus", "properties": {"securityRules": [
            {"name": f"r{k}", "properties": {"priority": 100 + k, "direction": "Outbound", "access": "Allow", "protocol": "Tcp",
             "sourcePortRange": "*", "sourceAddressPrefix": "VirtualNetwork", "destinationPortRange": "443",
             "destinationAddressPrefix": tag}} for k, tag in enumerate(["AzureSiteRecovery", "AzureActiveDirectory"])]}}).result()
    for i in range(ROUTES):
        net.route_tables.begin_create_or_update(rg, f"rt{i}", {"location": "eastus"}).result()
    for i in range(VNETS):
        nsg = f"/subscriptions/{server.sub}/resourceGroups/{rg}/providers/Microsoft.Network/networkSecurityGroups/nsg{i}"
        net.virtual_networks.begin_create_or_update(rg, f"net{i}", {"location": "eastus", "properties": {
            "addressSpace": {"addressPrefixes": [f"10.{i}.0.0/16"]},
            "subnets": [{"name": "vms", "properties": {"addressPrefix": f"10.{i}.1.0/24", "networkSecurityGroup": {"id": nsg}}}]}}).result()
    for i in range(IDS):
        msi.user_assigned_identities.create_or_update(rg, f"id{i}", {"location": "eastus"})


def main():
    with tempfile.TemporaryDirectory(prefix="recoverite-bench-deploy-") as d:
        server = Server(Path(d)).start()
        try:
            rm = server.client(ResourceManagementClient)
            dep = DeploymentsMgmtClient(server.credential(), server.sub, base_url=server.conn["armEndpoint"],
                                        connection_verify=server.ca)
            for rg in ("bench-tpl", "bench-tpl-again", "bench-sdk", "bench-cli"):
                rm.resource_groups.create_or_update(rg, {"location": "eastus"})
            tpl = template()
            t = time.perf_counter()
            r = dep.deployments.begin_create_or_update("bench-tpl", "fifty", {"properties": {"mode": "Incremental", "template": tpl}}).result()
            first = time.perf_counter() - t
            assert r.properties.provisioning_state == "Succeeded", r.properties.error
            count = len(list(dep.deployment_operations.list("bench-tpl", "fifty")))
            t = time.perf_counter()
            dep.deployments.begin_create_or_update("bench-tpl", "fifty", {"properties": {"mode": "Incremental", "template": tpl}}).result()
            again = time.perf_counter() - t
            t = time.perf_counter()
            one_by_one(server, "bench-sdk")
            sdk = time.perf_counter() - t
            print(f"template deployment, {count} resources: {r.properties.duration} in the server (target <= 2 s); "
                  f"{first:.2f} s as the SDK sees it (it waits the 1 s Retry-After before its first poll)")
            print(f"same template deployed again (idempotent, nothing changes):     {again:.2f} s")
            print(f"same {count} resources created one SDK call after another:       {sdk:.2f} s")
            az = ROOT / ".cli-venv" / "bin" / "az"
            if az.exists():
                cfg = Path(d) / "az"
                env = {**os.environ, "AZURE_CONFIG_DIR": str(cfg), "REQUESTS_CA_BUNDLE": server.ca, "AZURE_CORE_COLLECT_TELEMETRY": "0"}
                c = server.conn
                run = lambda *a: subprocess.run([str(az), *a], env=env, capture_output=True, text=True, check=True)
                run("cloud", "register", "-n", "recoverite", "--endpoint-resource-manager", c["armEndpoint"])
                run("cloud", "set", "-n", "recoverite")
                run("config", "set", "core.instance_discovery=false")
                run("login", "--service-principal", "-u", c["clientId"], f"--password={c['clientSecret']}", "--tenant", c["tenantId"])
                f = Path(d) / "fifty.json"
                f.write_text(json.dumps(tpl))
                t = time.perf_counter()
                run("deployment", "group", "create", "-g", "bench-cli", "-n", "fifty", "--template-file", str(f))
                print(f"az deployment group create of the same template:              {time.perf_counter() - t:.2f} s (CLI start-up and validate included)")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
