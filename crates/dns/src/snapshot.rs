//! Everything name resolution needs, read once per store generation: which
//! alias sits in which network, which zones each network is linked to and
//! their records, and the public resources names can point at.

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use serde_json::Value;

use recoverite_arm::{id, ArmError};
use recoverite_rp_network::aliases;
use recoverite_store::Store;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RType {
    A,
    Aaaa,
    Cname,
    Txt,
}

#[derive(Debug, Clone, Default)]
pub struct Rec {
    pub ttl: u32,
    pub a: Vec<Ipv4Addr>,
    pub aaaa: Vec<Ipv6Addr>,
    pub cname: Option<String>,
    pub txt: Vec<Vec<String>>,
}

#[derive(Debug, Default)]
pub struct Zone {
    /// Lower case, no trailing dot.
    pub name: String,
    pub id: String,
    pub records: HashMap<(String, RType), Rec>,
}

#[derive(Debug, Clone)]
pub struct LinkedZone {
    pub zone: Arc<Zone>,
    /// `NxDomainRedirect`: names missing from the zone fall through to public DNS.
    pub nx_redirect: bool,
}

#[derive(Debug, Default)]
pub struct Snapshot {
    pub generation: u64,
    /// Loopback alias → the virtual network (case-folded id) it sits in.
    pub alias_vnet: HashMap<Ipv4Addr, String>,
    pub vnet_zones: HashMap<String, Vec<LinkedZone>>,
    /// Case-folded id → original spelling, for every network.
    pub vnets: HashMap<String, String>,
    /// Storage account name → region.
    pub storage_accounts: HashMap<String, String>,
    /// Names of built-in test targets.
    pub test_targets: HashSet<String>,
}

fn rtype_of(t: &str) -> Option<RType> {
    Some(match t.rsplit('/').next()? {
        "A" => RType::A,
        "AAAA" => RType::Aaaa,
        "CNAME" => RType::Cname,
        "TXT" => RType::Txt,
        _ => return None,
    })
}

fn rec_of(doc: &Value) -> Rec {
    let p = &doc["properties"];
    let list = |f: &str| p[f].as_array().cloned().unwrap_or_default();
    Rec {
        ttl: p["ttl"].as_u64().unwrap_or(3600).min(u32::MAX as u64) as u32,
        a: list("aRecords")
            .iter()
            .filter_map(|r| r["ipv4Address"].as_str()?.parse().ok())
            .collect(),
        aaaa: list("aaaaRecords")
            .iter()
            .filter_map(|r| r["ipv6Address"].as_str()?.parse().ok())
            .collect(),
        cname: p["cnameRecord"]["cname"]
            .as_str()
            .map(|s| s.trim_end_matches('.').to_ascii_lowercase()),
        txt: list("txtRecords")
            .iter()
            .map(|r| {
                r["value"]
                    .as_array()
                    .map(|v| {
                        v.iter()
                            .filter_map(|s| s.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .collect(),
    }
}

pub fn build(store: &Store) -> Result<Snapshot, ArmError> {
    let generation = store.generation();
    store.view(|r| {
        let mut snap = Snapshot {
            generation,
            ..Default::default()
        };
        let mut zones: HashMap<String, Zone> = HashMap::new();
        let mut links = Vec::new();
        let mut records = Vec::new();
        // Only networks, private DNS zones (links and records too) and
        // storage accounts (and test targets) matter here; others are not parsed.
        let wanted = [
            "virtualNetworks",
            "privateDnsZones",
            "storageAccounts",
            "privateLinkTargets",
        ];
        for (k, doc) in recoverite_arm::resource::scan_mentioning(r, "/subscriptions/", &wanted)? {
            let t = doc["type"].as_str().unwrap_or_default();
            let tl = t.to_ascii_lowercase();
            match tl.as_str() {
                "microsoft.network/virtualnetworks" => {
                    snap.vnets.insert(
                        k.clone(),
                        doc["id"].as_str().unwrap_or_default().to_string(),
                    );
                }
                "microsoft.network/privatednszones" => {
                    zones.insert(
                        k.clone(),
                        Zone {
                            name: doc["name"]
                                .as_str()
                                .unwrap_or_default()
                                .trim_end_matches('.')
                                .to_ascii_lowercase(),
                            id: doc["id"].as_str().unwrap_or_default().to_string(),
                            records: HashMap::new(),
                        },
                    );
                }
                "microsoft.network/privatednszones/virtualnetworklinks" => {
                    links.push((k.clone(), doc))
                }
                "microsoft.storage/storageaccounts" => {
                    snap.storage_accounts.insert(
                        doc["name"]
                            .as_str()
                            .unwrap_or_default()
                            .to_ascii_lowercase(),
                        doc["location"].as_str().unwrap_or_default().to_string(),
                    );
                }
                "recoverite.test/privatelinktargets" => {
                    snap.test_targets.insert(
                        doc["name"]
                            .as_str()
                            .unwrap_or_default()
                            .to_ascii_lowercase(),
                    );
                }
                _ if tl.starts_with("microsoft.network/privatednszones/") => {
                    if let Some(rt) = rtype_of(t) {
                        records.push((k.clone(), rt, doc));
                    }
                }
                _ => {}
            }
        }
        for (k, rt, doc) in records {
            // `{zone}/{type}/{rel}`
            let mut parts = k.rsplitn(3, '/');
            let rel = parts.next().unwrap_or_default().to_string();
            let _type = parts.next();
            let zone_key = parts.next().unwrap_or_default();
            if let Some(z) = zones.get_mut(zone_key) {
                z.records.insert((rel, rt), rec_of(&doc));
            }
        }
        let zones: HashMap<String, Arc<Zone>> =
            zones.into_iter().map(|(k, z)| (k, Arc::new(z))).collect();
        for (k, link) in links {
            let zone_key = &k[..k.rfind("/virtualnetworklinks/").unwrap_or(0)];
            let Some(zone) = zones.get(zone_key) else {
                continue;
            };
            let Some(vnet) = link["properties"]["virtualNetwork"]["id"]
                .as_str()
                .map(id::key)
            else {
                continue;
            };
            snap.vnet_zones.entry(vnet).or_default().push(LinkedZone {
                zone: zone.clone(),
                nx_redirect: link["properties"]["resolutionPolicy"].as_str()
                    == Some("NxDomainRedirect"),
            });
        }
        for a in aliases::all(r)? {
            snap.alias_vnet.insert(a.alias, id::key(&a.vnet_id));
        }
        Ok(snap)
    })
}
