"""A container's legal holds, immutability policy and lease (issue 11),
through azure-mgmt-storage's `blob_containers`, enforced on the Blob data
plane: an immutable blob is neither overwritten nor deleted (new blobs may
be written), a container that still protects blobs or is leased is not
deleted without its lease, a locked policy only grows, and the retention
runs out on the emulator clock."""

import pytest
from azure.core.exceptions import HttpResponseError
from azure.core import MatchConditions
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.mgmt.storage import StorageManagementClient
from blobplane import shared_key_request, status_of

RG = "worm-rg"
ACCOUNT = "wormaccount1"


@pytest.fixture(scope="module")
def server(isolated_server):
    """Its own server: the test moves the clock on by days."""
    return isolated_server


@pytest.fixture(scope="module")
def env(server):
    server.client(ResourceManagementClient).resource_groups.create_or_update(RG, {"location": "eastus"})
    st = server.client(StorageManagementClient)
    st.storage_accounts.begin_create(RG, ACCOUNT, {"location": "eastus", "sku": {"name": "Standard_LRS"}, "kind": "StorageV2"}).result()
    key = dict(st.storage_accounts.list_keys(RG, ACCOUNT)["keys"][0])["value"]
    ip = server.http("GET", "/recoverite/network/resolve", params={"name": f"{ACCOUNT}.blob.core.windows.net"}).json()["answers"][-1]["value"]
    return {"st": st, "key": key, "alias": "127.200." + ".".join(ip.split(".")[2:])}


def blob(env, method, path, query="", headers=None):
    """A Shared Key request to the Blob service; returns (status, answer)."""
    answer = shared_key_request(method, ACCOUNT, env["key"], env["alias"], path, query, headers)
    return status_of(answer), answer


def test_legal_hold_keeps_blobs_and_the_container(env):
    st = env["st"]
    st.blob_containers.create(RG, ACCOUNT, "evidence", {})
    assert blob(env, "PUT", "/evidence/a.txt")[0] == 201
    held = st.blob_containers.set_legal_hold(RG, ACCOUNT, "evidence", {"tags": ["Case42", "audit2026"]})
    assert held.has_legal_hold and sorted(held.tags) == ["audit2026", "case42"]
    c = st.blob_containers.get(RG, ACCOUNT, "evidence")
    assert c.has_legal_hold and sorted(t.tag for t in c.legal_hold.tags) == ["audit2026", "case42"]
    status, body = blob(env, "PUT", "/evidence/a.txt")
    assert status == 409 and "BlobImmutableDueToLegalHold" in body
    status, body = blob(env, "DELETE", "/evidence/a.txt")
    assert status == 409 and "BlobImmutableDueToLegalHold" in body
    assert blob(env, "PUT", "/evidence/b.txt")[0] == 201  # new blobs may be written
    with pytest.raises(HttpResponseError) as e:
        st.blob_containers.delete(RG, ACCOUNT, "evidence")
    assert e.value.status_code == 409
    with pytest.raises(HttpResponseError) as e:
        st.storage_accounts.delete(RG, ACCOUNT)
    assert e.value.status_code == 409 and "legal hold" in e.value.message
    with pytest.raises(HttpResponseError) as e:
        st.blob_containers.set_legal_hold(RG, ACCOUNT, "evidence", {"tags": ["no"]})
    assert e.value.status_code == 400
    # Clearing only some tags keeps the hold; clearing all (twice is fine) ends it.
    assert st.blob_containers.clear_legal_hold(RG, ACCOUNT, "evidence", {"tags": ["case42"]}).has_legal_hold
    st.blob_containers.clear_legal_hold(RG, ACCOUNT, "evidence", {"tags": ["audit2026", "case42"]})
    assert not st.blob_containers.get(RG, ACCOUNT, "evidence").has_legal_hold
    assert blob(env, "DELETE", "/evidence/b.txt")[0] == 202


