"""Many subscriptions in one tenant (issue 16): creating them with the
command line and with `azure-mgmt-subscription` aliases, each its own
scope for provider registration, resources and roles, and management groups
whose role assignments reach every subscription beneath them."""

import json
import uuid

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.msi import ManagedServiceIdentityClient
from azure.mgmt.managementgroups import ManagementGroupsMgmtClient
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.mgmt.resource.subscriptions import SubscriptionClient
from azure.mgmt.storage import StorageManagementClient
from azure.mgmt.subscription import SubscriptionClient as AliasClient

READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"


@pytest.fixture(scope="module")
def server(isolated_server):
    """New subscriptions would show up in every other test's lists."""
    return isolated_server


def tenant_client(server, cls, credential=None):
    return cls(credential or server.credential(), base_url=server.conn["armEndpoint"],
               connection_verify=server.ca, polling_interval=1)


def in_sub(server, cls, sub, credential=None):
    return cls(credential or server.credential(), sub, base_url=server.conn["armEndpoint"],
               connection_verify=server.ca, polling_interval=1)


def principal(server, name):
    r = server.http("POST", "/recoverite/principals", json={"displayName": name})
    assert r.status_code == 201, r.text
    p = r.json()
    return p, server.credential(p["clientId"], p["clientSecret"])


def assign(server, scope, role_guid, principal_id, sub=None):
    auth = in_sub(server, AuthorizationManagementClient, sub or server.sub)
    return auth.role_assignments.create(scope, str(uuid.uuid4()), {
        "role_definition_id": f"/providers/Microsoft.Authorization/roleDefinitions/{role_guid}",
        "principal_id": principal_id})


@pytest.fixture(scope="module")
def subs(server):
    """Two more subscriptions: one from the command line, one through an alias."""
    made = server.cli("subscription", "create", "--name", "spoke-cli")
    aliases = tenant_client(server, AliasClient)
    alias = aliases.alias.begin_create("spoke-alias", {"properties": {
        "displayName": "spoke-sdk", "workload": "Production",
        "billingScope": "/billingAccounts/recoverite/enrollmentAccounts/dev"}}).result()
    return {"cli": made["subscriptionId"], "sdk": alias.properties.subscription_id}


def test_subscriptions_are_created_and_listed(server, subs):
    assert subs["cli"] != subs["sdk"]
    listed = {s.subscription_id: s.display_name for s in tenant_client(server, SubscriptionClient).subscriptions.list()}
    assert listed[server.sub] == "recoverite"
    assert listed[subs["cli"]] == "spoke-cli" and listed[subs["sdk"]] == "spoke-sdk"
    # connection.json keeps its first subscription and lists them all.
    conn = json.loads((server.data_dir / "connection.json").read_text())
    assert conn["subscriptionId"] == server.sub
    assert {s["subscriptionId"] for s in conn["subscriptions"]} >= {server.sub, subs["cli"], subs["sdk"]}
    # The alias is idempotent: re-sending it names the same subscription.
    aliases = tenant_client(server, AliasClient)
    again = aliases.alias.begin_create("spoke-alias", {"properties": {"displayName": "spoke-sdk", "workload": "Production"}}).result()
    assert again.properties.subscription_id == subs["sdk"]
    assert aliases.alias.get("spoke-alias").properties.provisioning_state == "Succeeded"
    assert "spoke-alias" in [a.name for a in aliases.alias.list().value]
    # Renaming a subscription.
    aliases.subscription.rename(subs["cli"], {"subscriptionName": "spoke-one"})
    assert tenant_client(server, SubscriptionClient).subscriptions.get(subs["cli"]).display_name == "spoke-one"


