//! Network mappings (A2A): a source virtual network maps to a recovery
//! network in the other fabric's region; enabling replication without a
//! recovery network uses the source network's mapping. The `{networkName}`
//! segment is the source network's name (as Terraform uses it).

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use recoverite_arm::{document, names, resource, ArmError, ArmRequest, Ctx, Reply};
use recoverite_rp_network::view::{self, VirtualNetwork};
use recoverite_store::Reader;

use crate::{jobs, vault_of};

pub const MAPPING_TYPE: &str = "Microsoft.RecoveryServices/vaults/replicationFabrics/replicationNetworks/replicationNetworkMappings";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MappingProperties {
    pub primary_network_id: String,
    pub recovery_network_id: String,
    /// State, friendly names, fabrics and their regions: as written.
    #[serde(flatten)]
    pub given: Map<String, Value>,
}

/// A source network's pairing with a recovery network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkMapping {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub location: String,
    pub properties: MappingProperties,
}

recoverite_arm::impl_document!(NetworkMapping, MAPPING_TYPE, "network mapping");

/// The virtual network a mapping names (the network provider's read model).
fn net(r: &impl Reader, id: &str, field: &str) -> Result<VirtualNetwork, ArmError> {
    view::virtual_network(r, id)?.ok_or_else(|| {
        ArmError::invalid_parameter(field, format!("Virtual network '{id}' was not found."))
    })
}

/// "The recovery network is in the recovery fabric's region, the source
/// network in the source fabric's, and the two fabrics are in different
/// regions."
pub fn check_regions(
    primary: &VirtualNetwork,
    fabric: (&str, &str),
    recovery: &VirtualNetwork,
    recovery_fabric: (&str, &str),
) -> Result<(), ArmError> {
    let ((fname, floc), (rname, rloc)) = (fabric, recovery_fabric);
    if !primary.location.eq_ignore_ascii_case(floc) {
        return Err(ArmError::bad_request(
            "NetworkNotInFabricRegion",
            format!(
                "Network '{}' is in '{}' but fabric '{fname}' is for '{floc}'.",
                primary.name, primary.location
            ),
        ));
    }
    if !recovery.location.eq_ignore_ascii_case(rloc) {
        return Err(ArmError::bad_request(
            "NetworkNotInFabricRegion",
            format!(
                "Recovery network '{}' is in '{}' but fabric '{rname}' is for '{rloc}'.",
                recovery.name, recovery.location
            ),
        ));
    }
    if floc.eq_ignore_ascii_case(rloc) {
        return Err(ArmError::bad_request(
            "InvalidRecoveryFabric",
            "The recovery fabric must be in another region.",
        ));
    }
    Ok(())
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
        check_regions(&primary, (&fabric.name, floc), &recovery, (recovery_fabric_name, rloc))?;
        let shown = json!({
            "state": "Paired", "primaryNetworkFriendlyName": primary.name,
            "primaryFabricFriendlyName": fabric.name, "recoveryNetworkFriendlyName": recovery.name,
            "recoveryFabricArmId": recovery_fabric.id, "recoveryFabricFriendlyName": recovery_fabric.name,
            "fabricSpecificSettings": {"instanceType": "AzureToAzure", "primaryFabricLocation": floc, "recoveryFabricLocation": rloc},
        });
        let mapping = NetworkMapping {
            id: id.clone(),
            name: name.clone(),
            kind: MAPPING_TYPE.to_string(),
            location: floc.to_string(),
            properties: MappingProperties {
                primary_network_id: primary.id.clone(),
                recovery_network_id: recovery.id.clone(),
                given: shown.as_object().cloned().unwrap_or_default(),
            },
        };
        document::save(tx, &mapping)?;
        let doc = document::to_value(&mapping)?;
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
    Ok(document::list::<NetworkMapping>(r, vault_id)?
        .into_iter()
        .find(|m| {
            m.properties
                .primary_network_id
                .eq_ignore_ascii_case(source_vnet)
        })
        .map(|m| m.properties.recovery_network_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vnet(name: &str, location: &str) -> VirtualNetwork {
        VirtualNetwork {
            id: format!("/vnets/{name}"),
            name: name.into(),
            location: location.into(),
            address_prefixes: vec!["10.0.0.0/16".into()],
            subnets: Vec::new(),
        }
    }

    #[test]
    fn a_mapping_pairs_networks_in_their_fabrics_regions_across_two_regions() {
        let (east, west) = (vnet("app", "eastus"), vnet("app-asr", "westus"));
        assert!(check_regions(&east, ("e", "eastus"), &west, ("w", "westus")).is_ok());
        let e = check_regions(&west, ("e", "eastus"), &west, ("w", "westus")).unwrap_err();
        assert_eq!(e.body.code, "NetworkNotInFabricRegion");
        assert!(e.body.message.contains("'app-asr' is in 'westus'"));
        let e = check_regions(&east, ("e", "eastus"), &east, ("w", "westus")).unwrap_err();
        assert!(e.body.message.starts_with("Recovery network"));
        let e = check_regions(&east, ("e", "eastus"), &east, ("e2", "eastus")).unwrap_err();
        assert_eq!(e.body.code, "InvalidRecoveryFabric");
    }
}
