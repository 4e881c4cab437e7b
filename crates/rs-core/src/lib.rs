//! The Recovery Services core beneath the vault, Site Recovery and (coming)
//! Backup providers: what a vault remembers beyond its ARM document (its
//! numeric id and the permanent "has had items registered or protected"
//! mark) and the protected-item state machine.

pub mod protection;
pub mod vault;
