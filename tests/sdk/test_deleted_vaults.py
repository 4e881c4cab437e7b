"""Deleted vaults and the vault's own operation endpoints (issue 11), with
azure-mgmt-recoveryservices: in West Central US, where secure by default
is generally available, a deleted vault is kept for its soft-delete
retention, listed under `locations/{l}/deletedVaults`, can be undeleted
(by a caller who may write the vault) and is purged on the emulator clock;
elsewhere a delete is final. Also `capabilities` (the private DNS zones of
each vault sub-resource) and `operationStatus` / `operationResults`."""

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.recoveryservices import RecoveryServicesClient
from azure.mgmt.resource.resources import ResourceManagementClient

RG = "deleted-vaults-rg"


@pytest.fixture(scope="module")
def server(isolated_server):
    """Its own server: the test moves the clock two weeks on."""
    return isolated_server


@pytest.fixture(scope="module")
def rs(server):
    server.client(ResourceManagementClient).resource_groups.create_or_update(RG, {"location": "westcentralus"})
    return server.client(RecoveryServicesClient)


def vault_body(location, **props):
    return {"location": location, "sku": {"name": "Standard"}, "tags": {"team": "dr"},
            "properties": {"publicNetworkAccess": "Enabled", **props}}


def test_vault_operation_status_and_result(server, rs):
    path = f"/subscriptions/{server.sub}/resourceGroups/{RG}/providers/Microsoft.RecoveryServices/vaults/ops-vault"
    r = server.http("PUT", f"{path}?api-version=2025-08-01", json=vault_body("westcentralus"))
    assert r.status_code in (200, 201)
    op_id = r.headers["Location"].split("?")[0].rsplit("/", 1)[1]
    st = rs.get_operation_status(RG, "ops-vault", op_id)
    assert st.status == "Succeeded" and st.name == op_id
    result = rs.get_operation_result(RG, "ops-vault", op_id)
    assert result.name == "ops-vault"
    # An operation of another resource is not found under this vault.
    rs.vaults.begin_create_or_update(RG, "other-vault", vault_body("westcentralus")).result()
    with pytest.raises(HttpResponseError) as e:
        rs.get_operation_status(RG, "other-vault", op_id)
    assert e.value.status_code == 404 and e.value.error.code == "OperationNotFound"


def test_capabilities_name_the_zones_of_each_sub_resource(rs):
    ans = rs.recovery_services.capabilities("westcentralus", {
        "type": "Microsoft.RecoveryServices/Vaults",
        "properties": {"dnsZones": [{"subResource": "AzureBackup"}, {"subResource": "AzureSiteRecovery"}]}})
    zones = {z.sub_resource: z.required_zone_names for z in ans.properties.dns_zones}
    vault = rs.vaults.get(RG, "ops-vault")
    plr = {p.properties.group_id: p.properties.required_zone_names
           for p in rs.private_link_resources.list(RG, vault.name)}
    assert zones["AzureBackup"] == plr["AzureBackup"]
    assert zones["AzureSiteRecovery"] == plr["AzureSiteRecovery"]
    assert "privatelink.siterecovery.windowsazure.com" in zones["AzureSiteRecovery"]
    with pytest.raises(HttpResponseError) as e:
        rs.recovery_services.capabilities("westcentralus", {"type": "Microsoft.RecoveryServices/Vaults",
                                                            "properties": {"dnsZones": [{"subResource": "Blob"}]}})
    assert e.value.status_code == 400


def test_a_deleted_vault_is_kept_undeleted_and_purged(server, rs):
    rm = server.client(ResourceManagementClient)
    rm.resource_groups.create_or_update("eastus-vaults-rg", {"location": "eastus"})
    # Elsewhere a delete is final.
    rs.vaults.begin_create_or_update("eastus-vaults-rg", "east-vault", vault_body("eastus")).result()
    rs.vaults.begin_delete("eastus-vaults-rg", "east-vault").result()
    assert list(rs.deleted_vaults.list_by_subscription_id("eastus")) == []
    rs.vaults.begin_create_or_update("eastus-vaults-rg", "east-vault", vault_body("eastus")).result()

    vault = rs.vaults.begin_create_or_update(RG, "kept-vault", vault_body(
        "westcentralus", securitySettings={"softDeleteSettings": {"softDeleteState": "Enabled",
                                                                   "softDeleteRetentionPeriodInDays": 14}})).result()
    rs.vaults.begin_delete(RG, "kept-vault").result()
    with pytest.raises(HttpResponseError) as e:
        rs.vaults.get(RG, "kept-vault")
    assert e.value.status_code == 404
    assert "kept-vault" not in [v.name for v in rs.vaults.list_by_resource_group(RG)]
    deleted = [d for d in rs.deleted_vaults.list_by_subscription_id("westcentralus")
               if d.properties.vault_id.lower() == vault.id.lower()]
    assert len(deleted) == 1
    d = deleted[0]
    kept_days = (d.properties.purge_at - d.properties.vault_deletion_time).total_seconds() / 86400
    assert round(kept_days) == 14
    assert rs.deleted_vaults.get("westcentralus", d.name).properties.vault_id == vault.id

    # The name stays taken while the vault can still come back.
    with pytest.raises(HttpResponseError) as e:
        rs.vaults.begin_create_or_update(RG, "kept-vault", vault_body("westcentralus")).result()
    assert e.value.status_code == 409 and e.value.error.code == "UserErrorVaultSoftDeleted"

    # Only into its own resource group, and only by a caller who may write it.
    with pytest.raises(HttpResponseError) as e:
        rs.deleted_vaults.begin_undelete("westcentralus", d.name, {"properties": {
            "recoveryResourceGroupId": f"/subscriptions/{server.sub}/resourceGroups/eastus-vaults-rg"}}).result()
    assert e.value.status_code == 400
    p = server.http("POST", "/recoverite/principals", json={"displayName": "dv-reader", "role": "Reader"}).json()
    reader = server.client(RecoveryServicesClient, credential=server.credential(p["clientId"], p["clientSecret"]))
    assert [x.name for x in reader.deleted_vaults.list_by_subscription_id("westcentralus")] == [d.name]
    home = f"/subscriptions/{server.sub}/resourceGroups/{RG}"
    with pytest.raises(HttpResponseError) as e:
        reader.deleted_vaults.begin_undelete("westcentralus", d.name, {"properties": {"recoveryResourceGroupId": home}}).result()
    assert e.value.status_code == 403

    poller = rs.deleted_vaults.begin_undelete("westcentralus", d.name, {"properties": {"recoveryResourceGroupId": home}})
    poller.result()
    back = rs.vaults.get(RG, "kept-vault")
    assert back.id == vault.id and back.tags == {"team": "dr"}
    assert back.properties.security_settings.soft_delete_settings.soft_delete_retention_period_in_days == 14
    assert list(rs.deleted_vaults.list_by_subscription_id("westcentralus")) == []
    with pytest.raises(HttpResponseError) as e:
        rs.deleted_vaults.get("westcentralus", d.name)
    assert e.value.status_code == 404

    # Deleted again, it is purged once its 14 days are over; the name is free.
    rs.vaults.begin_delete(RG, "kept-vault").result()
    assert len(list(rs.deleted_vaults.list_by_subscription_id("westcentralus"))) == 1
    r = server.http("POST", "/recoverite/clock/advance", json={"hours": 15 * 24})
    assert r.status_code == 200
    assert list(rs.deleted_vaults.list_by_subscription_id("westcentralus")) == []
    again = rs.vaults.begin_create_or_update(RG, "kept-vault", vault_body("westcentralus")).result()
    assert again.id == vault.id
