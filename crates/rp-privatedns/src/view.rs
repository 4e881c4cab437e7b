//! What the DNS server and private endpoints need from private DNS: which
//! zones a network is linked to, their records, and writing A records.
//! Other crates read zones through these typed views, never the documents.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use serde_json::json;

use recoverite_arm::tracked::Tracked;
use recoverite_arm::{id, resource, ArmError, RESOURCES};
use recoverite_store::{Reader, WriteTx};

use crate::record_set::{self, RecordSet, RecordSetProperties};
use crate::zones::{LinkProperties, ZoneProperties};
use crate::{records, LINK_TYPE, ZONE_TYPE};

/// The record types the DNS server answers from private zones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RType {
    A,
    Aaaa,
    Cname,
    Txt,
}

impl RType {
    /// The record set type as it ends a record set's ARM type.
    fn of(arm_type: &str) -> Option<RType> {
        Some(match arm_type.rsplit('/').next()? {
            "A" => RType::A,
            "AAAA" => RType::Aaaa,
            "CNAME" => RType::Cname,
            "TXT" => RType::Txt,
            _ => return None,
        })
    }
}

/// A record set's content, as the DNS server answers it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rec {
    pub ttl: u32,
    pub a: Vec<Ipv4Addr>,
    pub aaaa: Vec<Ipv6Addr>,
    /// Lower case, no trailing dot.
    pub cname: Option<String>,
    pub txt: Vec<Vec<String>>,
}

/// A linked network of a zone.
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneLink {
    /// The network's case-folded id.
    pub vnet_key: String,
    /// `resolutionPolicy: NxDomainRedirect`: names missing from the zone
    /// fall through to public DNS.
    pub nx_redirect: bool,
}

/// A private DNS zone as name resolution needs it.
#[derive(Debug, Default)]
pub struct ZoneView {
    /// Lower case, no trailing dot.
    pub name: String,
    pub id: String,
    /// By (relative name, type).
    pub records: HashMap<(String, RType), Rec>,
    pub links: Vec<ZoneLink>,
}

impl From<&RecordSetProperties> for Rec {
    fn from(p: &RecordSetProperties) -> Rec {
        Rec {
            ttl: p.ttl.min(u32::MAX as u64) as u32,
            a: p.a_records
                .iter()
                .flatten()
                .map(|r| r.ipv4_address)
                .collect(),
            aaaa: p
                .aaaa_records
                .iter()
                .flatten()
                .map(|r| r.ipv6_address)
                .collect(),
            cname: p
                .cname_record
                .as_ref()
                .map(|c| c.cname.trim_end_matches('.').to_ascii_lowercase()),
            txt: p
                .txt_records
                .iter()
                .flatten()
                .map(|t| t.value.clone())
                .collect(),
        }
    }
}

fn malformed(k: &str, e: serde_json::Error) -> ArmError {
    ArmError::internal(format!("stored private DNS document {k} is malformed: {e}"))
}

/// Every private DNS zone with its A, AAAA, CNAME and TXT records and the
/// networks linked to it, read in one pass.
pub fn zones_for_resolution(r: &impl Reader) -> Result<Vec<ZoneView>, ArmError> {
    let mut zones: HashMap<String, ZoneView> = HashMap::new();
    let mut links = Vec::new();
    let mut sets = Vec::new();
    for (k, doc) in resource::scan_mentioning(r, "/subscriptions/", &["privateDnsZones"])? {
        let t = doc["type"]
            .as_str()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if t == ZONE_TYPE.to_ascii_lowercase() {
            let z: Tracked<ZoneProperties> =
                serde_json::from_value(doc).map_err(|e| malformed(&k, e))?;
            zones.insert(
                k,
                ZoneView {
                    name: z.name.trim_end_matches('.').to_ascii_lowercase(),
                    id: z.id,
                    ..Default::default()
                },
            );
        } else if t == LINK_TYPE.to_ascii_lowercase() {
            let l: Tracked<LinkProperties> =
                serde_json::from_value(doc).map_err(|e| malformed(&k, e))?;
            links.push((k, l));
        } else if let Some(rt) = t
            .starts_with(&format!("{}/", ZONE_TYPE.to_ascii_lowercase()))
            .then(|| doc["type"].as_str().and_then(RType::of))
            .flatten()
        {
            let d: RecordSet = serde_json::from_value(doc).map_err(|e| malformed(&k, e))?;
            sets.push((k, rt, d.properties));
        }
    }
    for (k, rt, props) in sets {
        // `{zone}/{type}/{rel}`
        let mut parts = k.rsplitn(3, '/');
        let rel = parts.next().unwrap_or_default().to_string();
        let _type = parts.next();
        if let Some(z) = zones.get_mut(parts.next().unwrap_or_default()) {
            z.records.insert((rel, rt), Rec::from(&props));
        }
    }
    for (k, l) in links {
        let zone_key = &k[..k.rfind("/virtualnetworklinks/").unwrap_or(0)];
        if let Some(z) = zones.get_mut(zone_key) {
            z.links.push(ZoneLink {
                vnet_key: id::key(&l.properties.virtual_network.id),
                nx_redirect: l.properties.resolution_policy == "NxDomainRedirect",
            });
        }
    }
    Ok(zones.into_values().collect())
}

