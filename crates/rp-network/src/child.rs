//! Named child resources of a network resource — a security group's rules,
//! a route table's routes — as typed stored documents (issue 9): given
//! inline in the parent's PUT or one by one, kept in the order given, and
//! shown exactly as stored.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use recoverite_arm::document::{self, Document};
use recoverite_arm::{paging, resource, ArmError, ArmRequest, Ctx, Reply};
use recoverite_store::{Reader, WriteTx};

use crate::common::{self, child_id, etag, names, not_found, parent_of, put_reply};

/// The properties of one kind of child, which name its type and where it
/// sits under its parent.
pub trait ChildKind: Serialize + DeserializeOwned {
    const TYPE: &'static str;
    const NOUN: &'static str;
    /// The path segment under the parent (`securityRules`, `routes`).
    const SEGMENT: &'static str;
    /// The parent's type.
    const PARENT_TYPE: &'static str;
}

/// A child document: Azure's sub-resource envelope around typed properties.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Child<P> {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub etag: String,
    pub properties: P,
}

impl<P: ChildKind> Document for Child<P> {
    const TYPE: &'static str = P::TYPE;
    const NOUN: &'static str = P::NOUN;
    fn id(&self) -> &str {
        &self.id
    }
}

impl<P: ChildKind> Child<P> {
    /// The child `name` of `parent` with `properties`, keeping the id's and
    /// name's spelling of the child it replaces; every write gets a new etag.
    pub fn new(parent: &str, name: &str, properties: P, existing: Option<Child<P>>) -> Self {
        let (id, name) = match existing {
            Some(e) => (e.id, e.name),
            None => (child_id(parent, P::SEGMENT, name), name.to_string()),
        };
        Child {
            id,
            name,
            kind: P::TYPE.to_string(),
            etag: etag(),
            properties,
        }
    }
}

/// The children of `parent`, in the order their PUTs gave them.
pub fn list<P: ChildKind>(r: &impl Reader, parent: &str) -> Result<Vec<Child<P>>, ArmError> {
    document::children(r, parent, P::SEGMENT)
}

/// A named child given inline in its parent's body (a security rule, a route).
#[derive(Deserialize)]
pub struct GivenChild {
    name: Option<String>,
    #[serde(default)]
    properties: Value,
}

/// The inline children's names and properties, each read by `read`.
pub fn named<P>(
    given: Option<Vec<GivenChild>>,
    read: impl Fn(&str, &Value) -> Result<P, ArmError>,
) -> Result<Vec<(String, P)>, ArmError>
where
    P: ChildKind,
{
    let mut out = Vec::new();
    for c in given.unwrap_or_default() {
        let n = c.name.ok_or_else(|| {
            ArmError::invalid_content(format!("every {} needs a 'name'", P::NOUN))
        })?;
        let p = read(&n, &c.properties)?;
        out.push((n, p));
    }
    Ok(out)
}

/// The parent's children become exactly `children`, in their order.
pub fn replace<P: ChildKind>(
    tx: &mut WriteTx,
    parent: &str,
    children: Vec<(String, P)>,
) -> Result<(), ArmError> {
    let mut old = list::<P>(tx, parent)?;
    for o in &old {
        if !children
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(&o.name))
        {
            resource::delete_tree(tx, &o.id)?;
        }
    }
    let mut order = Vec::new();
    for (n, p) in children {
        let existing = old
            .iter()
            .position(|o| o.name.eq_ignore_ascii_case(&n))
            .map(|i| old.swap_remove(i));
        let child = Child::new(parent, &n, p, existing);
        document::save(tx, &child)?;
        order.push(child.id);
    }
    resource::keep_order(tx, &order)
}

