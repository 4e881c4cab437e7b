//! Zones and virtual network links.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use recoverite_arm::lro::{self, OperationRecord};
use recoverite_arm::tracked::{Tracked, TrackedKind};
use recoverite_arm::{id, paging, resource, ArmError, ArmRequest, Ctx, Reply};
use recoverite_store::{Reader, WriteTx};

use crate::{check_preconditions, new_etag, records, LINK_TYPE, ZONE_TYPE};

pub const MAX_RECORD_SETS: u64 = 25000;
pub const MAX_LINKS: u64 = 1000;
pub const MAX_REGISTRATION_LINKS: u64 = 100;

fn name(req: &ArmRequest) -> String {
    req.resource_name().to_string()
}

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
    let records = records::all(r, zone_id)?.len() as u64;
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

fn async_put(
    ctx: &Ctx,
    req: &ArmRequest,
    created: bool,
    doc: Value,
    scope: &str,
) -> Result<Reply, ArmError> {
    let op = OperationRecord::new(ctx, crate::NAMESPACE, scope).succeed(None);
    ctx.store().write(|tx| op.save(tx))?;
    let sub = req.path.subscription.clone().unwrap_or_default();
    let url = lro::status_url(ctx, &sub, "global", &op, &req.api_version);
    let reply = if created {
        Reply::created(doc)
    } else {
        Reply::ok(doc)
    };
    Ok(lro::with_retry_after(
        ctx,
        reply.header("Azure-AsyncOperation", url),
    ))
}

