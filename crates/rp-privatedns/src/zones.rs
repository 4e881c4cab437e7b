//! Zones and virtual network links.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use recoverite_arm::tracked::{Tracked, TrackedKind};
use recoverite_arm::{id, resource, ArmError, Ctx};
use recoverite_store::{Reader, WriteTx};

use crate::{records, LINK_TYPE, ZONE_TYPE};

pub const MAX_RECORD_SETS: u64 = 25000;
pub const MAX_LINKS: u64 = 1000;
pub const MAX_REGISTRATION_LINKS: u64 = 100;

/// A zone name is a DNS name of at least two labels.
pub fn check_zone_name(n: &str) -> Result<(), ArmError> {
    let labels: Vec<&str> = n.trim_end_matches('.').split('.').collect();
    let ok = labels.len() >= 2
        && n.len() <= 253
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    if ok {
        Ok(())
    } else {
        Err(ArmError::bad_request(
            "InvalidResourceName",
            format!("The zone name '{n}' is invalid: a private DNS zone name needs at least two labels (for example privatelink.siterecovery.windowsazure.com), each 1-63 letters, digits or hyphens."),
        ))
    }
}

fn counts(r: &impl Reader, zone_id: &str) -> Result<(u64, u64, u64), ArmError> {
    let records = crate::record_set::all(r, zone_id)?.len() as u64;
    let links = resource::list_children(r, zone_id, "virtualNetworkLinks")?;
    let reg = links
        .iter()
        .filter(|l| l["properties"]["registrationEnabled"].as_bool() == Some(true))
        .count() as u64;
    Ok((records, links.len() as u64, reg))
}

pub fn assemble(r: &impl Reader, doc: &Value) -> Result<Value, ArmError> {
    let mut d = doc.clone();
    let (records, links, reg) = counts(r, doc["id"].as_str().unwrap_or_default())?;
    let p = &mut d["properties"];
    p["numberOfRecordSets"] = json!(records);
    p["maxNumberOfRecordSets"] = json!(MAX_RECORD_SETS);
    p["numberOfVirtualNetworkLinks"] = json!(links);
    p["maxNumberOfVirtualNetworkLinks"] = json!(MAX_LINKS);
    p["numberOfVirtualNetworkLinksWithRegistration"] = json!(reg);
    p["maxNumberOfVirtualNetworkLinksWithRegistration"] = json!(MAX_REGISTRATION_LINKS);
    Ok(d)
}

/// A private DNS zone's stored properties (the counts are shown, not kept).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ZoneProperties {
    pub provisioning_state: String,
    pub internal_id: String,
}

/// A zone's properties are all read-only; whatever a request sends is ignored.
#[derive(Deserialize, Default)]
pub struct GivenZone {}

/// Private DNS zones, served by the tracked-resource core: global, with
/// ETags, answered as long-running operations; a new zone gets its SOA
/// record; one with virtual network links is not deleted.
pub struct Zone;

impl TrackedKind for Zone {
    const TYPE: &'static str = ZONE_TYPE;
    const NOUN: &'static str = "private DNS zone";
    const ETAG: bool = true;
    const LOCATION: Option<&'static str> = Some("global");
    const ASYNC: bool = true;
    type Properties = ZoneProperties;
    type Given = GivenZone;

    fn check_name(name: &str) -> Result<(), ArmError> {
        check_zone_name(name)
    }

    fn properties(
        _: &Ctx,
        tx: &mut WriteTx,
        id: &str,
        _: GivenZone,
        existing: Option<&ZoneProperties>,
        _: bool,
    ) -> Result<ZoneProperties, ArmError> {
        if let Some(e) = existing {
            return Ok(e.clone());
        }
        let name = id.rsplit('/').next().unwrap_or_default();
        records::create_soa(tx, id, name)?;
        Ok(ZoneProperties {
            provisioning_state: "Succeeded".into(),
            internal_id: uuid::Uuid::new_v4().to_string(),
        })
    }

    fn render(r: &impl Reader, doc: &mut Value) -> Result<(), ArmError> {
        *doc = assemble(r, doc)?;
        Ok(())
    }

