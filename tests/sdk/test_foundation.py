"""The foundation, driven by the official Azure SDKs: sign-in, resource
groups, provider registration, RBAC, managed identities, errors, restart."""

import base64
import json
import time
import uuid

import pytest
import requests
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
)
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.msi import ManagedServiceIdentityClient
from azure.mgmt.resource.resources import ResourceManagementClient

RG_API = "2025-04-01"
OWNER = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"


def rg_names(rm):
    return sorted(g.name for g in rm.resource_groups.list())


def test_connection_file_has_exactly_the_documented_keys(server):
    assert set(server.conn) == {
        "armEndpoint", "authority", "tenantId", "subscriptionId",
        "clientId", "clientSecret", "caCertFile", "dnsServer",
        "subscriptions",  # issue 16: every subscription of the tenant
        "instanceSlot",  # issue 15: instances side by side
    }
    assert 0 <= server.conn["instanceSlot"] < 100
    assert server.conn["subscriptions"] == [{"subscriptionId": server.sub, "displayName": "recoverite"}]
    assert server.conn["armEndpoint"].startswith("https://127.0.0.1:")


def test_openid_discovery_and_signed_jwt(server):
    t = server.conn["tenantId"]
    cfg = requests.get(f"{server.conn['authority']}/{t}/v2.0/.well-known/openid-configuration", verify=server.ca).json()
    assert cfg["token_endpoint"].endswith(f"/{t}/oauth2/v2.0/token")
    keys = requests.get(cfg["jwks_uri"], verify=server.ca).json()["keys"]
    assert keys[0]["kty"] == "RSA" and keys[0]["alg"] == "RS256"
    token = server.token()
    header, payload, _ = token.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)
    h = json.loads(base64.urlsafe_b64decode(pad(header)))
    c = json.loads(base64.urlsafe_b64decode(pad(payload)))
    assert h["alg"] == "RS256" and h["kid"] == keys[0]["kid"]
    assert c["tid"] == t and c["aud"] == "https://management.azure.com" and c["oid"] and c["exp"] > time.time()


def test_resource_group_lifecycle(server):
    rm = server.client(ResourceManagementClient)
    g = rm.resource_groups.create_or_update("sdk-rg-1", {"location": "East US", "tags": {"env": "test"}})
    assert g.location == "eastus" and g.properties.provisioning_state == "Succeeded"
    assert g.id == f"/subscriptions/{server.sub}/resourceGroups/sdk-rg-1"
    # Update keeps the group; names are case-insensitive but keep their first spelling.
    g2 = rm.resource_groups.create_or_update("SDK-RG-1", {"location": "eastus", "tags": {"env": "prod"}})
    assert g2.name == "sdk-rg-1" and g2.tags == {"env": "prod"}
    assert rm.resource_groups.get("Sdk-Rg-1").tags == {"env": "prod"}
    assert rm.resource_groups.check_existence("sdk-rg-1") is True
    assert rm.resource_groups.check_existence("no-such-rg") is False
    patched = rm.resource_groups.update("sdk-rg-1", {"tags": {"owner": "me"}})
    assert patched.tags == {"owner": "me"}
    assert [x.name for x in rm.resource_groups.list(filter="tagName eq 'owner' and tagValue eq 'me'")] == ["sdk-rg-1"]
    rm.resource_groups.begin_delete("sdk-rg-1").result()
    with pytest.raises(ResourceNotFoundError) as e:
        rm.resource_groups.get("sdk-rg-1")
    assert e.value.error.code == "ResourceGroupNotFound"


def test_resource_group_list_pages_with_next_link(server):
    rm = server.client(ResourceManagementClient)
    for i in range(3):
        rm.resource_groups.create_or_update(f"page-rg-{i}", {"location": "westus"})
    first = server.http("GET", f"/subscriptions/{server.sub}/resourcegroups?api-version={RG_API}&$top=2").json()
    assert len(first["value"]) == 2 and "api-version=" in first["nextLink"]
    # The SDK follows nextLink until it ends.
    names = [g.name for g in rm.resource_groups.list(top=2)]
    assert {f"page-rg-{i}" for i in range(3)} <= set(names)
    for i in range(3):
        rm.resource_groups.begin_delete(f"page-rg-{i}").result()