/// PUT of one child: `check` sees the parent's id and the children as they
/// will be (this one in place of any of its name) before anything is written.
pub fn put<P: ChildKind + Clone>(
    ctx: &Ctx,
    req: &ArmRequest,
    properties: P,
    check: impl FnOnce(&[(String, P)]) -> Result<(), ArmError>,
) -> Result<Reply, ArmError> {
    let n = common::name(req);
    ctx.store().write(|tx| {
        let parent = parent_of(tx, req, P::PARENT_TYPE)?;
        let pid = parent["id"].as_str().unwrap_or_default().to_string();
        let mut existing = None;
        let mut all = Vec::new();
        for c in list::<P>(tx, &pid)? {
            if c.name.eq_ignore_ascii_case(&n) {
                existing = Some(c);
            } else {
                all.push((c.name, c.properties));
            }
        }
        all.push((n.clone(), properties.clone()));
        check(&all)?;
        let created = existing.is_none();
        let child = Child::new(&pid, &n, properties, existing);
        document::save(tx, &child)?;
        let op = common::op(ctx, &child.id);
        op.save(tx)?;
        Ok(put_reply(
            ctx,
            req,
            created,
            document::to_value(&child)?,
            &op,
            parent["location"].as_str().unwrap_or_default(),
        ))
    })
}

/// GET of one child (404 naming the parent when it is not there).
pub fn get<P: ChildKind>(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    ctx.store().view(|r| {
        parent_of(r, req, P::PARENT_TYPE)?;
        match document::load::<Child<P>>(r, &req.path.id())? {
            Some(c) => Ok(Reply::ok(document::to_value(&c)?)),
            None => Err(not_found(req, P::TYPE)),
        }
    })
}

/// The parent's children, paged; `extra` adds what is shown but not stored
/// (a security group's default rules are listed by another path).
pub fn list_reply<P: ChildKind>(
    ctx: &Ctx,
    req: &ArmRequest,
    shown: impl FnOnce(&str, Vec<Child<P>>) -> Result<Vec<Value>, ArmError>,
) -> Result<Reply, ArmError> {
    let pid = req.path.parent_id();
    let items = ctx.store().view(|r| {
        if resource::get(r, &pid)?.is_none() {
            return Err(ArmError::resource_not_found(
                P::PARENT_TYPE,
                names(req).first().map(String::as_str).unwrap_or_default(),
                req.path.resource_group.as_deref(),
            ));
        }
        shown(&pid, list::<P>(r, &pid)?)
    })?;
    Ok(Reply::ok(paging::page(ctx, req, items)?))
}

/// The children as the API shows them.
pub fn values<P: ChildKind>(children: &[Child<P>]) -> Result<Vec<Value>, ArmError> {
    children.iter().map(document::to_value).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routetable::RouteProperties;

    fn route(prefix: &str) -> RouteProperties {
        RouteProperties {
            address_prefix: prefix.into(),
            next_hop_type: "Internet".into(),
            next_hop_ip_address: None,
            provisioning_state: "Succeeded".into(),
        }
    }

    #[test]
    fn replacing_children_keeps_the_order_given_and_drops_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let store = recoverite_store::Store::open(&dir.path().join("s.redb")).unwrap();
        let t = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/routeTables/t";
        let names = |v: Vec<Child<RouteProperties>>| -> Vec<String> {
            v.into_iter().map(|c| c.name).collect()
        };
        store
            .write(|tx| {
                replace(
                    tx,
                    t,
                    vec![
                        ("Zeta".into(), route("10.1.0.0/16")),
                        ("alpha".into(), route("10.2.0.0/16")),
                        ("mid".into(), route("10.3.0.0/16")),
                    ],
                )
            })
            .unwrap();
        let first = store.view(|r| list::<RouteProperties>(r, t)).unwrap();
        assert_eq!(names(first.clone()), ["Zeta", "alpha", "mid"]);
        // Replaced under another spelling: the stored name and id stay, the
        // properties and etag change, and a child not given goes.
        store
            .write(|tx| {
                replace(
                    tx,
                    t,
                    vec![
                        ("mid".into(), route("10.3.0.0/16")),
                        ("ZETA".into(), route("10.9.0.0/16")),
                    ],
                )
            })
            .unwrap();
        let second = store.view(|r| list::<RouteProperties>(r, t)).unwrap();
        assert_eq!(names(second.clone()), ["mid", "Zeta"]);
        assert_eq!(second[1].id, first[0].id);
        assert_eq!(second[1].properties.address_prefix, "10.9.0.0/16");
        assert_ne!(second[1].etag, first[0].etag);
    }
}
