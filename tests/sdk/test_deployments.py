"""ARM template deployments through the official `azure-mgmt-resource-deployments`
SDK: document 000's estate from one template whose outputs feed a Site
Recovery enable, validation errors that change nothing, a failed resource
reported as DeploymentFailed with its own error, RBAC on every resource as
the caller, Complete mode, subscription scope with nested deployments, copy
loops and idempotent re-deploys."""

import json
import time
from pathlib import Path

import pytest
import asr
from azure.core.exceptions import HttpResponseError
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.recoveryservices import RecoveryServicesClient
from azure.mgmt.resource.deployments import DeploymentsMgmtClient
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.mgmt.storage import StorageManagementClient

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
SRC, DST = "tpl-src", "tpl-dst"
SCHEMA = "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#"


def template(resources, parameters=None, outputs=None, variables=None):
    return {"$schema": SCHEMA, "contentVersion": "1.0.0.0", "parameters": parameters or {},
            "variables": variables or {}, "resources": resources, "outputs": outputs or {}}


def deploy(d, rg, name, tpl, params=None, mode="Incremental"):
    return d.deployments.begin_create_or_update(rg, name, {"properties": {
        "mode": mode, "template": tpl, "parameters": params or {}}}).result()


def nsg(name, location="eastus", **extra):
    return {"type": "Microsoft.Network/networkSecurityGroups", "apiVersion": "2023-09-01", "name": name,
            "location": location, **extra}


@pytest.fixture(scope="module")
def env(server):
    rm = server.client(ResourceManagementClient)
    rm.resource_groups.create_or_update(SRC, {"location": "eastus"})
    rm.resource_groups.create_or_update(DST, {"location": "centralus"})
    return server.client(DeploymentsMgmtClient)


