//! A private endpoint's DNS zone group (issue 9: a typed document): the
//! private DNS zones its members' A records are written into, and the
//! record sets it wrote, as Azure shows them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use recoverite_arm::document;
use recoverite_arm::{paging, resource, ArmError, ArmRequest, Ctx, Reply};
use recoverite_rp_privatedns::view as dnsview;
use recoverite_store::{Reader, WriteTx};

use crate::common::{self, *};
use crate::endpoint::{self, PrivateEndpoint, PE_TYPE};
use crate::private_endpoint::{members_of, EndpointMember};

pub const ZONE_GROUP_TYPE: &str = "Microsoft.Network/privateEndpoints/privateDnsZoneGroups";
/// Azure writes zone-group records with a 10 second TTL.
pub const ZONE_GROUP_TTL: u64 = 10;
/// Azure's limit on the zones of one group.
pub const MAX_ZONE_CONFIGS: usize = 5;

/// A record set a zone group wrote (`RecordSet` in Azure's model).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WrittenRecordSet {
    pub record_type: String,
    pub record_set_name: String,
    pub fqdn: String,
    pub ttl: u64,
    pub ip_addresses: Vec<String>,
    pub provisioning_state: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ZoneConfigProperties {
    pub private_dns_zone_id: String,
    #[serde(default)]
    pub record_sets: Vec<WrittenRecordSet>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZoneConfig {
    #[serde(default)]
    pub name: String,
    pub properties: ZoneConfigProperties,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ZoneGroupProperties {
    pub provisioning_state: String,
    pub private_dns_zone_configs: Vec<ZoneConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZoneGroup {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub etag: String,
    pub properties: ZoneGroupProperties,
}

recoverite_arm::impl_document!(ZoneGroup, ZONE_GROUP_TYPE, "private DNS zone group");

#[derive(Deserialize)]
struct GivenConfigProperties {
    #[serde(rename = "privateDnsZoneId")]
    private_dns_zone_id: String,
}

#[derive(Deserialize)]
struct GivenConfig {
    #[serde(default)]
    name: Option<String>,
    properties: GivenConfigProperties,
}

/// "A private DNS zone group needs 1 to 5 zone configurations", each naming
/// its zone: the configurations a PUT's properties give.
pub fn given_configs(props: &Value) -> Result<Vec<ZoneConfig>, ArmError> {
    let bad = || {
        ArmError::bad_request(
            "InvalidPrivateDnsZoneConfigs",
            "A private DNS zone group needs 1 to 5 privateDnsZoneConfigs, each with properties.privateDnsZoneId.",
        )
    };
    let given: Vec<GivenConfig> = match &props["privateDnsZoneConfigs"] {
        Value::Null => Vec::new(),
        v => serde_json::from_value(v.clone()).map_err(|_| bad())?,
    };
    if given.is_empty() || given.len() > MAX_ZONE_CONFIGS {
        return Err(bad());
    }
    Ok(given
        .into_iter()
        .map(|c| ZoneConfig {
            name: c.name.unwrap_or_default(),
            properties: ZoneConfigProperties {
                private_dns_zone_id: c.properties.private_dns_zone_id,
                record_sets: Vec::new(),
            },
        })
        .collect())
}

/// "A private endpoint can have only one DNS zone group": `others` are the
/// endpoint's groups with another name.
pub fn check_one_group(pe_id: &str, others: &[ZoneGroup]) -> Result<(), ArmError> {
    match others.first() {
        None => Ok(()),
        Some(o) => Err(ArmError::bad_request(
            "OnlyOnePrivateDnsZoneGroupPerPrivateEndpoint",
            format!(
                "Private endpoint {pe_id} already has DNS zone group {}; an endpoint can have only one.",
                o.name
            ),
        )),
    }
}

/// The name a member's FQDN has inside `zone`, if it is in it.
pub fn relative(fqdn: &str, zone: &str) -> Option<String> {
    let f = fqdn.trim_end_matches('.').to_ascii_lowercase();
    let z = zone.trim_end_matches('.').to_ascii_lowercase();
    f.strip_suffix(&format!(".{z}")).map(str::to_string)
}

/// The groups of an endpoint.
pub fn of_endpoint(r: &impl Reader, pe_id: &str) -> Result<Vec<ZoneGroup>, ArmError> {
    document::children(r, pe_id, "privateDnsZoneGroups")
}

/// Writes the A records of the endpoint's members into the group's zones and
/// records, in the group, the record sets written.
fn apply(tx: &mut WriteTx, pe: &PrivateEndpoint, zg: &mut ZoneGroup) -> Result<(), ArmError> {
    let members = members_of(tx, pe)?;
    for c in &mut zg.properties.private_dns_zone_configs {
        let zone_id = c.properties.private_dns_zone_id.clone();
        let zone =
            dnsview::zone(tx, &zone_id)?.ok_or_else(|| invalid_reference(&zone_id, &zg.id))?;
        c.properties.private_dns_zone_id = zone.id.clone();
        c.properties.record_sets.clear();
        for EndpointMember { fqdns, ip, .. } in &members {
            for rel in fqdns.iter().filter_map(|f| relative(f, &zone.name)) {
                dnsview::set_a(tx, &zone.id, &rel, &[*ip], ZONE_GROUP_TTL)?;
                c.properties.record_sets.push(WrittenRecordSet {
                    record_type: "A".into(),
                    fqdn: format!("{rel}.{}", zone.name),
                    record_set_name: rel,
                    ttl: ZONE_GROUP_TTL,
                    ip_addresses: vec![ip.to_string()],
                    provisioning_state: "Succeeded".into(),
                });
            }
        }
    }
    Ok(())
}

/// Removes the records a zone group wrote (those still pointing at this endpoint).
pub fn clear(tx: &mut WriteTx, pe: &PrivateEndpoint, zg: &ZoneGroup) -> Result<(), ArmError> {
    let members = members_of(tx, pe)?;
    for c in &zg.properties.private_dns_zone_configs {
        let Some(zone) = dnsview::zone(tx, &c.properties.private_dns_zone_id)? else {
            continue;
        };
        for EndpointMember { fqdns, ip, .. } in &members {
            for rel in fqdns.iter().filter_map(|f| relative(f, &zone.name)) {
                let still_ours = dnsview::record(tx, &zone.id, "A", &rel)?
                    .is_some_and(|r| r.ipv4s().contains(ip));
                if still_ours {
                    dnsview::delete_record(tx, &zone.id, "A", &rel)?;
                }
            }
        }
    }
    Ok(())
}

/// Rewrites every group of the endpoint after its members changed.
pub fn refresh(tx: &mut WriteTx, pe: &PrivateEndpoint) -> Result<(), ArmError> {
    for mut zg in of_endpoint(tx, &pe.id)? {
        apply(tx, pe, &mut zg)?;
        document::save(tx, &zg)?;
    }
    Ok(())
}

fn pe_of(r: &impl Reader, req: &ArmRequest) -> Result<PrivateEndpoint, ArmError> {
    let pid = req.path.prefix(8);
    endpoint::load(r, &pid)?.ok_or_else(|| {
        ArmError::resource_not_found(PE_TYPE, &names(req)[0], req.path.resource_group.as_deref())
    })
}

pub fn put(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let n = name(req);
    check_name("private DNS zone group", &n)?;
    let body = req.body.clone().unwrap_or(Value::Null);
    let configs = given_configs(&body["properties"])?;
    // Writing records into a zone, wherever it lives (a hub subscription's
    // zone, say), takes the right to join it.
    for c in &configs {
        ctx.require_linked(
            "Microsoft.Network/privateEndpoints/privateDnsZoneGroups/write",
            &req.path.id(),
            "Microsoft.Network/privateDnsZones/join/action",
            &c.properties.private_dns_zone_id,
        )?;
    }
    ctx.store().write(|tx| {
        let pe = pe_of(tx, req)?;
        let (same, others): (Vec<ZoneGroup>, Vec<ZoneGroup>) = of_endpoint(tx, &pe.id)?
            .into_iter()
            .partition(|g| g.name.eq_ignore_ascii_case(&n));
        check_one_group(&pe.id, &others)?;
        let old = same.into_iter().next();
        if let Some(o) = &old {
            clear(tx, &pe, o)?;
        }
        let mut zg = ZoneGroup {
            id: old.as_ref().map_or_else(
                || child_id(&pe.id, "privateDnsZoneGroups", &n),
                |o| o.id.clone(),
            ),
            name: old.as_ref().map_or_else(|| n.clone(), |o| o.name.clone()),
            kind: ZONE_GROUP_TYPE.into(),
            etag: etag(),
            properties: ZoneGroupProperties {
                provisioning_state: "Succeeded".into(),
                private_dns_zone_configs: configs,
            },
        };
        apply(tx, &pe, &mut zg)?;
        document::save(tx, &zg)?;
        let op = common::op(ctx, &zg.id);
        op.save(tx)?;
        let doc = document::to_value(&zg)?;
        Ok(put_reply(ctx, req, old.is_none(), doc, &op, &pe.location))
    })
}

pub fn get(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    ctx.store().view(|r| {
        pe_of(r, req)?;
        match document::load::<ZoneGroup>(r, &req.path.id())? {
            Some(zg) => Ok(Reply::ok(document::to_value(&zg)?)),
            None => Err(not_found(req, ZONE_GROUP_TYPE)),
        }
    })
}

pub fn list(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let items = ctx.store().view(|r| {
        let pe = pe_of(r, req)?;
        of_endpoint(r, &pe.id)?
            .iter()
            .map(document::to_value)
            .collect::<Result<Vec<_>, _>>()
    })?;
    Ok(Reply::ok(paging::page(ctx, req, items)?))
}

pub fn delete(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let zid = req.path.id();
    ctx.store().write(|tx| {
        let pe = pe_of(tx, req)?;
        let Some(zg) = document::load::<ZoneGroup>(tx, &zid)? else {
            return Ok(Reply::empty(204));
        };
        clear(tx, &pe, &zg)?;
        resource::delete_tree(tx, &zid)?;
        let op = common::op(ctx, &zid);
        op.save(tx)?;
        Ok(delete_reply(ctx, req, &op, &pe.location))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_group_names_one_to_five_zones() {
        let cfg = |n: usize| json!({"privateDnsZoneConfigs": (0..n).map(|i| json!({"name": format!("c{i}"), "properties": {"privateDnsZoneId": format!("/z{i}")}})).collect::<Vec<_>>()});
        assert_eq!(
            given_configs(&cfg(1)).unwrap()[0]
                .properties
                .private_dns_zone_id,
            "/z0"
        );
        assert_eq!(given_configs(&cfg(5)).unwrap().len(), 5);
        for bad in [
            cfg(0),
            cfg(6),
            json!({}),
            json!({"privateDnsZoneConfigs": [{"name": "c"}]}),
        ] {
            assert_eq!(
                given_configs(&bad).unwrap_err().code(),
                "InvalidPrivateDnsZoneConfigs"
            );
        }
    }

    #[test]
    fn an_endpoint_has_one_group() {
        assert!(check_one_group("/pe", &[]).is_ok());
        let other = ZoneGroup {
            id: "/pe/privateDnsZoneGroups/a".into(),
            name: "a".into(),
            kind: ZONE_GROUP_TYPE.into(),
            etag: "e".into(),
            properties: ZoneGroupProperties {
                provisioning_state: "Succeeded".into(),
                private_dns_zone_configs: Vec::new(),
            },
        };
        let e = check_one_group("/pe", &[other]).unwrap_err();
        assert_eq!(e.code(), "OnlyOnePrivateDnsZoneGroupPerPrivateEndpoint");
    }

    #[test]
    fn a_members_name_is_taken_relative_to_its_zone() {
        let z = "privatelink.siterecovery.windowsazure.com";
        assert_eq!(
            relative(
                "1234-asr-pod01-rcm1.eus.privatelink.siterecovery.windowsazure.com.",
                z
            )
            .as_deref(),
            Some("1234-asr-pod01-rcm1.eus")
        );
        assert_eq!(relative("x.blob.core.windows.net", z), None);
    }
}
