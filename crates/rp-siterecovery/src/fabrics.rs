//! Fabrics (one per Azure region), their protection containers, and the
//! container mappings that pair a source container with a target one under
//! a replication policy.

use serde_json::{json, Value};

use recoverite_arm::{names, regions, resource, ArmError, ArmRequest, Ctx, Reply};
use recoverite_store::Reader;

use crate::records::{
    self, ContainerMapping, ContainerProperties, Fabric, FabricDetails, FabricProperties,
    MappingProperties, ProtectionContainer,
};
use crate::{jobs, policies, vault_of};

pub const FABRIC_TYPE: &str = "Microsoft.RecoveryServices/vaults/replicationFabrics";
pub const CONTAINER_TYPE: &str =
    "Microsoft.RecoveryServices/vaults/replicationFabrics/replicationProtectionContainers";
pub const MAPPING_TYPE: &str = recoverite_rs_core::vault::SITE_RECOVERY_MAPPING_TYPE;

fn name_of(req: &ArmRequest) -> String {
    req.path
        .provider
        .as_ref()
        .and_then(|p| p.name())
        .unwrap_or_default()
        .to_string()
}

fn props(req: &ArmRequest) -> Result<Value, ArmError> {
    let body = req.body.clone().unwrap_or(json!({}));
    if !body.is_object() {
        return Err(ArmError::invalid_content(
            "the request body must be a JSON object",
        ));
    }
    Ok(body.get("properties").cloned().unwrap_or(json!({})))
}

fn instance_type<'a>(v: &'a Value, field: &str, want: &str) -> Result<&'a Value, ArmError> {
    match v.get("instanceType").and_then(Value::as_str) {
        Some(t) if t.eq_ignore_ascii_case(want) => Ok(v),
        Some(t) => Err(ArmError::invalid_parameter(
            field,
            format!("instanceType '{t}' is not supported by recoverite; only '{want}' (Azure to Azure) is."),
        )),
        None => Err(ArmError::invalid_parameter(
            field,
            format!("'{field}.instanceType' is required; use '{want}' for Azure to Azure replication."),
        )),
    }
}

/// PUT a fabric: `customDetails` names the Azure region it stands for; a vault
/// has at most one fabric per region.
pub fn put_fabric(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let name = name_of(req);
    names::check_generic("fabric", &name)?;
    let p = props(req)?;
    let details = instance_type(
        p.get("customDetails").unwrap_or(&Value::Null),
        "properties.customDetails",
        "Azure",
    )?;
    let loc = details
        .get("location")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ArmError::invalid_parameter(
                "properties.customDetails.location",
                "An Azure fabric needs 'customDetails.location', the region whose VMs it holds.",
            )
        })?;
    let region = regions::require(loc, FABRIC_TYPE)?;
    let id = req.path.id();
    ctx.store().write(|tx| {
        let vault = vault_of(tx, req)?;
        let vid = vault.id.clone();
        let existing = match resource::get(tx, &id)? {
            Some(_) => Some(records::fabric(tx, &id, "fabric")?),
            None => None,
        };
        for f in records::fabrics_of(tx, &vid)? {
            let same = f.id.eq_ignore_ascii_case(&id);
            if f.region() == region.name && !same {
                return Err(ArmError::conflict(
                    "FabricAlreadyExists",
                    format!(
                        "The vault already has fabric '{}' for region '{}'; a vault holds one Azure fabric per region. Use that fabric.",
                        f.name, region.name
                    ),
                ));
            }
        }
        if let Some(e) = &existing {
            if e.region() != region.name {
                return Err(ArmError::bad_request(
                    "FabricLocationCannotChange",
                    format!("Fabric '{name}' stands for region '{}'; its location cannot change. Create another fabric for '{}'.", e.region(), region.name),
                ));
            }
        }
        let fabric = existing.unwrap_or_else(|| Fabric {
            id: id.clone(),
            name: name.clone(),
            kind: FABRIC_TYPE.into(),
            location: vault.location.clone(),
            properties: FabricProperties {
                friendly_name: name.clone(),
                internal_identifier: uuid::Uuid::new_v4().to_string(),
                bcdr_state: "Valid".into(),
                health: "Normal".into(),
                health_error_details: Vec::new(),
                encryption_details: json!({"kekState": "None"}),
                rollover_encryption_details: json!({"kekState": "None"}),
                custom_details: FabricDetails {
                    instance_type: "Azure".into(),
                    location: region.name.to_string(),
                    container_ids: Vec::new(),
                    zones: Vec::new(),
                },
            },
        });
        records::save(tx, &fabric)?;
        let doc = records::to_value(&fabric)?;
        jobs::record(tx, &vid, "CreateFabric", "Create fabric", &doc, &["Creating fabric", "Updating fabric"])?;
        crate::finish(ctx, req, tx, Some(doc))
    })
    .map(|op| crate::accepted(ctx, req, &op))
}