def test_document_000_estate_from_one_template_feeds_site_recovery(server, env):
    d = env
    tpl = json.loads((TEMPLATES / "doc000-estate.json").read_text())
    started = time.time()
    result = deploy(d, SRC, "estate", tpl, {"recoveryResourceGroup": {"value": DST}})
    assert result.properties.provisioning_state == "Succeeded", result.properties.error
    took = time.time() - started
    out = {k: v["value"] for k, v in result.properties.outputs.items()}
    assert out["ruleNames"] == ["allow-storage-eastus", "allow-azureactivedirectory", "allow-eventhub-centralus", "allow-azuresiterecovery"]
    assert out["recoveryNetworkId"].endswith(f"/resourceGroups/{DST}/providers/Microsoft.Network/virtualNetworks/app-vnet-asr")

    # What the template made is there, as the providers made it.
    net = server.client(NetworkManagementClient)
    rules = {r.name: r.destination_address_prefix for r in net.network_security_groups.get(SRC, "vms-nsg").security_rules}
    assert rules["allow-eventhub-centralus"] == "EventHub.CentralUS"
    subnet = net.subnets.get(SRC, "app-vnet", "vms")
    assert subnet.network_security_group.id.endswith("/vms-nsg")
    vault = server.client(RecoveryServicesClient).vaults.get(SRC, "tpl-vault")
    assert vault.identity.principal_id == out["vaultPrincipalId"]
    pe = net.private_endpoints.get(SRC, "source-asr-pe")
    assert pe.private_link_service_connections[0].private_link_service_connection_state.status == "Approved"
    groups = net.private_dns_zone_groups.list("source-asr-pe", SRC)
    assert [g.name for g in groups] == ["default"]
    auth = server.client(AuthorizationManagementClient)
    assigned = [a for a in auth.role_assignments.list_for_scope(out["cacheId"]) if a.principal_id == out["vaultPrincipalId"]]
    assert len(assigned) == 2
    acct = server.client(StorageManagementClient).storage_accounts.get_properties(SRC, out["cacheId"].rsplit("/", 1)[1])
    assert acct.network_rule_set.default_action == "Deny"

    # One operation per resource, each Created or OK, with its target.
    ops = list(d.deployment_operations.list(SRC, "estate"))
    assert len(ops) == 15, [o.properties.target_resource.id for o in ops]
    assert all(o.properties.provisioning_state == "Succeeded" for o in ops)
    nested = d.deployments.get(DST, "recovery-network")
    assert nested.properties.outputs["networkId"]["value"] == out["recoveryNetworkId"]
    deps = {x.id: [y.id for y in x.depends_on] for x in result.properties.dependencies}
    pe_id = pe.id
    assert out["vaultId"] in deps[pe_id]

    # The outputs drive Site Recovery: a VM in the template's subnet is
    # protected with the template's cache account, through its endpoints.
    from azure.mgmt.recoveryservicessiterecovery import SiteRecoveryManagementClient
    sr = server.client(SiteRecoveryManagementClient)
    for fabric, loc in (("east", "eastus"), ("central", "centralus")):
        sr.replication_fabrics.begin_create(SRC, "tpl-vault", fabric, {"properties": {"customDetails": {"instanceType": "Azure", "location": loc}}}).result()
        sr.replication_protection_containers.begin_create(SRC, "tpl-vault", fabric, f"{fabric}-c", {"properties": {"providerSpecificInput": [{"instanceType": "A2A"}]}}).result()
    pol = sr.replication_policies.begin_create(SRC, "tpl-vault", "p", {"properties": {"providerSpecificInput": {
        "instanceType": "A2A", "recoveryPointHistory": 1440, "multiVmSyncStatus": "Disable"}}}).result()
    tc = sr.replication_protection_containers.get(SRC, "tpl-vault", "central", "central-c")
    sr.replication_protection_container_mappings.begin_create(SRC, "tpl-vault", "east", "east-c", "m", {"properties": {
        "targetProtectionContainerId": tc.id, "policyId": pol.id, "providerSpecificInput": {"instanceType": "A2A"}}}).result()
    v = asr.vm(server, SRC, "app", out["subnetId"])
    item = asr.protect(server, sr, SRC, "tpl-vault", "app", v, pol, tc, out["cacheId"], DST)
    assert item.properties.protection_state == "Protected", item.properties.protection_state
    assert item.properties.provider_specific_details.selected_recovery_azure_network_id.lower() == out["recoveryNetworkId"].lower()

    # Deploying the same template again succeeds and changes nothing.
    before = net.private_endpoints.get(SRC, "source-asr-pe").custom_dns_configs
    again = deploy(d, SRC, "estate", tpl, {"recoveryResourceGroup": {"value": DST}})
    assert again.properties.provisioning_state == "Succeeded", again.properties.error
    assert net.private_endpoints.get(SRC, "source-asr-pe").custom_dns_configs == before
    assert len([a for a in auth.role_assignments.list_for_scope(out["cacheId"]) if a.principal_id == out["vaultPrincipalId"]]) == 2
    print(f"document 000 estate: {len(ops)} resources deployed in {took:.2f} s")


def test_invalid_templates_are_refused_before_anything_changes(server, env):
    d = env
    rm = server.client(ResourceManagementClient)
    before = {r.id for r in rm.resources.list_by_resource_group(SRC)}
    cycle = template([nsg("a", dependsOn=["b"]), nsg("b", dependsOn=["[resourceId('Microsoft.Network/networkSecurityGroups', 'a')]"])])
    with pytest.raises(HttpResponseError) as e:
        deploy(d, SRC, "cycle", cycle)
    assert e.value.status_code == 400 and e.value.error.code == "InvalidTemplate"
    assert "Circular dependency detected" in e.value.message
    bad_param = template([nsg("[parameters('n')]")], {"n": {"type": "string", "allowedValues": ["x", "y"]}})
    with pytest.raises(HttpResponseError) as e:
        deploy(d, SRC, "badparam", bad_param, {"n": {"value": "z"}})
    assert "not part of the allowed value" in e.value.message
    with pytest.raises(HttpResponseError) as e:
        deploy(d, SRC, "nofn", template([nsg("[nosuch('x')]")]))
    assert "'nosuch' is not valid" in e.value.message
    # validate answers the same without creating anything.
    r = d.deployments.begin_validate(SRC, "check", {"properties": {"mode": "Incremental", "template": template([nsg("ok-nsg")])}}).result()
    assert r.properties.provisioning_state == "Succeeded"
    assert [x.id for x in r.properties.validated_resources][0].endswith("/networkSecurityGroups/ok-nsg")
    assert {r.id for r in rm.resources.list_by_resource_group(SRC)} == before
    for name in ("cycle", "badparam", "nofn", "check"):
        assert not d.deployments.check_existence(SRC, name)


