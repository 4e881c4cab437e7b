//! Role assignments and the access check every ARM request goes through.
//!
//! An assignment is an ARM resource at `{scope}/providers/Microsoft.Authorization/roleAssignments/{guid}`
//! and is stored with the other resources (so deleting its scope deletes it);
//! an index by principal makes the per-request check one prefix scan.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use recoverite_arm::{id, resource, ArmError};
use recoverite_store::{Reader, Table, WriteTx};

use crate::roles::{self, Permission};

/// `{principal object id}|{assignment id key}` → empty.
pub const BY_PRINCIPAL: Table = Table("role_assignments_by_principal");

pub const ASSIGNMENT_TYPE: &str = "Microsoft.Authorization/roleAssignments";

/// `RoleAssignmentProperties`, as stored and shown (Azure shows the
/// optional ones as `null`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssignmentProperties {
    pub role_definition_id: String,
    pub principal_id: String,
    pub principal_type: String,
    pub scope: String,
    #[serde(default)]
    pub condition: Option<String>,
    #[serde(default)]
    pub condition_version: Option<String>,
    pub created_on: String,
    pub updated_on: String,
    #[serde(default)]
    pub created_by: Option<String>,
    #[serde(default)]
    pub updated_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegated_managed_identity_resource_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A role assignment as stored: a typed document, so a malformed one is an
/// error at every access check that meets it, never an assignment silently
/// skipped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleAssignment {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub properties: AssignmentProperties,
}

recoverite_arm::impl_document!(RoleAssignment, ASSIGNMENT_TYPE, "role assignment");

#[derive(Debug, Clone)]
pub struct Assignment {
    pub id: String,
    pub scope: String,
    pub principal_id: String,
    pub role_guid: String,
    pub doc: RoleAssignment,
}

impl Assignment {
    pub fn of(doc: RoleAssignment) -> Assignment {
        let p = &doc.properties;
        Assignment {
            id: doc.id.clone(),
            scope: p.scope.clone(),
            principal_id: p.principal_id.clone(),
            role_guid: roles::guid_of(&p.role_definition_id).to_string(),
            doc,
        }
    }

    /// The assignment as the API shows it.
    pub fn to_value(&self) -> Result<Value, ArmError> {
        recoverite_arm::document::to_value(&self.doc)
    }
}

/// The assignment stored at `id`, if there is one.
pub fn load(r: &impl Reader, assignment_id: &str) -> Result<Option<Assignment>, ArmError> {
    Ok(recoverite_arm::document::load::<RoleAssignment>(r, assignment_id)?.map(Assignment::of))
}

fn index_key(principal_id: &str, assignment_id: &str) -> String {
    format!(
        "{}|{}",
        principal_id.to_ascii_lowercase(),
        id::key(assignment_id)
    )
}

pub fn save(tx: &mut WriteTx, a: &Assignment) -> Result<(), ArmError> {
    recoverite_arm::document::save(tx, &a.doc)?;
    tx.put(BY_PRINCIPAL, &index_key(&a.principal_id, &a.id), b"")?;
    Ok(())
}

pub fn delete(tx: &mut WriteTx, a: &Assignment) -> Result<(), ArmError> {
    resource::delete_tree(tx, &a.id)?;
    tx.delete(BY_PRINCIPAL, &index_key(&a.principal_id, &a.id))?;
    Ok(())
}

/// Every assignment of a principal (stale index entries are skipped).
pub fn for_principal(r: &impl Reader, principal_id: &str) -> Result<Vec<Assignment>, ArmError> {
    let prefix = format!("{}|", principal_id.to_ascii_lowercase());
    let mut out = Vec::new();
    for (k, _) in r.scan_prefix(BY_PRINCIPAL, &prefix)? {
        let assignment_key = &k[prefix.len()..];
        if let Some(doc) = r.get_json::<Value>(recoverite_arm::RESOURCES, assignment_key)? {
            out.push(Assignment::of(recoverite_arm::document::read(doc)?));
        }
    }
    Ok(out)
}