def test_a_locked_policy_protects_blobs_until_their_retention_ends(server, env):
    st = env["st"]
    p = st.blob_containers.create_or_update_immutability_policy(
        RG, ACCOUNT, "evidence", parameters={"properties": {"immutabilityPeriodSinceCreationInDays": 1}})
    assert p.immutability_period_since_creation_in_days == 1 and p.state == "Unlocked" and p.etag
    status, body = blob(env, "DELETE", "/evidence/a.txt")
    assert status == 409 and "BlobImmutableDueToPolicy" in body
    # Deleting or locking an unlocked policy needs its ETag.
    with pytest.raises(HttpResponseError) as e:
        st.blob_containers.lock_immutability_policy(RG, ACCOUNT, "evidence", etag='"stale"', match_condition=MatchConditions.IfNotModified)
    assert e.value.status_code == 412
    locked = st.blob_containers.lock_immutability_policy(RG, ACCOUNT, "evidence", etag=p.etag, match_condition=MatchConditions.IfNotModified)
    assert locked.state == "Locked"
    with pytest.raises(HttpResponseError) as e:
        st.blob_containers.delete_immutability_policy(RG, ACCOUNT, "evidence", etag=locked.etag, match_condition=MatchConditions.IfNotModified)
    assert e.value.status_code == 409
    with pytest.raises(HttpResponseError) as e:
        st.blob_containers.create_or_update_immutability_policy(
            RG, ACCOUNT, "evidence", parameters={"properties": {"immutabilityPeriodSinceCreationInDays": 5}})
    assert e.value.status_code == 409
    longer = st.blob_containers.extend_immutability_policy(
        RG, ACCOUNT, "evidence", etag=locked.etag, match_condition=MatchConditions.IfNotModified, parameters={"properties": {"immutabilityPeriodSinceCreationInDays": 2}})
    assert longer.immutability_period_since_creation_in_days == 2 and longer.state == "Locked"
    got = st.blob_containers.get_immutability_policy(RG, ACCOUNT, "evidence")
    assert got.etag == longer.etag
    c = st.blob_containers.get(RG, ACCOUNT, "evidence")
    assert c.has_immutability_policy and c.immutability_policy.state == "Locked"
    assert [h["update"] for h in c.immutability_policy.update_history] == ["put", "lock", "extend"]
    with pytest.raises(HttpResponseError) as e:
        st.blob_containers.delete(RG, ACCOUNT, "evidence")
    assert e.value.status_code == 409
    with pytest.raises(HttpResponseError) as e:
        st.storage_accounts.delete(RG, ACCOUNT)
    assert e.value.status_code == 409

    # Two days on, the blob may go, and then the container.
    assert server.http("POST", "/recoverite/clock/advance", json={"hours": 49}).status_code == 200
    assert blob(env, "DELETE", "/evidence/a.txt")[0] == 202
    st.blob_containers.delete(RG, ACCOUNT, "evidence")
    assert "evidence" not in [x.name for x in st.blob_containers.list(RG, ACCOUNT)]


def test_an_unlocked_policy_is_removed_with_its_etag(env):
    st = env["st"]
    st.blob_containers.create(RG, ACCOUNT, "drafts", {})
    p = st.blob_containers.create_or_update_immutability_policy(
        RG, ACCOUNT, "drafts", parameters={"properties": {"immutabilityPeriodSinceCreationInDays": 30, "allowProtectedAppendWrites": True}})
    assert p.allow_protected_append_writes
    gone = st.blob_containers.delete_immutability_policy(RG, ACCOUNT, "drafts", etag=p.etag, match_condition=MatchConditions.IfNotModified)
    assert gone.immutability_period_since_creation_in_days == 0
    assert not st.blob_containers.get(RG, ACCOUNT, "drafts").has_immutability_policy


def test_a_leased_container_is_deleted_only_with_its_lease(env):
    st = env["st"]
    st.blob_containers.create(RG, ACCOUNT, "leased", {})
    lease_id = "2f6c1a8e-0d41-4b8e-9c2b-8a1e5f6d7c90"
    got = st.blob_containers.lease(RG, ACCOUNT, "leased", {"action": "Acquire", "leaseDuration": -1, "proposedLeaseId": lease_id})
    assert got.lease_id == lease_id
    c = st.blob_containers.get(RG, ACCOUNT, "leased")
    assert (c.lease_state, c.lease_status, c.lease_duration) == ("Leased", "Locked", "Infinite")
    with pytest.raises(HttpResponseError) as e:
        st.blob_containers.lease(RG, ACCOUNT, "leased", {"action": "Acquire", "leaseDuration": -1})
    assert e.value.status_code == 409
    with pytest.raises(HttpResponseError) as e:
        st.blob_containers.delete(RG, ACCOUNT, "leased")
    assert e.value.status_code == 412
    status, body = blob(env, "DELETE", "/leased", "restype=container")
    assert status == 412 and "LeaseIdMissing" in body
    new_id = "7d0b3c4e-5f6a-4b7c-8d9e-0a1b2c3d4e5f"
    assert st.blob_containers.lease(RG, ACCOUNT, "leased", {"action": "Change", "leaseId": lease_id, "proposedLeaseId": new_id}).lease_id == new_id
    status, _ = blob(env, "DELETE", "/leased", "restype=container", {"x-ms-lease-id": new_id})
    assert status == 202
    # Break, then the container is free again.
    st.blob_containers.create(RG, ACCOUNT, "leased2", {})
    st.blob_containers.lease(RG, ACCOUNT, "leased2", {"action": "Acquire", "leaseDuration": 15})
    broken = st.blob_containers.lease(RG, ACCOUNT, "leased2", {"action": "Break", "breakPeriod": 0})
    assert broken.lease_time_seconds == "0"
    assert st.blob_containers.get(RG, ACCOUNT, "leased2").lease_state == "Broken"
    st.blob_containers.delete(RG, ACCOUNT, "leased2")


