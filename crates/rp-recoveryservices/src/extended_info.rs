//! A vault's extended information (`vaults/{vault}/extendedInformation/
//! vaultExtendedInfo`): the integrity and encryption keys clients such as
//! the Backup agents and azure-cli keep with the vault. Created by PUT,
//! merged by PATCH, read by GET; it goes with the vault.

use serde_json::{json, Map, Value};

use recoverite_arm::{resource, ArmError, ArmRequest, Ctx, Reply};

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

/// "The extended info name must be vaultExtendedInfo", and only the known
/// string properties are taken.
pub fn check(name: &str, props: &Value) -> Result<Map<String, Value>, ArmError> {
    if !name.eq_ignore_ascii_case(NAME) {
        return Err(ArmError::invalid_parameter(
            "resourceName",
            format!("'{name}' is not a vault's extended information; its only name is '{NAME}'."),
        ));
    }
    let mut out = Map::new();
    if props.is_null() {
        return Ok(out);
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
    Ok(out)
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
        let existing = resource::get(tx, &rid)?;
        if patch && existing.is_none() {
            return Err(ArmError::resource_not_found(
                TYPE,
                NAME,
                req.path.resource_group.as_deref(),
            ));
        }
        let mut merged = if patch {
            existing
                .as_ref()
                .and_then(|e| e["properties"].as_object().cloned())
                .unwrap_or_default()
        } else {
            Map::new()
        };
        merged.extend(props);
        let doc = json!({
            "id": rid, "name": NAME, "type": TYPE,
            "etag": uuid::Uuid::new_v4().to_string(),
            "properties": Value::Object(merged),
        });
        resource::put(tx, &rid, &doc)?;
        Ok(Reply::ok(doc))
    })
}

pub fn get(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    ctx.store()
        .view(|r| resource::get(r, &req.path.id()))?
        .map(Reply::ok)
        .ok_or_else(|| ArmError::resource_not_found(TYPE, NAME, req.path.resource_group.as_deref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_vault_extended_info_with_known_string_properties() {
        let p = check(
            "VaultExtendedInfo",
            &json!({"integrityKey": "k", "Algorithm": "None"}),
        )
        .unwrap();
        assert_eq!(p["algorithm"], "None");
        assert!(check("other", &json!({})).is_err());
        assert!(check(NAME, &json!({"colour": "red"})).is_err());
        assert!(check(NAME, &json!({"integrityKey": 5})).is_err());
        assert!(check(NAME, &Value::Null).unwrap().is_empty());
    }
}
