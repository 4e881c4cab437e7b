//! Network mappings (A2A): a source virtual network maps to a recovery
//! network in the other fabric's region; enabling replication without a
//! recovery network uses the source network's mapping. The `{networkName}`
//! segment is the source network's name (as Terraform uses it).

use serde_json::{json, Value};

use recoverite_arm::{names, resource, ArmError, ArmRequest, Ctx, Reply};
use recoverite_store::Reader;

use crate::{jobs, vault_of};

pub const MAPPING_TYPE: &str = "Microsoft.RecoveryServices/vaults/replicationFabrics/replicationNetworks/replicationNetworkMappings";
const VNET_TYPE: &str = "Microsoft.Network/virtualNetworks";

fn net(r: &impl Reader, id: &str, field: &str) -> Result<Value, ArmError> {
    resource::get(r, id)?
        .filter(|n| {
            n["type"]
                .as_str()
                .is_some_and(|t| t.eq_ignore_ascii_case(VNET_TYPE))
        })
        .ok_or_else(|| {
            ArmError::invalid_parameter(field, format!("Virtual network '{id}' was not found."))
        })
}

fn loc(v: &Value) -> &str {
    v["location"].as_str().unwrap_or_default()
}

/// PUT (and PATCH) `{F}/replicationNetworks/{net}/replicationNetworkMappings/{name}`.
pub fn put(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let p = req.provider_part()?;
    let name = p.name().unwrap_or_default().to_string();
    names::check_generic("network mapping", &name)?;
    let body = req.body.clone().unwrap_or(json!({}));
    let props = &body["properties"];
    let details = &props["fabricSpecificDetails"];
    if !details["instanceType"]
        .as_str()
        .unwrap_or("AzureToAzure")
        .eq_ignore_ascii_case("AzureToAzure")
    {
        return Err(ArmError::invalid_parameter(
            "properties.fabricSpecificDetails.instanceType",
            "Send 'AzureToAzure': the only network mapping recoverite serves.",
        ));
    }
    let id = req.path.id();
    let fabric_id = id
        .split("/replicationNetworks/")
        .next()
        .unwrap_or_default()
        .to_string();
    let vault_id = req.path.prefix(8);
    let done = ctx.store().write(|tx| {
        vault_of(tx, req)?;
        let fabric = crate::records::fabric(tx, &fabric_id, "fabric")?;
        let primary_id = details["primaryNetworkId"].as_str().ok_or_else(|| ArmError::invalid_parameter("properties.fabricSpecificDetails.primaryNetworkId", "Name the source virtual network."))?;
        let recovery_id = props["recoveryNetworkId"].as_str().ok_or_else(|| ArmError::invalid_parameter("properties.recoveryNetworkId", "Name the recovery virtual network."))?;
        let recovery_fabric_name = props["recoveryFabricName"].as_str().ok_or_else(|| ArmError::invalid_parameter("properties.recoveryFabricName", "Name the recovery fabric."))?;
        let recovery_fabric = crate::records::fabric(tx, &format!("{vault_id}/replicationFabrics/{recovery_fabric_name}"), "recovery fabric")?;
        let primary = net(tx, primary_id, "properties.fabricSpecificDetails.primaryNetworkId")?;
        let recovery = net(tx, recovery_id, "properties.recoveryNetworkId")?;
        let (floc, rloc) = (fabric.region(), recovery_fabric.region());
        if !loc(&primary).eq_ignore_ascii_case(floc) {
            return Err(ArmError::bad_request("NetworkNotInFabricRegion", format!("Network '{}' is in '{}' but fabric '{}' is for '{floc}'.", primary["name"].as_str().unwrap_or(""), loc(&primary), &fabric.name)));
        }
        if !loc(&recovery).eq_ignore_ascii_case(rloc) {
            return Err(ArmError::bad_request("NetworkNotInFabricRegion", format!("Recovery network '{}' is in '{}' but fabric '{recovery_fabric_name}' is for '{rloc}'.", recovery["name"].as_str().unwrap_or(""), loc(&recovery))));
        }
        if floc.eq_ignore_ascii_case(rloc) {
            return Err(ArmError::bad_request("InvalidRecoveryFabric", "The recovery fabric must be in another region."));
        }
        let doc = json!({
            "id": id, "name": name, "type": MAPPING_TYPE, "location": floc,
            "properties": {
                "state": "Paired", "primaryNetworkFriendlyName": primary["name"], "primaryNetworkId": primary["id"],
                "primaryFabricFriendlyName": fabric.name, "recoveryNetworkFriendlyName": recovery["name"], "recoveryNetworkId": recovery["id"],
                "recoveryFabricArmId": recovery_fabric.id, "recoveryFabricFriendlyName": recovery_fabric.name,
                "fabricSpecificSettings": {"instanceType": "AzureToAzure", "primaryFabricLocation": floc, "recoveryFabricLocation": rloc},
            }
        });
        resource::put(tx, &id, &doc)?;
        jobs::record(tx, &vault_id, "ConfigureNetworkMapping", "Configure network mapping", &doc, &["Pairing the networks"])?;
        crate::finish(ctx, req, tx, Some(doc))
    })?;
    Ok(crate::accepted(ctx, req, &done))
}

pub fn delete(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let id = req.path.id();
    let done = ctx.store().write(|tx| {
        vault_of(tx, req)?;
        resource::delete_tree(tx, &id)?;
        crate::finish(ctx, req, tx, None)
    })?;
    Ok(crate::accepted(ctx, req, &done))
}

/// The recovery network a source network maps to in a vault, if any.
pub fn recovery_network_for(
    r: &impl Reader,
    vault_id: &str,
    source_vnet: &str,
) -> Result<Option<String>, ArmError> {
    Ok(resource::list_of_type(r, vault_id, MAPPING_TYPE)?
        .into_iter()
        .find(|m| {
            m["properties"]["primaryNetworkId"]
                .as_str()
                .is_some_and(|p| p.eq_ignore_ascii_case(source_vnet))
        })
        .and_then(|m| {
            m["properties"]["recoveryNetworkId"]
                .as_str()
                .map(str::to_string)
        }))
}