fn async_delete(ctx: &Ctx, req: &ArmRequest, scope: &str) -> Result<Reply, ArmError> {
    let op = OperationRecord::new(ctx, crate::NAMESPACE, scope).succeed(None);
    ctx.store().write(|tx| op.save(tx))?;
    let sub = req.path.subscription.clone().unwrap_or_default();
    Ok(lro::with_retry_after(
        ctx,
        Reply::empty(202)
            .header(
                "Azure-AsyncOperation",
                lro::status_url(ctx, &sub, "global", &op, &req.api_version),
            )
            .header(
                "Location",
                lro::result_url(ctx, &sub, "global", &op, &req.api_version),
            ),
    ))
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

pub fn put_link(ctx: &Ctx, req: &ArmRequest, patch: bool) -> Result<Reply, ArmError> {
    let n = name(req);
    recoverite_arm::names::check_generic("virtual network link", &n)?;
    let body = req.body.clone().unwrap_or(json!({}));
    let props = body.get("properties").cloned().unwrap_or(json!({}));
    let rid = req.path.id();
    // Linking a zone to a network (in any subscription) takes the right to
    // join that network.
    if let Some(vnet) = props["virtualNetwork"]["id"].as_str() {
        ctx.require_linked(
            "Microsoft.Network/privateDnsZones/virtualNetworkLinks/write",
            &rid,
            "Microsoft.Network/virtualNetworks/join/action",
            vnet,
        )?;
    }
    let (created, doc) = ctx.store().write(|tx| {
        let zone = zone_of(tx, req)?;
        let zid = zone["id"].as_str().unwrap_or_default().to_string();
        let existing = resource::get(tx, &rid)?;
        check_preconditions(req, existing.as_ref().and_then(|e| e["etag"].as_str()))?;
        if patch && existing.is_none() {
            return Err(ArmError::resource_not_found(LINK_TYPE, &n, req.path.resource_group.as_deref()));
        }
        let vnet = props["virtualNetwork"]["id"]
            .as_str()
            .map(str::to_string)
            .or_else(|| existing.as_ref().and_then(|e| e["properties"]["virtualNetwork"]["id"].as_str().map(str::to_string)))
            .ok_or_else(|| ArmError::invalid_parameter("properties.virtualNetwork", "A virtual network link needs properties.virtualNetwork.id."))?;
        let vdoc = resource::get(tx, &vnet)?.filter(|d| d["type"].as_str().is_some_and(|t| t.eq_ignore_ascii_case("Microsoft.Network/virtualNetworks")));
        let vdoc = vdoc.ok_or_else(|| {
            ArmError::bad_request("InvalidResourceReference", format!("Virtual network {vnet} referenced by the link was not found."))
        })?;
        let registration = props["registrationEnabled"]
            .as_bool()
            .or_else(|| existing.as_ref().and_then(|e| e["properties"]["registrationEnabled"].as_bool()))
            .unwrap_or(false);
        // A network resolves a zone name through one zone only.
        let zname = zone["name"].as_str().unwrap_or_default().to_ascii_lowercase();
        for other in crate::view::links_of_vnet(tx, &vnet)? {
            let (ozone, olink) = other;
            if id::key(ozone["id"].as_str().unwrap_or_default()) == id::key(&zid) {
                if id::key(olink["id"].as_str().unwrap_or_default()) != id::key(&rid) {
                    return Err(ArmError::conflict(
                        "Conflict",
                        format!("Virtual network {vnet} is already linked to zone {zname} by link {}.", olink["name"].as_str().unwrap_or("")),
                    ));
                }
            } else if ozone["name"].as_str().unwrap_or_default().eq_ignore_ascii_case(&zname) {
                return Err(ArmError::bad_request(
                    "BadRequest",
                    format!("A virtual network cannot be linked to multiple zones with overlapping namespaces: {vnet} is already linked to another zone named {zname} ({}).", ozone["id"].as_str().unwrap_or("")),
                ));
            } else if registration && olink["properties"]["registrationEnabled"].as_bool() == Some(true) && id::key(olink["id"].as_str().unwrap_or_default()) != id::key(&rid) {
                return Err(ArmError::bad_request(
                    "BadRequest",
                    format!("Virtual network {vnet} already has auto-registration enabled with zone {}; a network can register in one zone only.", ozone["name"].as_str().unwrap_or("")),
                ));
            }
        }
        let doc = json!({
            "id": existing.as_ref().and_then(|e| e["id"].as_str().map(str::to_string)).unwrap_or(rid.clone()),
            "name": existing.as_ref().and_then(|e| e["name"].as_str()).unwrap_or(&n),
            "type": LINK_TYPE,
            "etag": new_etag(),
            "location": "global",
            "tags": body.get("tags").cloned().or_else(|| existing.as_ref().and_then(|e| e.get("tags").cloned())).unwrap_or(json!({})),
            "properties": {
                "virtualNetwork": {"id": vdoc["id"]},
                "registrationEnabled": registration,
                "resolutionPolicy": props["resolutionPolicy"].as_str().unwrap_or("Default"),
                "virtualNetworkLinkState": "Completed",
                "provisioningState": "Succeeded",
            }
        });
        resource::put(tx, &rid, &doc)?;
        Ok((existing.is_none(), doc))
    })?;
    async_put(ctx, req, created, doc, &rid)
}

pub fn get_link(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    ctx.store().view(|r| {
        zone_of(r, req)?;
        resource::get(r, &req.path.id())?
            .map(Reply::ok)
            .ok_or_else(|| {
                ArmError::resource_not_found(
                    LINK_TYPE,
                    &name(req),
                    req.path.resource_group.as_deref(),
                )
            })
    })
}

pub fn list_links(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let items = ctx.store().view(|r| {
        let z = zone_of(r, req)?;
        resource::list_children(
            r,
            z["id"].as_str().unwrap_or_default(),
            "virtualNetworkLinks",
        )
    })?;
    Ok(Reply::ok(paging::page(ctx, req, items)?))
}

pub fn delete_link(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let rid = req.path.id();
    let deleted = ctx.store().write(|tx| {
        zone_of(tx, req)?;
        let Some(doc) = resource::get(tx, &rid)? else {
            return Ok::<_, ArmError>(false);
        };
        check_preconditions(req, doc["etag"].as_str())?;
        resource::delete_tree(tx, &rid)?;
        Ok(true)
    })?;
    if !deleted {
        return Ok(Reply::empty(204));
    }
    async_delete(ctx, req, &rid)
}
