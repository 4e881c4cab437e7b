//! Record sets' API: `{zone}/{TYPE}/{relativeName}` (the typed document and
//! its rules are in [`crate::record_set`]).

use serde_json::{json, Value};

use recoverite_arm::{paging, resource, ArmError, ArmRequest, Ctx, Reply};
use recoverite_store::{Reader, WriteTx};

use crate::record_set::{self, fqdn, record_id, RecordSet, RecordSetProperties, SoaRecord};
use crate::{check_preconditions, new_etag, ZONE_TYPE};

fn canonical_type(t: &str) -> Option<&'static str> {
    crate::RECORD_TYPES
        .iter()
        .copied()
        .find(|x| x.eq_ignore_ascii_case(t))
}

/// Every new zone's SOA record set, at `@`.
pub fn create_soa(tx: &mut WriteTx, zone_id: &str, zone_name: &str) -> Result<(), ArmError> {
    let props = RecordSetProperties::given("SOA", fqdn("@", zone_name), &json!({}), None)?;
    debug_assert_eq!(props.soa_record, Some(SoaRecord::azure_default()));
    record_set::save(
        tx,
        &RecordSet {
            id: record_id(zone_id, "SOA", "@"),
            name: "@".into(),
            kind: format!("{ZONE_TYPE}/SOA"),
            etag: new_etag(),
            properties: props,
        },
    )
}

fn bad(msg: impl Into<String>) -> ArmError {
    ArmError::bad_request("BadRequest", msg)
}

/// The zone a request names: its id and name.
fn zone_of(r: &impl Reader, req: &ArmRequest) -> Result<(String, String), ArmError> {
    let zid = req.path.prefix(8);
    match crate::view::zone(r, &zid)? {
        Some(z) => Ok((z.id, z.name)),
        None => {
            let zn = req
                .path
                .provider
                .as_ref()
                .map(|p| p.names[0].clone())
                .unwrap_or_default();
            Err(ArmError::resource_not_found(
                ZONE_TYPE,
                &zn,
                req.path.resource_group.as_deref(),
            ))
        }
    }
}

fn parts(req: &ArmRequest) -> Result<(&'static str, String), ArmError> {
    let p = req.provider_part()?;
    let t = canonical_type(&p.types[1])
        .ok_or_else(|| bad(format!("Record type '{}' is not supported.", p.types[1])))?;
    Ok((t, p.names.get(1).cloned().unwrap_or_default()))
}

/// Writes a record set of `rtype` at `rel` with `properties`, keeping the
/// stored spelling of its id and name (the API and private endpoints' DNS
/// integration both write through here).
pub fn write(
    tx: &mut WriteTx,
    zone_id: &str,
    rtype: &str,
    rel: &str,
    properties: RecordSetProperties,
    existing: Option<RecordSet>,
) -> Result<RecordSet, ArmError> {
    let (id, name) = match existing {
        Some(e) => (e.id, e.name),
        None => (record_id(zone_id, rtype, rel), rel.to_string()),
    };
    let set = RecordSet {
        id,
        name,
        kind: format!("{ZONE_TYPE}/{rtype}"),
        etag: new_etag(),
        properties,
    };
    record_set::save(tx, &set)?;
    Ok(set)
}

pub fn put(ctx: &Ctx, req: &ArmRequest, patch: bool) -> Result<Reply, ArmError> {
    let (rtype, rel) = parts(req)?;
    if rel.is_empty() || rel.len() > 253 || rel.contains(' ') {
        return Err(bad(format!("The record set name '{rel}' is not valid.")));
    }
    let body = req.body.clone().unwrap_or(json!({}));
    if !body.is_object() {
        return Err(ArmError::invalid_content("the body must be a JSON object"));
    }
    let props = body.get("properties").cloned().unwrap_or(json!({}));
    ctx.store().write(|tx| {
        let (zid, zname) = zone_of(tx, req)?;
        let existing = record_set::load(tx, &record_id(&zid, rtype, &rel))?;
        check_preconditions(req, existing.as_ref().map(|e| e.etag.as_str()))?;
        if rtype == "SOA" && (rel != "@" || existing.is_none()) {
            return Err(bad(
                "The SOA record set exists only at '@' and can only be updated.",
            ));
        }
        if patch && existing.is_none() {
            return Err(ArmError::resource_not_found(
                &format!("{ZONE_TYPE}/{rtype}"),
                &rel,
                req.path.resource_group.as_deref(),
            ));
        }
        let at_name: Vec<String> = record_set::all(tx, &zid)?
            .iter()
            .filter(|s| s.name.eq_ignore_ascii_case(&rel))
            .map(|s| s.record_type().to_string())
            .collect();
        record_set::check_cname_exclusive(rtype, &rel, &at_name)?;
        // SOA updates and PATCHes start from what is stored.
        let base = existing
            .as_ref()
            .filter(|_| patch || rtype == "SOA")
            .map(|e| &e.properties);
        let properties = RecordSetProperties::given(rtype, fqdn(&rel, &zname), &props, base)?;
        let created = existing.is_none();
        let set = write(tx, &zid, rtype, &rel, properties, existing)?;
        let doc = record_set::to_value(&set)?;
        Ok(if created {
            Reply::created(doc)
        } else {
            Reply::ok(doc)
        })
    })
}

pub fn get(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let (rtype, rel) = parts(req)?;
    ctx.store().view(|r| {
        let (zid, _) = zone_of(r, req)?;
        match record_set::load(r, &record_id(&zid, rtype, &rel))? {
            Some(s) => Ok(Reply::ok(record_set::to_value(&s)?)),
            None => Err(ArmError::resource_not_found(
                &format!("{ZONE_TYPE}/{rtype}"),
                &rel,
                req.path.resource_group.as_deref(),
            )),
        }
    })
}

pub fn delete(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let (rtype, rel) = parts(req)?;
    if rtype == "SOA" {
        return Err(bad("The SOA record set cannot be deleted."));
    }
    ctx.store().write(|tx| {
        let (zid, _) = zone_of(tx, req)?;
        let rid = record_id(&zid, rtype, &rel);
        let existing = record_set::load(tx, &rid)?;
        check_preconditions(req, existing.as_ref().map(|e| e.etag.as_str()))?;
        if existing.is_none() {
            return Ok(Reply::empty(204));
        }
        resource::delete_tree(tx, &rid)?;
        Ok(Reply::empty(200))
    })
}

pub fn list(ctx: &Ctx, req: &ArmRequest, rtype: Option<&str>) -> Result<Reply, ArmError> {
    let want = match rtype {
        Some(t) => Some(
            canonical_type(t).ok_or_else(|| bad(format!("Record type '{t}' is not supported.")))?,
        ),
        None => None,
    };
    let suffix = req
        .query_get("$recordsetnamesuffix")
        .map(str::to_ascii_lowercase);
    let sets = ctx.store().view(|r| {
        let (zid, _) = zone_of(r, req)?;
        record_set::all(r, &zid)
    })?;
    let items: Vec<Value> = sets
        .iter()
        .filter(|s| want.is_none_or(|t| s.record_type().eq_ignore_ascii_case(t)))
        .filter(|s| {
            suffix
                .as_ref()
                .is_none_or(|x| s.name.to_ascii_lowercase().ends_with(x.as_str()))
        })
        .map(record_set::to_value)
        .collect::<Result<_, _>>()?;
    Ok(Reply::ok(paging::page(ctx, req, items)?))
}