def test_a_failed_resource_fails_the_deployment_with_its_own_error(server, env):
    d = env
    tpl = template([
        nsg("good-nsg"),
        {"type": "Microsoft.Network/virtualNetworks", "apiVersion": "2023-09-01", "name": "bad-net", "location": "eastus",
         "properties": {"addressSpace": {"addressPrefixes": ["10.99.0.0/16"]},
                        "subnets": [{"name": "s", "properties": {"addressPrefix": "10.98.0.0/24"}}]}},
        nsg("after-bad", dependsOn=["bad-net"]),
    ])
    with pytest.raises(HttpResponseError) as e:
        deploy(d, SRC, "fails", tpl)
    assert e.value.error.code == "DeploymentFailed", e.value.message
    got = d.deployments.get(SRC, "fails")
    assert got.properties.provisioning_state == "Failed"
    assert got.properties.error.details[0].code == "NetcfgSubnetRangeOutsideVnet", got.properties.error.details
    ops = {o.properties.target_resource.resource_name: o.properties for o in d.deployment_operations.list(SRC, "fails")}
    assert ops["bad-net"].status_code == "BadRequest" and ops["bad-net"].provisioning_state == "Failed"
    assert ops["good-nsg"].provisioning_state == "Succeeded"
    assert "after-bad" not in ops, "resources waiting on a failed one are not deployed"
    failed = [x.name for x in d.deployments.list_by_resource_group(SRC, filter="provisioningState eq 'Failed'")]
    assert "fails" in failed and "estate" not in failed


def test_every_resource_is_authorized_as_the_caller(server, env):
    d = env
    r = server.http("POST", "/recoverite/principals", json={"displayName": "tpl-contrib", "role": "Contributor",
                                                             "scope": f"/subscriptions/{server.sub}/resourceGroups/{SRC}"})
    p = r.json()
    cred = server.credential(p["clientId"], p["clientSecret"])
    theirs = server.client(DeploymentsMgmtClient, credential=cred)
    # Contributor cannot assign roles: the preflight refuses the whole template.
    tpl = template([nsg("contrib-nsg"), {
        "type": "Microsoft.Authorization/roleAssignments", "apiVersion": "2022-04-01", "name": "[guid('contrib')]",
        "properties": {"roleDefinitionId": "[subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'acdd72a7-3385-48ef-bd42-f606fba81ae7')]",
                       "principalId": p["objectId"]}}])
    with pytest.raises(HttpResponseError) as e:
        deploy(theirs, SRC, "escalate", tpl)
    assert e.value.status_code == 403 and "Microsoft.Authorization/roleAssignments/write" in e.value.message
    # A resource in a group the caller has no role on is refused the same way.
    other = template([{**nsg("elsewhere-nsg"), "type": "Microsoft.Resources/deployments", "apiVersion": "2022-09-01",
                       "resourceGroup": DST, "location": None,
                       "properties": {"mode": "Incremental", "template": template([nsg("x")])}}])
    with pytest.raises(HttpResponseError) as e:
        deploy(theirs, SRC, "elsewhere", other)
    assert e.value.status_code == 403
    # Reading the estate's deployment is fine; what it may deploy, it deploys.
    assert theirs.deployments.get(SRC, "estate").properties.provisioning_state == "Succeeded"
    ok = deploy(theirs, SRC, "mine", template([nsg("contrib-nsg")]))
    assert ok.properties.provisioning_state == "Succeeded"
    reader = server.http("POST", "/recoverite/principals", json={"displayName": "tpl-reader", "role": "Reader",
                                                                  "scope": f"/subscriptions/{server.sub}/resourceGroups/{SRC}"}).json()
    rd = server.client(DeploymentsMgmtClient, credential=server.credential(reader["clientId"], reader["clientSecret"]))
    with pytest.raises(HttpResponseError) as e:
        deploy(rd, SRC, "reader", template([]))
    assert e.value.status_code == 403 and "Microsoft.Resources/deployments/write" in e.value.message


