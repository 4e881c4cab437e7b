//! A vault's extended information (`vaults/{vault}/extendedInformation/
//! vaultExtendedInfo`): the integrity and encryption keys clients such as
//! the Backup agents and azure-cli keep with the vault. Created by PUT,
//! merged by PATCH, read by GET; it goes with the vault.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use recoverite_arm::{document, resource, ArmError, ArmRequest, Ctx, Reply};

pub const TYPE: &str = "Microsoft.RecoveryServices/vaults/extendedInformation";
/// The one name Azure serves.
pub const NAME: &str = "vaultExtendedInfo";

/// The properties Azure keeps; anything else is refused.
const PROPERTIES: &[&str] = &[
    "integrityKey",
    "encryptionKey",
    "encryptionKeyThumbprint",
    "algorithm",
];

/// `VaultExtendedInfo`: keys the clients keep with the vault.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExtendedInfoProperties {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integrity_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_key_thumbprint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<String>,
}

impl ExtendedInfoProperties {
    /// What `given` names replaces, the rest stays (a PATCH).
    pub fn merged(mut self, given: ExtendedInfoProperties) -> Self {
        let keep = |new: Option<String>, old: &mut Option<String>| {
            if new.is_some() {
                *old = new;
            }
        };
        keep(given.integrity_key, &mut self.integrity_key);
        keep(given.encryption_key, &mut self.encryption_key);
        keep(
            given.encryption_key_thumbprint,
            &mut self.encryption_key_thumbprint,
        );
        keep(given.algorithm, &mut self.algorithm);
        self
    }
}

/// A vault's stored extended information.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExtendedInfo {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub etag: String,
    pub properties: ExtendedInfoProperties,
}

recoverite_arm::impl_document!(ExtendedInfo, TYPE, "vault extended information");

/// "The extended info name must be vaultExtendedInfo", and only the known
/// string properties are taken.
pub fn check(name: &str, props: &Value) -> Result<ExtendedInfoProperties, ArmError> {
    if !name.eq_ignore_ascii_case(NAME) {
        return Err(ArmError::invalid_parameter(
            "resourceName",
            format!("'{name}' is not a vault's extended information; its only name is '{NAME}'."),
        ));
    }
    let mut out = serde_json::Map::new();
    if props.is_null() {
        return Ok(ExtendedInfoProperties::default());
    }
    let obj = props
        .as_object()
        .ok_or_else(|| ArmError::invalid_content("'properties' must be an object."))?;
    for (k, v) in obj {
        let known = PROPERTIES
            .iter()
            .find(|p| p.eq_ignore_ascii_case(k))
            .ok_or_else(|| {
                ArmError::invalid_parameter(
                    &format!("properties.{k}"),
                    format!(
                        "'{k}' is not a property of vault extended info; use {}.",
                        PROPERTIES.join(", ")
                    ),
                )
            })?;
        if !v.is_string() {
            return Err(ArmError::invalid_parameter(
                &format!("properties.{k}"),
                "must be a string.",
            ));
        }
        out.insert(known.to_string(), v.clone());
    }
    serde_json::from_value(Value::Object(out)).map_err(|e| ArmError::invalid_content(e.to_string()))
}

fn vault_id(req: &ArmRequest) -> String {
    req.path.prefix(req.path.segments.len() - 2)
}

pub fn put(ctx: &Ctx, req: &ArmRequest, patch: bool) -> Result<Reply, ArmError> {
    let name = req.path.segments.last().cloned().unwrap_or_default();
    let body = req.body.clone().unwrap_or(Value::Null);
    let props = check(&name, &body["properties"])?;
    let rid = req.path.id();
    let vid = vault_id(req);
    ctx.store().write(|tx| {
        if resource::get(tx, &vid)?.is_none() {
            return Err(ArmError::resource_not_found(
                crate::target::VAULT_TYPE,
                vid.rsplit('/').next().unwrap_or_default(),
                req.path.resource_group.as_deref(),
            ));
        }
        let existing = document::load::<ExtendedInfo>(tx, &rid)?;
        if patch && existing.is_none() {
            return Err(ArmError::resource_not_found(
                TYPE,
                NAME,
                req.path.resource_group.as_deref(),
            ));
        }
        let properties = match (patch, existing) {
            (true, Some(e)) => e.properties.merged(props),
            _ => props,
        };
        let info = ExtendedInfo {
            id: rid.clone(),
            name: NAME.into(),
            kind: TYPE.into(),
            etag: uuid::Uuid::new_v4().to_string(),
            properties,
        };
        document::save(tx, &info)?;
        Ok(Reply::ok(document::to_value(&info)?))
    })
}

pub fn get(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    match ctx
        .store()
        .view(|r| document::load::<ExtendedInfo>(r, &req.path.id()))?
    {
        Some(info) => Ok(Reply::ok(document::to_value(&info)?)),
        None => Err(ArmError::resource_not_found(
            TYPE,
            NAME,
            req.path.resource_group.as_deref(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_patch_replaces_only_what_it_names() {
        let stored = check(NAME, &json!({"integrityKey": "k", "algorithm": "None"})).unwrap();
        let p = stored.merged(check(NAME, &json!({"algorithm": "AES"})).unwrap());
        assert_eq!(
            (p.integrity_key.as_deref(), p.algorithm.as_deref()),
            (Some("k"), Some("AES"))
        );
        assert!(serde_json::to_value(&p)
            .unwrap()
            .get("encryptionKey")
            .is_none());
    }

    #[test]
    fn only_vault_extended_info_with_known_string_properties() {
        let p = check(
            "VaultExtendedInfo",
            &json!({"integrityKey": "k", "Algorithm": "None"}),
        )
        .unwrap();
        assert_eq!(p.algorithm.as_deref(), Some("None"));
        assert!(check("other", &json!({})).is_err());
        assert!(check(NAME, &json!({"colour": "red"})).is_err());
        assert!(check(NAME, &json!({"integrityKey": 5})).is_err());
        assert_eq!(
            check(NAME, &Value::Null).unwrap(),
            ExtendedInfoProperties::default()
        );
    }
}
