"""Template deployments as azure-cli sends them: `az deployment group
create --template-file` (which splices the file's text, comments included,
into the body after an unquoted `template:` key), validate, operations,
subscription scope, and `az vm create --attach-os-disk`, which deploys a
template under the hood."""

import json
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
RG, DST = "cli-tpl", "cli-tpl-dst"


def test_deployment_group_create_from_a_template_file(az, tmp_path):
    az.run("group", "create", "-n", RG, "-l", "eastus")
    az.run("group", "create", "-n", DST, "-l", "centralus")
    r = az.run("deployment", "group", "create", "-g", RG, "-n", "estate", "--template-file", str(TEMPLATES / "doc000-estate.json"),
               "--parameters", f"recoveryResourceGroup={DST}", "vaultName=cli-vault")
    assert r["properties"]["provisioningState"] == "Succeeded"
    outputs = r["properties"]["outputs"]
    assert outputs["recoveryNetworkId"]["value"].endswith("/virtualNetworks/app-vnet-asr")
    assert az.run("backup", "vault", "show", "-g", RG, "-n", "cli-vault")["identity"]["principalId"] == outputs["vaultPrincipalId"]["value"]
    ops = az.run("deployment", "operation", "group", "list", "-g", RG, "-n", "estate")
    assert len(ops) == 15 and {o["properties"]["provisioningState"] for o in ops} == {"Succeeded"}
    assert [d["name"] for d in az.run("deployment", "group", "list", "-g", RG)] == ["estate"]
    # A template with comments (JSONC, as VS Code and Bicep users write them).
    commented = tmp_path / "commented.json"
    commented.write_text("""{
  // a line comment
  "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
  "contentVersion": "1.0.0.0",
  "parameters": { "n": { "type": "int", "defaultValue": 2, "maxValue": 3 } },
  /* a block comment */
  "resources": [ {
      "type": "Microsoft.Network/networkSecurityGroups", "apiVersion": "2023-09-01",
      "name": "[format('cli-nsg-{0:D2}', copyIndex(1))]", "location": "[resourceGroup().location]",
      "copy": { "name": "nsgs", "count": "[parameters('n')]" } } ],
  "outputs": { "unique": { "type": "string", "value": "[uniqueString('test')]" } }
}""")
    r = az.run("deployment", "group", "create", "-g", RG, "-n", "commented", "--template-file", str(commented))
    assert r["properties"]["outputs"]["unique"]["value"] == "rbgf3xv4ufgzg"
    assert {n["name"] for n in az.run("network", "nsg", "list", "-g", RG)} >= {"cli-nsg-01", "cli-nsg-02"}
    # Validation failures change nothing and say why.
    bad = az.run("deployment", "group", "validate", "-g", RG, "--template-file", str(commented), "--parameters", "n=9", check=False)
    assert bad.returncode != 0 and "greater than the maximum value of '3'" in bad.stderr, bad.stderr
    assert {n["name"] for n in az.run("network", "nsg", "list", "-g", RG)} == {"cli-nsg-01", "cli-nsg-02", "vms-nsg"}
    exported = az.run("deployment", "group", "export", "-g", RG, "-n", "commented")
    assert exported["parameters"]["n"]["maxValue"] == 3


def test_subscription_scope_deployment(az, tmp_path):
    tpl = tmp_path / "sub.json"
    tpl.write_text(json.dumps({
        "$schema": "https://schema.management.azure.com/schemas/2018-05-01/subscriptionDeploymentTemplate.json#",
        "contentVersion": "1.0.0.0",
        "resources": [{"type": "Microsoft.Resources/resourceGroups", "apiVersion": "2021-04-01", "name": "cli-tpl-sub", "location": "westus"}],
        "outputs": {"rg": {"type": "string", "value": "[subscriptionResourceId('Microsoft.Resources/resourceGroups', 'cli-tpl-sub')]"}}}))
    r = az.run("deployment", "sub", "create", "-l", "westus", "-n", "groups", "--template-file", str(tpl))
    assert r["properties"]["provisioningState"] == "Succeeded"
    assert az.run("group", "show", "-n", "cli-tpl-sub")["location"] == "westus"


def test_vm_create_attaches_an_os_disk_through_a_deployment(az):
    az.run("disk", "create", "-g", RG, "-n", "cli-os", "--size-gb", "4", "--os-type", "Linux")
    az.run("network", "nic", "create", "-g", RG, "-n", "cli-nic", "--vnet-name", "app-vnet", "--subnet", "vms")
    vm = az.run("vm", "create", "-g", RG, "-n", "cli-vm", "--attach-os-disk", "cli-os", "--os-type", "linux", "--nics", "cli-nic")
    assert vm["powerState"] == "VM running"
    shown = az.run("vm", "show", "-g", RG, "-n", "cli-vm")
    assert shown["storageProfile"]["osDisk"]["managedDisk"]["id"].lower().endswith("/disks/cli-os")
    assert any(d["name"].startswith("vm_deploy_") for d in az.run("deployment", "group", "list", "-g", RG))