/// PUT a protection container in a fabric; A2A containers need no settings.
pub fn put_container(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let name = name_of(req);
    names::check_generic("protection container", &name)?;
    let p = props(req)?;
    if let Some(list) = p.get("providerSpecificInput") {
        let items = list.as_array().ok_or_else(|| {
            ArmError::invalid_parameter("properties.providerSpecificInput", "providerSpecificInput is a list of container settings, e.g. [{\"instanceType\": \"A2A\"}].")
        })?;
        for i in items {
            instance_type(i, "properties.providerSpecificInput", "A2A")?;
        }
    }
    let id = req.path.id();
    let fabric_id = parent_of(&id);
    ctx.store()
        .write(|tx| {
            let vault = vault_of(tx, req)?;
            let vid = vault.id.clone();
            let mut fabric = records::fabric(tx, &fabric_id, "fabric")?;
            let container = match records::container(tx, &id)? {
                Some(c) => c,
                None => ProtectionContainer {
                    id: id.clone(),
                    name: name.clone(),
                    kind: CONTAINER_TYPE.into(),
                    location: vault.location.clone(),
                    properties: ContainerProperties {
                        friendly_name: name.clone(),
                        fabric_friendly_name: fabric.properties.friendly_name.clone(),
                        fabric_type: "Azure".into(),
                        protected_item_count: 0,
                        pairing_status: "NotPaired".into(),
                        role: "Primary".into(),
                        fabric_specific_details: json!({"instanceId": uuid::Uuid::new_v4().to_string()}),
                    },
                },
            };
            let ids = &mut fabric.properties.custom_details.container_ids;
            if !ids.iter().any(|i| i == &container.id) {
                ids.push(container.id.clone());
            }
            records::save(tx, &fabric)?;
            records::save(tx, &container)?;
            let doc = records::to_value(&container)?;
            jobs::record(
                tx,
                &vid,
                "CreateProtectionContainer",
                "Create protection container",
                &doc,
                &["Creating protection container"],
            )?;
            crate::finish(ctx, req, tx, Some(doc))
        })
        .map(|op| crate::accepted(ctx, req, &op))
}