    /// "Delete the links before deleting the zone."
    fn deleting(tx: &mut WriteTx, doc: &Tracked<ZoneProperties>) -> Result<(), ArmError> {
        if !resource::list_children(tx, &doc.id, "virtualNetworkLinks")?.is_empty() {
            return Err(ArmError::bad_request(
                "CannotDeleteZoneWithVirtualNetworkLinks",
                format!("The private DNS zone {} has virtual network links; delete the links before deleting the zone.", doc.name),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SubResource {
    pub id: String,
}

/// A virtual network link's stored properties.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LinkProperties {
    pub virtual_network: SubResource,
    pub registration_enabled: bool,
    pub resolution_policy: String,
    pub virtual_network_link_state: String,
    pub provisioning_state: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct GivenLink {
    virtual_network: Option<SubResource>,
    registration_enabled: Option<bool>,
    resolution_policy: Option<String>,
}

/// Another link of the same network: (its zone's id, its zone's name, its
/// id, whether it registers).
pub struct OtherLink<'a> {
    pub zone_id: &'a str,
    pub zone_name: &'a str,
    pub link_id: &'a str,
    pub registration: bool,
}

/// "A virtual network can be linked to a zone once"; "a virtual network
/// cannot be linked to multiple zones with overlapping namespaces"; "a
/// virtual network can be a registration network for one zone only".
pub fn check_link(
    zone_id: &str,
    zone_name: &str,
    link_id: &str,
    vnet: &str,
    registration: bool,
    others: &[OtherLink],
) -> Result<(), ArmError> {
    for o in others {
        let same_link = id::key(o.link_id) == id::key(link_id);
        if id::key(o.zone_id) == id::key(zone_id) {
            if !same_link {
                return Err(ArmError::conflict(
                    "Conflict",
                    format!(
                        "Virtual network {vnet} is already linked to zone {zone_name} by link {}.",
                        o.link_id.rsplit('/').next().unwrap_or_default()
                    ),
                ));
            }
        } else if o.zone_name.eq_ignore_ascii_case(zone_name) {
            return Err(ArmError::bad_request(
                "BadRequest",
                format!("A virtual network cannot be linked to multiple zones with overlapping namespaces: {vnet} is already linked to another zone named {zone_name} ({}).", o.zone_id),
            ));
        } else if registration && o.registration && !same_link {
            return Err(ArmError::bad_request(
                "BadRequest",
                format!("Virtual network {vnet} already has auto-registration enabled with zone {}; a network can register in one zone only.", o.zone_name),
            ));
        }
    }
    Ok(())
}

/// Virtual network links, served by the tracked-resource core as children
/// of their zone.
pub struct Link;

impl TrackedKind for Link {
    const TYPE: &'static str = LINK_TYPE;
    const NOUN: &'static str = "virtual network link";
    const ETAG: bool = true;
    const LOCATION: Option<&'static str> = Some("global");
    const ASYNC: bool = true;
    const PARENT: Option<&'static str> = Some(ZONE_TYPE);
    type Properties = LinkProperties;
    type Given = GivenLink;

    fn check_name(name: &str) -> Result<(), ArmError> {
        recoverite_arm::names::check_generic(Self::NOUN, name)
    }

    fn properties(
        ctx: &Ctx,
        tx: &mut WriteTx,
        link_id: &str,
        given: GivenLink,
        existing: Option<&LinkProperties>,
        patch: bool,
    ) -> Result<LinkProperties, ArmError> {
        // Linking a zone to a network (in any subscription) takes the right
        // to join that network.
        if let Some(v) = &given.virtual_network {
            ctx.require_linked(
                "Microsoft.Network/privateDnsZones/virtualNetworkLinks/write",
                link_id,
                "Microsoft.Network/virtualNetworks/join/action",
                &v.id,
            )?;
        }
        let vnet = given
            .virtual_network
            .map(|v| v.id)
            .or_else(|| existing.map(|e| e.virtual_network.id.clone()))
            .ok_or_else(|| {
                ArmError::invalid_parameter(
                    "properties.virtualNetwork",
                    "A virtual network link needs properties.virtualNetwork.id.",
                )
            })?;
        let vdoc = resource::get(tx, &vnet)?
            .filter(|d| {
                d["type"]
                    .as_str()
                    .is_some_and(|t| t.eq_ignore_ascii_case("Microsoft.Network/virtualNetworks"))
            })
            .ok_or_else(|| {
                ArmError::bad_request(
                    "InvalidResourceReference",
                    format!("Virtual network {vnet} referenced by the link was not found."),
                )
            })?;
        let registration = given
            .registration_enabled
            .or(existing.map(|e| e.registration_enabled))
            .unwrap_or(false);
        let zone_id = link_id.rsplitn(3, '/').nth(2).unwrap_or_default();
        let zone_name = zone_id.rsplit('/').next().unwrap_or_default();
        let links = crate::view::links_of_vnet(tx, &vnet)?;
        let others: Vec<OtherLink> = links
            .iter()
            .map(|(z, l)| OtherLink {
                zone_id: &z.id,
                zone_name: &z.name,
                link_id: &l.id,
                registration: l.properties.registration_enabled,
            })
            .collect();
        check_link(zone_id, zone_name, link_id, &vnet, registration, &others)?;
        Ok(LinkProperties {
            virtual_network: SubResource {
                id: vdoc["id"].as_str().unwrap_or(&vnet).to_string(),
            },
            registration_enabled: registration,
            resolution_policy: given
                .resolution_policy
                .or(existing
                    .filter(|_| patch)
                    .map(|e| e.resolution_policy.clone()))
                .unwrap_or_else(|| "Default".into()),
            virtual_network_link_state: "Completed".into(),
            provisioning_state: "Succeeded".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn other<'a>(
        zone_id: &'a str,
        zone_name: &'a str,
        link_id: &'a str,
        registration: bool,
    ) -> OtherLink<'a> {
        OtherLink {
            zone_id,
            zone_name,
            link_id,
            registration,
        }
    }

    #[test]
    fn a_network_links_to_a_zone_once_and_to_one_zone_of_a_name() {
        let z = "/s/g/privateDnsZones/privatelink.blob.core.windows.net";
        let z2 = "/s/h/privateDnsZones/privatelink.blob.core.windows.net";
        let name = "privatelink.blob.core.windows.net";
        // Re-writing the same link is fine; a second link from the same zone is not.
        assert!(check_link(
            z,
            name,
            &format!("{z}/virtualNetworkLinks/a"),
            "v",
            false,
            &[other(z, name, &format!("{z}/virtualNetworkLinks/a"), false)]
        )
        .is_ok());
        assert_eq!(
            check_link(
                z,
                name,
                &format!("{z}/virtualNetworkLinks/b"),
                "v",
                false,
                &[other(z, name, &format!("{z}/virtualNetworkLinks/a"), false)]
            )
            .unwrap_err()
            .status,
            409
        );
        // Another zone of the same name: overlapping namespaces.
        assert_eq!(
            check_link(
                z2,
                name,
                &format!("{z2}/virtualNetworkLinks/c"),
                "v",
                false,
                &[other(z, name, &format!("{z}/virtualNetworkLinks/a"), false)]
            )
            .unwrap_err()
            .status,
            400
        );
    }

    #[test]
    fn a_network_registers_in_one_zone_only() {
        let z = "/s/g/privateDnsZones/a.example";
        let y = "/s/g/privateDnsZones/b.example";
        let ly = format!("{y}/virtualNetworkLinks/l");
        let others = [other(y, "b.example", &ly, true)];
        assert!(check_link(
            z,
            "a.example",
            &format!("{z}/virtualNetworkLinks/m"),
            "v",
            false,
            &others
        )
        .is_ok());
        assert!(check_link(
            z,
            "a.example",
            &format!("{z}/virtualNetworkLinks/m"),
            "v",
            true,
            &others
        )
        .is_err());
    }

    #[test]
    fn zone_names_have_two_labels_or_more() {
        assert!(check_zone_name("privatelink.siterecovery.windowsazure.com").is_ok());
        assert!(check_zone_name("localhost").is_err());
        assert!(check_zone_name("bad-.example").is_err());
    }
}
