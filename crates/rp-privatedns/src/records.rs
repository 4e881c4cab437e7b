//! Record sets: `{zone}/{TYPE}/{relativeName}`.

use std::net::{Ipv4Addr, Ipv6Addr};

use serde_json::{json, Map, Value};

use recoverite_arm::{id, paging, resource, ArmError, ArmRequest, Ctx, Reply};
use recoverite_store::{Reader, WriteTx};

use crate::{check_preconditions, new_etag, ZONE_TYPE};

pub const DEFAULT_TTL: u64 = 3600;

fn canonical_type(t: &str) -> Option<&'static str> {
    crate::RECORD_TYPES
        .iter()
        .copied()
        .find(|x| x.eq_ignore_ascii_case(t))
}

pub fn record_id(zone_id: &str, rtype: &str, rel: &str) -> String {
    format!("{zone_id}/{rtype}/{rel}")
}

/// Every record set of a zone (any type).
pub fn all(r: &impl Reader, zone_id: &str) -> Result<Vec<Value>, ArmError> {
    let prefix = format!("{}/", id::key(zone_id));
    Ok(r.scan_json::<Value>(recoverite_arm::RESOURCES, &prefix)?
        .into_iter()
        .filter(|(k, _)| !k[prefix.len()..].starts_with("virtualnetworklinks/"))
        .map(|(_, v)| v)
        .collect())
}

fn fqdn(rel: &str, zone: &str) -> String {
    if rel == "@" {
        format!("{zone}.")
    } else {
        format!("{rel}.{zone}.")
    }
}

pub fn create_soa(tx: &mut WriteTx, zone_id: &str, zone_name: &str) -> Result<(), ArmError> {
    let rid = record_id(zone_id, "SOA", "@");
    let doc = json!({
        "id": rid, "name": "@", "type": format!("{ZONE_TYPE}/SOA"), "etag": new_etag(),
        "properties": {
            "ttl": 3600, "fqdn": fqdn("@", zone_name), "isAutoRegistered": false, "metadata": {},
            "soaRecord": {"host": "azureprivatedns.net", "email": "azureprivatedns-host.microsoft.com",
                          "serialNumber": 1, "refreshTime": 3600, "retryTime": 300, "expireTime": 2419200, "minimumTtl": 10}
        }
    });
    resource::put(tx, &rid, &doc)
}

fn bad(msg: impl Into<String>) -> ArmError {
    ArmError::bad_request("BadRequest", msg)
}

/// Validates the records of one type and returns the property to store.
fn records_of(rtype: &str, p: &Value) -> Result<(&'static str, Value), ArmError> {
    let list = |field: &str| p[field].as_array().cloned().unwrap_or_default();
    Ok(match rtype {
        "A" => {
            let recs = list("aRecords");
            for r in &recs {
                r["ipv4Address"]
                    .as_str()
                    .and_then(|s| s.parse::<Ipv4Addr>().ok())
                    .ok_or_else(|| bad("Every aRecords entry needs a valid ipv4Address."))?;
            }
            ("aRecords", Value::Array(recs))
        }
        "AAAA" => {
            let recs = list("aaaaRecords");
            for r in &recs {
                r["ipv6Address"]
                    .as_str()
                    .and_then(|s| s.parse::<Ipv6Addr>().ok())
                    .ok_or_else(|| bad("Every aaaaRecords entry needs a valid ipv6Address."))?;
            }
            ("aaaaRecords", Value::Array(recs))
        }
        "CNAME" => {
            let c = p["cnameRecord"]["cname"]
                .as_str()
                .filter(|s| !s.is_empty())
                .ok_or_else(|| bad("A CNAME record set needs cnameRecord.cname."))?;
            ("cnameRecord", json!({"cname": c}))
        }
        "TXT" => {
            let recs = list("txtRecords");
            for r in &recs {
                if !r["value"]
                    .as_array()
                    .is_some_and(|v| v.iter().all(Value::is_string))
                {
                    return Err(bad(
                        "Every txtRecords entry needs a 'value' list of strings.",
                    ));
                }
            }
            ("txtRecords", Value::Array(recs))
        }
        "MX" => {
            let recs = list("mxRecords");
            for r in &recs {
                if r["preference"].as_u64().is_none() || r["exchange"].as_str().is_none() {
                    return Err(bad("Every mxRecords entry needs preference and exchange."));
                }
            }
            ("mxRecords", Value::Array(recs))
        }
        "PTR" => {
            let recs = list("ptrRecords");
            if recs.iter().any(|r| r["ptrdname"].as_str().is_none()) {
                return Err(bad("Every ptrRecords entry needs ptrdname."));
            }
            ("ptrRecords", Value::Array(recs))
        }
        "SRV" => {
            let recs = list("srvRecords");
            for r in &recs {
                if ["priority", "weight", "port"]
                    .iter()
                    .any(|f| r[*f].as_u64().is_none())
                    || r["target"].as_str().is_none()
                {
                    return Err(bad(
                        "Every srvRecords entry needs priority, weight, port and target.",
                    ));
                }
            }
            ("srvRecords", Value::Array(recs))
        }
        _ => ("soaRecord", p["soaRecord"].clone()),
    })
}

