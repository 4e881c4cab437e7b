//! Role definitions: the built-in roles (real GUIDs and permissions) and
//! custom roles, and how an action string is matched against them.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use recoverite_arm::ArmError;
use recoverite_store::{Reader, Table, WriteTx};

pub const CUSTOM_ROLES: Table = Table("custom_role_definitions");

pub const OWNER: &str = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635";
pub const CONTRIBUTOR: &str = "b24988ac-6180-42a0-ab88-20f7382dd24c";
pub const READER: &str = "acdd72a7-3385-48ef-bd42-f606fba81ae7";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Permission {
    #[serde(default)]
    pub actions: Vec<String>,
    #[serde(default)]
    pub not_actions: Vec<String>,
    #[serde(default)]
    pub data_actions: Vec<String>,
    #[serde(default)]
    pub not_data_actions: Vec<String>,
}

impl Permission {
    pub fn allows(&self, action: &str) -> bool {
        self.actions.iter().any(|p| action_matches(p, action))
            && !self.not_actions.iter().any(|p| action_matches(p, action))
    }
    pub fn allows_data(&self, action: &str) -> bool {
        self.data_actions.iter().any(|p| action_matches(p, action))
            && !self
                .not_data_actions
                .iter()
                .any(|p| action_matches(p, action))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleDefinition {
    /// The GUID.
    pub name: String,
    pub role_name: String,
    #[serde(default)]
    pub description: String,
    pub permissions: Vec<Permission>,
    #[serde(default = "root_scope")]
    pub assignable_scopes: Vec<String>,
    #[serde(default)]
    pub custom: bool,
    #[serde(default)]
    pub created_on: Option<String>,
}

fn root_scope() -> Vec<String> {
    vec!["/".to_string()]
}

impl RoleDefinition {
    pub fn allows(&self, action: &str) -> bool {
        self.permissions.iter().any(|p| p.allows(action))
    }

    /// The definition's id as read at `scope` (subscription-qualified when possible).
    pub fn id_at(&self, subscription: Option<&str>) -> String {
        match subscription {
            Some(s) => format!(
                "/subscriptions/{s}/providers/Microsoft.Authorization/roleDefinitions/{}",
                self.name
            ),
            None => format!(
                "/providers/Microsoft.Authorization/roleDefinitions/{}",
                self.name
            ),
        }
    }

    pub fn to_json(&self, subscription: Option<&str>) -> Value {
        json!({
            "id": self.id_at(subscription),
            "name": self.name,
            "type": "Microsoft.Authorization/roleDefinitions",
            "properties": {
                "roleName": self.role_name,
                "type": if self.custom { "CustomRole" } else { "BuiltInRole" },
                "description": self.description,
                "assignableScopes": self.assignable_scopes,
                "permissions": self.permissions,
                "createdOn": self.created_on,
                "updatedOn": self.created_on,
                "createdBy": null,
                "updatedBy": null,
            }
        })
    }
}

/// ARM action matching: case-insensitive, `*` matches any run of characters.
pub fn action_matches(pattern: &str, action: &str) -> bool {
    let p: Vec<char> = pattern.to_ascii_lowercase().chars().collect();
    let a: Vec<char> = action.to_ascii_lowercase().chars().collect();
    // Iterative glob with backtracking to the last star.
    let (mut pi, mut ai) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ai < a.len() {
        if pi < p.len() && p[pi] != '*' && p[pi] == a[ai] {
            pi += 1;
            ai += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ai;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ai = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

pub fn builtins() -> &'static [RoleDefinition] {
    static ROLES: OnceLock<Vec<RoleDefinition>> = OnceLock::new();
    ROLES.get_or_init(|| {
        serde_json::from_str(include_str!("builtin_roles.json"))
            .expect("built-in roles are valid JSON")
    })
}

pub fn builtin_by_name(role_name: &str) -> Option<&'static RoleDefinition> {
    builtins()
        .iter()
        .find(|r| r.role_name.eq_ignore_ascii_case(role_name))
}

/// Extracts the GUID from a role definition id or returns the input.
pub fn guid_of(role_definition_id: &str) -> &str {
    role_definition_id
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(role_definition_id)
}

pub fn find(r: &impl Reader, guid: &str) -> Result<Option<RoleDefinition>, ArmError> {
    if let Some(b) = builtins()
        .iter()
        .find(|r| r.name.eq_ignore_ascii_case(guid))
    {
        return Ok(Some(b.clone()));
    }
    Ok(r.get_json(CUSTOM_ROLES, &guid.to_ascii_lowercase())?)
}

pub fn all(r: &impl Reader) -> Result<Vec<RoleDefinition>, ArmError> {
    let mut out: Vec<RoleDefinition> = builtins().to_vec();
    out.extend(
        r.scan_json::<RoleDefinition>(CUSTOM_ROLES, "")?
            .into_iter()
            .map(|(_, v)| v),
    );
    Ok(out)
}

pub fn save_custom(tx: &mut WriteTx, def: &RoleDefinition) -> Result<(), ArmError> {
    tx.put_json(CUSTOM_ROLES, &def.name.to_ascii_lowercase(), def)?;
    Ok(())
}

pub fn delete_custom(tx: &mut WriteTx, guid: &str) -> Result<bool, ArmError> {
    Ok(tx.delete(CUSTOM_ROLES, &guid.to_ascii_lowercase())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn builtin_guids() {
        assert_eq!(builtin_by_name("Owner").unwrap().name, OWNER);
        assert_eq!(
            builtin_by_name("Site Recovery Operator").unwrap().name,
            "494ae006-db33-4328-bf46-533a6560a3ca"
        );
        assert_eq!(builtins().len(), 14);
    }

    #[test]
    fn wildcard_matching() {
        assert!(action_matches("*", "Microsoft.X/y/write"));
        assert!(action_matches(
            "*/read",
            "Microsoft.Resources/subscriptions/resourceGroups/read"
        ));
        assert!(!action_matches(
            "*/read",
            "Microsoft.Resources/subscriptions/resourceGroups/write"
        ));
        assert!(action_matches(
            "Microsoft.Authorization/*/Write",
            "Microsoft.Authorization/roleAssignments/write"
        ));
        assert!(action_matches(
            "Microsoft.RecoveryServices/vaults/replicationFabrics/*",
            "microsoft.recoveryservices/Vaults/replicationFabrics/replicationProtectionContainers/replicationProtectedItems/write"
        ));
    }

    #[test]
    fn contributor_cannot_assign_roles_but_owner_can() {
        let c = builtin_by_name("Contributor").unwrap();
        let o = builtin_by_name("Owner").unwrap();
        let a = "Microsoft.Authorization/roleAssignments/write";
        assert!(!c.allows(a));
        assert!(o.allows(a));
        assert!(c.allows("Microsoft.RecoveryServices/vaults/write"));
    }

    #[test]
    fn site_recovery_roles_follow_the_tutorial() {
        let op = builtin_by_name("Site Recovery Operator").unwrap();
        let contrib = builtin_by_name("Site Recovery Contributor").unwrap();
        let reader = builtin_by_name("Site Recovery Reader").unwrap();
        let item = "Microsoft.RecoveryServices/vaults/replicationFabrics/replicationProtectionContainers/replicationProtectedItems";
        assert!(op.allows(&format!("{item}/unplannedFailover/action")));
        assert!(op.allows(&format!("{item}/reProtect/action")));
        assert!(
            !op.allows(&format!("{item}/write")),
            "operator cannot enable replication"
        );
        assert!(
            !op.allows(&format!("{item}/delete")),
            "operator cannot disable replication"
        );
        assert!(contrib.allows(&format!("{item}/write")));
        assert!(
            !contrib.allows("Microsoft.RecoveryServices/Vaults/write"),
            "contributor cannot create vaults"
        );
        assert!(!contrib.allows("Microsoft.RecoveryServices/Vaults/delete"));
        assert!(!contrib.allows("Microsoft.Authorization/roleAssignments/write"));
        assert!(reader.allows(&format!("{item}/read")));
        assert!(!reader.allows(&format!("{item}/testFailover/action")));
    }

    proptest! {
        #[test]
        fn star_matches_everything(a in "[A-Za-z./]{0,40}") {
            prop_assert!(action_matches("*", &a));
        }

        #[test]
        fn literal_matches_itself_case_insensitively(a in "[A-Za-z./]{1,40}") {
            prop_assert!(action_matches(&a, &a.to_ascii_uppercase()));
        }

        #[test]
        fn prefix_star(a in "[a-z]{1,10}", b in "[a-z/]{0,20}") {
            let pattern = format!("{a}*");
            let action = format!("{a}{b}");
            prop_assert!(action_matches(&pattern, &action));
        }
    }
}
