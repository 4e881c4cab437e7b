//! Typed stored documents (issue 9, point 2), for the kinds that keep their
//! own flows rather than the tracked-resource core: a kind names its ARM
//! type and noun once, and gets typed load, list and save. A stored
//! document that does not fit its struct is an error naming it, never a
//! struct of silently empty fields.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use recoverite_store::{Reader, WriteTx};

use crate::error::ArmError;
use crate::resource;

/// A kind of stored document.
pub trait Document: Serialize + DeserializeOwned {
    /// The type its stored documents carry (compared case-insensitively).
    const TYPE: &'static str;
    /// What a user calls one ("virtual machine"), in errors.
    const NOUN: &'static str;
    /// Where it is stored.
    fn id(&self) -> &str;
}

/// Declares a struct with an `id` field a [`Document`] of an ARM type:
/// `impl_document!(VirtualMachine, VM_TYPE, "virtual machine");`
#[macro_export]
macro_rules! impl_document {
    ($t:ty, $type:expr, $noun:expr) => {
        impl $crate::document::Document for $t {
            const TYPE: &'static str = $type;
            const NOUN: &'static str = $noun;
            fn id(&self) -> &str {
                &self.id
            }
        }
    };
}

/// The JSON of a document, as stored and as the API shows it.
pub fn to_value<T: Serialize>(t: &T) -> Result<Value, ArmError> {
    serde_json::to_value(t).map_err(|e| ArmError::internal(e.to_string()))
}

/// Reads a stored document of kind `T`.
pub fn read<T: Document>(doc: Value) -> Result<T, ArmError> {
    let rid = doc["id"].as_str().unwrap_or_default().to_string();
    serde_json::from_value(doc).map_err(|e| {
        ArmError::internal(format!("stored {} {rid} does not read back: {e}", T::NOUN))
    })
}

fn is<T: Document>(doc: &Value) -> bool {
    doc["type"]
        .as_str()
        .is_some_and(|t| t.eq_ignore_ascii_case(T::TYPE))
}

/// The document at `id`, if it is of kind `T`.
pub fn load<T: Document>(r: &impl Reader, id: &str) -> Result<Option<T>, ArmError> {
    resource::get(r, id)?.filter(is::<T>).map(read).transpose()
}

/// Every document of kind `T` in `scope` ("" for all).
pub fn list<T: Document>(r: &impl Reader, scope: &str) -> Result<Vec<T>, ArmError> {
    resource::list_of_type(r, scope, T::TYPE)?
        .into_iter()
        .map(read)
        .collect()
}

/// The children of `parent` under `segment` (e.g. `subnets`), in the order
/// their parent's PUT gave them.
pub fn children<T: Document>(
    r: &impl Reader,
    parent: &str,
    segment: &str,
) -> Result<Vec<T>, ArmError> {
    resource::list_children(r, parent, segment)?
        .into_iter()
        .map(read)
        .collect()
}

/// Writes the document at its id.
pub fn save<T: Document>(tx: &mut WriteTx, t: &T) -> Result<(), ArmError> {
    resource::put(tx, t.id(), &to_value(t)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Thing {
        id: String,
        #[serde(rename = "type")]
        kind: String,
        size: u32,
    }

    impl Document for Thing {
        const TYPE: &'static str = "Test/things";
        const NOUN: &'static str = "thing";
        fn id(&self) -> &str {
            &self.id
        }
    }

    #[test]
    fn documents_load_only_as_their_kind_and_fail_loudly_when_malformed() {
        let dir = tempfile::tempdir().unwrap();
        let store = recoverite_store::Store::open(&dir.path().join("s.redb")).unwrap();
        let t = Thing {
            id: "/subscriptions/s/resourceGroups/g/providers/Test/things/a".into(),
            kind: "Test/things".into(),
            size: 3,
        };
        store.write(|tx| save(tx, &t)).unwrap();
        assert_eq!(store.view(|r| load::<Thing>(r, &t.id)).unwrap(), Some(t));
        let other = "/subscriptions/s/resourceGroups/g/providers/Test/others/b";
        let bad = "/subscriptions/s/resourceGroups/g/providers/Test/things/c";
        store
            .write(|tx| {
                resource::put(
                    tx,
                    other,
                    &serde_json::json!({"id": other, "type": "Test/others"}),
                )?;
                resource::put(
                    tx,
                    bad,
                    &serde_json::json!({"id": bad, "type": "Test/things", "size": "big"}),
                )
            })
            .unwrap();
        assert_eq!(store.view(|r| load::<Thing>(r, other)).unwrap(), None);
        let e = store.view(|r| load::<Thing>(r, bad)).unwrap_err();
        assert!(e.body.message.contains("stored thing"));
    }
}