fn zone_of(r: &impl Reader, req: &ArmRequest) -> Result<Value, ArmError> {
    let zid = req.path.prefix(8);
    resource::get(r, &zid)?.ok_or_else(|| {
        let zn = req
            .path
            .provider
            .as_ref()
            .map(|p| p.names[0].clone())
            .unwrap_or_default();
        ArmError::resource_not_found(ZONE_TYPE, &zn, req.path.resource_group.as_deref())
    })
}

fn parts(req: &ArmRequest) -> Result<(&'static str, String), ArmError> {
    let p = req.provider_part()?;
    let t = canonical_type(&p.types[1])
        .ok_or_else(|| bad(format!("Record type '{}' is not supported.", p.types[1])))?;
    Ok((t, p.names.get(1).cloned().unwrap_or_default()))
}

/// The content of a record set: its TTL, metadata and the records themselves
/// (property name and value, e.g. `("aRecords", [...])`).
pub struct RecordData<'a> {
    pub ttl: u64,
    pub metadata: Value,
    pub records: (&'a str, Value),
}

/// Writes a record set (shared by the API and private endpoint DNS integration).
pub fn write(
    tx: &mut WriteTx,
    zone: &Value,
    rtype: &'static str,
    rel: &str,
    data: RecordData,
    existing: Option<&Value>,
) -> Result<Value, ArmError> {
    let RecordData {
        ttl,
        metadata,
        records,
    } = data;
    let zid = zone["id"].as_str().unwrap_or_default();
    let zname = zone["name"].as_str().unwrap_or_default();
    let rid = record_id(zid, rtype, rel);
    let mut props = Map::new();
    props.insert("ttl".into(), json!(ttl));
    props.insert("fqdn".into(), json!(fqdn(rel, zname)));
    props.insert("isAutoRegistered".into(), json!(false));
    props.insert("metadata".into(), metadata);
    props.insert(records.0.into(), records.1);
    let doc = json!({
        "id": existing.and_then(|e| e["id"].as_str().map(str::to_string)).unwrap_or(rid.clone()),
        "name": existing.and_then(|e| e["name"].as_str()).unwrap_or(rel),
        "type": format!("{ZONE_TYPE}/{rtype}"),
        "etag": new_etag(),
        "properties": props,
    });
    resource::put(tx, &rid, &doc)?;
    Ok(doc)
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
        let zone = zone_of(tx, req)?;
        let zid = zone["id"].as_str().unwrap_or_default().to_string();
        let rid = record_id(&zid, rtype, &rel);
        let existing = resource::get(tx, &rid)?;
        check_preconditions(req, existing.as_ref().and_then(|e| e["etag"].as_str()))?;
        if rtype == "SOA" && (rel != "@" || existing.is_none()) {
            return Err(bad("The SOA record set exists only at '@' and can only be updated."));
        }
        if patch && existing.is_none() {
            return Err(ArmError::resource_not_found(&format!("{ZONE_TYPE}/{rtype}"), &rel, req.path.resource_group.as_deref()));
        }
        // CNAME owns its name: no other records beside it, and none at the apex.
        let siblings: Vec<Value> = all(tx, &zid)?
            .into_iter()
            .filter(|d| d["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(&rel)))
            .filter(|d| !d["type"].as_str().is_some_and(|t| t.eq_ignore_ascii_case(&format!("{ZONE_TYPE}/{rtype}"))))
            .collect();
        if rtype == "CNAME" && (rel == "@" || !siblings.is_empty()) {
            return Err(ArmError::conflict(
                "Conflict",
                format!("A CNAME record set '{rel}' cannot coexist with other record sets of the same name or sit at the zone apex."),
            ));
        }
        if rtype != "CNAME" && siblings.iter().any(|d| d["type"].as_str().is_some_and(|t| t.ends_with("/CNAME"))) {
            return Err(ArmError::conflict(
                "Conflict",
                format!("The name '{rel}' already has a CNAME record set; no other record set can share its name."),
            ));
        }
        let base = if patch { existing.as_ref().map(|e| e["properties"].clone()).unwrap_or(json!({})) } else { json!({}) };
        let merged = {
            let mut m = base;
            if let (Some(mo), Some(po)) = (m.as_object_mut(), props.as_object()) {
                for (k, v) in po {
                    mo.insert(k.clone(), v.clone());
                }
            }
            m
        };
        let ttl = merged["ttl"].as_u64().unwrap_or(DEFAULT_TTL);
        if ttl > 2_147_483_647 {
            return Err(bad("ttl must be at most 2147483647 seconds."));
        }
        let records = records_of(rtype, &merged)?;
        let metadata = merged.get("metadata").cloned().filter(Value::is_object).unwrap_or(json!({}));
        let doc = write(tx, &zone, rtype, &rel, RecordData { ttl, metadata, records }, existing.as_ref())?;
        Ok(if existing.is_some() || patch { Reply::ok(doc) } else { Reply::created(doc) })
    })
}

