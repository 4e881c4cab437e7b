//! Tenants, subscriptions and locations.

use serde_json::{json, Value};

use recoverite_arm::router::authorization_failed;
use recoverite_arm::tenancy::{self, Subscription};
use recoverite_arm::{paging, regions, ArmError, ArmRequest, Ctx, Reply};

fn subscription_doc(ctx: &Ctx, s: &Subscription) -> Value {
    let sub = &s.subscription_id;
    json!({
        "id": format!("/subscriptions/{sub}"),
        "subscriptionId": sub,
        "tenantId": ctx.env().tenant_id,
        "displayName": s.display_name,
        "state": s.state,
        "subscriptionPolicies": {
            "locationPlacementId": "Public_2014-09-01",
            "quotaId": "PayAsYouGo_2014-09-01",
            "spendingLimit": "Off"
        },
        "authorizationSource": "RoleBased",
        "managedByTenants": [],
        "tags": {}
    })
}

pub fn tenants(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let t = &ctx.env().tenant_id;
    let items = vec![json!({
        "id": format!("/tenants/{t}"),
        "tenantId": t,
        "tenantCategory": "Home",
        "country": "US",
        "countryCode": "US",
        "displayName": "recoverite",
        "domains": ["recoverite.local"],
        "defaultDomain": "recoverite.local",
        "tenantType": "AAD"
    })];
    Ok(Reply::ok(paging::page(ctx, req, items)?))
}

pub fn list(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let mut items = Vec::new();
    for s in ctx.store().view(tenancy::subscriptions)? {
        // Each caller sees the subscriptions it holds any role in (management
        // groups above them included), as Azure lists them.
        if ctx.platform.authz.has_any_access(
            &ctx.caller,
            &format!("/subscriptions/{}", s.subscription_id),
        )? {
            items.push(subscription_doc(ctx, &s));
        }
    }
    Ok(Reply::ok(paging::page(ctx, req, items)?))
}

fn require_access(ctx: &Ctx, sub: &str) -> Result<(), ArmError> {
    let scope = format!("/subscriptions/{sub}");
    if ctx.platform.authz.has_any_access(&ctx.caller, &scope)? {
        Ok(())
    } else {
        Err(authorization_failed(
            &ctx.caller.object_id,
            "Microsoft.Resources/subscriptions/read",
            &scope,
        ))
    }
}

pub fn get(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let sub = req.path.subscription.clone().unwrap_or_default();
    require_access(ctx, &sub)?;
    let s = ctx
        .store()
        .view(|r| tenancy::subscription(r, &sub))?
        .ok_or_else(|| {
            ArmError::new(
                404,
                "SubscriptionNotFound",
                format!("The subscription '{sub}' could not be found."),
            )
        })?;
    Ok(Reply::ok(subscription_doc(ctx, &s)))
}

pub fn locations(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let sub = req.path.subscription.clone().unwrap_or_default();
    require_access(ctx, &sub)?;
    let items: Vec<Value> = regions::REGIONS
        .iter()
        .map(|r| {
            let paired: Vec<Value> = r
                .paired
                .iter()
                .map(|p| json!({"name": p, "id": format!("/subscriptions/{sub}/locations/{p}")}))
                .collect();
            json!({
                "id": format!("/subscriptions/{sub}/locations/{}", r.name),
                "name": r.name,
                "type": "Region",
                "displayName": r.display_name,
                "regionalDisplayName": format!("({}) {}", r.geography, r.display_name),
                "metadata": {
                    "regionType": "Physical",
                    "regionCategory": "Recommended",
                    "geographyGroup": r.geography,
                    "pairedRegion": paired,
                }
            })
        })
        .collect();
    // The locations list is not paged in ARM.
    let _ = req;
    Ok(Reply::ok(json!({ "value": items })))
}
