//! A replication protected item's state as the Recovery Services core's
//! state machine sees it, read from and written to the item's document.

use serde_json::{json, Value};

use recoverite_arm::ArmError;
use recoverite_rs_core::protection::{ItemState, Transition};

use crate::protected_items::str_of;

/// The item's state machine state.
pub fn of(item: &Value) -> Result<ItemState, ArmError> {
    let p = &item["properties"];
    Ok(ItemState::parse(
        str_of(p, "protectionState"),
        str_of(p, "testFailoverState"),
    )?)
}

/// Whether `t` may start from the item's state.
pub fn check(item: &Value, t: Transition) -> Result<(), ArmError> {
    Ok(of(item)?.check(str_of(item, "name"), t)?)
}

/// Checks `t` against the item as it is now (inside the committing
/// transaction) and moves the item to the state it leads to.
pub fn apply(item: &mut Value, t: Transition) -> Result<ItemState, ArmError> {
    check(item, t)?;
    let next = of(item)?.after(t);
    write(item, next);
    Ok(next)
}

/// Writes a state into the item's document, with Azure's descriptions and
/// allowed operations.
pub fn write(item: &mut Value, s: ItemState) {
    let p = &mut item["properties"];
    p["protectionState"] = json!(s.protection.as_str());
    p["protectionStateDescription"] = json!(s.protection.description());
    p["testFailoverState"] = json!(s.test_failover.as_str());
    p["allowedOperations"] = json!(s.allowed_operations());
}
