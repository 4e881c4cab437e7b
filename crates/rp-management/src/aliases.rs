//! `Microsoft.Subscription`: subscription aliases (how subscriptions are
//! created programmatically) and renaming a subscription.

use http::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use recoverite_arm::router::authorization_failed;
use recoverite_arm::tenancy;
use recoverite_arm::{
    paging, time, ArmError, ArmRequest, Ctx, Operation, ProviderInfo, Reply, RouteTable,
};
use recoverite_store::{Reader, Table};

pub const NAMESPACE: &str = "Microsoft.Subscription";

recoverite_arm::api_versions!("../subscription-api-versions.txt", ["aliases", "rename"]);

pub const ALIAS_TYPE: &str = "Microsoft.Subscription/aliases";
const ALIASES: Table = Table("subscription_aliases");

/// Who may create subscriptions: a billing-account owner (the bootstrap
/// principal) or anyone allowed this action at the tenant root group.
pub const CREATE_ACTION: &str = "Microsoft.Subscription/aliases/write";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Alias {
    name: String,
    subscription_id: String,
    workload: String,
    billing_scope: Option<String>,
    created_time: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AliasBody {
    #[serde(default)]
    properties: AliasProps,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AliasProps {
    display_name: Option<String>,
    workload: Option<String>,
    billing_scope: Option<String>,
    subscription_id: Option<String>,
    #[serde(default)]
    additional_properties: AdditionalProps,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AdditionalProps {
    management_group_id: Option<String>,
    subscription_owner_id: Option<String>,
}

pub struct SubscriptionProvider;

pub enum Route {
    Aliases,
    Alias(String),
    Rename,
}

fn route(req: &ArmRequest) -> Result<Route, ArmError> {
    let p = req.provider_part()?;
    let t = req.types_lower()?;
    let t: Vec<&str> = t.iter().map(String::as_str).collect();
    match (t.as_slice(), req.path.subscription.is_some()) {
        (["aliases"], false) if p.is_resource() => Ok(Route::Alias(p.names[0].clone())),
        (["aliases"], false) => Ok(Route::Aliases),
        (["rename"], true) => Ok(Route::Rename),
        _ => Err(ArmError::bad_request(
            "InvalidResourceType",
            format!(
                "recoverite does not implement '{}' of Microsoft.Subscription; it serves aliases and rename.",
                p.type_path()
            ),
        )),
    }
}

impl RouteTable for SubscriptionProvider {
    type Route = Route;

    fn info(&self) -> ProviderInfo {
        ProviderInfo::new(
            NAMESPACE,
            &["aliases", "rename"],
            API.versions("aliases"),
            true,
            false,
        )
    }

    fn parse(&self, req: &ArmRequest) -> Result<Route, ArmError> {
        route(req)
    }

    fn operation(&self, req: &ArmRequest, r: &Route) -> Result<Operation, ArmError> {
        let op = |action: &str, scope: String, public: bool| Operation {
            action: action.to_string(),
            scope,
            list: false,
            api_versions: API.versions("aliases"),
            resource_type: ALIAS_TYPE.to_string(),
            public,
        };
        Ok(match r {
            // Decided by the handlers: billing ownership is not a role.
            Route::Aliases | Route::Alias(_) => op(CREATE_ACTION, "/".into(), true),
            Route::Rename => op(
                "Microsoft.Subscription/rename/action",
                format!(
                    "/subscriptions/{}",
                    req.path.subscription.clone().unwrap_or_default()
                ),
                false,
            ),
        })
    }

    fn serve(&self, ctx: &Ctx, req: &ArmRequest, r: Route) -> Result<Reply, ArmError> {
        match (r, req.method.clone()) {
            (Route::Alias(name), Method::PUT) => put(ctx, req, &name),
            (Route::Alias(name), Method::GET) => get(ctx, &name),
            (Route::Alias(name), Method::DELETE) => delete(ctx, &name),
            (Route::Aliases, Method::GET) => list(ctx, req),
            (Route::Rename, Method::POST) => rename(ctx, req),
            (_, m) => Err(ArmError::method_not_allowed(m.as_str())),
        }
    }
}

fn alias_key(name: &str) -> String {
    name.to_ascii_lowercase()
}

/// Whether the caller may create subscriptions in this tenant.
pub fn may_create(ctx: &Ctx) -> Result<bool, ArmError> {
    let tenant = ctx.store().read(|r| Ok(tenancy::tenant(r)))??;
    if tenant.is_some_and(|t| {
        t.billing_owners
            .iter()
            .any(|o| o.eq_ignore_ascii_case(&ctx.caller.object_id))
    }) {
        return Ok(true);
    }
    ctx.is_allowed(CREATE_ACTION, &tenancy::group_id(&ctx.env().tenant_id))
}

fn not_found(name: &str) -> ArmError {
    ArmError::new(
        404,
        "ResourceNotFound",
        format!("The subscription alias '{name}' was not found."),
    )
}

fn render(ctx: &Ctx, r: &impl Reader, a: &Alias) -> Result<Value, ArmError> {
    let sub = tenancy::subscription(r, &a.subscription_id)?;
    let group = sub.as_ref().map(|s| {
        tenancy::group_id(
            s.management_group
                .as_deref()
                .unwrap_or(&ctx.env().tenant_id),
        )
    });
    Ok(json!({
        "id": format!("/providers/{ALIAS_TYPE}/{}", a.name),
        "name": a.name,
        "type": ALIAS_TYPE,
        "properties": {
            "subscriptionId": a.subscription_id,
            "displayName": sub.as_ref().map(|s| s.display_name.clone()),
            "provisioningState": "Succeeded",
            "acceptOwnershipState": "Completed",
            "billingScope": a.billing_scope,
            "workload": a.workload,
            "managementGroupId": group,
            "createdTime": a.created_time,
        }
    }))
}

fn put(ctx: &Ctx, req: &ArmRequest, name: &str) -> Result<Reply, ArmError> {
    if name.is_empty() || name.len() > 64 || name.contains(['/', '\\', '?', '#']) {
        return Err(ArmError::bad_request(
            "InvalidAliasName",
            format!("The alias name '{name}' is invalid; use up to 64 characters without '/', '\\', '?' or '#'."),
        ));
    }
    let body: AliasBody = req.body_as()?;
    let p = body.properties;
    let workload = p.workload.clone().unwrap_or_else(|| "Production".into());
    if !["production", "devtest"].contains(&workload.to_ascii_lowercase().as_str()) {
        return Err(ArmError::bad_request(
            "InvalidWorkload",
            format!("The workload '{workload}' is invalid; use Production or DevTest."),
        ));
    }
    let group = p
        .additional_properties
        .management_group_id
        .as_deref()
        .map(crate::group_name_of_id)
        .transpose()?;
    let existing = ctx
        .store()
        .read(|r| Ok(r.get_json::<Alias>(ALIASES, &alias_key(name))))??;
    if let Some(a) = existing {
        // Re-sending an alias is how clients poll and retry: it names the
        // subscription it made the first time.
        let doc = ctx.store().view(|r| render(ctx, r, &a))?;
        return Ok(Reply::ok(doc));
    }
    let caller = ctx.caller.object_id.clone();
    let create_new = p.subscription_id.is_none();
    if create_new && !may_create(ctx)? {
        return Err(authorization_failed(
            &caller,
            CREATE_ACTION,
            &format!("/providers/{ALIAS_TYPE}/{name}"),
        ));
    }
    if let Some(sid) = &p.subscription_id {
        // An alias for a subscription that already exists: the caller must own it.
        let scope = format!("/subscriptions/{sid}");
        if !ctx.is_allowed("Microsoft.Authorization/roleAssignments/write", &scope)? {
            return Err(authorization_failed(&caller, CREATE_ACTION, &scope));
        }
    }
    if let Some(g) = &group {
        if !g.eq_ignore_ascii_case(&ctx.env().tenant_id)
            && !ctx.is_allowed(
                "Microsoft.Management/managementGroups/subscriptions/write",
                &tenancy::group_id(g),
            )?
        {
            return Err(authorization_failed(
                &caller,
                "Microsoft.Management/managementGroups/subscriptions/write",
                &tenancy::group_id(g),
            ));
        }
    }
    let catalog = ctx.platform.catalog.clone();
    let doc = ctx.store().write(|tx| {
        let sub_id = match &p.subscription_id {
            Some(sid) => {
                tenancy::subscription(tx, sid)?
                    .ok_or_else(|| {
                        ArmError::new(
                            404,
                            "SubscriptionNotFound",
                            format!("The subscription '{sid}' could not be found."),
                        )
                    })?
                    .subscription_id
            }
            None => {
                let display = p.display_name.clone().ok_or_else(|| {
                    ArmError::bad_request(
                        "InvalidDisplayName",
                        "properties.displayName is required to create a subscription.",
                    )
                })?;
                let s = crate::create_subscription(
                    tx,
                    &display,
                    &caller,
                    group.as_deref(),
                    Some(&catalog),
                )?;
                if let Some(owner) = &p.additional_properties.subscription_owner_id {
                    if !owner.eq_ignore_ascii_case(&caller) {
                        recoverite_identity::authorization_provider::assign(
                            tx,
                            "Owner",
                            owner,
                            &format!("/subscriptions/{}", s.subscription_id),
                            &caller,
                        )?;
                    }
                }
                ctx.platform.subscription_created(tx, &s.subscription_id)?;
                s.subscription_id
            }
        };
        let a = Alias {
            name: name.to_string(),
            subscription_id: sub_id,
            workload: workload.clone(),
            billing_scope: p.billing_scope.clone(),
            created_time: time::now_string(),
        };
        tx.put_json(ALIASES, &alias_key(name), &a)?;
        render(ctx, tx, &a)
    })?;
    if create_new {
        ctx.platform.subscriptions_changed();
    }
    Ok(Reply::created(doc))
}

/// Aliases are visible to whoever may create them, and to those with a role
/// in the subscription they name.
fn visible(ctx: &Ctx, a: &Alias) -> Result<bool, ArmError> {
    Ok(may_create(ctx)?
        || ctx.platform.authz.has_any_access(
            &ctx.caller,
            &format!("/subscriptions/{}", a.subscription_id),
        )?)
}

fn get(ctx: &Ctx, name: &str) -> Result<Reply, ArmError> {
    let a = ctx
        .store()
        .read(|r| Ok(r.get_json::<Alias>(ALIASES, &alias_key(name))))??
        .ok_or_else(|| not_found(name))?;
    if !visible(ctx, &a)? {
        return Err(not_found(name));
    }
    Ok(Reply::ok(ctx.store().view(|r| render(ctx, r, &a))?))
}

fn list(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let all = ctx
        .store()
        .read(|r| Ok(r.scan_json::<Alias>(ALIASES, "")))??;
    let mut items = Vec::new();
    for (_, a) in all {
        if visible(ctx, &a)? {
            items.push(ctx.store().view(|r| render(ctx, r, &a))?);
        }
    }
    Ok(Reply::ok(paging::page(ctx, req, items)?))
}

/// Deleting an alias forgets the name; the subscription stays, as in Azure.
fn delete(ctx: &Ctx, name: &str) -> Result<Reply, ArmError> {
    let a = ctx
        .store()
        .read(|r| Ok(r.get_json::<Alias>(ALIASES, &alias_key(name))))??;
    match a {
        None => Ok(Reply::empty(204)),
        Some(a) => {
            if !may_create(ctx)? {
                return Err(authorization_failed(
                    &ctx.caller.object_id,
                    "Microsoft.Subscription/aliases/delete",
                    &format!("/providers/{ALIAS_TYPE}/{}", a.name),
                ));
            }
            ctx.store().write(|tx| {
                tx.delete(ALIASES, &alias_key(name))?;
                Ok::<_, ArmError>(())
            })?;
            Ok(Reply::empty(200))
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RenameBody {
    subscription_name: String,
}

fn rename(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let body: RenameBody = req.body_as()?;
    tenancy::check_display_name(&body.subscription_name)?;
    let sid = req.path.subscription.clone().unwrap_or_default();
    let s = ctx.store().write(|tx| {
        let mut s = tenancy::subscription(tx, &sid)?.ok_or_else(|| {
            ArmError::new(
                404,
                "SubscriptionNotFound",
                format!("The subscription '{sid}' could not be found."),
            )
        })?;
        s.display_name = body.subscription_name.clone();
        tenancy::save_subscription(tx, &s)?;
        Ok::<_, ArmError>(s)
    })?;
    ctx.platform.subscriptions_changed();
    Ok(Reply::ok(json!({ "subscriptionId": s.subscription_id })))
}
