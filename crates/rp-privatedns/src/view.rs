//! What the DNS server and private endpoints need from private DNS: which
//! zones a network is linked to, their records, and writing A records.

use std::net::Ipv4Addr;

use serde_json::{json, Value};

use recoverite_arm::{id, resource, ArmError, RESOURCES};
use recoverite_store::{Reader, WriteTx};

use crate::{records, LINK_TYPE, ZONE_TYPE};

/// Every (zone, link) pair linking `vnet_id`.
pub fn links_of_vnet(r: &impl Reader, vnet_id: &str) -> Result<Vec<(Value, Value)>, ArmError> {
    let vk = id::key(vnet_id);
    let mut out = Vec::new();
    for (_, link) in r.scan_json::<Value>(RESOURCES, "/subscriptions/")? {
        if !link["type"]
            .as_str()
            .is_some_and(|t| t.eq_ignore_ascii_case(LINK_TYPE))
        {
            continue;
        }
        if link["properties"]["virtualNetwork"]["id"]
            .as_str()
            .map(id::key)
            != Some(vk.clone())
        {
            continue;
        }
        let lid = link["id"].as_str().unwrap_or_default();
        let zid = &lid[..lid
            .to_ascii_lowercase()
            .rfind("/virtualnetworklinks/")
            .unwrap_or(0)];
        if let Some(zone) = resource::get(r, zid)? {
            out.push((zone, link));
        }
    }
    Ok(out)
}

/// The record set `rel` of type `rtype` in a zone.
pub fn record(
    r: &impl Reader,
    zone_id: &str,
    rtype: &str,
    rel: &str,
) -> Result<Option<Value>, ArmError> {
    resource::get(r, &records::record_id(zone_id, rtype, rel))
}

pub fn a_records(doc: &Value) -> Vec<Ipv4Addr> {
    doc["properties"]["aRecords"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r["ipv4Address"].as_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

pub fn zone(r: &impl Reader, zone_id: &str) -> Result<Option<Value>, ArmError> {
    Ok(resource::get(r, zone_id)?.filter(|z| {
        z["type"]
            .as_str()
            .is_some_and(|t| t.eq_ignore_ascii_case(ZONE_TYPE))
    }))
}

/// Creates or overwrites the A record set `rel` with `ips` (private endpoint
/// DNS integration: a later endpoint of the same target overwrites it).
pub fn set_a(
    tx: &mut WriteTx,
    zone_id: &str,
    rel: &str,
    ips: &[Ipv4Addr],
    ttl: u64,
) -> Result<(), ArmError> {
    let Some(zone) = zone(tx, zone_id)? else {
        return Err(ArmError::bad_request(
            "InvalidResourceReference",
            format!("Private DNS zone {zone_id} was not found."),
        ));
    };
    let existing = record(tx, zone_id, "A", rel)?;
    let recs: Vec<Value> = ips
        .iter()
        .map(|ip| json!({"ipv4Address": ip.to_string()}))
        .collect();
    let data = records::RecordData {
        ttl,
        metadata: json!({}),
        records: ("aRecords", Value::Array(recs)),
    };
    records::write(tx, &zone, "A", rel, data, existing.as_ref())?;
    Ok(())
}

pub fn delete_record(
    tx: &mut WriteTx,
    zone_id: &str,
    rtype: &str,
    rel: &str,
) -> Result<(), ArmError> {
    resource::delete_tree(tx, &records::record_id(zone_id, rtype, rel))?;
    Ok(())
}

pub fn exists(r: &impl Reader, zone_id: &str) -> Result<bool, ArmError> {
    Ok(r.get(RESOURCES, &id::key(zone_id))?.is_some())
}