/// A zone and one of its links.
pub type ZoneAndLink = (Tracked<ZoneProperties>, Tracked<LinkProperties>);

/// Every (zone, link) pair linking `vnet_id`.
pub fn links_of_vnet(r: &impl Reader, vnet_id: &str) -> Result<Vec<ZoneAndLink>, ArmError> {
    let vk = id::key(vnet_id);
    let mut out = Vec::new();
    for link in resource::list_of_type(r, "", LINK_TYPE)? {
        let k = link["id"].as_str().unwrap_or_default().to_string();
        let link: Tracked<LinkProperties> =
            serde_json::from_value(link).map_err(|e| malformed(&k, e))?;
        if id::key(&link.properties.virtual_network.id) != vk {
            continue;
        }
        let zid = &link.id[..link
            .id
            .to_ascii_lowercase()
            .rfind("/virtualnetworklinks/")
            .unwrap_or(0)];
        if let Some(zone) = zone(r, zid)? {
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
) -> Result<Option<RecordSet>, ArmError> {
    record_set::load(r, &record_set::record_id(zone_id, rtype, rel))
}

/// The private DNS zone at `zone_id`, if there is one.
pub fn zone(r: &impl Reader, zone_id: &str) -> Result<Option<Tracked<ZoneProperties>>, ArmError> {
    match resource::get(r, zone_id)? {
        Some(z)
            if z["type"]
                .as_str()
                .is_some_and(|t| t.eq_ignore_ascii_case(ZONE_TYPE)) =>
        {
            serde_json::from_value(z)
                .map(Some)
                .map_err(|e| malformed(zone_id, e))
        }
        _ => Ok(None),
    }
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
    let body = json!({"ttl": ttl, "aRecords": ips.iter().map(|ip| json!({"ipv4Address": ip.to_string()})).collect::<Vec<_>>()});
    let props = RecordSetProperties::given("A", record_set::fqdn(rel, &zone.name), &body, None)?;
    records::write(tx, zone_id, "A", rel, props, existing)?;
    Ok(())
}

pub fn delete_record(
    tx: &mut WriteTx,
    zone_id: &str,
    rtype: &str,
    rel: &str,
) -> Result<(), ArmError> {
    resource::delete_tree(tx, &record_set::record_id(zone_id, rtype, rel))?;
    Ok(())
}

pub fn exists(r: &impl Reader, zone_id: &str) -> Result<bool, ArmError> {
    Ok(r.get(RESOURCES, &id::key(zone_id))?.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_sets_read_as_the_dns_server_answers_them() {
        let p: RecordSetProperties = serde_json::from_value(json!({
            "ttl": 10, "fqdn": "x.zone.", "isAutoRegistered": false, "metadata": {},
            "aRecords": [{"ipv4Address": "10.0.0.4"}],
            "cnameRecord": {"cname": "Target.Example."},
            "txtRecords": [{"value": ["a", "b"]}]
        }))
        .unwrap();
        let rec = Rec::from(&p);
        assert_eq!(rec.ttl, 10);
        assert_eq!(rec.a, vec![Ipv4Addr::new(10, 0, 0, 4)]);
        assert_eq!(rec.cname.as_deref(), Some("target.example"));
        assert_eq!(rec.txt, vec![vec!["a".to_string(), "b".to_string()]]);
        assert!(rec.aaaa.is_empty());
        assert_eq!(
            RType::of("Microsoft.Network/privateDnsZones/AAAA"),
            Some(RType::Aaaa)
        );
        assert_eq!(RType::of("Microsoft.Network/privateDnsZones/SOA"), None);
    }
}