def test_complete_mode_removes_what_the_template_no_longer_lists(server, env):
    d = env
    rg = "tpl-complete"
    server.client(ResourceManagementClient).resource_groups.create_or_update(rg, {"location": "eastus"})
    deploy(d, rg, "v1", template([nsg("keep"), nsg("drop"), {
        "type": "Microsoft.Network/virtualNetworks", "apiVersion": "2023-09-01", "name": "net", "location": "eastus",
        "properties": {"addressSpace": {"addressPrefixes": ["10.91.0.0/16"]},
                       "subnets": [{"name": "s", "properties": {"addressPrefix": "10.91.1.0/24",
                                    "networkSecurityGroup": {"id": "[resourceId('Microsoft.Network/networkSecurityGroups', 'drop')]"}}}]},
        "dependsOn": ["drop"]}]))
    net = server.client(NetworkManagementClient)
    assert {n.name for n in net.network_security_groups.list(rg)} == {"keep", "drop"}
    done = deploy(d, rg, "v2", template([nsg("keep")]), mode="Complete")
    assert done.properties.provisioning_state == "Succeeded", done.properties.error
    assert {n.name for n in net.network_security_groups.list(rg)} == {"keep"}
    assert [v.name for v in net.virtual_networks.list(rg)] == []
    deletes = [o for o in d.deployment_operations.list(rg, "v2") if o.properties.provisioning_operation == "Delete"]
    assert len(deletes) == 2


def test_subscription_scope_with_copy_loops_and_outer_scope_nesting(server, env):
    d = env
    tpl = {"$schema": "https://schema.management.azure.com/schemas/2018-05-01/subscriptionDeploymentTemplate.json#",
           "contentVersion": "1.0.0.0",
           "parameters": {"prefix": {"type": "string", "defaultValue": "tplsub"}, "count": {"type": "int", "defaultValue": 2}},
           "variables": {"nsgName": "[concat(parameters('prefix'), '-nsg')]"},
           "resources": [
               {"type": "Microsoft.Resources/resourceGroups", "apiVersion": "2021-04-01", "name": "[concat(parameters('prefix'), '-', copyIndex())]",
                "location": "westus", "copy": {"name": "groups", "count": "[parameters('count')]"}},
               {"type": "Microsoft.Resources/deployments", "apiVersion": "2022-09-01", "name": "[concat('inner-', copyIndex())]",
                "resourceGroup": "[concat(parameters('prefix'), '-', copyIndex())]", "copy": {"name": "inners", "count": "[parameters('count')]"},
                "dependsOn": ["groups"],
                "properties": {"mode": "Incremental", "template": {
                    "$schema": SCHEMA, "contentVersion": "1.0.0.0",
                    "resources": [nsg("[variables('nsgName')]", "westus")],
                    "outputs": {"where": {"type": "string", "value": "[resourceGroup().name]"}}}}}],
           "outputs": {"second": {"type": "string", "value": "[reference('inner-1').outputs.where.value]"}}}
    with pytest.raises(HttpResponseError) as e:
        d.deployments.begin_create_or_update_at_subscription_scope("nolocation", {"properties": {"mode": "Incremental", "template": tpl}}).result()
    assert e.value.error.code == "LocationRequired"
    r = d.deployments.begin_create_or_update_at_subscription_scope("groups", {"location": "westus", "properties": {
        "mode": "Incremental", "template": tpl}}).result()
    assert r.properties.provisioning_state == "Succeeded", r.properties.error
    assert r.properties.outputs["second"]["value"] == "tplsub-1"
    net = server.client(NetworkManagementClient)
    assert [n.name for n in net.network_security_groups.list("tplsub-0")] == ["tplsub-nsg"]
    assert d.deployments.get_at_subscription_scope("groups").location == "westus"
    assert "groups" in [x.name for x in d.deployments.list_at_subscription_scope()]
    exported = d.deployments.export_template_at_subscription_scope("groups")
    assert exported.template["parameters"]["count"]["defaultValue"] == 2
    d.deployments.begin_delete_at_subscription_scope("groups").result()
    assert not d.deployments.check_existence_at_subscription_scope("groups")


