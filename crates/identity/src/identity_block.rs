//! The ARM `identity` block (`SystemAssigned`, `UserAssigned`, both, `None`)
//! on any resource that supports managed identities.

use serde_json::{json, Map, Value};

use recoverite_arm::{id, ArmError};
use recoverite_store::WriteTx;

use crate::principals::{self, PrincipalKind};

/// How a provider spells the combined type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CombinedStyle {
    /// `SystemAssigned, UserAssigned` (network, compute, recovery services).
    Spaced,
    /// `SystemAssigned,UserAssigned` (storage).
    Compact,
}

#[derive(Debug, Default, PartialEq)]
struct Wanted {
    system: bool,
    user: bool,
}

fn parse_type(t: &str) -> Result<Wanted, ArmError> {
    let mut w = Wanted::default();
    for part in t.split(',').map(str::trim) {
        match part.to_ascii_lowercase().as_str() {
            "systemassigned" => w.system = true,
            "userassigned" => w.user = true,
            "none" => {}
            _ => {
                return Err(ArmError::bad_request(
                    "InvalidIdentityType",
                    format!("The identity type '{t}' is not valid. Use 'SystemAssigned', 'UserAssigned', 'SystemAssigned, UserAssigned' or 'None'."),
                ))
            }
        }
    }
    Ok(w)
}

/// Applies a requested identity block to `resource_id`, creating or deleting
/// its system-assigned principal and resolving user-assigned identities.
///
/// `requested`: `None` keeps the existing block (PATCH without `identity`);
/// `Some(Null)` removes every identity. Returns the block to store and return.
pub fn apply(
    tx: &mut WriteTx,
    tenant_id: &str,
    resource_id: &str,
    requested: Option<&Value>,
    existing: Option<&Value>,
    style: CombinedStyle,
) -> Result<Option<Value>, ArmError> {
    let Some(req) = requested else {
        return Ok(existing.cloned());
    };
    let wanted = match req {
        Value::Null => Wanted::default(),
        Value::Object(o) => match o.get("type") {
            Some(Value::String(t)) => parse_type(t)?,
            Some(Value::Null) | None => {
                return Err(ArmError::bad_request(
                    "InvalidIdentityType",
                    "The identity block needs a 'type'.",
                ))
            }
            Some(_) => {
                return Err(ArmError::invalid_content(
                    "'identity.type' must be a string.",
                ))
            }
        },
        _ => return Err(ArmError::invalid_content("'identity' must be an object.")),
    };

    let mut block = Map::new();
    if wanted.system {
        let p =
            principals::ensure_managed_identity(tx, resource_id, PrincipalKind::SystemAssigned)?;
        block.insert("principalId".into(), json!(p.object_id));
        block.insert("tenantId".into(), json!(tenant_id));
    } else {
        principals::delete_managed_identity(tx, resource_id, PrincipalKind::SystemAssigned)?;
    }

    if wanted.user {
        let requested_ids = req.get("userAssignedIdentities").and_then(Value::as_object);
        let mut ids: Map<String, Value> = existing
            .and_then(|e| e.get("userAssignedIdentities"))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        if let Some(r) = requested_ids {
            // A PUT lists the complete set; `null` values remove an identity.
            ids.retain(|k, _| r.keys().any(|rk| id::key(rk) == id::key(k)));
            for (uai, v) in r {
                if v.is_null() {
                    ids.retain(|k, _| id::key(k) != id::key(uai));
                } else {
                    ids.insert(uai.clone(), json!({}));
                }
            }
        }
        if ids.is_empty() {
            return Err(ArmError::bad_request(
                "BadRequest",
                "The identity type includes 'UserAssigned' but 'userAssignedIdentities' lists none; add the ARM id of at least one user-assigned identity.",
            ));
        }
        let mut resolved = Map::new();
        for uai in ids.keys() {
            let p = principals::for_resource(tx, uai, PrincipalKind::UserAssigned)?.ok_or_else(|| {
                ArmError::bad_request(
                    "FailedIdentityOperation",
                    format!("The user-assigned identity '{uai}' was not found; create it (Microsoft.ManagedIdentity/userAssignedIdentities) before referring to it."),
                )
            })?;
            resolved.insert(
                uai.clone(),
                json!({"principalId": p.object_id, "clientId": p.app_id}),
            );
        }
        block.insert("userAssignedIdentities".into(), Value::Object(resolved));
    }

    let t = match (wanted.system, wanted.user, style) {
        (true, true, CombinedStyle::Spaced) => "SystemAssigned, UserAssigned",
        (true, true, CombinedStyle::Compact) => "SystemAssigned,UserAssigned",
        (true, false, _) => "SystemAssigned",
        (false, true, _) => "UserAssigned",
        (false, false, _) => return Ok(None),
    };
    block.insert("type".into(), json!(t));
    Ok(Some(Value::Object(block)))
}

