//! The tenant's structure: its subscriptions and the management-group tree
//! above them. Role assignments made at a management group apply to every
//! subscription beneath it, so RBAC evaluation reads this tree
//! ([`ancestors`]); the providers that change it (`Microsoft.Subscription`,
//! `Microsoft.Management`) go through the functions here.
//!
//! Every rule is a pure function below the sentence of Azure's documentation
//! it implements, returning a [`TenancyError`] that knows its ARM code.

use serde::{Deserialize, Serialize};

use recoverite_store::{Reader, Table, WriteTx};

use crate::error::ArmError;

pub const SUBSCRIPTIONS: Table = Table("subscriptions");
pub const MANAGEMENT_GROUPS: Table = Table("management_groups");

pub const MG_NAMESPACE: &str = "Microsoft.Management";
pub const MG_TYPE: &str = "Microsoft.Management/managementGroups";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    pub subscription_id: String,
    pub display_name: String,
    /// `Enabled` (the only state recoverite puts a subscription in).
    pub state: String,
    /// The management group directly above it; `None` is the tenant root group.
    #[serde(default)]
    pub management_group: Option<String>,
    /// When it was created (RFC 3339).
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManagementGroup {
    /// The group's name, which is also its id's last segment.
    pub name: String,
    pub display_name: String,
    /// The parent group's name; `None` is the tenant root group.
    #[serde(default)]
    pub parent: Option<String>,
    pub created_by: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenancyError {
    #[error("The management group name '{0}' is invalid: use up to 90 letters, digits, '-', '_', '(', ')' and '.', not ending with '.'.")]
    InvalidGroupName(String),
    #[error("The display name '{0}' is invalid: it must be 1 to 90 characters long.")]
    InvalidDisplayName(String),
    #[error("Moving '{child}' under '{parent}' would make a group its own ancestor; pick a parent that is not '{child}' or one of its descendants.")]
    Cycle { child: String, parent: String },
    #[error("The management group hierarchy would be {depth} levels deep under the root; Azure supports at most {MAX_DEPTH}. Attach '{group}' higher in the tree.")]
    TooDeep { group: String, depth: usize },
    #[error("The management group '{0}' has children ({1}); move or delete them first.")]
    HasChildren(String, String),
    #[error("The management group '{0}' could not be found.")]
    GroupNotFound(String),
    #[error("The tenant root group cannot be changed this way.")]
    RootImmutable,
}

impl TenancyError {
    pub fn to_arm(&self) -> ArmError {
        let (status, code) = match self {
            TenancyError::InvalidGroupName(_) => (400, "InvalidManagementGroupName"),
            TenancyError::InvalidDisplayName(_) => (400, "InvalidDisplayName"),
            TenancyError::Cycle { .. } => (400, "InvalidParentGroup"),
            TenancyError::TooDeep { .. } => (400, "MaxDepthExceeded"),
            TenancyError::HasChildren(..) => (400, "CannotDeleteManagementGroupWithChildren"),
            TenancyError::GroupNotFound(_) => (404, "NotFound"),
            TenancyError::RootImmutable => (400, "BadRequest"),
        };
        ArmError::new(status, code, self.to_string())
    }
}

impl From<TenancyError> for ArmError {
    fn from(e: TenancyError) -> ArmError {
        e.to_arm()
    }
}

// Rules ----------------------------------------------------------------------

/// "The management group ID … can contain letters, numbers, hyphens,
/// underscores, periods and parentheses, up to 90 characters, and cannot
/// end with a period."
pub fn check_group_name(name: &str) -> Result<(), TenancyError> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "-_().".contains(c);
    if name.is_empty() || name.len() > 90 || !name.chars().all(ok_char) || name.ends_with('.') {
        return Err(TenancyError::InvalidGroupName(name.to_string()));
    }
    Ok(())
}

/// Display names of groups and subscriptions: 1 to 90 characters.
pub fn check_display_name(name: &str) -> Result<(), TenancyError> {
    let n = name.chars().count();
    if n == 0 || n > 90 || name.trim().is_empty() {
        return Err(TenancyError::InvalidDisplayName(name.to_string()));
    }
    Ok(())
}

/// "A management group tree can support up to six levels of depth. This
/// limit doesn't include the root level or the subscription level."
pub const MAX_DEPTH: usize = 6;

/// `chain` lists the proposed parent's ancestors, nearest first (the parent
/// itself first, the root excluded); `subtree_height` is how many levels the
/// moved group and its descendants take (1 for a leaf).
pub fn check_placement(
    group: &str,
    chain: &[String],
    subtree_height: usize,
) -> Result<(), TenancyError> {
    // "A management group can't be moved under one of its own children."
    if chain.iter().any(|g| g.eq_ignore_ascii_case(group)) {
        return Err(TenancyError::Cycle {
            child: group.to_string(),
            parent: chain[0].clone(),
        });
    }
    let depth = chain.len() + subtree_height;
    if depth > MAX_DEPTH {
        return Err(TenancyError::TooDeep {
            group: group.to_string(),
            depth,
        });
    }
    Ok(())
}