def test_deleting_the_group_deletes_its_deployment_history(server, env):
    d = env
    rg = "tpl-history"
    rm = server.client(ResourceManagementClient)
    rm.resource_groups.create_or_update(rg, {"location": "eastus"})
    deploy(d, rg, "one", template([nsg("h")]))
    assert d.deployments.check_existence(rg, "one")
    rm.resource_groups.begin_delete(rg).result()
    rm.resource_groups.create_or_update(rg, {"location": "eastus"})
    assert not d.deployments.check_existence(rg, "one")
    assert list(d.deployments.list_by_resource_group(rg)) == []


def test_a_deployment_cut_off_by_kill_9_reports_it_and_runs_again(server, env):
    from conftest import kill_during
    d = env
    rg = "tpl-crash"
    server.client(ResourceManagementClient).resource_groups.create_or_update(rg, {"location": "eastus"})
    # One NSG at a time (serial, batch of one), so the kill lands mid-way.
    tpl = template([nsg("[concat('n', copyIndex())]", copy={"name": "many", "count": 200, "mode": "serial", "batchSize": 1})])
    body = {"properties": {"mode": "Incremental", "template": tpl}}
    d.deployments.begin_create_or_update(rg, "many", body)
    kill_during(server, lambda: time.sleep(0.3), 0.3)
    d = server.client(DeploymentsMgmtClient)
    got = d.deployments.get(rg, "many")
    state = got.properties.provisioning_state
    made = len(list(server.client(NetworkManagementClient).network_security_groups.list(rg)))
    if state == "Failed":
        assert got.properties.error.code == "DeploymentInterrupted", got.properties.error
        assert made < 200
    else:
        assert state == "Succeeded" and made == 200
    print(f"kill -9 during a 200-resource deployment: {state}, {made} made")
    # Deployments are idempotent: the same template finishes the job.
    again = d.deployments.begin_create_or_update(rg, "many", body).result()
    assert again.properties.provisioning_state == "Succeeded", (again.properties.error.as_dict() if again.properties.error else None)
    assert len(list(server.client(NetworkManagementClient).network_security_groups.list(rg))) == 200


def test_secure_parameters_are_used_but_never_stored_or_returned(server, env):
    d = server.client(DeploymentsMgmtClient)  # the server may have restarted on a new port
    secret = "s3cr3t-" + str(time.time_ns())
    tpl = template([nsg("[concat('sec-', length(parameters('pw')))]")], {"pw": {"type": "securestring"}},
                   outputs={"n": {"type": "int", "value": "[length(parameters('pw'))]"}})
    r = deploy(d, SRC, "secure", tpl, {"pw": {"value": secret}})
    assert r.properties.outputs["n"]["value"] == len(secret)
    assert r.properties.parameters["pw"] == {"type": "SecureString"}
    got = server.http("GET", f"/subscriptions/{server.sub}/resourceGroups/{SRC}/providers/Microsoft.Resources/deployments/secure?api-version=2025-04-01")
    assert secret not in got.text
    assert secret.encode() not in (server.data_dir / "state.redb").read_bytes()


def test_hostile_templates_are_refused_and_the_server_stays_up(server, env):
    d = server.client(DeploymentsMgmtClient)
    deep = "[" + "concat(" * 5000 + "'x'" + ")" * 5000 + "]"
    with pytest.raises(HttpResponseError) as e:
        deploy(d, SRC, "deep", template([nsg(deep)]))
    assert e.value.status_code == 400 and "nest deeper" in e.value.message
    chain = {f"v{i}": f"[concat(variables('v{i + 1}'), 'x')]" for i in range(5000)}
    chain["v5000"] = "end"
    with pytest.raises(HttpResponseError) as e:
        deploy(d, SRC, "chain", template([nsg("[variables('v0')]")], variables=chain))
    assert e.value.status_code == 400
    # A body nested past the strict reader's limit is refused by the lenient one too.
    body = "{properties: " + "[" * 200_000 + "]" * 200_000 + "}"
    r = server.http("PUT", f"/subscriptions/{server.sub}/resourceGroups/{SRC}/providers/Microsoft.Resources/deployments/x?api-version=2025-04-01",
                    data=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "InvalidRequestContent"
    assert d.deployments.get(SRC, "estate").properties.provisioning_state == "Succeeded"
