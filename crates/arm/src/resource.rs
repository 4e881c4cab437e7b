//! Tracked resources as stored: the JSON document ARM returns, keyed by the
//! case-folded id, plus the rules every tracked resource shares (tags).

use serde_json::{Map, Value};

use recoverite_store::{Reader, Table, WriteTx};

use crate::error::ArmError;
use crate::id;
use crate::router::RESOURCES;

pub fn get(r: &impl Reader, resource_id: &str) -> Result<Option<Value>, ArmError> {
    Ok(r.get_json(RESOURCES, &id::key(resource_id))?)
}

/// When each resource was first written, as a sequence number: child
/// collections (subnets, security rules, routes, zone groups, …) come back in
/// the order they were created, which is the order of the PUT that created
/// them, as Azure keeps it. Scripts take `vnet.subnets[0]`.
pub const CREATION_ORDER: Table = Table("creation_order");
const NEXT_ORDER_KEY: &str = "~next";

fn order_of(r: &impl Reader, key: &str) -> Result<Option<u64>, ArmError> {
    Ok(r.get_json::<u64>(CREATION_ORDER, key)?)
}

pub fn put(tx: &mut WriteTx, resource_id: &str, doc: &Value) -> Result<(), ArmError> {
    let k = id::key(resource_id);
    if order_of(tx, &k)?.is_none() {
        let next = order_of(tx, NEXT_ORDER_KEY)?.unwrap_or(0);
        tx.put_json(CREATION_ORDER, &k, &next)?;
        tx.put_json(CREATION_ORDER, NEXT_ORDER_KEY, &(next + 1))?;
    }
    tx.put_json(RESOURCES, &k, doc)?;
    Ok(())
}

/// A parent's PUT that lists a child collection inline (subnets, security
/// rules, routes) sets its order: the children come back as listed.
pub fn keep_order(tx: &mut WriteTx, child_ids: &[String]) -> Result<(), ArmError> {
    let mut next = order_of(tx, NEXT_ORDER_KEY)?.unwrap_or(0);
    for c in child_ids {
        tx.put_json(CREATION_ORDER, &id::key(c), &next)?;
        next += 1;
    }
    tx.put_json(CREATION_ORDER, NEXT_ORDER_KEY, &next)?;
    Ok(())
}

/// Deletes a resource and everything nested under its id; returns whether it existed.
pub fn delete_tree(tx: &mut WriteTx, resource_id: &str) -> Result<bool, ArmError> {
    let k = id::key(resource_id);
    let existed = tx.delete(RESOURCES, &k)?;
    tx.delete_prefix(RESOURCES, &format!("{k}/"))?;
    tx.delete(CREATION_ORDER, &k)?;
    tx.delete_prefix(CREATION_ORDER, &format!("{k}/"))?;
    Ok(existed)
}

/// A resource and everything nested under it, as stored: what
/// [`take_tree`] removes and [`restore_tree`] puts back unchanged (keys,
/// documents and creation order), e.g. for a soft-deleted vault.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct StoredTree {
    /// (case-folded id, document, creation sequence)
    pub entries: Vec<(String, Value, Option<u64>)>,
}

/// Removes a resource and its nested resources, returning them as stored.
pub fn take_tree(tx: &mut WriteTx, resource_id: &str) -> Result<StoredTree, ArmError> {
    let k = id::key(resource_id);
    let mut entries = Vec::new();
    if let Some(doc) = tx.get_json::<Value>(RESOURCES, &k)? {
        entries.push((k.clone(), doc, order_of(tx, &k)?));
    }
    for (ck, doc) in tx.scan_json::<Value>(RESOURCES, &format!("{k}/"))? {
        let seq = order_of(tx, &ck)?;
        entries.push((ck, doc, seq));
    }
    delete_tree(tx, resource_id)?;
    Ok(StoredTree { entries })
}

/// Puts a [`take_tree`] back where it was.
pub fn restore_tree(tx: &mut WriteTx, tree: &StoredTree) -> Result<(), ArmError> {
    for (k, doc, seq) in &tree.entries {
        tx.put_json(RESOURCES, k, doc)?;
        if let Some(n) = seq {
            tx.put_json(CREATION_ORDER, k, n)?;
        }
    }
    Ok(())
}

/// Direct children `{parent}/{child_type_segments}/{name}` (no deeper
/// levels), in the order they were created.
pub fn list_children(
    r: &impl Reader,
    parent: &str,
    child_path: &str,
) -> Result<Vec<Value>, ArmError> {
    let prefix = format!("{}/{}/", id::key(parent), child_path.to_ascii_lowercase());
    let mut items: Vec<(u64, String, Value)> = Vec::new();
    for (k, v) in r.scan_json::<Value>(RESOURCES, &prefix)? {
        if k[prefix.len()..].contains('/') {
            continue;
        }
        // Resources written before the order was kept sort after, by name.
        let seq = order_of(r, &k)?.unwrap_or(u64::MAX);
        items.push((seq, k, v));
    }
    items.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    Ok(items.into_iter().map(|(_, _, v)| v).collect())
}