pub fn get(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let (rtype, rel) = parts(req)?;
    ctx.store().view(|r| {
        let zone = zone_of(r, req)?;
        let rid = record_id(zone["id"].as_str().unwrap_or_default(), rtype, &rel);
        resource::get(r, &rid)?.map(Reply::ok).ok_or_else(|| {
            ArmError::resource_not_found(
                &format!("{ZONE_TYPE}/{rtype}"),
                &rel,
                req.path.resource_group.as_deref(),
            )
        })
    })
}

pub fn delete(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let (rtype, rel) = parts(req)?;
    if rtype == "SOA" {
        return Err(bad("The SOA record set cannot be deleted."));
    }
    ctx.store().write(|tx| {
        let zone = zone_of(tx, req)?;
        let rid = record_id(zone["id"].as_str().unwrap_or_default(), rtype, &rel);
        let existing = resource::get(tx, &rid)?;
        check_preconditions(req, existing.as_ref().and_then(|e| e["etag"].as_str()))?;
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
    let items = ctx.store().view(|r| {
        let zone = zone_of(r, req)?;
        all(r, zone["id"].as_str().unwrap_or_default())
    })?;
    let items: Vec<Value> = items
        .into_iter()
        .filter(|d| {
            want.is_none_or(|t| {
                d["type"]
                    .as_str()
                    .is_some_and(|x| x.eq_ignore_ascii_case(&format!("{ZONE_TYPE}/{t}")))
            })
        })
        .filter(|d| {
            suffix.as_ref().is_none_or(|s| {
                d["name"]
                    .as_str()
                    .is_some_and(|n| n.to_ascii_lowercase().ends_with(s.as_str()))
            })
        })
        .collect();
    Ok(Reply::ok(paging::page(ctx, req, items)?))
}