def test_moving_to_version_level_immutability_needs_versioning(env):
    st = env["st"]
    st.blob_containers.create(RG, ACCOUNT, "versioned", {})
    with pytest.raises(HttpResponseError) as e:
        st.blob_containers.begin_object_level_worm(RG, ACCOUNT, "versioned").result()
    assert e.value.status_code == 409 and "isVersioningEnabled" in e.value.message
    st.blob_services.set_service_properties(RG, ACCOUNT, {"properties": {"isVersioningEnabled": True}})
    st.blob_containers.begin_object_level_worm(RG, ACCOUNT, "versioned").result()
    c = st.blob_containers.get(RG, ACCOUNT, "versioned")
    assert c.immutable_storage_with_versioning.enabled and c.immutable_storage_with_versioning.migration_state == "Completed"


def test_a_resource_group_keeping_held_data_is_not_deleted(server, env):
    rm = server.client(ResourceManagementClient)
    st = env["st"]
    rm.resource_groups.create_or_update("worm-rg2", {"location": "eastus"})
    st.storage_accounts.begin_create("worm-rg2", "wormaccount2", {"location": "eastus", "sku": {"name": "Standard_LRS"}, "kind": "StorageV2"}).result()
    st.blob_containers.create("worm-rg2", "wormaccount2", "kept", {})
    st.blob_containers.set_legal_hold("worm-rg2", "wormaccount2", "kept", {"tags": ["litigation1"]})
    with pytest.raises(HttpResponseError) as e:
        rm.resource_groups.begin_delete("worm-rg2").result()
    assert e.value.status_code == 409 and "legal hold" in e.value.message
    assert st.blob_containers.get("worm-rg2", "wormaccount2", "kept").has_legal_hold
    st.blob_containers.clear_legal_hold("worm-rg2", "wormaccount2", "kept", {"tags": ["litigation1"]})
    rm.resource_groups.begin_delete("worm-rg2").result()
    assert not rm.resource_groups.check_existence("worm-rg2")


def test_a_locked_container_deleted_through_the_blob_api_no_longer_holds_its_group(server, env):
    rm = server.client(ResourceManagementClient)
    st = env["st"]
    rm.resource_groups.create_or_update("worm-rg3", {"location": "eastus"})
    st.storage_accounts.begin_create("worm-rg3", "wormaccount3", {"location": "eastus", "sku": {"name": "Standard_LRS"}, "kind": "StorageV2"}).result()
    key = dict(st.storage_accounts.list_keys("worm-rg3", "wormaccount3")["keys"][0])["value"]
    ip = server.http("GET", "/recoverite/network/resolve", params={"name": "wormaccount3.blob.core.windows.net"}).json()["answers"][-1]["value"]
    alias = "127.200." + ".".join(ip.split(".")[2:])
    st.blob_containers.create("worm-rg3", "wormaccount3", "sealed", {})
    p = st.blob_containers.create_or_update_immutability_policy(
        "worm-rg3", "wormaccount3", "sealed", parameters={"properties": {"immutabilityPeriodSinceCreationInDays": 1}})
    st.blob_containers.lock_immutability_policy("worm-rg3", "wormaccount3", "sealed", etag=p.etag, match_condition=MatchConditions.IfNotModified)
    with pytest.raises(HttpResponseError) as e:
        rm.resource_groups.begin_delete("worm-rg3").result()
    assert e.value.status_code == 409
    # No blob is protected: the Blob API may delete the container, and the
    # group is free to go.
    assert status_of(shared_key_request("DELETE", "wormaccount3", key, alias, "/sealed", "restype=container")) == 202
    rm.resource_groups.begin_delete("worm-rg3").result()
    assert not rm.resource_groups.check_existence("worm-rg3")
