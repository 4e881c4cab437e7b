//! Resource-provider registration: `GET/POST {S}/providers/{ns}[/register]`.

use serde_json::{json, Value};

use recoverite_arm::registration::{self, Registration, NOT_REGISTERED, REGISTERED};
use recoverite_arm::{paging, regions, time, ArmError, ArmRequest, Ctx, ProviderInfo, Reply};
use recoverite_store::{Reader, WriteTx};

fn find<'a>(ctx: &'a Ctx, ns: &str) -> Result<&'a ProviderInfo, ArmError> {
    ctx.platform
        .catalog
        .iter()
        .find(|p| p.namespace.eq_ignore_ascii_case(ns))
        .ok_or_else(|| {
            ArmError::new(
                404,
                "NamespaceNotFound",
                format!("The resource namespace '{ns}' is not one recoverite serves; see GET /subscriptions/{{id}}/providers for the list."),
            )
        })
}

fn state(r: &impl Reader, sub: &str, info: &ProviderInfo) -> Result<String, ArmError> {
    if !info.requires_registration {
        return Ok(REGISTERED.to_string());
    }
    Ok(registration::get(r, sub, info.namespace)?
        .map(|r| r.state)
        .unwrap_or_else(|| NOT_REGISTERED.to_string()))
}

fn provider_doc(sub: &str, info: &ProviderInfo, state: &str) -> Value {
    let all_locations: Vec<&str> = regions::REGIONS.iter().map(|r| r.display_name).collect();
    let types: Vec<Value> = info
        .resource_types
        .iter()
        .map(|t| {
            json!({
                "resourceType": t.name,
                "locations": if t.global { vec!["global"] } else { all_locations.clone() },
                "apiVersions": t.api_versions.iter().rev().collect::<Vec<_>>(),
                "defaultApiVersion": t.api_versions.last(),
                "capabilities": "None",
            })
        })
        .collect();
    json!({
        "id": format!("/subscriptions/{sub}/providers/{}", info.namespace),
        "namespace": info.namespace,
        "registrationState": state,
        "registrationPolicy": if info.requires_registration { "RegistrationRequired" } else { "RegistrationFree" },
        "resourceTypes": types,
    })
}

pub fn list(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let sub = req.path.subscription.clone().unwrap_or_default();
    let items = ctx.store().read(|r| {
        Ok(ctx
            .platform
            .catalog
            .iter()
            .map(|info| state(r, &sub, info).map(|s| provider_doc(&sub, info, &s)))
            .collect::<Result<Vec<_>, ArmError>>())
    })??;
    Ok(Reply::ok(paging::page(ctx, req, items)?))
}

pub fn get(ctx: &Ctx, req: &ArmRequest, ns: &str) -> Result<Reply, ArmError> {
    let sub = req.path.subscription.clone().unwrap_or_default();
    let info = find(ctx, ns)?;
    let s = ctx.store().read(|r| Ok(state(r, &sub, info)))??;
    Ok(Reply::ok(provider_doc(&sub, info, &s)))
}

pub fn register(ctx: &Ctx, req: &ArmRequest, ns: &str, on: bool) -> Result<Reply, ArmError> {
    let sub = req.path.subscription.clone().unwrap_or_default();
    let info = find(ctx, ns)?;
    if !info.requires_registration {
        return Ok(Reply::ok(provider_doc(&sub, info, REGISTERED)));
    }
    let reg = Registration {
        state: if on { REGISTERED } else { NOT_REGISTERED }.to_string(),
        registered_at: on.then(time::now_string),
    };
    ctx.store()
        .write(|tx| registration::set(tx, &sub, info.namespace, &reg))?;
    Ok(Reply::ok(provider_doc(&sub, info, &reg.state)))
}

/// Registers every namespace that needs it (a new subscription's defaults).
pub fn register_all(
    tx: &mut WriteTx,
    subscription: &str,
    catalog: &[ProviderInfo],
) -> Result<(), ArmError> {
    let now = time::now_string();
    for info in catalog.iter().filter(|i| i.requires_registration) {
        registration::set(
            tx,
            subscription,
            info.namespace,
            &Registration {
                state: REGISTERED.into(),
                registered_at: Some(now.clone()),
            },
        )?;
    }
    Ok(())
}
