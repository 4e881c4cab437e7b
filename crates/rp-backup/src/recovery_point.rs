//! A Backup recovery point as stored (issue 9, point 2): an Azure VM's
//! (`IaasVMRecoveryPoint`) or a MARS folder's (`GenericRecoveryPoint`),
//! told apart by `objectType`. What the backups, the clock, cross-region
//! restore and file recovery decide on (when it was taken, when it expires,
//! its tiers, an open file-recovery session) is typed; what Azure only
//! shows (disk configuration, VM size) is kept as written.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use recoverite_arm::{document, time as arm_time, ArmError};
use recoverite_store::{Reader, WriteTx};

use crate::POINT_TYPE;

/// `recoveryPointProperties`: when the point may be pruned.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PointExpiry {
    #[serde(default)]
    pub expiry_time: Option<String>,
}

/// One tier a point is in: `InstantRP` (the snapshot tier) or `HardenedRP`
/// (the vault tier).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TierDetail {
    #[serde(rename = "type")]
    pub tier: String,
    pub status: String,
}

impl TierDetail {
    fn valid(tier: &str) -> TierDetail {
        TierDetail {
            tier: tier.into(),
            status: "Valid".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VmPointProperties {
    pub recovery_point_type: String,
    pub recovery_point_time: String,
    #[serde(default)]
    pub recovery_point_tier_details: Vec<TierDetail>,
    #[serde(default)]
    pub is_instant_ilr_session_active: bool,
    #[serde(default)]
    pub recovery_point_properties: PointExpiry,
    /// VM size, OS type, the disks included…: as the backup wrote them.
    #[serde(flatten)]
    pub given: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenericPointProperties {
    /// The folder backed up.
    pub friendly_name: String,
    pub recovery_point_type: String,
    pub recovery_point_time: String,
    #[serde(default)]
    pub recovery_point_additional_info: String,
    #[serde(default)]
    pub recovery_point_properties: PointExpiry,
    #[serde(flatten)]
    pub given: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "objectType")]
pub enum PointProperties {
    #[serde(rename = "IaasVMRecoveryPoint")]
    Vm(VmPointProperties),
    #[serde(rename = "GenericRecoveryPoint")]
    Generic(GenericPointProperties),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecoveryPoint {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub properties: PointProperties,
}

recoverite_arm::impl_document!(RecoveryPoint, POINT_TYPE, "recovery point");

impl RecoveryPoint {
    pub fn new(id: &str, name: &str, properties: PointProperties) -> RecoveryPoint {
        RecoveryPoint {
            id: id.to_string(),
            name: name.to_string(),
            kind: POINT_TYPE.to_string(),
            properties,
        }
    }

    /// When it was taken, as written (RFC 3339).
    pub fn time_str(&self) -> &str {
        match &self.properties {
            PointProperties::Vm(p) => &p.recovery_point_time,
            PointProperties::Generic(p) => &p.recovery_point_time,
        }
    }

    pub fn time(&self) -> Option<OffsetDateTime> {
        arm_time::parse(self.time_str())
    }

    pub fn expiry(&self) -> Option<OffsetDateTime> {
        let e = match &self.properties {
            PointProperties::Vm(p) => &p.recovery_point_properties,
            PointProperties::Generic(p) => &p.recovery_point_properties,
        };
        e.expiry_time.as_deref().and_then(arm_time::parse)
    }

    /// "Expired at `now`": its expiry time has passed.
    pub fn expired(&self, now: OffsetDateTime) -> bool {
        self.expiry().is_some_and(|e| e <= now)
    }

    /// Whether it was taken in `[from, to]` (either end open), as a list's
    /// `startDate`/`endDate` filter asks.
    pub fn taken_within(&self, from: Option<OffsetDateTime>, to: Option<OffsetDateTime>) -> bool {
        let t = self.time();
        from.is_none_or(|f| t.is_some_and(|t| t >= f))
            && to.is_none_or(|e| t.is_some_and(|t| t <= e))
    }

    /// The folder a MARS point is of (empty for a VM's).
    pub fn friendly_name(&self) -> &str {
        match &self.properties {
            PointProperties::Generic(p) => &p.friendly_name,
            PointProperties::Vm(_) => "",
        }
    }

    /// The tiers it is in: the vault tier always, the snapshot tier while
    /// `instant` (its instant-restore days last).
    pub fn with_tiers(mut self, instant: bool) -> RecoveryPoint {
        if let PointProperties::Vm(p) = &mut self.properties {
            p.recovery_point_tier_details = instant
                .then(|| TierDetail::valid("InstantRP"))
                .into_iter()
                .chain([TierDetail::valid("HardenedRP")])
                .collect();
        }
        self
    }

    /// Marks a file-recovery session open or closed on it.
    pub fn set_ilr_active(&mut self, active: bool) {
        if let PointProperties::Vm(p) = &mut self.properties {
            p.is_instant_ilr_session_active = active;
        }
    }

    pub fn to_value(&self) -> Result<Value, ArmError> {
        document::to_value(self)
    }

    pub fn save(&self, tx: &mut WriteTx) -> Result<(), ArmError> {
        document::save(tx, self)
    }
}

/// The point at `id`, if there is one.
pub fn load(r: &impl Reader, id: &str) -> Result<Option<RecoveryPoint>, ArmError> {
    document::load(r, id)
}

/// An item's points, oldest first.
pub fn of_item(r: &impl Reader, item_id: &str) -> Result<Vec<RecoveryPoint>, ArmError> {
    let mut pts = document::children::<RecoveryPoint>(r, item_id, "recoveryPoints")?;
    pts.sort_by(|a, b| a.time_str().cmp(b.time_str()));
    Ok(pts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vm_point(expiry: &str) -> RecoveryPoint {
        // As a VM backup wrote it before points were typed.
        serde_json::from_value(json!({
            "id": "/i/recoveryPoints/1", "name": "1", "type": POINT_TYPE,
            "properties": {
                "objectType": "IaasVMRecoveryPoint", "recoveryPointType": "CrashConsistent",
                "recoveryPointTime": "2026-03-01T02:00:00.0000000Z",
                "recoveryPointTierDetails": [{"type": "InstantRP", "status": "Valid"}, {"type": "HardenedRP", "status": "Valid"}],
                "isManagedVirtualMachine": true, "virtualMachineSize": "Standard_B2s",
                "isInstantIlrSessionActive": false,
                "recoveryPointDiskConfiguration": {"numberOfDisksIncludedInBackup": 2},
                "recoveryPointProperties": {"expiryTime": expiry},
            }
        }))
        .unwrap()
    }

    #[test]
    fn points_expire_at_their_expiry_and_filter_by_when_they_were_taken() {
        let p = vm_point("2026-03-31T02:00:00Z");
        let at = |s: &str| arm_time::parse(s).unwrap();
        assert!(!p.expired(at("2026-03-31T01:59:59Z")));
        assert!(p.expired(at("2026-03-31T02:00:00Z")));
        assert!(p.taken_within(Some(at("2026-03-01T00:00:00Z")), None));
        assert!(!p.taken_within(None, Some(at("2026-02-28T00:00:00Z"))));
        assert!(p.taken_within(None, None));
    }

    #[test]
    fn a_point_shows_the_tiers_it_is_in_and_keeps_what_azure_only_shows() {
        let v = vm_point("2026-03-31T02:00:00Z")
            .with_tiers(false)
            .to_value()
            .unwrap();
        assert_eq!(
            v["properties"]["recoveryPointTierDetails"],
            json!([{"type": "HardenedRP", "status": "Valid"}])
        );
        assert_eq!(v["properties"]["objectType"], "IaasVMRecoveryPoint");
        assert_eq!(v["properties"]["virtualMachineSize"], "Standard_B2s");
        assert_eq!(
            v["properties"]["recoveryPointDiskConfiguration"]["numberOfDisksIncludedInBackup"],
            2
        );
        let mut p = vm_point("x");
        assert_eq!(p.expiry(), None, "an unreadable expiry never expires");
        p.set_ilr_active(true);
        assert_eq!(
            p.to_value().unwrap()["properties"]["isInstantIlrSessionActive"],
            true
        );
        let generic: RecoveryPoint = serde_json::from_value(json!({
            "id": "/m/recoveryPoints/2", "name": "2", "type": POINT_TYPE,
            "properties": {"objectType": "GenericRecoveryPoint", "friendlyName": "/data",
                "recoveryPointType": "FileSystemConsistent", "recoveryPointTime": "2026-03-01T00:00:00Z",
                "recoveryPointAdditionalInfo": "3 files, 10 bytes", "indexObject": "abc",
                "recoveryPointProperties": {"expiryTime": null}}
        }))
        .unwrap();
        assert_eq!(generic.friendly_name(), "/data");
        assert_eq!(
            generic.to_value().unwrap()["properties"]["indexObject"],
            "abc"
        );
    }
}