def test_each_subscription_is_its_own_scope(server, subs):
    # Provider registration is per subscription: a new one has every namespace
    # registered, and unregistering in one leaves the other alone.
    rm2 = in_sub(server, ResourceManagementClient, subs["sdk"])
    assert rm2.providers.get("Microsoft.ManagedIdentity").registration_state == "Registered"
    rm2.providers.unregister("Microsoft.ManagedIdentity")
    rm2.resource_groups.create_or_update("same-name", {"location": "eastus"})
    r = server.http("PUT", f"/subscriptions/{subs['sdk']}/resourceGroups/same-name/providers/Microsoft.ManagedIdentity/userAssignedIdentities/uai-one?api-version=2023-01-31",
                    json={"location": "eastus"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "MissingSubscriptionRegistration", r.text
    assert in_sub(server, ResourceManagementClient, subs["cli"]).providers.get("Microsoft.ManagedIdentity").registration_state == "Registered"
    # The SDK registers the namespace again by itself after the 409 and goes on.
    in_sub(server, ManagedServiceIdentityClient, subs["sdk"]).user_assigned_identities.create_or_update("same-name", "uai-one", {"location": "eastus"})
    assert rm2.providers.get("Microsoft.ManagedIdentity").registration_state == "Registered"
    in_sub(server, StorageManagementClient, subs["sdk"]).storage_accounts.begin_create("same-name", "spokesdkacct", {
        "location": "eastus", "kind": "StorageV2", "sku": {"name": "Standard_LRS"}}).result()
    # Resource ids carry the subscription; the same group name lives in each.
    rm1 = in_sub(server, ResourceManagementClient, subs["cli"])
    g1 = rm1.resource_groups.create_or_update("same-name", {"location": "eastus"})
    assert subs["cli"] in g1.id
    # Deleting one subscription's group never touches the other's.
    rm1.resource_groups.begin_delete("same-name").result()
    assert rm2.resource_groups.get("same-name").id.startswith(f"/subscriptions/{subs['sdk']}/")
    assert [a.name for a in in_sub(server, StorageManagementClient, subs["sdk"]).storage_accounts.list()] == ["spokesdkacct"]
    # Role assignments are per subscription: Reader on one sees only that one.
    p, cred = principal(server, "one-sub-reader")
    assign(server, f"/subscriptions/{subs['cli']}", READER, p["objectId"], sub=subs["cli"])
    seen = [s.subscription_id for s in tenant_client(server, SubscriptionClient, cred).subscriptions.list()]
    assert seen == [subs["cli"]]
    with pytest.raises(HttpResponseError) as e:
        in_sub(server, ResourceManagementClient, subs["sdk"], cred).resource_groups.get("same-name")
    assert e.value.status_code == 403


def test_only_billing_owners_create_subscriptions(server):
    _, cred = principal(server, "no-billing")
    with pytest.raises(HttpResponseError) as e:
        tenant_client(server, AliasClient, cred).alias.begin_create("nope", {"properties": {
            "displayName": "nope", "workload": "Production"}}).result()
    assert e.value.status_code == 403 and e.value.error.code == "AuthorizationFailed"
    with pytest.raises(HttpResponseError) as e:
        tenant_client(server, AliasClient).alias.begin_create("bad-workload", {"properties": {
            "displayName": "x", "workload": "Sandbox"}}).result()
    assert e.value.error.code == "InvalidWorkload"


def test_management_group_roles_reach_every_subscription_beneath(server, subs):
    mg = tenant_client(server, ManagementGroupsMgmtClient)
    root = server.conn["tenantId"]
    corp = mg.management_groups.begin_create_or_update("corp", {"properties": {"displayName": "Corp"}}).result()
    assert corp.properties.details.parent.id == f"/providers/Microsoft.Management/managementGroups/{root}"
    mg.management_groups.begin_create_or_update("landing-zones", {"properties": {
        "displayName": "Landing zones", "details": {"parent": {"id": corp.id}}}}).result()
    for s in (subs["cli"], subs["sdk"]):
        mg.management_group_subscriptions.create("landing-zones", s)
    tree = mg.management_groups.get("corp", expand="children", recurse=True)
    lz = next(c for c in tree.properties.children if c.name == "landing-zones")
    assert sorted(c.name for c in lz.children) == sorted([subs["cli"], subs["sdk"]])
    got = mg.management_groups.get("landing-zones", expand="ancestors")
    assert got.properties.details.management_group_ancestors == ["corp", root]

    # Reader at the group: both spokes, and nothing else.
    p, cred = principal(server, "mg-reader")
    assign(server, "/providers/Microsoft.Management/managementGroups/landing-zones", READER, p["objectId"])
    seen = sorted(s.subscription_id for s in tenant_client(server, SubscriptionClient, cred).subscriptions.list())
    assert seen == sorted([subs["cli"], subs["sdk"]])
    assert in_sub(server, ResourceManagementClient, subs["sdk"], cred).resource_groups.get("same-name").name == "same-name"
    assert list(in_sub(server, ResourceManagementClient, server.sub, cred).resource_groups.list()) == []
    with pytest.raises(HttpResponseError) as e:  # Reader cannot write below the group
        in_sub(server, ResourceManagementClient, subs["cli"], cred).resource_groups.create_or_update("w", {"location": "eastus"})
    assert e.value.status_code == 403
    # Moving a spoke out of the group takes the role away there.
    mg.management_group_subscriptions.delete("landing-zones", subs["cli"])
    seen = [s.subscription_id for s in tenant_client(server, SubscriptionClient, cred).subscriptions.list()]
    assert seen == [subs["sdk"]]

    # The tree's rules: no cycles, a group with children cannot go.
    with pytest.raises(HttpResponseError) as e:
        mg.management_groups.begin_create_or_update("corp", {"properties": {
            "displayName": "Corp", "details": {"parent": {"id": "/providers/Microsoft.Management/managementGroups/landing-zones"}}}}).result()
    assert e.value.error.code == "InvalidParentGroup"
    with pytest.raises(HttpResponseError) as e:
        mg.management_groups.begin_delete("landing-zones").result()
    assert e.value.error.code == "CannotDeleteManagementGroupWithChildren"
    with pytest.raises(HttpResponseError) as e:
        mg.management_groups.begin_create_or_update("bad name", {"properties": {"displayName": "x"}}).result()
    assert e.value.error.code == "InvalidManagementGroupName"
    # Someone without a role on a group cannot create groups under it.
    _, outsider = principal(server, "mg-outsider")
    with pytest.raises(HttpResponseError) as e:
        tenant_client(server, ManagementGroupsMgmtClient, outsider).management_groups.begin_create_or_update("sneaky", {"properties": {
            "displayName": "x", "details": {"parent": {"id": corp.id}}}}).result()
    assert e.value.status_code == 403


def test_subscription_created_without_a_server(server):
    """`recoverite subscription create` writes the data directory when no
    server runs; the next start registers every provider there."""
    server.stop()
    try:
        made = server.cli("subscription", "create", "--name", "offline-spoke")
        listed = server.cli("subscription", "list")
        assert made["subscriptionId"] in [s["subscriptionId"] for s in listed]
    finally:
        server.start()
    sub = made["subscriptionId"]
    assert sub in [s["subscriptionId"] for s in server.conn["subscriptions"]]
    rm = in_sub(server, ResourceManagementClient, sub)
    assert rm.providers.get("Microsoft.RecoveryServices").registration_state == "Registered"
    assert rm.resource_groups.create_or_update("offline-rg", {"location": "westus"}).name == "offline-rg"
    # The server keeps connection.json's list current as subscriptions come.
    more = server.cli("subscription", "create", "--name", "online-spoke")
    conn = json.loads((server.data_dir / "connection.json").read_text())
    assert more["subscriptionId"] in [s["subscriptionId"] for s in conn["subscriptions"]]
    assert conn["subscriptionId"] == server.sub
