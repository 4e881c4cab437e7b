"""Site Recovery, Azure to Azure (document 003), driven by
azure-mgmt-recoveryservicessiterecovery: fabrics per region, protection
containers, A2A replication policies with the documented ranges, container
mappings, jobs, and the rules that keep them consistent."""

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.recoveryservices import RecoveryServicesClient
from azure.mgmt.recoveryservicessiterecovery import SiteRecoveryManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient

RG = "asr-rg"
VAULT = "asr-vault"


@pytest.fixture(scope="module")
def sr(server):
    rm = server.client(ResourceManagementClient)
    rm.resource_groups.create_or_update(RG, {"location": "eastus"})
    server.client(RecoveryServicesClient).vaults.begin_create_or_update(
        RG, VAULT, {"location": "centralus", "sku": {"name": "Standard"}, "properties": {"publicNetworkAccess": "Enabled"}}).result()
    yield server.client(SiteRecoveryManagementClient)
    rm.resource_groups.begin_delete(RG).result()


def fabric(sr, name, location):
    return sr.replication_fabrics.begin_create(
        RG, VAULT, name, {"properties": {"customDetails": {"instanceType": "Azure", "location": location}}}).result()


def container(sr, fabric_name, name):
    return sr.replication_protection_containers.begin_create(
        RG, VAULT, fabric_name, name, {"properties": {"providerSpecificInput": [{"instanceType": "A2A"}]}}).result()


def policy(sr, name, **settings):
    body = {"instanceType": "A2A", "multiVmSyncStatus": "Enable", **settings}
    return sr.replication_policies.begin_create(RG, VAULT, name, {"properties": {"providerSpecificInput": body}}).result()


def expect_error(code, fn, *args, **kw):
    with pytest.raises(HttpResponseError) as e:
        fn(*args, **kw)
    assert e.value.error.code == code, e.value.message
    return e.value


def test_fabrics_one_per_region(sr):
    f = fabric(sr, "asr-eastus", "East US")
    assert f.properties.custom_details.instance_type == "Azure"
    assert f.properties.custom_details.location == "eastus"
    assert f.properties.friendly_name == "asr-eastus"
    # Re-creating the same fabric is idempotent; a second one for the region is refused.
    assert fabric(sr, "asr-eastus", "eastus").properties.internal_identifier == f.properties.internal_identifier
    expect_error("FabricAlreadyExists", fabric, sr, "other-eastus", "eastus")
    expect_error("InvalidParameter", lambda: sr.replication_fabrics.begin_create(
        RG, VAULT, "bad", {"properties": {"customDetails": {"instanceType": "VMwareV2"}}}).result())
    expect_error("LocationNotAvailableForResourceType", fabric, sr, "nowhere", "atlantis")
    fabric(sr, "asr-westus", "westus")
    names = sorted(x.name for x in sr.replication_fabrics.list(RG, VAULT))
    assert names == ["asr-eastus", "asr-westus"]
    with pytest.raises(ResourceNotFoundError):
        sr.replication_fabrics.get(RG, VAULT, "nowhere")


def test_policy_ranges_and_defaults(sr):
    p = policy(sr, "default-policy")
    d = p.properties.provider_specific_details
    assert (d.instance_type, d.recovery_point_history, d.app_consistent_frequency_in_minutes) == ("A2A", 1440, 240)
    assert d.crash_consistent_frequency_in_minutes == 5
    assert d.multi_vm_sync_status == "Enabled"
    expect_error("InvalidParameter", policy, sr, "too-long", recoveryPointHistory=73 * 60)
    expect_error("InvalidParameter", policy, sr, "too-short", recoveryPointHistory=59)
    expect_error("InvalidParameter", policy, sr, "app-13h", recoveryPointHistory=4320, appConsistentFrequencyInMinutes=13 * 60)
    expect_error("InvalidParameter", policy, sr, "app-over-retention", recoveryPointHistory=120, appConsistentFrequencyInMinutes=180)
    expect_error("InvalidParameter", lambda: sr.replication_policies.begin_create(
        RG, VAULT, "no-sync", {"properties": {"providerSpecificInput": {"instanceType": "A2A"}}}).result())
    # None of the refused policies was stored.
    assert [x.name for x in sr.replication_policies.list(RG, VAULT)] == ["default-policy"]
    edge = policy(sr, "edge", recoveryPointHistory=72 * 60, appConsistentFrequencyInMinutes=12 * 60)
    assert edge.properties.provider_specific_details.recovery_point_history == 4320
    # PATCH keeps what it does not name.
    upd = sr.replication_policies.begin_update(RG, VAULT, "edge", {"properties": {"replicationProviderSettings": {
        "instanceType": "A2A", "recoveryPointHistory": 2880}}}).result()
    assert upd.properties.provider_specific_details.recovery_point_history == 2880
    assert upd.properties.provider_specific_details.app_consistent_frequency_in_minutes == 720
    assert upd.properties.provider_specific_details.multi_vm_sync_status == "Enabled"
    sr.replication_policies.begin_delete(RG, VAULT, "edge").result()
    assert [x.name for x in sr.replication_policies.list(RG, VAULT)] == ["default-policy"]


