"""Microsoft Graph for azure-cli (issue 11): `az ad sp create-for-rbac`
makes a principal that signs in and holds exactly the role it was given;
`--assignee <appId>` resolves it; re-running replaces its password; deleting
the application ends its sign-ins."""

import requests


def sign_in(az, app_id, password):
    c = az.server.conn
    return requests.post(f"{c['authority']}/{c['tenantId']}/oauth2/v2.0/token", verify=az.server.ca, data={
        "grant_type": "client_credentials", "client_id": app_id, "client_secret": password,
        "scope": "https://management.azure.com/.default"})


def test_create_for_rbac_makes_a_principal_that_works(az):
    s = az.server
    az.run("group", "create", "-n", "cli-graph", "-l", "eastus")
    scope = f"/subscriptions/{s.sub}/resourceGroups/cli-graph"
    sp = az.run("ad", "sp", "create-for-rbac", "--name", "cli-deployer", "--role", "Reader", "--scopes", scope)
    assert sp["displayName"] == "cli-deployer" and sp["tenant"] == s.conn["tenantId"], sp
    r = sign_in(az, sp["appId"], sp["password"])
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]
    # Reader on the group: it reads it, it may not change it.
    group = f"{scope}?api-version=2021-04-01"
    assert s.http("GET", group, token=token).status_code == 200
    put = s.http("PUT", group, token=token, json={"location": "eastus", "tags": {"x": "y"}})
    assert put.status_code == 403 and put.json()["error"]["code"] == "AuthorizationFailed", put.text

    # The assignee resolves by appId through Graph; the listing names it.
    [ra] = az.run("role", "assignment", "list", "--assignee", sp["appId"], "--scope", scope)
    assert ra["roleDefinitionName"] == "Reader" and ra["principalName"] == sp["appId"], ra
    [found] = az.run("ad", "sp", "list", "--display-name", "cli-deployer")
    assert found["appId"] == sp["appId"] and found["servicePrincipalType"] == "Application"
    az.run("role", "assignment", "create", "--assignee", sp["appId"], "--role", "Contributor", "--scope", scope)
    assert s.http("PUT", group, token=token, json={"location": "eastus", "tags": {"x": "y"}}).status_code == 200

    # Running it again patches the same application with a new password.
    again = az.run("ad", "sp", "create-for-rbac", "--name", "cli-deployer")
    assert again["appId"] == sp["appId"] and again["password"] != sp["password"]
    assert sign_in(az, sp["appId"], sp["password"]).status_code in (400, 401)
    assert sign_in(az, sp["appId"], again["password"]).status_code == 200

    # Deleting the application ends its sign-ins.
    az.run("ad", "app", "delete", "--id", sp["appId"])
    assert sign_in(az, sp["appId"], again["password"]).status_code in (400, 401)
    assert az.run("ad", "sp", "list", "--display-name", "cli-deployer") == []