/// The linked action on a user-assigned identity for whoever attaches it.
pub const ASSIGN: &str = "Microsoft.ManagedIdentity/userAssignedIdentities/assign/action";

/// Every user-assigned identity a request's `identity` block names needs
/// `assign/action` from the caller: holding one resource must not let a
/// principal act as any identity in the subscription.
pub fn require_assign(
    ctx: &recoverite_arm::Ctx,
    action: &str,
    scope: &str,
    requested: Option<&Value>,
) -> Result<(), ArmError> {
    let Some(Value::Object(ids)) = requested.and_then(|r| r.get("userAssignedIdentities")) else {
        return Ok(());
    };
    for (uai, v) in ids {
        // `{id: null}` removes an identity; that needs no right on it.
        if !v.is_null() {
            ctx.require_linked(action, scope, ASSIGN, uai)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use recoverite_store::Store;

    const VAULT: &str =
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.RecoveryServices/vaults/v";
    const UAI: &str = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/u";

    #[test]
    fn system_and_user_assigned_lifecycle() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        store
            .write(|tx| -> Result<(), ArmError> {
                let uai = principals::ensure_managed_identity(tx, UAI, PrincipalKind::UserAssigned)?;
                let sys = apply(tx, "t", VAULT, Some(&json!({"type": "SystemAssigned"})), None, CombinedStyle::Spaced)?.unwrap();
                let pid = sys["principalId"].as_str().unwrap().to_string();
                assert_eq!(sys["type"], "SystemAssigned");
                // Adding a user-assigned identity keeps the same system principal.
                let both = apply(
                    tx,
                    "t",
                    VAULT,
                    Some(&json!({"type": "SystemAssigned, UserAssigned", "userAssignedIdentities": {UAI: {}}})),
                    Some(&sys),
                    CombinedStyle::Spaced,
                )?
                .unwrap();
                assert_eq!(both["type"], "SystemAssigned, UserAssigned");
                assert_eq!(both["principalId"], pid.as_str());
                assert_eq!(both["userAssignedIdentities"][UAI]["principalId"], uai.object_id.as_str());
                let compact = apply(
                    tx,
                    "t",
                    VAULT,
                    Some(&json!({"type": "SystemAssigned,UserAssigned", "userAssignedIdentities": {UAI: {}}})),
                    Some(&both),
                    CombinedStyle::Compact,
                )?
                .unwrap();
                assert_eq!(compact["type"], "SystemAssigned,UserAssigned");
                // None removes the system principal from the directory.
                assert!(apply(tx, "t", VAULT, Some(&json!({"type": "None"})), Some(&both), CombinedStyle::Spaced)?.is_none());
                assert!(principals::get(tx, &pid)?.is_none());
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn unknown_user_assigned_identity_and_bad_type_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        let e = store
            .write(|tx| {
                apply(
                    tx,
                    "t",
                    VAULT,
                    Some(&json!({"type": "UserAssigned", "userAssignedIdentities": {UAI: {}}})),
                    None,
                    CombinedStyle::Spaced,
                )
            })
            .unwrap_err();
        assert_eq!(e.code(), "FailedIdentityOperation");
        let e = store
            .write(|tx| {
                apply(
                    tx,
                    "t",
                    VAULT,
                    Some(&json!({"type": "Sometimes"})),
                    None,
                    CombinedStyle::Spaced,
                )
            })
            .unwrap_err();
        assert_eq!(e.code(), "InvalidIdentityType");
    }
}