/// PUT a container mapping: the target container must sit in another
/// region's fabric of the same vault, and the policy must exist.
pub fn put_mapping(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let name = name_of(req);
    names::check_generic("protection container mapping", &name)?;
    let p = props(req)?;
    let target_id = p.get("targetProtectionContainerId").and_then(Value::as_str).ok_or_else(|| {
        ArmError::invalid_parameter("properties.targetProtectionContainerId", "A mapping needs 'targetProtectionContainerId', the protection container in the recovery region.")
    })?;
    let policy_id = p.get("policyId").and_then(Value::as_str).ok_or_else(|| {
        ArmError::invalid_parameter(
            "properties.policyId",
            "A mapping needs 'policyId', the replication policy to apply.",
        )
    })?;
    let specific = match p.get("providerSpecificInput") {
        Some(v) => instance_type(v, "properties.providerSpecificInput", "A2A")?.clone(),
        None => json!({"instanceType": "A2A"}),
    };
    let auto_update = specific
        .get("agentAutoUpdateStatus")
        .and_then(Value::as_str)
        .unwrap_or("Disabled");
    if !["Enabled", "Disabled"]
        .iter()
        .any(|s| s.eq_ignore_ascii_case(auto_update))
    {
        return Err(ArmError::invalid_parameter(
            "properties.providerSpecificInput.agentAutoUpdateStatus",
            "agentAutoUpdateStatus is 'Enabled' or 'Disabled'.",
        ));
    }
    let id = req.path.id();
    let source_id = parent_of(&id);
    ctx.store().write(|tx| {
        let vault = vault_of(tx, req)?;
        let vid = vault.id.clone();
        let source = records::container(tx, &source_id)?.ok_or_else(|| records_missing("protection container", &source_id))?;
        let target_doc = found(tx, target_id, "target protection container")?;
        if target_doc["type"] != CONTAINER_TYPE || !in_vault(target_id, &vid) {
            return Err(ArmError::invalid_parameter("properties.targetProtectionContainerId", format!("'{target_id}' is not a protection container of this vault.")));
        }
        let policy = found(tx, policy_id, "replication policy")?;
        if policy["type"] != policies::POLICY_TYPE || !in_vault(policy_id, &vid) {
            return Err(ArmError::invalid_parameter("properties.policyId", format!("'{policy_id}' is not a replication policy of this vault.")));
        }
        let target = records::container(tx, target_id)?.ok_or_else(|| records_missing("target protection container", target_id))?;
        let src_fabric = records::fabric(tx, &parent_of(&source_id), "fabric")?;
        let tgt_fabric = records::fabric(tx, &parent_of(target_id), "fabric")?;
        let (src_loc, tgt_loc) = (src_fabric.region(), tgt_fabric.region());
        if src_loc == tgt_loc {
            return Err(ArmError::bad_request(
                "SameSourceAndTargetRegion",
                format!("The source and target containers are both in region '{src_loc}'. Azure to Azure replication needs a target container in another region."),
            ));
        }
        for m in records::mappings_of(tx, &source_id)? {
            let same = m.id.eq_ignore_ascii_case(&id);
            if !same && m.properties.target_protection_container_id.eq_ignore_ascii_case(target_id) {
                return Err(ArmError::conflict(
                    "ProtectionContainerMappingAlreadyExists",
                    format!("Mapping '{}' already pairs these containers; a container pair has one mapping.", m.name),
                ));
            }
        }
        let mapping = ContainerMapping {
            id: id.clone(),
            name: name.clone(),
            kind: MAPPING_TYPE.into(),
            location: vault.location.clone(),
            properties: MappingProperties {
                target_protection_container_id: target.id.clone(),
                target_protection_container_friendly_name: target.properties.friendly_name.clone(),
                source_protection_container_friendly_name: source.properties.friendly_name.clone(),
                source_fabric_friendly_name: src_fabric.properties.friendly_name.clone(),
                target_fabric_friendly_name: tgt_fabric.properties.friendly_name.clone(),
                policy_id: policy["id"].as_str().unwrap_or(policy_id).to_string(),
                policy_friendly_name: policy["properties"]["friendlyName"].clone(),
                state: "Paired".into(),
                health: "Normal".into(),
                health_error_details: Vec::new(),
                provider_specific_details: json!({
                    "instanceType": "A2A",
                    "agentAutoUpdateStatus": if auto_update.eq_ignore_ascii_case("enabled") { "Enabled" } else { "Disabled" },
                    "automationAccountArmId": specific.get("automationAccountArmId"),
                    "automationAccountAuthenticationType": specific.get("automationAccountAuthenticationType").and_then(Value::as_str).unwrap_or("RunAsAccount"),
                }),
            },
        };
        for mut c in [source, target] {
            c.properties.pairing_status = "Paired".into();
            records::save(tx, &c)?;
        }
        records::save(tx, &mapping)?;
        let doc = records::to_value(&mapping)?;
        jobs::record(tx, &vid, "PairContainers", "Configure protection", &doc, &["Pairing protection containers", "Associating replication policy"])?;
        crate::finish(ctx, req, tx, Some(doc))
    })
    .map(|op| crate::accepted(ctx, req, &op))
}

