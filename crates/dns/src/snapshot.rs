//! Everything name resolution needs, read once per store generation: which
//! alias sits in which network, which zones each network is linked to and
//! their records, and the public resources names can point at.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::Arc;

use serde::Deserialize;

use recoverite_arm::{id, ArmError};
use recoverite_rp_network::aliases;
use recoverite_rp_privatedns::view as privatedns;
use recoverite_store::Store;

pub use recoverite_rp_privatedns::view::{RType, Rec};

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

/// The types whose identity the snapshot reads.
const READ_TYPES: [&str; 3] = [
    "Microsoft.Network/virtualNetworks",
    "Microsoft.Storage/storageAccounts",
    "Recoverite.Test/privateLinkTargets",
];

/// What every ARM resource document has, and all this snapshot reads of
/// networks, storage accounts and test targets.
#[derive(Deserialize)]
struct Meta {
    id: String,
    name: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    location: String,
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

pub fn build(store: &Store) -> Result<Snapshot, ArmError> {
    let generation = store.generation();
    store.view(|r| {
        let mut snap = Snapshot {
            generation,
            ..Default::default()
        };
        // Networks, storage accounts and test targets by their ARM identity
        // (id, name, location); private DNS through its read model.
        let wanted = ["virtualNetworks", "storageAccounts", "privateLinkTargets"];
        for (k, doc) in recoverite_arm::resource::scan_mentioning(r, "/subscriptions/", &wanted)? {
            // Documents that only mention these types (a subnet, an item
            // naming its cache account) are not read at all.
            let read = doc["type"]
                .as_str()
                .is_some_and(|t| READ_TYPES.iter().any(|w| t.eq_ignore_ascii_case(w)));
            if !read {
                continue;
            }
            let meta: Meta = serde_json::from_value(doc).map_err(|e| {
                ArmError::internal(format!("stored resource {k} is malformed: {e}"))
            })?;
            match meta.kind.to_ascii_lowercase().as_str() {
                "microsoft.network/virtualnetworks" => {
                    snap.vnets.insert(k, meta.id);
                }
                "microsoft.storage/storageaccounts" => {
                    snap.storage_accounts
                        .insert(meta.name.to_ascii_lowercase(), meta.location);
                }
                "recoverite.test/privatelinktargets" => {
                    snap.test_targets.insert(meta.name.to_ascii_lowercase());
                }
                _ => {}
            }
        }
        for z in privatedns::zones_for_resolution(r)? {
            let zone = Arc::new(Zone {
                name: z.name,
                id: z.id,
                records: z.records,
            });
            for link in z.links {
                snap.vnet_zones
                    .entry(link.vnet_key)
                    .or_default()
                    .push(LinkedZone {
                        zone: zone.clone(),
                        nx_redirect: link.nx_redirect,
                    });
            }
        }
        for a in aliases::all(r)? {
            snap.alias_vnet.insert(a.alias, id::key(&a.vnet_id));
        }
        Ok(snap)
    })
}
