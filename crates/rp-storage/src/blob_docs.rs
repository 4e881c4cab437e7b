//! What ARM keeps beside the Blob data plane (issue 9: typed documents): a
//! blob service's settings and a container's management properties. The
//! container's existence, leases and immutability are the data plane's.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use recoverite_arm::{document, ArmError};
use recoverite_store::Reader;

use crate::containers::{check_public_access, CONTAINER_TYPE, SERVICE_TYPE};

/// A blob service's settings. What recoverite acts on is typed; CORS,
/// retention and the rest Azure only stores are kept as given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceProperties {
    #[serde(default)]
    pub is_versioning_enabled: bool,
    #[serde(flatten)]
    pub given: Map<String, Value>,
}

impl Default for ServiceProperties {
    /// A new account's blob service, as Azure shows it.
    fn default() -> Self {
        let given = serde_json::json!({
            "cors": {"corsRules": []},
            "deleteRetentionPolicy": {"enabled": false, "allowPermanentDelete": false},
            "containerDeleteRetentionPolicy": {"enabled": false},
        });
        ServiceProperties {
            is_versioning_enabled: false,
            given: given.as_object().cloned().unwrap_or_default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlobService {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub properties: ServiceProperties,
}

recoverite_arm::impl_document!(BlobService, SERVICE_TYPE, "blob service");

/// "deleteRetentionPolicy.days must be from 1 to 365": a service PUT's
/// properties, over the defaults.
pub fn service_properties(props: &Value) -> Result<ServiceProperties, ArmError> {
    let p = props
        .as_object()
        .ok_or_else(|| ArmError::invalid_content("properties must be an object"))?;
    for policy in ["deleteRetentionPolicy", "containerDeleteRetentionPolicy"] {
        if let Some(days) = p.get(policy).and_then(|d| d.get("days")) {
            if !days.as_u64().is_some_and(|d| (1..=365).contains(&d)) {
                return Err(ArmError::invalid_parameter(
                    &format!("properties.{policy}.days"),
                    format!("{policy}.days must be from 1 to 365."),
                ));
            }
        }
    }
    let mut out = ServiceProperties::default();
    for (k, v) in p {
        if k == "isVersioningEnabled" {
            out.is_versioning_enabled = v.as_bool().ok_or_else(|| {
                ArmError::invalid_parameter(
                    "properties.isVersioningEnabled",
                    "isVersioningEnabled must be true or false.",
                )
            })?;
        } else {
            out.given.insert(k.clone(), v.clone());
        }
    }
    Ok(out)
}

/// A container's management properties as stored (each absent until set).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_access: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_encryption_scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deny_encryption_scope_override: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified_time: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlobContainer {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub etag: String,
    pub properties: ContainerSettings,
}

recoverite_arm::impl_document!(BlobContainer, CONTAINER_TYPE, "blob container");

pub fn load_container(r: &impl Reader, cid: &str) -> Result<Option<BlobContainer>, ArmError> {
    document::load(r, cid)
}

pub fn load_service(r: &impl Reader, sid: &str) -> Result<Option<BlobService>, ArmError> {
    document::load(r, sid)
}

/// A container PUT's or PATCH's properties over what is stored:
/// `publicAccess` needs the account to allow public access; metadata are
/// strings; the encryption scope settings are fixed once the container
/// exists (a PUT that changes them is a 409; a PATCH may).
pub fn container_settings(
    props: &Value,
    stored: Option<&ContainerSettings>,
    exists: bool,
    patch: bool,
    account_allows_public: bool,
) -> Result<ContainerSettings, ArmError> {
    let mut out = stored.cloned().unwrap_or_default();
    if let Some(pa) = props.get("publicAccess").and_then(Value::as_str) {
        out.public_access = Some(check_public_access(pa, account_allows_public)?.to_string());
    }
    if let Some(m) = props.get("metadata") {
        match m.as_object() {
            Some(o) if o.values().all(Value::is_string) => out.metadata = Some(o.clone()),
            _ => {
                return Err(ArmError::invalid_parameter(
                    "properties.metadata",
                    "metadata must be an object of string values.",
                ))
            }
        }
    }
    let fixed = |k: &str, changes: bool| -> Result<(), ArmError> {
        if exists && stored.is_some() && !patch && changes {
            return Err(ArmError::conflict(
                "ContainerOperationFailure",
                format!("'{k}' cannot change once the container exists."),
            ));
        }
        Ok(())
    };
    if let Some(v) = props.get("defaultEncryptionScope") {
        let scope = v.as_str().ok_or_else(|| {
            ArmError::invalid_parameter(
                "properties.defaultEncryptionScope",
                "defaultEncryptionScope must be a string.",
            )
        })?;
        fixed(
            "defaultEncryptionScope",
            out.default_encryption_scope
                .as_deref()
                .is_some_and(|old| old != scope),
        )?;
        out.default_encryption_scope = Some(scope.to_string());
    }
    if let Some(v) = props.get("denyEncryptionScopeOverride") {
        let deny = v.as_bool().ok_or_else(|| {
            ArmError::invalid_parameter(
                "properties.denyEncryptionScopeOverride",
                "denyEncryptionScopeOverride must be true or false.",
            )
        })?;
        fixed(
            "denyEncryptionScopeOverride",
            out.deny_encryption_scope_override
                .is_some_and(|old| old != deny),
        )?;
        out.deny_encryption_scope_override = Some(deny);
    }
    out.last_modified_time = Some(recoverite_arm::time::now_string());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn service_settings_keep_what_is_given_over_azures_defaults() {
        let p = service_properties(&json!({"isVersioningEnabled": true, "deleteRetentionPolicy": {"enabled": true, "days": 7}})).unwrap();
        assert!(p.is_versioning_enabled);
        assert_eq!(p.given["deleteRetentionPolicy"]["days"], 7);
        assert_eq!(p.given["cors"], json!({"corsRules": []}));
        for bad in [
            json!({"deleteRetentionPolicy": {"days": 0}}),
            json!({"containerDeleteRetentionPolicy": {"days": 366}}),
            json!({"isVersioningEnabled": "yes"}),
            json!([]),
        ] {
            assert!(service_properties(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn container_settings_merge_and_fix_the_encryption_scope() {
        let first = container_settings(
            &json!({"metadata": {"a": "1"}, "defaultEncryptionScope": "s1"}),
            None,
            false,
            false,
            false,
        )
        .unwrap();
        assert_eq!(first.default_encryption_scope.as_deref(), Some("s1"));
        let again = container_settings(
            &json!({"publicAccess": "none"}),
            Some(&first),
            true,
            false,
            false,
        )
        .unwrap();
        assert_eq!(
            (again.public_access.as_deref(), again.metadata.as_ref()),
            (Some("None"), first.metadata.as_ref())
        );
        let e = container_settings(
            &json!({"defaultEncryptionScope": "s2"}),
            Some(&first),
            true,
            false,
            false,
        )
        .unwrap_err();
        assert_eq!(e.code(), "ContainerOperationFailure");
        assert!(container_settings(
            &json!({"defaultEncryptionScope": "s2"}),
            Some(&first),
            true,
            true,
            false
        )
        .is_ok());
        assert!(
            container_settings(&json!({"metadata": {"a": 1}}), None, false, false, false).is_err()
        );
        assert_eq!(
            container_settings(&json!({"publicAccess": "Blob"}), None, false, false, false)
                .unwrap_err()
                .code(),
            "PublicAccessNotPermitted"
        );
    }
}
