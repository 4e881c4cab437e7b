//! A managed disk or snapshot as stored and as returned (issue 9, point 2):
//! one typed document that every path writing a disk — the disk PUT, the VM
//! PUT's implicit disks, Site Recovery's failover disks, Backup's restored
//! disks, disk access — builds and reads, so a field cannot be misspelled or
//! silently read as empty.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use recoverite_arm::document;
use recoverite_arm::{resource, ArmError};
use recoverite_store::{Reader, WriteTx};

pub const DISK_TYPE: &str = "Microsoft.Compute/disks";
/// A snapshot is a point-in-time copy of a disk's (or snapshot's) bytes,
/// kept sparse like a disk and usable as a new disk's `Copy` source.
pub const SNAPSHOT_TYPE: &str = "Microsoft.Compute/snapshots";

/// `diskState`, as Azure reports it for a managed disk (snapshots have none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DiskState {
    Unattached,
    Attached,
    /// A read URL was granted (`beginGetAccess`).
    #[serde(rename = "ActiveSAS")]
    ActiveSas,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiskSku {
    pub name: String,
    pub tier: String,
}

impl DiskSku {
    pub fn new(name: &str) -> DiskSku {
        let tier = if name.starts_with("Premium") || name.starts_with("Ultra") {
            "Premium"
        } else {
            "Standard"
        };
        DiskSku {
            name: name.to_string(),
            tier: tier.to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreationData {
    /// Empty, Attach, FromImage, Copy or Restore.
    pub create_option: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_resource_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Encryption {
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiskProperties {
    pub creation_data: CreationData,
    #[serde(rename = "diskSizeGB")]
    pub disk_size_gb: u64,
    pub disk_size_bytes: u64,
    /// Names the disk's bytes in the block store.
    pub unique_id: String,
    pub provisioning_state: String,
    /// A disk's attachment; a snapshot has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_state: Option<DiskState>,
    /// Disks a VM made before this was typed carry none of these four;
    /// they read back with Azure's defaults (and no creation time).
    #[serde(default)]
    pub time_created: String,
    #[serde(default = "platform_key")]
    pub encryption: Encryption,
    #[serde(default = "allow_all")]
    pub network_access_policy: String,
    #[serde(default = "enabled")]
    pub public_network_access: String,
    /// Snapshots only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incremental: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hyper_v_generation: Option<String>,
}

fn platform_key() -> Encryption {
    Encryption {
        kind: "EncryptionAtRestWithPlatformKey".into(),
    }
}

fn allow_all() -> String {
    "AllowAll".into()
}

fn enabled() -> String {
    "Enabled".into()
}

/// A managed disk or snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Disk {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub location: String,
    #[serde(default)]
    pub tags: Map<String, Value>,
    pub sku: DiskSku,
    /// The VM the disk is attached to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_by: Option<String>,
    pub properties: DiskProperties,
}

/// What a new disk or snapshot is made of; the rest is Azure's defaults.
pub struct NewDisk<'a> {
    pub id: &'a str,
    pub kind: &'static str,
    pub location: &'a str,
    pub sku: &'a str,
    pub size_bytes: u64,
    pub unique_id: &'a str,
    pub creation: CreationData,
    pub os_type: Option<String>,
}

impl Disk {
    /// A new, unattached disk (or snapshot) with Azure's defaults: platform
    /// key encryption, public access allowed, created now.
    pub fn new(n: NewDisk) -> Disk {
        let snapshot = n.kind == SNAPSHOT_TYPE;
        Disk {
            id: n.id.to_string(),
            name: n.id.rsplit('/').next().unwrap_or_default().to_string(),
            kind: n.kind.to_string(),
            location: n.location.to_string(),
            tags: Map::new(),
            sku: DiskSku::new(n.sku),
            managed_by: None,
            properties: DiskProperties {
                creation_data: n.creation,
                disk_size_gb: n.size_bytes >> 30,
                disk_size_bytes: n.size_bytes,
                unique_id: n.unique_id.to_string(),
                provisioning_state: "Succeeded".into(),
                disk_state: (!snapshot).then_some(DiskState::Unattached),
                time_created: recoverite_arm::time::now_string(),
                encryption: platform_key(),
                network_access_policy: allow_all(),
                public_network_access: enabled(),
                incremental: snapshot.then_some(false),
                os_type: n.os_type,
                hyper_v_generation: None,
            },
        }
    }

    pub fn is_snapshot(&self) -> bool {
        self.kind == SNAPSHOT_TYPE
    }

    /// The document as the API shows it.
    pub fn to_value(&self) -> Result<Value, ArmError> {
        document::to_value(self)
    }

    /// Reads a stored disk or snapshot document; one that does not fit is an
    /// error, not a disk with empty fields.
    pub fn of(doc: Value) -> Result<Disk, ArmError> {
        document::read(doc)
    }

    /// Writes the disk at its id.
    pub fn save(&self, tx: &mut WriteTx) -> Result<(), ArmError> {
        document::save(tx, self)
    }

    /// Attached to `vm_id` (the attachment's state follows).
    pub fn attach(&mut self, vm_id: &str) {
        self.managed_by = Some(vm_id.to_string());
        self.properties.disk_state = Some(DiskState::Attached);
    }

    pub fn detach(&mut self) {
        self.managed_by = None;
        self.properties.disk_state = Some(DiskState::Unattached);
    }
}

recoverite_arm::impl_document!(Disk, DISK_TYPE, "disk");

/// The managed disk at `id`, if it is one.
pub fn load(r: &impl Reader, id: &str) -> Result<Option<Disk>, ArmError> {
    document::load(r, id)
}

/// The disk or snapshot at `id`, if it is one of `kinds`.
pub fn load_of(r: &impl Reader, id: &str, kinds: &[&str]) -> Result<Option<Disk>, ArmError> {
    resource::get(r, id)?
        .filter(|d| {
            d["type"]
                .as_str()
                .is_some_and(|t| kinds.iter().any(|k| t.eq_ignore_ascii_case(k)))
        })
        .map(document::read)
        .transpose()
}

/// Every disk (or snapshot) of `kind` in `scope` ("" for all).
pub fn list(r: &impl Reader, scope: &str, kind: &str) -> Result<Vec<Disk>, ArmError> {
    resource::list_of_type(r, scope, kind)?
        .into_iter()
        .map(document::read)
        .collect()
}

/// An empty, unattached managed disk, for tests.
#[cfg(test)]
pub(crate) fn empty_disk(id: &str, sku: &str, gb: u64) -> Disk {
    Disk::new(NewDisk {
        id,
        kind: DISK_TYPE,
        location: "westus",
        sku,
        size_bytes: gb << 30,
        unique_id: "u",
        creation: CreationData {
            create_option: "Empty".into(),
            source_resource_id: None,
        },
        os_type: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_disk_reads_back_as_written_and_shows_azures_fields() {
        let d = empty_disk(
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/disks/d1",
            "Premium_LRS",
            4,
        );
        let v = d.to_value().unwrap();
        assert_eq!(v["name"], "d1");
        assert_eq!(v["sku"]["tier"], "Premium");
        assert_eq!(v["properties"]["diskSizeGB"], 4);
        assert_eq!(v["properties"]["diskState"], "Unattached");
        assert!(v.get("managedBy").is_none());
        assert!(v["properties"].get("incremental").is_none());
        assert_eq!(Disk::of(v).unwrap(), d);
    }

    #[test]
    fn attachment_and_access_states_are_azures_words() {
        let mut d = empty_disk("/x/disks/d", "Standard_LRS", 1);
        d.attach("/vm");
        let v = d.to_value().unwrap();
        assert_eq!(v["managedBy"], "/vm");
        assert_eq!(v["properties"]["diskState"], "Attached");
        d.properties.disk_state = Some(DiskState::ActiveSas);
        assert_eq!(
            d.to_value().unwrap()["properties"]["diskState"],
            "ActiveSAS"
        );
        d.detach();
        assert!(d.to_value().unwrap().get("managedBy").is_none());
    }

    #[test]
    fn a_snapshot_has_no_disk_state_and_a_malformed_document_is_an_error() {
        let s = Disk::new(NewDisk {
            id: "/x/snapshots/s",
            kind: SNAPSHOT_TYPE,
            location: "westus",
            sku: "Standard_LRS",
            size_bytes: 1 << 30,
            unique_id: "u",
            creation: CreationData {
                create_option: "Copy".into(),
                source_resource_id: Some("/x/disks/d".into()),
            },
            os_type: None,
        });
        let v = s.to_value().unwrap();
        assert!(v["properties"].get("diskState").is_none());
        assert_eq!(v["properties"]["incremental"], false);
        let mut bad = v.clone();
        bad["properties"]["diskSizeBytes"] = serde_json::json!("big");
        assert!(Disk::of(bad).is_err());
        // A disk a VM made before disks were typed reads with Azure's defaults.
        let mut old = v;
        for k in [
            "timeCreated",
            "encryption",
            "networkAccessPolicy",
            "publicNetworkAccess",
        ] {
            old["properties"].as_object_mut().unwrap().remove(k);
        }
        let d = Disk::of(old).unwrap();
        assert_eq!(
            d.properties.encryption.kind,
            "EncryptionAtRestWithPlatformKey"
        );
        assert_eq!(d.properties.network_access_policy, "AllowAll");
    }
}