/// "To delete a management group, it must not have any child management
/// groups or subscriptions."
pub fn check_deletable(group: &str, children: &[String]) -> Result<(), TenancyError> {
    if children.is_empty() {
        Ok(())
    } else {
        Err(TenancyError::HasChildren(
            group.to_string(),
            children.join(", "),
        ))
    }
}

// Ids ------------------------------------------------------------------------

pub fn group_id(name: &str) -> String {
    format!("/providers/{MG_TYPE}/{name}")
}

/// The group name a scope names, when it is a management group
/// (`/providers/Microsoft.Management/managementGroups/{name}`).
pub fn group_of_scope(scope: &str) -> Option<String> {
    let segs: Vec<&str> = scope.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        [p, ns, t, name] | [p, ns, t, name, ..]
            if p.eq_ignore_ascii_case("providers")
                && ns.eq_ignore_ascii_case(MG_NAMESPACE)
                && t.eq_ignore_ascii_case("managementGroups") =>
        {
            Some(name.to_string())
        }
        _ => None,
    }
}

fn sub_key(id: &str) -> String {
    id.to_ascii_lowercase()
}

// Store ----------------------------------------------------------------------

pub fn subscriptions(r: &impl Reader) -> Result<Vec<Subscription>, ArmError> {
    Ok(r.scan_json::<Subscription>(SUBSCRIPTIONS, "")?
        .into_iter()
        .map(|(_, s)| s)
        .collect())
}

pub fn subscription(r: &impl Reader, id: &str) -> Result<Option<Subscription>, ArmError> {
    Ok(r.get_json(SUBSCRIPTIONS, &sub_key(id))?)
}

pub fn save_subscription(tx: &mut WriteTx, s: &Subscription) -> Result<(), ArmError> {
    tx.put_json(SUBSCRIPTIONS, &sub_key(&s.subscription_id), s)?;
    Ok(())
}

pub fn group(r: &impl Reader, name: &str) -> Result<Option<ManagementGroup>, ArmError> {
    Ok(r.get_json(MANAGEMENT_GROUPS, &name.to_ascii_lowercase())?)
}

pub fn groups(r: &impl Reader) -> Result<Vec<ManagementGroup>, ArmError> {
    Ok(r.scan_json::<ManagementGroup>(MANAGEMENT_GROUPS, "")?
        .into_iter()
        .map(|(_, g)| g)
        .collect())
}

pub fn save_group(tx: &mut WriteTx, g: &ManagementGroup) -> Result<(), ArmError> {
    tx.put_json(MANAGEMENT_GROUPS, &g.name.to_ascii_lowercase(), g)?;
    Ok(())
}

pub fn delete_group(tx: &mut WriteTx, name: &str) -> Result<(), ArmError> {
    tx.delete(MANAGEMENT_GROUPS, &name.to_ascii_lowercase())?;
    Ok(())
}

/// The groups above `name`, nearest first, excluding the root. A corrupt
/// (cyclic) chain stops at the first repeat instead of looping.
pub fn group_chain(r: &impl Reader, name: &str) -> Result<Vec<String>, ArmError> {
    let mut out: Vec<String> = Vec::new();
    let mut cur = group(r, name)?;
    while let Some(g) = cur {
        if out.iter().any(|n| n.eq_ignore_ascii_case(&g.name)) {
            break;
        }
        out.push(g.name.clone());
        cur = match &g.parent {
            Some(p) => group(r, p)?,
            None => None,
        };
    }
    Ok(out)
}

/// The direct children of a group (`None`: the root): groups, then subscriptions.
pub fn children(
    r: &impl Reader,
    parent: Option<&str>,
) -> Result<(Vec<ManagementGroup>, Vec<Subscription>), ArmError> {
    let same = |p: &Option<String>| match (p, parent) {
        (None, None) => true,
        (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
        _ => false,
    };
    let gs = groups(r)?.into_iter().filter(|g| same(&g.parent)).collect();
    let ss = subscriptions(r)?
        .into_iter()
        .filter(|s| same(&s.management_group))
        .collect();
    Ok((gs, ss))
}

/// How many levels a group and its descendants occupy (1 for a leaf).
pub fn subtree_height(r: &impl Reader, name: &str) -> Result<usize, ArmError> {
    let all = groups(r)?;
    fn height(all: &[ManagementGroup], name: &str, guard: usize) -> usize {
        if guard == 0 {
            return 1;
        }
        1 + all
            .iter()
            .filter(|g| {
                g.parent
                    .as_deref()
                    .is_some_and(|p| p.eq_ignore_ascii_case(name))
            })
            .map(|g| height(all, &g.name, guard - 1))
            .max()
            .unwrap_or(0)
    }
    Ok(height(&all, name, MAX_DEPTH + 2))
}

/// The management-group scopes above `scope`, nearest first, ending with the
/// tenant root group: what a role assignment at a group reaches. A
/// subscription (or anything in it) sits under its group; a group under its
/// parents. Other scopes (the tenant root `/`) have none.
pub fn ancestors(r: &impl Reader, tenant_id: &str, scope: &str) -> Result<Vec<String>, ArmError> {
    let segs: Vec<&str> = scope.split('/').filter(|s| !s.is_empty()).collect();
    let start = if segs
        .first()
        .is_some_and(|s| s.eq_ignore_ascii_case("subscriptions"))
    {
        match segs.get(1) {
            Some(sub) => match subscription(r, sub)? {
                Some(s) => s.management_group,
                None => return Ok(Vec::new()),
            },
            None => return Ok(Vec::new()),
        }
    } else if let Some(g) = group_of_scope(scope) {
        if g.eq_ignore_ascii_case(tenant_id) {
            return Ok(Vec::new());
        }
        group(r, &g)?.and_then(|g| g.parent)
    } else {
        return Ok(Vec::new());
    };
    let mut out: Vec<String> = match start {
        Some(g) => group_chain(r, &g)?.iter().map(|n| group_id(n)).collect(),
        None => Vec::new(),
    };
    out.push(group_id(tenant_id));
    Ok(out)
}

/// Whether `scope` lies inside management group `group` (directly or below).
pub fn group_contains(
    r: &impl Reader,
    tenant_id: &str,
    group: &str,
    scope: &str,
) -> Result<bool, ArmError> {
    if let Some(g) = group_of_scope(scope) {
        if g.eq_ignore_ascii_case(group) {
            return Ok(true);
        }
    }
    let gid = group_id(group);
    Ok(ancestors(r, tenant_id, scope)?
        .iter()
        .any(|a| a.eq_ignore_ascii_case(&gid)))
}

/// The tenant's own record: its id and the principals that own its billing
/// account (who may create subscriptions, as an EA enrollment owner can).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tenant {
    pub tenant_id: String,
    pub billing_owners: Vec<String>,
}

