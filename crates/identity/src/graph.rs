//! The part of Microsoft Graph (v1.0) that automation calls for service
//! principals: applications with their password credentials, the service
//! principal of an application, lookups by `$filter`, and
//! `directoryObjects/getByIds` — what `az ad sp create-for-rbac` and
//! `az role assignment … --assignee <appId>` send.
//!
//! An application and its service principal are one recoverite principal
//! (its `appId` is the client id a token request names, its object id the
//! service principal's, which role assignments name); the application has
//! an object id of its own, as in Entra ID.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use recoverite_arm::{time, ArmError};
use recoverite_store::{Reader, Table, WriteTx};

use crate::principals::{self, Principal, PrincipalKind};

const APPS: Table = Table("graph_applications");
/// appId → the application's object id.
const APPS_BY_APP_ID: Table = Table("graph_applications_by_app_id");
/// Principals holding the Application Administrator directory role.
const ADMINS: Table = Table("graph_application_admins");

/// Graph's error: `{"error": {"code", "message"}}` with its HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl GraphError {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> GraphError {
        GraphError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn not_found(what: &str) -> GraphError {
        GraphError::new(
            404,
            "Request_ResourceNotFound",
            format!("Resource '{what}' does not exist or one of its queried reference-property objects are not present."),
        )
    }

    pub fn bad(message: impl Into<String>) -> GraphError {
        GraphError::new(400, "Request_BadRequest", message)
    }

    pub fn to_json(&self) -> Value {
        json!({"error": {"code": self.code, "message": self.message,
                         "innerError": {"date": time::now_string(), "request-id": uuid::Uuid::new_v4().to_string()}}})
    }
}

