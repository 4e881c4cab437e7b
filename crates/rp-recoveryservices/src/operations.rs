//! The vault's own operation endpoints (`vaults/{v}/operationStatus/{id}`
//! and `vaults/{v}/operationResults/{id}`) and the Recovery Services
//! capabilities query (`locations/{l}/capabilities`).

use serde::Deserialize;
use serde_json::json;

use recoverite_arm::lro::{self, OperationRecord};
use recoverite_arm::{id, regions, ArmError, ArmRequest, Ctx, Reply};

use crate::target::VAULT_TYPE;

fn op_not_found(op_id: &str) -> ArmError {
    ArmError::new(
        404,
        "OperationNotFound",
        format!("The operation '{op_id}' was not found; operation ids come from the Azure-AsyncOperation or Location header of an accepted request."),
    )
}

/// Answers an operation record: its status document, or (for results) what
/// its `Location` poll answers. With `scope`, the record must be one of that
/// resource's operations. Only its starter or a reader of its resource sees it.
pub fn serve_record(
    ctx: &Ctx,
    req: &ArmRequest,
    op_id: &str,
    scope: Option<&str>,
    status: bool,
) -> Result<Reply, ArmError> {
    let rec: OperationRecord = ctx
        .store()
        .view(|r| lro::load(r, op_id))?
        .ok_or_else(|| op_not_found(op_id))?;
    if scope.is_some_and(|s| id::key(s) != id::key(&rec.scope)) {
        return Err(op_not_found(op_id));
    }
    if rec.started_by != ctx.caller.object_id
        && !ctx.is_allowed("Microsoft.RecoveryServices/vaults/read", &rec.scope)?
    {
        return Err(op_not_found(op_id));
    }
    if status {
        return Ok(lro::status_reply(ctx, &rec, &req.path.id()));
    }
    lro::result_reply(
        ctx,
        &rec,
        &format!(
            "{}{}?api-version={}",
            ctx.base_url, req.raw_path, req.api_version
        ),
    )
}

/// `vaults/{v}/operationStatus/{id}` and `…/operationResults/{id}`.
pub fn vault_operation(ctx: &Ctx, req: &ArmRequest, status: bool) -> Result<Reply, ArmError> {
    let p = req.provider_part()?;
    let op_id = p.names.get(1).cloned().unwrap_or_default();
    serve_record(
        ctx,
        req,
        &op_id,
        Some(&req.path.prefix(p.scope_len + 4)),
        status,
    )
}

/// The body of `capabilities`.
#[derive(Deserialize)]
struct CapabilitiesBody {
    #[serde(rename = "type")]
    kind: String,
    properties: Option<CapabilitiesProperties>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CapabilitiesProperties {
    dns_zones: Option<Vec<DnsZone>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DnsZone {
    sub_resource: String,
}

/// The sub-resources `capabilities` answers for, as the API names them.
const SUB_RESOURCES: &[&str] = &["AzureBackup", "AzureBackup_secondary", "AzureSiteRecovery"];

/// POST `locations/{l}/capabilities`: for each requested private-link
/// sub-resource of a vault in that region, the private DNS zones its
/// endpoints need (the same names a vault's private link resources list).
pub fn capabilities(req: &ArmRequest) -> Result<Reply, ArmError> {
    let p = req.provider_part()?;
    let loc = regions::require(
        p.names.first().map(String::as_str).unwrap_or(""),
        VAULT_TYPE,
    )?
    .name
    .to_string();
    let body: CapabilitiesBody = req.body_as()?;
    if !body.kind.eq_ignore_ascii_case(VAULT_TYPE) {
        return Err(ArmError::invalid_parameter(
            "type",
            format!(
                "Capabilities are answered for '{VAULT_TYPE}', not '{}'.",
                body.kind
            ),
        ));
    }
    let asked: Vec<String> = match body.properties.and_then(|p| p.dns_zones) {
        Some(zones) => zones.into_iter().map(|z| z.sub_resource).collect(),
        None => SUB_RESOURCES.iter().map(|s| s.to_string()).collect(),
    };
    let groups = crate::target::groups_in(&loc);
    let mut zones = Vec::new();
    for s in &asked {
        let g = groups
            .iter()
            .find(|g| g.group_id.eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                ArmError::invalid_parameter(
                    "properties.dnsZones.subResource",
                    format!(
                        "'{s}' is not a vault sub-resource; use {}.",
                        SUB_RESOURCES.join(", ")
                    ),
                )
            })?;
        zones.push(json!({"subResource": g.group_id, "requiredZoneNames": g.required_zone_names}));
    }
    Ok(Reply::ok(
        json!({"type": VAULT_TYPE, "properties": {"dnsZones": zones}}),
    ))
}