/// DELETE (or POST …/remove) a fabric, container or mapping. Anything a
/// container mapping still pairs refuses: remove the mappings first.
pub fn delete(ctx: &Ctx, req: &ArmRequest, what: &str) -> Result<Reply, ArmError> {
    let id = req.path.id();
    ctx.store().write(|tx| {
        let vault = vault_of(tx, req)?;
        let vid = vault.id.clone();
        let Some(doc) = resource::get(tx, &id)? else {
            return crate::finish(ctx, req, tx, None);
        };
        if what == "fabric" {
            for c in resource::list_children(tx, &id, "replicationProtectionContainers")? {
                let cid = c["id"].as_str().unwrap_or_default();
                if mappings_touching(tx, &vid, cid, "")? > 0 {
                    return Err(ArmError::conflict(
                        "FabricHasContainerMappings",
                        format!("Protection container '{}' of this fabric still has container mappings. Delete the mappings first.", c["name"].as_str().unwrap_or_default()),
                    ));
                }
            }
        } else if what == "container" {
            if crate::protected_items::uses(tx, &vid, &id)? || mappings_touching(tx, &vid, &id, "")? > 0 {
                return Err(ArmError::conflict(
                    "ProtectionContainerHasMappings",
                    format!("Protection container '{}' is still paired by a container mapping. Delete the mapping first.", doc["name"].as_str().unwrap_or_default()),
                ));
            }
            let fabric_id = parent_of(&id);
            if resource::get(tx, &fabric_id)?.is_some() {
                let mut f = records::fabric(tx, &fabric_id, "fabric")?;
                f.properties.custom_details.container_ids.retain(|i| !i.eq_ignore_ascii_case(&id));
                records::save(tx, &f)?;
            }
        } else {
            let source_id = parent_of(&id);
            if crate::protected_items::uses(tx, &vid, &source_id)? {
                return Err(ArmError::conflict(
                    "ProtectedItemsExist",
                    "VMs protected through this container still replicate under the mapping. Disable their replication first.",
                ));
            }
            for cid in [source_id.as_str(), doc["properties"]["targetProtectionContainerId"].as_str().unwrap_or_default()] {
                let remaining = mappings_touching(tx, &vid, cid, &id)?;
                if let (0, Some(mut c)) = (remaining, records::container(tx, cid)?) {
                    c.properties.pairing_status = "NotPaired".into();
                    records::save(tx, &c)?;
                }
            }
        }
        resource::delete_tree(tx, &id)?;
        let (scenario, friendly) = match what {
            "fabric" => ("DeleteFabric", "Delete fabric"),
            "container" => ("RemoveProtectionContainer", "Remove protection container"),
            _ => ("UnpairContainers", "Remove protection container mapping"),
        };
        jobs::record(tx, &vid, scenario, friendly, &doc, &["Removing"])?;
        crate::finish(ctx, req, tx, None)
    })
    .map(|op| crate::accepted(ctx, req, &op))
}

/// Mappings other than `except` whose source or target is container `cid`.
fn mappings_touching(
    r: &impl Reader,
    vault_id: &str,
    cid: &str,
    except: &str,
) -> Result<usize, ArmError> {
    Ok(records::mappings_in(r, vault_id)?
        .iter()
        .filter(|m| !m.id.eq_ignore_ascii_case(except))
        .filter(|m| {
            parent_of(&m.id).eq_ignore_ascii_case(cid)
                || m.properties
                    .target_protection_container_id
                    .eq_ignore_ascii_case(cid)
        })
        .count())
}

fn records_missing(what: &str, id: &str) -> ArmError {
    ArmError::new(
        404,
        "NotFound",
        format!("The {what} '{id}' was not found in the vault. Create it first."),
    )
}

pub fn found(r: &impl Reader, id: &str, what: &str) -> Result<Value, ArmError> {
    resource::get(r, id)?.ok_or_else(|| {
        ArmError::new(
            404,
            "NotFound",
            format!("The {what} '{id}' was not found in the vault. Create it first."),
        )
    })
}

fn in_vault(id: &str, vault_id: &str) -> bool {
    id.to_ascii_lowercase()
        .starts_with(&format!("{}/", vault_id.to_ascii_lowercase()))
}

/// The id one `type/name` level up.
pub fn parent_of(id: &str) -> String {
    let parts: Vec<&str> = id.trim_end_matches('/').split('/').collect();
    parts[..parts.len().saturating_sub(2)].join("/")
}
