//! Tracked resources as stored: the JSON document ARM returns, keyed by the
//! case-folded id, plus the rules every tracked resource shares (tags).

use serde_json::{Map, Value};

use recoverite_store::{Reader, WriteTx};

use crate::error::ArmError;
use crate::id;
use crate::router::RESOURCES;

pub fn get(r: &impl Reader, resource_id: &str) -> Result<Option<Value>, ArmError> {
    Ok(r.get_json(RESOURCES, &id::key(resource_id))?)
}

pub fn put(tx: &mut WriteTx, resource_id: &str, doc: &Value) -> Result<(), ArmError> {
    tx.put_json(RESOURCES, &id::key(resource_id), doc)?;
    Ok(())
}

/// Deletes a resource and everything nested under its id; returns whether it existed.
pub fn delete_tree(tx: &mut WriteTx, resource_id: &str) -> Result<bool, ArmError> {
    let k = id::key(resource_id);
    let existed = tx.delete(RESOURCES, &k)?;
    tx.delete_prefix(RESOURCES, &format!("{k}/"))?;
    Ok(existed)
}

/// Direct children `{parent}/{child_type_segments}/{name}` (no deeper levels).
pub fn list_children(
    r: &impl Reader,
    parent: &str,
    child_path: &str,
) -> Result<Vec<Value>, ArmError> {
    let prefix = format!("{}/{}/", id::key(parent), child_path.to_ascii_lowercase());
    Ok(r.scan_json::<Value>(RESOURCES, &prefix)?
        .into_iter()
        .filter(|(k, _)| !k[prefix.len()..].contains('/'))
        .map(|(_, v)| v)
        .collect())
}

/// Every resource of `full_type` (e.g. `Microsoft.ManagedIdentity/userAssignedIdentities`)
/// under `scope` (a subscription or a resource group).
pub fn list_of_type(r: &impl Reader, scope: &str, full_type: &str) -> Result<Vec<Value>, ArmError> {
    let prefix = format!("{}/", id::key(scope));
    Ok(r.scan_json::<Value>(RESOURCES, &prefix)?
        .into_iter()
        .map(|(_, v)| v)
        .filter(|v| {
            v.get("type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.eq_ignore_ascii_case(full_type))
        })
        .collect())
}

pub const MAX_TAGS: usize = 50;
pub const MAX_TAG_NAME: usize = 512;
pub const MAX_TAG_VALUE: usize = 256;

/// Checks a `tags` value against ARM's tag rules and returns it as a map.
pub fn validate_tags(tags: Option<&Value>) -> Result<Map<String, Value>, ArmError> {
    let Some(tags) = tags else {
        return Ok(Map::new());
    };
    if tags.is_null() {
        return Ok(Map::new());
    }
    let map = tags.as_object().ok_or_else(|| {
        ArmError::invalid_content("'tags' must be an object of string names to string values.")
    })?;
    if map.len() > MAX_TAGS {
        return Err(ArmError::bad_request(
            "InvalidTagCount",
            format!(
                "A resource can have at most {MAX_TAGS} tags; {} were given.",
                map.len()
            ),
        ));
    }
    for (k, v) in map {
        if k.chars()
            .any(|c| matches!(c, '<' | '>' | '%' | '&' | '\\' | '?' | '/'))
        {
            return Err(ArmError::bad_request(
                "InvalidTagNameCharacters",
                format!("The tag name '{k}' has characters that are not allowed: '<', '>', '%', '&', '\\', '?', '/'."),
            ));
        }
        if k.is_empty() || k.chars().count() > MAX_TAG_NAME {
            return Err(ArmError::bad_request(
                "InvalidTagNameLength",
                format!("Tag names must be 1 to {MAX_TAG_NAME} characters long; '{k}' is not."),
            ));
        }
        let s = v.as_str().ok_or_else(|| {
            ArmError::invalid_content(format!("the value of tag '{k}' must be a string."))
        })?;
        if s.chars().count() > MAX_TAG_VALUE {
            return Err(ArmError::bad_request(
                "InvalidTagValueLength",
                format!("The value of tag '{k}' is longer than {MAX_TAG_VALUE} characters."),
            ));
        }
    }
    Ok(map.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tag_rules() {
        assert!(validate_tags(Some(&json!({"a": "b"}))).is_ok());
        assert_eq!(
            validate_tags(Some(&json!({"a/b": "x"})))
                .unwrap_err()
                .code(),
            "InvalidTagNameCharacters"
        );
        assert_eq!(
            validate_tags(Some(&json!({"a": 1}))).unwrap_err().code(),
            "InvalidRequestContent"
        );
        assert_eq!(
            validate_tags(Some(&json!(["a"]))).unwrap_err().code(),
            "InvalidRequestContent"
        );
        let many: Map<String, Value> = (0..51).map(|i| (format!("k{i}"), json!("v"))).collect();
        assert_eq!(
            validate_tags(Some(&Value::Object(many)))
                .unwrap_err()
                .code(),
            "InvalidTagCount"
        );
    }
}