impl From<ArmError> for GraphError {
    fn from(e: ArmError) -> GraphError {
        GraphError::new(
            e.status,
            "Service_InternalServerError",
            e.body.message.clone(),
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PasswordCredential {
    pub key_id: String,
    pub display_name: Option<String>,
    pub start_date_time: String,
    pub end_date_time: String,
    /// The secret's first three characters, as Graph shows them.
    pub hint: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Application {
    pub id: String,
    pub app_id: String,
    pub display_name: String,
    #[serde(default)]
    pub identifier_uris: Vec<String>,
    #[serde(default)]
    pub password_credentials: Vec<PasswordCredential>,
    /// Whether its service principal was created (`POST /servicePrincipals`).
    pub has_service_principal: bool,
    pub created_date_time: String,
}

impl Application {
    pub fn to_json(&self) -> Value {
        json!({
            "@odata.type": "#microsoft.graph.application",
            "id": self.id, "appId": self.app_id, "displayName": self.display_name,
            "identifierUris": self.identifier_uris, "signInAudience": "AzureADMyOrg",
            "passwordCredentials": self.password_credentials, "keyCredentials": [],
            "createdDateTime": self.created_date_time,
            "requiredResourceAccess": [], "web": {"redirectUris": []}, "api": {}, "tags": [],
        })
    }
}

/// A principal as a Graph service principal.
pub fn service_principal_json(p: &Principal) -> Value {
    let kind = match p.kind {
        PrincipalKind::ServicePrincipal => "Application",
        _ => "ManagedIdentity",
    };
    let mut names = vec![p.app_id.clone()];
    if let Some(r) = &p.resource_id {
        names.push(r.clone());
    }
    json!({
        "@odata.type": "#microsoft.graph.servicePrincipal",
        "id": p.object_id, "appId": p.app_id, "displayName": p.display_name,
        "servicePrincipalNames": names, "servicePrincipalType": kind,
        "accountEnabled": true, "appOwnerOrganizationId": Value::Null,
        "alternativeNames": p.resource_id.iter().collect::<Vec<_>>(),
        "createdDateTime": p.created, "tags": [], "passwordCredentials": [],
    })
}

/// The OData `$filter` forms clients send for these objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    DisplayName(String),
    /// `startswith(displayName,'x')`
    DisplayNameStartsWith(String),
    /// Clauses joined by `and`.
    All(Vec<Filter>),
    AppId(String),
    /// `servicePrincipalNames/any(c:c eq 'x')`
    ServicePrincipalName(String),
    IdentifierUri(String),
}

/// Parses `$filter`; what Graph would not understand is refused, not ignored.
pub fn parse_filter(f: &str) -> Result<Filter, GraphError> {
    let clauses: Vec<&str> = f.split(" and ").collect();
    if clauses.len() > 1 {
        return Ok(Filter::All(
            clauses
                .into_iter()
                .map(parse_clause)
                .collect::<Result<_, _>>()?,
        ));
    }
    parse_clause(f)
}

fn parse_clause(f: &str) -> Result<Filter, GraphError> {
    let f = f.trim();
    let quoted = |s: &str| -> Option<String> {
        let s = s.trim();
        let inner = s.strip_prefix('\'')?.strip_suffix('\'')?;
        Some(inner.replace("''", "'"))
    };
    let eq = |field: &str| -> Option<String> {
        let (l, r) = f.split_once(" eq ")?;
        if l.trim().eq_ignore_ascii_case(field) {
            quoted(r)
        } else {
            None
        }
    };
    if let Some(arg) = f
        .strip_prefix("startswith(displayName,")
        .and_then(|r| r.strip_suffix(')'))
    {
        if let Some(v) = quoted(arg) {
            return Ok(Filter::DisplayNameStartsWith(v));
        }
    }
    if let Some(v) = eq("displayName") {
        return Ok(Filter::DisplayName(v));
    }
    if let Some(v) = eq("appId") {
        return Ok(Filter::AppId(v));
    }
    for (prefix, make) in [
        (
            "servicePrincipalNames/any(",
            Filter::ServicePrincipalName as fn(String) -> Filter,
        ),
        (
            "identifierUris/any(",
            Filter::IdentifierUri as fn(String) -> Filter,
        ),
    ] {
        if let Some(rest) = f.strip_prefix(prefix).and_then(|r| r.strip_suffix(')')) {
            // c:c eq 'x'
            if let Some((var, cond)) = rest.split_once(':') {
                if let Some((l, r)) = cond.split_once(" eq ") {
                    if l.trim() == var.trim() {
                        if let Some(v) = quoted(r) {
                            return Ok(make(v));
                        }
                    }
                }
            }
        }
    }
    Err(GraphError::bad(format!(
        "Unsupported or invalid query filter clause '{f}': recoverite filters by displayName (eq, startswith), appId, servicePrincipalNames/any(…) and identifierUris/any(…), joined by 'and'."
    )))
}

fn sp_matches(p: &Principal, f: &Filter) -> bool {
    match f {
        Filter::All(fs) => fs.iter().all(|f| sp_matches(p, f)),
        Filter::DisplayNameStartsWith(n) => p.display_name.starts_with(n.as_str()),
        Filter::DisplayName(n) => p.display_name == *n,
        Filter::AppId(a) => p.app_id.eq_ignore_ascii_case(a),
        Filter::ServicePrincipalName(n) => {
            p.app_id.eq_ignore_ascii_case(n)
                || p.resource_id
                    .as_deref()
                    .is_some_and(|r| r.eq_ignore_ascii_case(n))
        }
        Filter::IdentifierUri(_) => false,
    }
}

fn app_matches(a: &Application, f: &Filter) -> bool {
    match f {
        Filter::All(fs) => fs.iter().all(|f| app_matches(a, f)),
        Filter::DisplayNameStartsWith(n) => a.display_name.starts_with(n.as_str()),
        Filter::DisplayName(n) => a.display_name == *n,
        Filter::AppId(x) => a.app_id.eq_ignore_ascii_case(x),
        Filter::IdentifierUri(u) => a.identifier_uris.iter().any(|x| x == u),
        Filter::ServicePrincipalName(_) => false,
    }
}

/// Entra ID's default: only directory roles let a service principal
/// register applications (members may, principals need the role).
pub fn require_app_admin(r: &impl Reader, caller: &str) -> Result<(), GraphError> {
    if r.get(ADMINS, &caller.to_ascii_lowercase())
        .map_err(ArmError::from)?
        .is_some()
    {
        Ok(())
    } else {
        Err(GraphError::new(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation: creating and changing applications needs the Application Administrator directory role."))
    }
}

/// Gives `object_id` the Application Administrator directory role.
pub fn grant_app_admin(tx: &mut WriteTx, object_id: &str) -> Result<(), ArmError> {
    tx.put(
        ADMINS,
        &object_id.to_ascii_lowercase(),
        b"Application Administrator",
    )?;
    Ok(())
}

/// `POST /applications`: a new application (its principal has no secret
/// until `addPassword`).
pub fn create_application(tx: &mut WriteTx, body: &Value) -> Result<Application, GraphError> {
    let name = body["displayName"]
        .as_str()
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| GraphError::bad("Property 'displayName' is required for an application."))?;
    if name.len() > 256 {
        return Err(GraphError::bad(
            "Property 'displayName' is longer than 256 characters.",
        ));
    }
    let (p, _) = principals::create_service_principal(tx, name)?;
    principals::clear_secret(tx, &p.object_id)?;
    let app = Application {
        id: uuid::Uuid::new_v4().to_string(),
        app_id: p.app_id.clone(),
        display_name: name.to_string(),
        identifier_uris: strings(&body["identifierUris"]),
        password_credentials: Vec::new(),
        has_service_principal: false,
        created_date_time: time::now_string(),
    };
    save(tx, &app)?;
    Ok(app)
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

fn save(tx: &mut WriteTx, a: &Application) -> Result<(), ArmError> {
    tx.put_json(APPS, &a.id.to_ascii_lowercase(), a)?;
    tx.put(
        APPS_BY_APP_ID,
        &a.app_id.to_ascii_lowercase(),
        a.id.to_ascii_lowercase().as_bytes(),
    )?;
    Ok(())
}

pub fn application(r: &impl Reader, id: &str) -> Result<Application, GraphError> {
    r.get_json::<Application>(APPS, &id.to_ascii_lowercase())
        .map_err(ArmError::from)?
        .ok_or_else(|| GraphError::not_found(id))
}

pub fn applications(
    r: &impl Reader,
    filter: Option<&Filter>,
) -> Result<Vec<Application>, GraphError> {
    Ok(r.scan_json::<Application>(APPS, "")
        .map_err(ArmError::from)?
        .into_iter()
        .map(|(_, a)| a)
        .filter(|a| filter.is_none_or(|f| app_matches(a, f)))
        .collect())
}

/// `PATCH /applications/{id}`: the display name and identifier URIs.
pub fn update_application(tx: &mut WriteTx, id: &str, body: &Value) -> Result<(), GraphError> {
    let mut a = application(tx, id)?;
    if let Some(n) = body["displayName"].as_str() {
        if n.trim().is_empty() {
            return Err(GraphError::bad("Property 'displayName' cannot be empty."));
        }
        a.display_name = n.to_string();
    }
    if body["identifierUris"].is_array() {
        a.identifier_uris = strings(&body["identifierUris"]);
    }
    save(tx, &a)?;
    Ok(())
}

/// `POST /applications/{id}/addPassword`: a new secret, shown once; the
/// principal signs in with it from now on.
pub fn add_password(
    tx: &mut WriteTx,
    id: &str,
    body: &Value,
) -> Result<(PasswordCredential, String), GraphError> {
    let mut a = application(tx, id)?;
    let pc = &body["passwordCredential"];
    let start = pc["startDateTime"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(time::now_string);
    let end = match pc["endDateTime"].as_str() {
        Some(e) => e.to_string(),
        None => time::format(time::now() + ::time::Duration::days(730)),
    };
    if time::parse(&start)
        .zip(time::parse(&end))
        .is_some_and(|(s, e)| e <= s)
    {
        return Err(GraphError::bad(
            "The password credential's endDateTime must be after its startDateTime.",
        ));
    }
    let p =
        principals::by_app_id(tx, &a.app_id)?.ok_or_else(|| GraphError::not_found(&a.app_id))?;
    let secret = principals::reset_secret(tx, &p.object_id)?;
    let cred = PasswordCredential {
        key_id: uuid::Uuid::new_v4().to_string(),
        display_name: pc["displayName"].as_str().map(str::to_string),
        start_date_time: start,
        end_date_time: end,
        hint: secret.chars().take(3).collect(),
    };
    // One secret per principal: a new password replaces the earlier ones.
    a.password_credentials = vec![cred.clone()];
    save(tx, &a)?;
    Ok((cred, secret))
}

/// `POST /applications/{id}/removePassword`.
pub fn remove_password(tx: &mut WriteTx, id: &str, key_id: &str) -> Result<(), GraphError> {
    let mut a = application(tx, id)?;
    let before = a.password_credentials.len();
    a.password_credentials
        .retain(|c| !c.key_id.eq_ignore_ascii_case(key_id));
    if a.password_credentials.len() == before {
        return Err(GraphError::bad(format!(
            "No password credential with keyId '{key_id}'."
        )));
    }
    if let Some(p) = principals::by_app_id(tx, &a.app_id)? {
        principals::clear_secret(tx, &p.object_id)?;
    }
    save(tx, &a)?;
    Ok(())
}

/// `POST /servicePrincipals {appId}`: the application's service principal.
pub fn create_service_principal(tx: &mut WriteTx, body: &Value) -> Result<Principal, GraphError> {
    let app_id = body["appId"]
        .as_str()
        .ok_or_else(|| GraphError::bad("Property 'appId' is required for a service principal."))?;
    let app_obj = tx
        .get(APPS_BY_APP_ID, &app_id.to_ascii_lowercase())
        .map_err(ArmError::from)?
        .map(|v| String::from_utf8_lossy(&v).into_owned())
        .ok_or_else(|| GraphError::bad(format!("The appId '{app_id}' of the service principal does not reference a valid application object.")))?;
    let mut a = application(tx, &app_obj)?;
    if a.has_service_principal {
        return Err(GraphError::new(
            409,
            "Request_MultipleObjectsWithSameKeyValue",
            format!("The service principal for appId '{app_id}' already exists."),
        ));
    }
    a.has_service_principal = true;
    save(tx, &a)?;
    principals::by_app_id(tx, app_id)?.ok_or_else(|| GraphError::not_found(app_id))
}

/// Whether a principal shows as a Graph service principal: managed
/// identities and principals made outside Graph always; an application's
/// once its service principal was created.
fn visible(r: &impl Reader, p: &Principal) -> Result<bool, GraphError> {
    match r
        .get(APPS_BY_APP_ID, &p.app_id.to_ascii_lowercase())
        .map_err(ArmError::from)?
    {
        Some(obj) => Ok(application(r, &String::from_utf8_lossy(&obj))?.has_service_principal),
        None => Ok(true),
    }
}

pub fn service_principals(
    r: &impl Reader,
    filter: Option<&Filter>,
) -> Result<Vec<Principal>, GraphError> {
    let mut out = Vec::new();
    for p in principals::all(r)? {
        if filter.is_none_or(|f| sp_matches(&p, f)) && visible(r, &p)? {
            out.push(p);
        }
    }
    Ok(out)
}

pub fn service_principal(r: &impl Reader, id: &str) -> Result<Principal, GraphError> {
    match principals::get(r, id)? {
        Some(p) if visible(r, &p)? => Ok(p),
        _ => Err(GraphError::not_found(id)),
    }
}

/// `DELETE /applications/{id}`: the application and its service principal
/// (its role assignments stay, naming a principal that is gone, as in Azure).
pub fn delete_application(tx: &mut WriteTx, id: &str) -> Result<(), GraphError> {
    let a = application(tx, id)?;
    if let Some(p) = principals::by_app_id(tx, &a.app_id)? {
        principals::remove_service_principal(tx, &p.object_id)?;
    }
    tx.delete(APPS, &a.id.to_ascii_lowercase())
        .map_err(ArmError::from)?;
    tx.delete(APPS_BY_APP_ID, &a.app_id.to_ascii_lowercase())
        .map_err(ArmError::from)?;
    Ok(())
}

/// `POST /directoryObjects/getByIds`: the service principals among `ids`.
pub fn by_ids(r: &impl Reader, ids: &[String]) -> Result<Vec<Value>, GraphError> {
    let mut out = Vec::new();
    for id in ids {
        if let Some(p) = principals::get(r, id)? {
            if visible(r, &p)? {
                out.push(service_principal_json(&p));
            }
        } else if let Ok(a) = application(r, id) {
            out.push(a.to_json());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_clients_send() {
        assert_eq!(
            parse_filter("displayName eq 'ci-deployer'").unwrap(),
            Filter::DisplayName("ci-deployer".into())
        );
        assert_eq!(
            parse_filter("servicePrincipalNames/any(c:c eq 'a1b2')").unwrap(),
            Filter::ServicePrincipalName("a1b2".into())
        );
        assert_eq!(
            parse_filter("appId eq 'x'").unwrap(),
            Filter::AppId("x".into())
        );
        assert_eq!(
            parse_filter("displayName eq 'O''Brien'").unwrap(),
            Filter::DisplayName("O'Brien".into())
        );
        assert_eq!(
            parse_filter("startswith(displayName,'ci') and appId eq 'a'").unwrap(),
            Filter::All(vec![
                Filter::DisplayNameStartsWith("ci".into()),
                Filter::AppId("a".into())
            ])
        );
        let e = parse_filter("endswith(displayName,'x')").unwrap_err();
        assert_eq!((e.status, e.code), (400, "Request_BadRequest"));
    }

    #[test]
    fn an_application_gets_a_secret_then_a_service_principal() {
        let dir = tempfile::tempdir().unwrap();
        let store = recoverite_store::Store::open(&dir.path().join("s.redb")).unwrap();
        let (app, secret, sp) = store
            .write(|tx| {
                let app = create_application(tx, &json!({"displayName": "deployer"}))
                    .map_err(|e| ArmError::internal(e.message))?;
                // No secret yet, and no service principal to list.
                let p = principals::by_app_id(tx, &app.app_id)?.unwrap();
                assert!(!p.verify_secret(""));
                assert!(
                    service_principals(tx, Some(&Filter::DisplayName("deployer".into())))
                        .unwrap()
                        .is_empty()
                );
                let (cred, secret) = add_password(
                    tx,
                    &app.id,
                    &json!({"passwordCredential": {"displayName": "rbac"}}),
                )
                .map_err(|e| ArmError::internal(e.message))?;
                assert_eq!(cred.hint, secret[..3]);
                let sp = create_service_principal(tx, &json!({"appId": app.app_id}))
                    .map_err(|e| ArmError::internal(e.message))?;
                assert_eq!(
                    create_service_principal(tx, &json!({"appId": app.app_id}))
                        .unwrap_err()
                        .status,
                    409
                );
                Ok::<_, ArmError>((app, secret, sp))
            })
            .unwrap();
        assert!(sp.verify_secret(&secret));
        let found = store
            .view(|r| {
                Ok::<_, ArmError>(
                    service_principals(r, Some(&Filter::ServicePrincipalName(app.app_id.clone())))
                        .unwrap(),
                )
            })
            .unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].object_id, sp.object_id);
        store
            .write(|tx| {
                delete_application(tx, &app.id).unwrap();
                Ok::<_, ArmError>(())
            })
            .unwrap();
        assert!(store
            .view(|r| principals::get(r, &sp.object_id))
            .unwrap()
            .is_none());
    }

    #[test]
    fn only_application_administrators_may_change_applications() {
        let dir = tempfile::tempdir().unwrap();
        let store = recoverite_store::Store::open(&dir.path().join("s.redb")).unwrap();
        store.write(|tx| grant_app_admin(tx, "ADMIN")).unwrap();
        assert!(store
            .view(|r| Ok::<_, ArmError>(require_app_admin(r, "admin").is_ok()))
            .unwrap());
        let e = store
            .view(|r| Ok::<_, ArmError>(require_app_admin(r, "other").unwrap_err()))
            .unwrap();
        assert_eq!((e.status, e.code), (403, "Authorization_RequestDenied"));
    }
}
