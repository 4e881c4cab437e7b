//! Availability sets, served by the tracked-resource core (`arm::tracked`):
//! typed properties, the domain-count rule, the `Aligned` sku by default,
//! members shown from the VMs that name the set, and no delete while it has
//! any. Azure answers their PUT 200 at once (not a long-running operation).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use recoverite_arm::names::NameRule;
use recoverite_arm::tracked::{Sku, Tracked, TrackedKind};
use recoverite_arm::{id, ArmError, Ctx};
use recoverite_store::{Reader, WriteTx};

use crate::vms::SET_TYPE;

fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// Compute resource names: 1-80 letters, digits, `_`, `.`, `-`, starting
/// with a letter or digit and ending with a letter, digit or `_`.
pub const NAME: NameRule = NameRule {
    min: 1,
    max: 80,
    allowed: name_char,
    first: |c| c.is_ascii_alphanumeric(),
    last: |c| c.is_ascii_alphanumeric() || c == '_',
    description: "Use 1-80 letters, digits, '_', '.', '-', starting with a letter or digit and ending with a letter, digit or '_'.",
};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SetProperties {
    pub platform_fault_domain_count: u32,
    pub platform_update_domain_count: u32,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct GivenSet {
    platform_fault_domain_count: Option<u32>,
    platform_update_domain_count: Option<u32>,
}

/// "platformFaultDomainCount: 1-3; platformUpdateDomainCount: 1-20"
/// (defaults 2 and 5).
pub fn domain_counts(fault: u32, update: u32) -> Result<SetProperties, ArmError> {
    if !(1..=3).contains(&fault) || !(1..=20).contains(&update) {
        return Err(ArmError::bad_request(
            "InvalidParameter",
            "platformFaultDomainCount must be 1-3 and platformUpdateDomainCount 1-20.",
        ));
    }
    Ok(SetProperties {
        platform_fault_domain_count: fault,
        platform_update_domain_count: update,
    })
}

/// The VMs that name the set, as `{"id": …}` references.
fn members(r: &impl Reader, set_id: &str) -> Result<Vec<Value>, ArmError> {
    let sub = id::parse_id(set_id)
        .and_then(|p| p.subscription)
        .unwrap_or_default();
    let key = id::key(set_id);
    Ok(crate::view::vms_in(r, &format!("/subscriptions/{sub}"))?
        .into_iter()
        .filter(|vm| vm.availability_set.as_deref().map(id::key) == Some(key.clone()))
        .map(|vm| json!({"id": vm.id}))
        .collect())
}

pub struct AvailabilitySet;

impl TrackedKind for AvailabilitySet {
    const TYPE: &'static str = SET_TYPE;
    const NOUN: &'static str = "availability set";
    const CREATED: u16 = 200;
    type Properties = SetProperties;
    type Given = GivenSet;

    fn check_name(name: &str) -> Result<(), ArmError> {
        NAME.check(Self::NOUN, name)
    }

    fn properties(
        _: &Ctx,
        _: &mut WriteTx,
        _: &str,
        given: GivenSet,
        existing: Option<&SetProperties>,
        patch: bool,
    ) -> Result<SetProperties, ArmError> {
        let base = existing.filter(|_| patch);
        domain_counts(
            given
                .platform_fault_domain_count
                .or(base.map(|b| b.platform_fault_domain_count))
                .unwrap_or(2),
            given
                .platform_update_domain_count
                .or(base.map(|b| b.platform_update_domain_count))
                .unwrap_or(5),
        )
    }

    /// `Aligned` (managed disks) unless the caller names another.
    fn sku(
        given: Option<Sku>,
        existing: Option<&Sku>,
        patch: bool,
    ) -> Result<Option<Sku>, ArmError> {
        let keep = existing.filter(|_| patch).cloned();
        Ok(Some(given.or(keep).unwrap_or(Sku {
            name: "Aligned".into(),
            tier: None,
        })))
    }

    fn render(r: &impl Reader, doc: &mut Value) -> Result<(), ArmError> {
        let sid = doc["id"].as_str().unwrap_or_default().to_string();
        doc["properties"]["virtualMachines"] = Value::Array(members(r, &sid)?);
        Ok(())
    }

    /// "An availability set with virtual machines cannot be deleted."
    fn deleting(tx: &mut WriteTx, doc: &Tracked<SetProperties>) -> Result<(), ArmError> {
        if !members(tx, &doc.id)?.is_empty() {
            return Err(ArmError::conflict(
                "OperationNotAllowed",
                "An availability set with virtual machines cannot be deleted.",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_counts_are_1_to_3_and_1_to_20() {
        assert_eq!(domain_counts(2, 5).unwrap().platform_update_domain_count, 5);
        assert!(domain_counts(0, 5).is_err());
        assert!(domain_counts(4, 5).is_err());
        assert!(domain_counts(3, 21).is_err());
        assert!(domain_counts(3, 20).is_ok());
    }

    #[test]
    fn names_follow_the_compute_rule() {
        assert!(NAME.check("availability set", "web-set_1").is_ok());
        assert!(NAME.check("availability set", "-web").is_err());
        assert!(NAME.check("availability set", "web.").is_err());
        assert!(NAME.check("availability set", &"a".repeat(81)).is_err());
    }
}
