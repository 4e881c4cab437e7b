//! Role assignments and the access check every ARM request goes through.
//!
//! An assignment is an ARM resource at `{scope}/providers/Microsoft.Authorization/roleAssignments/{guid}`
//! and is stored with the other resources (so deleting its scope deletes it);
//! an index by principal makes the per-request check one prefix scan.

use serde_json::Value;

use recoverite_arm::{id, resource, ArmError};
use recoverite_store::{Reader, Table, WriteTx};

use crate::roles::{self, Permission};

/// `{principal object id}|{assignment id key}` → empty.
pub const BY_PRINCIPAL: Table = Table("role_assignments_by_principal");

#[derive(Debug, Clone)]
pub struct Assignment {
    pub id: String,
    pub scope: String,
    pub principal_id: String,
    pub role_guid: String,
    pub doc: Value,
}

impl Assignment {
    pub fn from_doc(doc: Value) -> Option<Assignment> {
        let p = doc.get("properties")?;
        Some(Assignment {
            id: doc.get("id")?.as_str()?.to_string(),
            scope: p.get("scope")?.as_str()?.to_string(),
            principal_id: p.get("principalId")?.as_str()?.to_string(),
            role_guid: roles::guid_of(p.get("roleDefinitionId")?.as_str()?).to_string(),
            doc,
        })
    }
}

fn index_key(principal_id: &str, assignment_id: &str) -> String {
    format!(
        "{}|{}",
        principal_id.to_ascii_lowercase(),
        id::key(assignment_id)
    )
}

pub fn save(tx: &mut WriteTx, a: &Assignment) -> Result<(), ArmError> {
    resource::put(tx, &a.id, &a.doc)?;
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
            out.extend(Assignment::from_doc(doc));
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
            out.extend(Assignment::from_doc(doc));
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