/// Every assignment in the directory (for listing by scope).
pub fn all(r: &impl Reader) -> Result<Vec<Assignment>, ArmError> {
    let mut out = Vec::new();
    for (k, _) in r.scan_prefix(BY_PRINCIPAL, "")? {
        let Some((_, assignment_key)) = k.split_once('|') else {
            continue;
        };
        if let Some(doc) = r.get_json::<Value>(recoverite_arm::RESOURCES, assignment_key)? {
            out.push(Assignment::of(recoverite_arm::document::read(doc)?));
        }
    }
    Ok(out)
}

/// Drops index entries of assignments that lived inside a deleted scope.
pub fn forget_under_scope(tx: &mut WriteTx, scope: &str) -> Result<(), ArmError> {
    let s = id::key(scope);
    let stale: Vec<String> = tx
        .scan_prefix(BY_PRINCIPAL, "")?
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| {
            k.split_once('|')
                .is_some_and(|(_, a)| id::scope_contains(&s, a))
        })
        .collect();
    for k in stale {
        tx.delete(BY_PRINCIPAL, &k)?;
    }
    Ok(())
}

/// The permissions that apply to `principal_id` at `scope`.
pub fn effective_permissions(
    r: &impl Reader,
    principal_id: &str,
    scope: &str,
) -> Result<Vec<Permission>, ArmError> {
    let mut out = Vec::new();
    for a in for_principal(r, principal_id)? {
        if recoverite_arm::tenancy::assignment_reaches(r, &a.scope, scope)? {
            if let Some(def) = roles::find(r, &a.role_guid)? {
                out.extend(def.permissions);
            }
        }
    }
    Ok(out)
}

pub fn is_allowed(
    r: &impl Reader,
    principal_id: &str,
    action: &str,
    scope: &str,
) -> Result<bool, ArmError> {
    Ok(effective_permissions(r, principal_id, scope)?
        .iter()
        .any(|p| p.allows(action)))
}

pub fn is_allowed_data(
    r: &impl Reader,
    principal_id: &str,
    data_action: &str,
    scope: &str,
) -> Result<bool, ArmError> {
    Ok(effective_permissions(r, principal_id, scope)?
        .iter()
        .any(|p| p.allows_data(data_action)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assignment(id: &str, principal: &str) -> Assignment {
        Assignment::of(RoleAssignment {
            id: id.into(),
            name: id.rsplit('/').next().unwrap().into(),
            kind: ASSIGNMENT_TYPE.into(),
            properties: AssignmentProperties {
                role_definition_id: "/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7".into(),
                principal_id: principal.into(),
                principal_type: "User".into(),
                scope: "/subscriptions/s".into(),
                condition: None,
                condition_version: None,
                created_on: "2026-01-01T00:00:00Z".into(),
                updated_on: "2026-01-01T00:00:00Z".into(),
                created_by: None,
                updated_by: None,
                delegated_managed_identity_resource_id: None,
                description: None,
            },
        })
    }

    #[test]
    fn assignments_read_back_typed_and_a_malformed_one_is_an_error_not_a_skip() {
        let dir = tempfile::tempdir().unwrap();
        let store = recoverite_store::Store::open(&dir.path().join("s.redb")).unwrap();
        let a = assignment(
            "/subscriptions/s/providers/Microsoft.Authorization/roleAssignments/a1",
            "p1",
        );
        store.write(|tx| save(tx, &a)).unwrap();
        let got = store.view(|r| for_principal(r, "P1")).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].role_guid, "acdd72a7-3385-48ef-bd42-f606fba81ae7");
        assert_eq!(
            got[0].to_value().unwrap()["properties"]["condition"],
            Value::Null
        );
        // A stored assignment that lost its principal fails the check loudly.
        let bad = "/subscriptions/s/providers/Microsoft.Authorization/roleAssignments/a2";
        store
            .write(|tx| {
                resource::put(
                    tx,
                    bad,
                    &serde_json::json!({"id": bad, "name": "a2", "type": ASSIGNMENT_TYPE,
                        "properties": {"scope": "/subscriptions/s"}}),
                )?;
                tx.put(BY_PRINCIPAL, &index_key("p1", bad), b"")?;
                Ok::<_, ArmError>(())
            })
            .unwrap();
        assert!(store.view(|r| for_principal(r, "p1")).is_err());
    }
}