/// Every resource of `full_type` (e.g. `Microsoft.ManagedIdentity/userAssignedIdentities`)
/// under `scope` (a subscription or a resource group).
pub fn list_of_type(r: &impl Reader, scope: &str, full_type: &str) -> Result<Vec<Value>, ArmError> {
    let prefix = format!("{}/", id::key(scope));
    // Background loops list items of one type across everything each
    // second; a byte search for the type's last segment skips parsing the
    // documents of every other type (the exact check follows).
    let tail = full_type.rsplit('/').next().unwrap_or(full_type).as_bytes();
    let mut out = Vec::new();
    for (k, bytes) in r.scan_prefix(RESOURCES, &prefix)? {
        if !contains_ignore_case(&bytes, tail) {
            continue;
        }
        let v: Value = serde_json::from_slice(&bytes)
            .map_err(|e| ArmError::internal(format!("stored resource {k} is not JSON: {e}")))?;
        if v.get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| t.eq_ignore_ascii_case(full_type))
        {
            out.push(v);
        }
    }
    Ok(out)
}

/// The documents under `prefix` whose bytes mention one of `needles` (case
/// ignored), parsed: for views rebuilt often (DNS, gateway) that need only
/// a few types, so the rest are never parsed. Callers check the type.
pub fn scan_mentioning(
    r: &impl Reader,
    prefix: &str,
    needles: &[&str],
) -> Result<Vec<(String, Value)>, ArmError> {
    let mut out = Vec::new();
    for (k, bytes) in r.scan_prefix(RESOURCES, prefix)? {
        if !needles
            .iter()
            .any(|n| contains_ignore_case(&bytes, n.as_bytes()))
        {
            continue;
        }
        let v: Value = serde_json::from_slice(&bytes)
            .map_err(|e| ArmError::internal(format!("stored resource {k} is not JSON: {e}")))?;
        out.push((k, v));
    }
    Ok(out)
}

/// Whether `hay` holds `needle` as spelled or all lower-case: stored types
/// are written by the providers in Azure's spelling (a request's own
/// spelling never reaches the stored `type`), so this finds them without
/// lower-casing every document.
fn contains_ignore_case(hay: &[u8], needle: &[u8]) -> bool {
    if needle.is_empty() || memchr::memmem::find(hay, needle).is_some() {
        return true;
    }
    let lower = needle.to_ascii_lowercase();
    lower != needle && memchr::memmem::find(hay, &lower).is_some()
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
    fn listing_by_type_finds_every_spelling_and_only_that_type() {
        let dir = tempfile::tempdir().unwrap();
        let store = recoverite_store::Store::open(&dir.path().join("s.redb")).unwrap();
        store
            .write(|tx| {
                put(
                    tx,
                    "/subscriptions/s/resourceGroups/g/providers/N/things/a",
                    &json!({"type": "N/things"}),
                )?;
                put(
                    tx,
                    "/subscriptions/s/resourceGroups/g/providers/N/things/b",
                    &json!({"type": "n/things"}),
                )?;
                put(
                    tx,
                    "/subscriptions/s/resourceGroups/g/providers/N/others/c",
                    &json!({"type": "N/others", "note": "things"}),
                )?;
                Ok::<_, ArmError>(())
            })
            .unwrap();
        let found = store
            .view(|r| list_of_type(r, "/subscriptions/s", "N/things"))
            .unwrap();
        assert_eq!(found.len(), 2);
        assert!(contains_ignore_case(b"xxThingsxx", b"Things"));
        assert!(contains_ignore_case(b"xxthingsxx", b"Things"));
        assert!(!contains_ignore_case(b"thing", b"things"));
    }

    #[test]
    fn children_come_back_in_creation_order_until_a_parent_put_reorders_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = recoverite_store::Store::open(&dir.path().join("s.redb")).unwrap();
        let parent = "/subscriptions/s/resourceGroups/g/providers/N/vnets/v";
        let child = |n: &str| format!("{parent}/subnets/{n}");
        let names = |store: &recoverite_store::Store| -> Vec<String> {
            store
                .view(|r| list_children(r, parent, "subnets"))
                .unwrap()
                .iter()
                .map(|d| d["name"].as_str().unwrap().to_string())
                .collect()
        };
        store
            .write(|tx| {
                for n in ["vms", "pe", "app"] {
                    put(tx, &child(n), &json!({"name": n}))?;
                }
                // Rewriting a child keeps its place; a nested resource is not a child.
                put(tx, &child("vms"), &json!({"name": "vms", "v": 2}))?;
                put(
                    tx,
                    &format!("{}/x/y", child("pe")),
                    &json!({"name": "deep"}),
                )?;
                Ok::<_, ArmError>(())
            })
            .unwrap();
        assert_eq!(names(&store), ["vms", "pe", "app"]);
        store
            .write(|tx| keep_order(tx, &[child("app"), child("vms"), child("pe")]))
            .unwrap();
        assert_eq!(names(&store), ["app", "vms", "pe"]);
        // A deleted and re-created child goes last.
        store
            .write(|tx| {
                delete_tree(tx, &child("app"))?;
                put(tx, &child("app"), &json!({"name": "app"}))
            })
            .unwrap();
        assert_eq!(names(&store), ["vms", "pe", "app"]);
    }

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