const TENANT_KEY: &str = "tenant";

pub fn tenant(r: &impl Reader) -> Result<Option<Tenant>, ArmError> {
    Ok(r.get_json(MANAGEMENT_GROUPS_META, TENANT_KEY)?)
}

pub fn save_tenant(tx: &mut WriteTx, t: &Tenant) -> Result<(), ArmError> {
    tx.put_json(MANAGEMENT_GROUPS_META, TENANT_KEY, t)?;
    Ok(())
}

pub const MANAGEMENT_GROUPS_META: Table = Table("tenant");

/// Whether a role assignment made at `assignment_scope` applies at `scope`:
/// the ordinary id-prefix rule, or a management group above `scope`.
pub fn assignment_reaches(
    r: &impl Reader,
    assignment_scope: &str,
    scope: &str,
) -> Result<bool, ArmError> {
    if crate::id::scope_contains(assignment_scope, scope) {
        return Ok(true);
    }
    let Some(g) = group_of_scope(assignment_scope) else {
        return Ok(false);
    };
    let Some(t) = tenant(r)? else {
        return Ok(false);
    };
    group_contains(r, &t.tenant_id, &g, scope)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_names() {
        assert!(check_group_name("landing-zones").is_ok());
        assert!(check_group_name("Corp_(prod).1").is_ok());
        assert!(check_group_name("").is_err());
        assert!(check_group_name("ends.").is_err());
        assert!(check_group_name("has space").is_err());
        assert!(check_group_name(&"a".repeat(91)).is_err());
        assert_eq!(
            check_group_name("a/b").unwrap_err().to_arm().body.code,
            "InvalidManagementGroupName"
        );
    }

    #[test]
    fn display_names() {
        assert!(check_display_name("Connectivity").is_ok());
        assert!(check_display_name("").is_err());
        assert!(check_display_name("   ").is_err());
        assert!(check_display_name(&"x".repeat(91)).is_err());
    }

    #[test]
    fn placement_refuses_cycles_and_depth() {
        let chain = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(check_placement("a", &chain(&["b", "c"]), 1).is_ok());
        let e = check_placement("a", &chain(&["b", "A"]), 1).unwrap_err();
        assert_eq!(e.to_arm().body.code, "InvalidParentGroup");
        // Six levels fit, seven do not.
        assert!(check_placement("g", &chain(&["1", "2", "3", "4", "5"]), 1).is_ok());
        let e = check_placement("g", &chain(&["1", "2", "3", "4", "5"]), 2).unwrap_err();
        assert_eq!(e.to_arm().body.code, "MaxDepthExceeded");
        assert!(check_placement("g", &[], 6).is_ok());
    }

    #[test]
    fn deletable_only_without_children() {
        assert!(check_deletable("a", &[]).is_ok());
        let e = check_deletable("a", &["b".to_string()]).unwrap_err();
        assert_eq!(
            e.to_arm().body.code,
            "CannotDeleteManagementGroupWithChildren"
        );
        assert_eq!(e.to_arm().status, 400);
    }

    #[test]
    fn group_scopes() {
        assert_eq!(
            group_of_scope("/providers/Microsoft.Management/managementGroups/mg1").as_deref(),
            Some("mg1")
        );
        assert_eq!(
            group_of_scope("/providers/microsoft.management/managementgroups/mg1/providers/Microsoft.Authorization/roleAssignments/x").as_deref(),
            Some("mg1")
        );
        assert_eq!(group_of_scope("/subscriptions/s"), None);
    }
}