def test_delete_is_a_long_running_operation_with_location(server):
    rm = server.client(ResourceManagementClient)
    rm.resource_groups.create_or_update("lro-rg", {"location": "eastus"})
    r = server.http("DELETE", f"/subscriptions/{server.sub}/resourcegroups/lro-rg?api-version={RG_API}")
    assert r.status_code == 202 and r.headers["Location"].startswith(server.conn["armEndpoint"])
    assert r.headers["Retry-After"] == "1"
    poll = server.http("GET", r.headers["Location"].replace(server.conn["armEndpoint"], ""))
    assert poll.status_code in (200, 204)


def test_every_response_carries_request_ids(server):
    ok = server.http("GET", f"/subscriptions/{server.sub}/resourcegroups?api-version={RG_API}",
                     headers={"x-ms-correlation-request-id": "corr-123"})
    bad = server.http("GET", f"/subscriptions/{server.sub}/resourcegroups")
    for r in (ok, bad):
        uuid.UUID(r.headers["x-ms-request-id"])
    assert ok.headers["x-ms-correlation-request-id"] == "corr-123"


def test_provider_registration_and_auto_registration_by_the_sdk(server):
    rm = server.client(ResourceManagementClient)
    assert rm.providers.get("Microsoft.ManagedIdentity").registration_state == "Registered"
    rm.providers.unregister("Microsoft.ManagedIdentity")
    rm.resource_groups.create_or_update("reg-rg", {"location": "eastus"})
    r = server.http("PUT", f"/subscriptions/{server.sub}/resourceGroups/reg-rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/uai-1?api-version=2024-11-30",
                    json={"location": "eastus"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "MissingSubscriptionRegistration"
    assert "'Microsoft.ManagedIdentity'" in r.json()["error"]["message"]
    # The SDK's registration policy registers the namespace and replays the call.
    msi = server.client(ManagedServiceIdentityClient)
    u = msi.user_assigned_identities.create_or_update("reg-rg", "uai-1", {"location": "eastus"})
    assert u.principal_id
    assert rm.providers.get("Microsoft.ManagedIdentity").registration_state == "Registered"
    # Recovery Services can be registered up front, as automation does.
    rm.providers.unregister("Microsoft.RecoveryServices")
    assert rm.providers.get("Microsoft.RecoveryServices").registration_state == "NotRegistered"
    assert rm.providers.register("Microsoft.RecoveryServices").registration_state == "Registered"
    with pytest.raises(ResourceNotFoundError) as e:
        rm.providers.get("Microsoft.NoSuchThing")
    providers = {p.namespace for p in rm.providers.list()}
    assert {"Microsoft.Resources", "Microsoft.Authorization", "Microsoft.ManagedIdentity"} <= providers
    rm.resource_groups.begin_delete("reg-rg").result()


def test_reader_principal_can_read_but_not_write(server):
    rm = server.client(ResourceManagementClient)
    rm.resource_groups.create_or_update("reader-rg", {"location": "eastus"})
    created = server.cli("principal", "create", "--name", "reader-app", "--role", "Reader")
    assert created["roleAssignment"]["properties"]["roleDefinitionId"].endswith(READER)
    reader = server.credential(created["clientId"], created["clientSecret"])
    rrm = server.client(ResourceManagementClient, credential=reader)
    assert "reader-rg" in rg_names(rrm)
    with pytest.raises(HttpResponseError) as e:
        rrm.resource_groups.create_or_update("reader-made-this", {"location": "eastus"})
    err = e.value
    assert err.status_code == 403 and err.error.code == "AuthorizationFailed"
    msg = err.error.message
    assert created["objectId"] in msg
    assert "Microsoft.Resources/subscriptions/resourceGroups/write" in msg
    assert f"/subscriptions/{server.sub}/resourcegroups/reader-made-this" in msg.lower()
    with pytest.raises(HttpResponseError) as e:
        rrm.resource_groups.begin_delete("reader-rg").result()
    assert e.value.status_code == 403
    assert "reader-made-this" not in rg_names(rm)
    assert "reader-rg" in rg_names(rm)
    rm.resource_groups.begin_delete("reader-rg").result()


def test_rbac_scope_and_role_assignment_api(server):
    rm = server.client(ResourceManagementClient)
    auth = server.client(AuthorizationManagementClient)
    rm.resource_groups.create_or_update("scoped-a", {"location": "eastus"})
    rm.resource_groups.create_or_update("scoped-b", {"location": "eastus"})
    p = server.cli("principal", "create", "--name", "rg-contributor")
    scope = f"/subscriptions/{server.sub}/resourceGroups/scoped-a"
    owner_defs = list(auth.role_definitions.list(f"/subscriptions/{server.sub}", filter="roleName eq 'Contributor'"))
    assert [d.name for d in owner_defs] == [CONTRIBUTOR]
    ra_name = str(uuid.uuid4())
    ra = auth.role_assignments.create(scope, ra_name, {
        "role_definition_id": owner_defs[0].id, "principal_id": p["objectId"], "principal_type": "ServicePrincipal"})
    assert ra.scope == scope and ra.principal_id == p["objectId"]
    # The same assignment under another name is a conflict.
    with pytest.raises(HttpResponseError) as e:
        auth.role_assignments.create(scope, str(uuid.uuid4()), {"role_definition_id": owner_defs[0].id, "principal_id": p["objectId"]})
    assert e.value.error.code == "RoleAssignmentExists"
    with pytest.raises(HttpResponseError) as e:
        auth.role_assignments.create(scope, str(uuid.uuid4()), {"role_definition_id": owner_defs[0].id, "principal_id": str(uuid.uuid4())})
    assert e.value.error.code == "PrincipalNotFound"
    listed = [a.name for a in auth.role_assignments.list_for_resource_group("scoped-a", filter=f"principalId eq '{p['objectId']}'")]
    assert listed == [ra_name]

    cred = server.credential(p["clientId"], p["clientSecret"])
    crm = server.client(ResourceManagementClient, credential=cred)
    crm.resource_groups.update("scoped-a", {"tags": {"by": "contributor"}})
    with pytest.raises(HttpResponseError) as e:
        crm.resource_groups.update("scoped-b", {"tags": {"by": "contributor"}})
    assert e.value.status_code == 403
    # Lists show only what the caller may read.
    assert rg_names(crm) == ["scoped-a"]
    # Contributor cannot hand out access.
    cauth = server.client(AuthorizationManagementClient, credential=cred)
    with pytest.raises(HttpResponseError) as e:
        cauth.role_assignments.create(scope, str(uuid.uuid4()), {"role_definition_id": owner_defs[0].id, "principal_id": p["objectId"]})
    assert e.value.error.code == "AuthorizationFailed"
    auth.role_assignments.delete(scope, ra_name)
    with pytest.raises(HttpResponseError) as e:
        crm.resource_groups.update("scoped-a", {"tags": {"x": "y"}})
    assert e.value.status_code == 403
    rm.resource_groups.begin_delete("scoped-a").result()
    rm.resource_groups.begin_delete("scoped-b").result()


def test_builtin_roles_have_real_guids(server):
    auth = server.client(AuthorizationManagementClient)
    defs = {d.role_name: d for d in auth.role_definitions.list(f"/subscriptions/{server.sub}")}
    expected = {
        "Owner": OWNER, "Contributor": CONTRIBUTOR, "Reader": READER,
        "User Access Administrator": "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
        "Storage Blob Data Contributor": "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
        "Storage Blob Data Owner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
        "Classic Storage Account Contributor": "86e8f5dc-a6e9-4c67-9d15-de283e8eac25",
        "Classic Storage Account Key Operator Service Role": "985d6b00-f706-48f5-a6fe-d0ca12fb668d",
        "Site Recovery Contributor": "6670b86e-a3f7-4917-ac9b-5d6ab1be4567",
        "Site Recovery Operator": "494ae006-db33-4328-bf46-533a6560a3ca",
        "Site Recovery Reader": "dbaa88c4-0c30-4179-9fb3-46319faa6149",
        "Backup Contributor": "5e467623-bb1f-42f4-a55d-6e525e11384b",
        "Backup Operator": "00c29273-979b-4161-815c-10b084fb9324",
        "Backup Reader": "a795c7a0-d4a2-40c1-ae25-d81f01202912",
    }
    for name, guid in expected.items():
        assert defs[name].name == guid, name
    c = auth.role_definitions.get(f"/subscriptions/{server.sub}", CONTRIBUTOR)
    assert "Microsoft.Authorization/*/Write" in c.permissions[0].not_actions
    # The tenant-scope id of a built-in role resolves too.
    o = auth.role_definitions.get_by_id(f"/providers/Microsoft.Authorization/roleDefinitions/{OWNER}")
    assert o.role_name == "Owner" and o.permissions[0].actions == ["*"]


def test_managed_identity_receives_a_role(server):
    rm = server.client(ResourceManagementClient)
    rm.resource_groups.create_or_update("mi-rg", {"location": "centralus"})
    msi = server.client(ManagedServiceIdentityClient)
    u = msi.user_assigned_identities.create_or_update("mi-rg", "vault-identity", {"location": "centralus", "tags": {"k": "v"}})
    assert u.principal_id and u.client_id and u.tenant_id == server.conn["tenantId"]
    assert msi.user_assigned_identities.get("mi-rg", "VAULT-IDENTITY").principal_id == u.principal_id
    assert [x.name for x in msi.user_assigned_identities.list_by_resource_group("mi-rg")] == ["vault-identity"]
    assert "vault-identity" in [x.name for x in msi.user_assigned_identities.list_by_subscription()]
    auth = server.client(AuthorizationManagementClient)
    scope = f"/subscriptions/{server.sub}/resourceGroups/mi-rg"
    ra = auth.role_assignments.create(scope, str(uuid.uuid4()), {
        "role_definition_id": f"/subscriptions/{server.sub}/providers/Microsoft.Authorization/roleDefinitions/{CONTRIBUTOR}",
        "principal_id": u.principal_id, "principal_type": "ServicePrincipal"})
    assert ra.principal_id == u.principal_id
    # An assignment on the identity resource itself (resource scope).
    auth.role_assignments.create(u.id, str(uuid.uuid4()), {
        "role_definition_id": f"/subscriptions/{server.sub}/providers/Microsoft.Authorization/roleDefinitions/{READER}",
        "principal_id": u.principal_id})
    at_scope = list(auth.role_assignments.list_for_scope(u.id, filter=f"atScope() and assignedTo('{u.principal_id}')"))
    assert sorted(a.scope.lower() for a in at_scope) == sorted([scope.lower(), u.id.lower()])
    # atScope() also lists what is inherited from above (the bootstrap Owner).
    assert any(a.role_definition_id.endswith(OWNER) for a in auth.role_assignments.list_for_scope(u.id, filter="atScope()"))
    msi.user_assigned_identities.delete("mi-rg", "vault-identity")
    with pytest.raises(ResourceNotFoundError):
        msi.user_assigned_identities.get("mi-rg", "vault-identity")
    rm.resource_groups.begin_delete("mi-rg").result()
    assert not list(auth.role_assignments.list_for_scope(f"/subscriptions/{server.sub}", filter=f"principalId eq '{u.principal_id}'"))


def test_token_failures_are_401_with_challenge(server):
    path = f"/subscriptions/{server.sub}/resourcegroups?api-version={RG_API}"
    r = server.http("GET", path, token=False)
    assert r.status_code == 401 and r.json()["error"]["code"] == "AuthenticationFailed"
    assert r.headers["WWW-Authenticate"].startswith("Bearer authorization_uri=")
    r = server.http("GET", path, token="not-a-jwt")
    assert r.status_code == 401 and r.json()["error"]["code"] == "InvalidAuthenticationToken"

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    real = json.loads(base64.urlsafe_b64decode(server.token().split(".")[1] + "=="))

    def sign(key, claims):
        b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
        head = b64(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
        body = b64(json.dumps(claims).encode())
        sig = key.sign(f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{head}.{body}.{b64(sig)}"

    forged = sign(rsa.generate_private_key(public_exponent=65537, key_size=2048), real)
    r = server.http("GET", path, token=forged)
    assert r.status_code == 401 and r.json()["error"]["code"] == "InvalidAuthenticationToken"

    key = serialization.load_pem_private_key((server.data_dir / "keys" / "token-signing.pem").read_bytes(), None)
    expired = sign(key, dict(real, iat=real["iat"] - 7200, nbf=real["iat"] - 7200, exp=int(time.time()) - 60))
    r = server.http("GET", path, token=expired)
    assert r.status_code == 401 and r.json()["error"]["code"] == "ExpiredAuthenticationToken"

    storage_token = server.token(scope="https://storage.azure.com/.default")
    r = server.http("GET", path, token=storage_token)
    assert r.status_code == 401 and r.json()["error"]["code"] == "InvalidAuthenticationTokenAudience"

    bad = server.credential(server.conn["clientId"], "wrong-secret")
    with pytest.raises(ClientAuthenticationError):
        bad.get_token("https://management.azure.com/.default")


def test_bad_input_gets_arm_errors_and_changes_nothing(server):
    sub = server.sub
    before = server.http("GET", f"/subscriptions/{sub}/resourcegroups?api-version={RG_API}").json()["value"]

    def expect(r, status, code):
        assert r.status_code == status, r.text
        assert r.json()["error"]["code"] == code
        assert r.json()["error"]["message"]

    p = f"/subscriptions/{sub}/resourcegroups/bad-input?api-version={RG_API}"
    expect(server.http("PUT", p, data="{not json", headers={"Content-Type": "application/json"}), 400, "InvalidRequestContent")
    expect(server.http("PUT", p, json={"location": "eastus", "tags": 5}), 400, "InvalidRequestContent")
    expect(server.http("PUT", p, json={"location": 17}), 400, "InvalidRequestContent")
    expect(server.http("PUT", p, json={}), 400, "LocationRequired")
    expect(server.http("PUT", p, json={"location": "atlantis"}), 400, "LocationNotAvailableForResourceGroup")
    expect(server.http("PUT", p, data="x" * (4 * 1024 * 1024 + 10), headers={"Content-Type": "application/json"}), 413, "RequestEntityTooLarge")
    expect(server.http("PUT", f"/subscriptions/{sub}/resourcegroups/bad%20name.?api-version={RG_API}", json={"location": "eastus"}), 400, "InvalidResourceName")
    expect(server.http("PUT", f"/subscriptions/{sub}/resourcegroups/bad-input", json={"location": "eastus"}), 400, "MissingApiVersionParameter")
    expect(server.http("PUT", f"/subscriptions/{sub}/resourcegroups/bad-input?api-version=2099-01-01", json={"location": "eastus"}), 400, "InvalidApiVersionParameter")
    expect(server.http("PUT", f"/subscriptions/{sub}/resourcegroups/bad-input?api-version=yesterday", json={"location": "eastus"}), 400, "InvalidApiVersionParameter")
    expect(server.http("PUT", p, json={"location": "eastus", "tags": {"a/b": "c"}}), 400, "InvalidTagNameCharacters")
    expect(server.http("GET", f"/subscriptions/{uuid.uuid4()}/resourcegroups?api-version={RG_API}"), 404, "SubscriptionNotFound")
    expect(server.http("GET", f"/subscriptions/{sub}/resourceGroups/nope/providers/Microsoft.ManagedIdentity/userAssignedIdentities/x?api-version=2024-11-30"), 404, "ResourceGroupNotFound")
    expect(server.http("GET", f"/subscriptions/{sub}/providers/Microsoft.Nope/things?api-version=2024-01-01"), 400, "InvalidResourceNamespace")
    expect(server.http("PUT", p, data="location=eastus", headers={"Content-Type": "text/plain"}), 415, "UnsupportedMediaType")
    after = server.http("GET", f"/subscriptions/{sub}/resourcegroups?api-version={RG_API}").json()["value"]
    assert before == after


def test_state_survives_restart(server):
    rm = server.client(ResourceManagementClient)
    rm.resource_groups.create_or_update("durable-rg", {"location": "northeurope", "tags": {"keep": "me"}})
    msi = server.client(ManagedServiceIdentityClient)
    u = msi.user_assigned_identities.create_or_update("durable-rg", "durable-id", {"location": "northeurope"})
    p = server.cli("principal", "create", "--name", "durable-reader", "--role", "Reader")
    old_token = server.token()
    before_conn = dict(server.conn)
    ca_before = open(server.ca).read()

    server.restart()

    ports = ("armEndpoint", "authority", "dnsServer")  # free ports are picked anew
    assert {k: v for k, v in server.conn.items() if k not in ports} == {k: v for k, v in before_conn.items() if k not in ports}
    assert open(server.ca).read() == ca_before
    rm = server.client(ResourceManagementClient)
    assert rm.resource_groups.get("durable-rg").tags == {"keep": "me"}
    msi = server.client(ManagedServiceIdentityClient)
    assert msi.user_assigned_identities.get("durable-rg", "durable-id").principal_id == u.principal_id
    reader = server.client(ResourceManagementClient, credential=server.credential(p["clientId"], p["clientSecret"]))
    assert "durable-rg" in rg_names(reader)
    if before_conn["armEndpoint"] == server.conn["armEndpoint"]:
        r = server.http("GET", f"/subscriptions/{server.sub}/resourcegroups?api-version={RG_API}", token=old_token)
        assert r.status_code == 200
    rm.resource_groups.begin_delete("durable-rg").result()


def test_principal_create_without_running_server_writes_the_store(server, tmp_path):
    # Stop, create offline, restart: the principal signs in.
    server.stop()
    p = server.cli("principal", "create", "--name", "offline-app", "--role", "Reader")
    server.start()
    cred = server.credential(p["clientId"], p["clientSecret"])
    assert cred.get_token("https://management.azure.com/.default").token


def test_subscription_tenant_and_locations(server):
    from azure.mgmt.resource.subscriptions import SubscriptionClient
    sc = SubscriptionClient(server.credential(), base_url=server.conn["armEndpoint"], connection_verify=server.ca)
    subs = list(sc.subscriptions.list())
    assert [s.subscription_id for s in subs] == [server.sub]
    locs = {l.name: l for l in sc.subscriptions.list_locations(server.sub)}
    assert locs["eastus"].display_name == "East US"
    assert locs["eastus"].metadata.paired_region[0].name == "westus"
    assert [t.tenant_id for t in sc.tenants.list()] == [server.conn["tenantId"]]


def test_kill_9_during_writes_leaves_no_half_written_resource(server):
    import threading

    token = server.token()
    stop = threading.Event()
    acked = []

    def writer():
        for i in range(100000):
            if stop.is_set():
                return
            try:
                r = server.http("PUT", f"/subscriptions/{server.sub}/resourcegroups/crash-{i}?api-version={RG_API}",
                                token=token, json={"location": "eastus", "tags": {"i": str(i), "pad": "x" * 200}}, timeout=2)
            except requests.RequestException:
                return
            if r.status_code == 201:
                acked.append(i)

    t = threading.Thread(target=writer)
    t.start()
    time.sleep(0.7)
    server.proc.kill()  # SIGKILL: no shutdown path runs
    server.proc.wait()
    stop.set()
    t.join()
    assert acked, "some writes were acknowledged before the kill"
    server.start()
    rm = server.client(ResourceManagementClient)
    groups = {g.name: g for g in rm.resource_groups.list() if g.name.startswith("crash-")}
    # Every acknowledged write is there, and nothing is half-written.
    assert {f"crash-{i}" for i in acked} <= set(groups)
    for name, g in groups.items():
        assert g.tags == {"i": name.split("-")[1], "pad": "x" * 200}
        assert g.properties.provisioning_state == "Succeeded"
    for name in groups:
        server.http("DELETE", f"/subscriptions/{server.sub}/resourcegroups/{name}?api-version={RG_API}")