def test_containers_and_mappings(sr, server):
    src = container(sr, "asr-eastus", "eastus-container")
    tgt = container(sr, "asr-westus", "westus-container")
    assert src.properties.pairing_status == "NotPaired"
    assert sr.replication_fabrics.get(RG, VAULT, "asr-eastus").properties.custom_details.container_ids == [src.id]
    pol = sr.replication_policies.get(RG, VAULT, "default-policy")
    m = sr.replication_protection_container_mappings.begin_create(RG, VAULT, "asr-eastus", "eastus-container", "e2w", {
        "properties": {"targetProtectionContainerId": tgt.id, "policyId": pol.id,
                       "providerSpecificInput": {"instanceType": "A2A", "agentAutoUpdateStatus": "Disabled"}}}).result()
    assert m.properties.state == "Paired"
    assert m.properties.policy_friendly_name == "default-policy"
    assert m.properties.target_protection_container_friendly_name == "westus-container"
    assert sr.replication_protection_containers.get(RG, VAULT, "asr-eastus", "eastus-container").properties.pairing_status == "Paired"
    assert [x.name for x in sr.replication_protection_container_mappings.list(RG, VAULT)] == ["e2w"]
    assert sorted(x.name for x in sr.replication_protection_containers.list(RG, VAULT)) == ["eastus-container", "westus-container"]

    same_region = container(sr, "asr-eastus", "eastus-2nd")
    expect_error("SameSourceAndTargetRegion", lambda: sr.replication_protection_container_mappings.begin_create(
        RG, VAULT, "asr-eastus", "eastus-container", "e2e", {"properties": {
            "targetProtectionContainerId": same_region.id, "policyId": pol.id}}).result())
    expect_error("NotFound", lambda: sr.replication_protection_container_mappings.begin_create(
        RG, VAULT, "asr-eastus", "eastus-container", "nopolicy", {"properties": {
            "targetProtectionContainerId": tgt.id, "policyId": pol.id.replace("default-policy", "ghost")}}).result())
    expect_error("ProtectionContainerMappingAlreadyExists", lambda: sr.replication_protection_container_mappings.begin_create(
        RG, VAULT, "asr-eastus", "eastus-container", "e2w-again", {"properties": {
            "targetProtectionContainerId": tgt.id, "policyId": pol.id}}).result())

    # Whatever a mapping pairs cannot go: policy, containers, fabrics, the vault.
    expect_error("PolicyInUse", lambda: sr.replication_policies.begin_delete(RG, VAULT, "default-policy").result())
    expect_error("FabricHasContainerMappings", lambda: sr.replication_fabrics.begin_purge(RG, VAULT, "asr-westus").result())
    expect_error("ProtectionContainerHasMappings", lambda: sr.replication_protection_containers.begin_delete(
        RG, VAULT, "asr-westus", "westus-container").result())
    rs = server.client(RecoveryServicesClient)
    expect_error("ServiceResourceNotEmpty", lambda: rs.vaults.begin_delete(RG, VAULT).result())

    sr.replication_protection_container_mappings.begin_delete(
        RG, VAULT, "asr-eastus", "eastus-container", "e2w", {"properties": {"providerSpecificInput": {}}}).result()
    assert list(sr.replication_protection_container_mappings.list(RG, VAULT)) == []
    assert sr.replication_protection_containers.get(RG, VAULT, "asr-westus", "westus-container").properties.pairing_status == "NotPaired"
    sr.replication_policies.begin_delete(RG, VAULT, "default-policy").result()
    sr.replication_protection_containers.begin_delete(RG, VAULT, "asr-westus", "westus-container").result()
    assert sr.replication_fabrics.get(RG, VAULT, "asr-westus").properties.custom_details.container_ids == []
    sr.replication_fabrics.begin_purge(RG, VAULT, "asr-westus").result()
    assert [x.name for x in sr.replication_fabrics.list(RG, VAULT)] == ["asr-eastus"]


def test_jobs_record_every_change(sr):
    jobs = list(sr.replication_jobs.list(RG, VAULT))
    scenarios = {j.properties.scenario_name for j in jobs}
    assert {"CreateFabric", "CreateProtectionContainer", "AddPolicy", "PairContainers", "UnpairContainers"} <= scenarios
    assert all(j.properties.state == "Succeeded" for j in jobs)
    pair = next(j for j in jobs if j.properties.scenario_name == "PairContainers")
    assert pair.properties.target_object_name == "e2w"
    assert sr.replication_jobs.get(RG, VAULT, pair.name).properties.friendly_name == "Configure protection"
    # Refused requests left no job.
    assert not any(j.properties.target_object_name in ("too-long", "e2e", "other-eastus") for j in jobs)


def test_vault_must_exist(sr):
    with pytest.raises(ResourceNotFoundError):
        list(sr.replication_fabrics.list(RG, "no-such-vault"))
