//! Private endpoint connections of a vault: get, approve or reject, delete.

use serde_json::json;

use recoverite_arm::lro::{self, OperationRecord};
use recoverite_arm::{paging, ArmError, ArmRequest, Ctx, Reply};
use recoverite_privatelink::{self as pl, Status};

use crate::vault::{connection_json, vault_of};

fn name(req: &ArmRequest) -> String {
    req.path
        .provider
        .as_ref()
        .map(|p| p.names.get(1).cloned().unwrap_or_default())
        .unwrap_or_default()
}

fn not_found(vault: &recoverite_rs_core::vault_record::Vault, name: &str) -> ArmError {
    ArmError::new(
        404,
        "PrivateEndpointConnectionNotFound",
        format!(
            "Private endpoint connection '{name}' was not found on vault {}.",
            &vault.name
        ),
    )
}

pub fn get(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let n = name(req);
    ctx.store().view(|r| {
        let v = vault_of(r, req)?;
        let c = pl::by_name(r, &v.id, &n)?.ok_or_else(|| not_found(&v, &n))?;
        Ok(Reply::ok(connection_json(&v, &c)))
    })
}

pub fn list(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let items = ctx.store().view(|r| {
        let v = vault_of(r, req)?;
        Ok::<_, ArmError>(
            pl::of_target(r, &v.id)?
                .iter()
                .map(|c| connection_json(&v, c))
                .collect::<Vec<_>>(),
        )
    })?;
    Ok(Reply::ok(paging::page(ctx, req, items)?))
}

fn status_url(ctx: &Ctx, req: &ArmRequest, op: &OperationRecord) -> String {
    format!(
        "{}{}/operationsStatus/{}?api-version={}",
        ctx.base_url,
        req.path.id(),
        op.id,
        req.api_version
    )
}

/// PUT: approve or reject (the owner's decision).
pub fn put(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let n = name(req);
    let body = req.body.clone().unwrap_or(json!({}));
    let decision = pl::requested_decision(&body)?;
    let (doc, op) = ctx.store().write(|tx| {
        let v = vault_of(tx, req)?;
        let vid = v.id.clone();
        let mut c = pl::by_name(tx, &vid, &n)?.ok_or_else(|| not_found(&v, &n))?;
        decision.apply(&mut c)?;
        pl::save(tx, &c)?;
        let doc = connection_json(&v, &c);
        let op = OperationRecord::new(ctx, "Microsoft.RecoveryServices", &c.id())
            .succeed(Some(doc.clone()));
        op.save(tx)?;
        Ok::<_, ArmError>((doc, op))
    })?;
    Ok(lro::with_retry_after(
        ctx,
        Reply::created(doc).header("Azure-AsyncOperation", status_url(ctx, req, &op)),
    ))
}

/// DELETE: the endpoint stays, its connection becomes Disconnected.
pub fn delete(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let n = name(req);
    let found = ctx.store().write(|tx| {
        let v = vault_of(tx, req)?;
        let vid = v.id.clone();
        let Some(mut c) = pl::by_name(tx, &vid, &n)? else {
            return Ok::<_, ArmError>(None);
        };
        c.status = Status::Disconnected;
        c.description = "The vault owner removed this connection.".into();
        pl::save(tx, &c)?;
        let op = OperationRecord::new(ctx, "Microsoft.RecoveryServices", &c.id()).succeed(None);
        op.save(tx)?;
        Ok(Some((op, v.location.clone())))
    })?;
    let Some((op, loc)) = found else {
        return Ok(Reply::empty(204));
    };
    let sub = req.path.subscription.clone().unwrap_or_default();
    Ok(lro::with_retry_after(
        ctx,
        Reply::empty(202).header(
            "Location",
            lro::result_url(ctx, &sub, &loc, &op, &req.api_version),
        ),
    ))
}

/// GET …/privateEndpointConnections/{name}/operationsStatus/{id}
pub fn operation_status(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let op_id = req.resource_name().to_string();
    let rec = ctx.store().view(|r| lro::load(r, &op_id))?;
    let rec = rec.ok_or_else(|| {
        ArmError::new(
            404,
            "OperationNotFound",
            format!("Operation {op_id} was not found."),
        )
    })?;
    Ok(lro::status_reply(ctx, &rec, &req.path.id()))
}
