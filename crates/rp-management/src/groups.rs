//! `Microsoft.Management`: the management-group tree under the tenant root
//! group, and which group each subscription sits in.
//!
//! Who may do what, as Azure documents it:
//! - anyone may create a group directly under the root group (the default
//!   hierarchy setting); below another group it takes write on that parent.
//!   The creator becomes Owner of the new group;
//! - reading a group takes any role at, above or below it ("everyone who is
//!   given access to a subscription is given access to the context of where
//!   that subscription is in the hierarchy");
//! - moving a subscription takes write on the target group, write on the
//!   group it leaves (unless that is the root), and ownership of the
//!   subscription.

use http::Method;
use serde::Deserialize;
use serde_json::{json, Value};

use recoverite_arm::router::authorization_failed;
use recoverite_arm::tenancy::{self, ManagementGroup, TenancyError, MG_TYPE};
use recoverite_arm::{
    paging, resource, time, ArmError, ArmRequest, Ctx, Operation, ProviderInfo, Reply, RouteTable,
};
use recoverite_identity::authorization_provider::assign;
use recoverite_store::Reader;

pub const NAMESPACE: &str = tenancy::MG_NAMESPACE;

recoverite_arm::api_versions!(
    "../api-versions.txt",
    ["managementGroups", "checkNameAvailability"]
);

const WRITE: &str = "Microsoft.Management/managementGroups/write";
const DELETE: &str = "Microsoft.Management/managementGroups/delete";
const SUB_WRITE: &str = "Microsoft.Management/managementGroups/subscriptions/write";
const SUB_DELETE: &str = "Microsoft.Management/managementGroups/subscriptions/delete";
/// Ownership of a subscription, as the move checks it.
const OWNER_ACTION: &str = "Microsoft.Authorization/roleAssignments/write";
const SUB_CHILD_TYPE: &str = "Microsoft.Management/managementGroups/subscriptions";

pub struct ManagementProvider;

pub enum Route {
    Groups,
    Group(String),
    Descendants(String),
    Subscriptions(String),
    Subscription(String, String),
    CheckName,
}

fn route(req: &ArmRequest) -> Result<Route, ArmError> {
    let p = req.provider_part()?;
    let t = req.types_lower()?;
    let t: Vec<&str> = t.iter().map(String::as_str).collect();
    let n = &p.names;
    Ok(match t.as_slice() {
        ["managementgroups"] if n.is_empty() => Route::Groups,
        ["managementgroups"] => Route::Group(n[0].clone()),
        ["managementgroups", "descendants"] => Route::Descendants(n[0].clone()),
        ["managementgroups", "subscriptions"] if n.len() == 1 => Route::Subscriptions(n[0].clone()),
        ["managementgroups", "subscriptions"] => Route::Subscription(n[0].clone(), n[1].clone()),
        ["checknameavailability"] => Route::CheckName,
        _ => {
            return Err(ArmError::bad_request(
                "InvalidResourceType",
                format!(
                    "recoverite does not implement '{}' of Microsoft.Management; it serves management groups, their subscriptions and descendants.",
                    p.type_path()
                ),
            ))
        }
    })
}

impl RouteTable for ManagementProvider {
    type Route = Route;

    fn info(&self) -> ProviderInfo {
        ProviderInfo::new(
            NAMESPACE,
            &[
                "managementGroups",
                "managementGroups/subscriptions",
                "managementGroups/descendants",
                "checkNameAvailability",
            ],
            API.versions("managementGroups"),
            true,
            false,
        )
    }

    fn parse(&self, req: &ArmRequest) -> Result<Route, ArmError> {
        route(req)
    }

    /// Every route is decided in its handler, which knows whether a group
    /// exists yet and which parent it is under.
    fn operation(&self, _: &ArmRequest, _: &Route) -> Result<Operation, ArmError> {
        Ok(Operation {
            action: format!("{NAMESPACE}/managementGroups/read"),
            scope: "/".into(),
            list: false,
            api_versions: API.versions("managementGroups"),
            resource_type: MG_TYPE.to_string(),
            public: true,
        })
    }

    fn serve(&self, ctx: &Ctx, req: &ArmRequest, r: Route) -> Result<Reply, ArmError> {
        match (r, req.method.clone()) {
            (Route::Groups, Method::GET) => list(ctx, req),
            (Route::Group(g), Method::GET) => get(ctx, req, &g),
            (Route::Group(g), Method::PUT) => put(ctx, req, &g, false),
            (Route::Group(g), Method::PATCH) => put(ctx, req, &g, true),
            (Route::Group(g), Method::DELETE) => delete(ctx, &g),
            (Route::Descendants(g), Method::GET) => descendants(ctx, req, &g),
            (Route::Subscriptions(g), Method::GET) => list_subscriptions(ctx, req, &g),
            (Route::Subscription(g, s), Method::GET) => get_subscription(ctx, &g, &s),
            (Route::Subscription(g, s), Method::PUT) => move_subscription(ctx, &g, &s, true),
            (Route::Subscription(g, s), Method::DELETE) => move_subscription(ctx, &g, &s, false),
            (Route::CheckName, Method::POST) => check_name(ctx, req),
            (_, m) => Err(ArmError::method_not_allowed(m.as_str())),
        }
    }
}

fn root(ctx: &Ctx) -> String {
    ctx.env().tenant_id.clone()
}

fn is_root(ctx: &Ctx, g: &str) -> bool {
    g.eq_ignore_ascii_case(&root(ctx))
}

fn require(ctx: &Ctx, action: &str, scope: &str) -> Result<(), ArmError> {
    if ctx.is_allowed(action, scope)? {
        Ok(())
    } else {
        Err(authorization_failed(&ctx.caller.object_id, action, scope))
    }
}

fn can_read(ctx: &Ctx, g: &str) -> Result<bool, ArmError> {
    ctx.platform
        .authz
        .has_any_access(&ctx.caller, &tenancy::group_id(g))
}

/// A group as the caller names it: a stored group, or the tenant root group.
fn find(ctx: &Ctx, r: &impl Reader, g: &str) -> Result<ManagementGroup, ArmError> {
    if is_root(ctx, g) {
        return Ok(ManagementGroup {
            name: root(ctx),
            display_name: "Tenant Root Group".into(),
            parent: None,
            created_by: String::new(),
            updated_at: String::new(),
        });
    }
    tenancy::group(r, g)?.ok_or_else(|| TenancyError::GroupNotFound(g.to_string()).to_arm())
}

fn expand(req: &ArmRequest, what: &str) -> bool {
    req.query_get("$expand")
        .is_some_and(|e| e.split(',').any(|x| x.trim().eq_ignore_ascii_case(what)))
}

fn children_json(
    ctx: &Ctx,
    r: &impl Reader,
    g: &ManagementGroup,
    recurse: bool,
    guard: usize,
) -> Result<Vec<Value>, ArmError> {
    let parent = if is_root(ctx, &g.name) {
        None
    } else {
        Some(g.name.as_str())
    };
    let (groups, subs) = tenancy::children(r, parent)?;
    let mut out = Vec::new();
    for c in groups {
        let grand = if recurse && guard > 0 {
            Value::Array(children_json(ctx, r, &c, true, guard - 1)?)
        } else {
            Value::Null
        };
        out.push(json!({
            "type": MG_TYPE,
            "id": tenancy::group_id(&c.name),
            "name": c.name,
            "displayName": c.display_name,
            "children": grand,
        }));
    }
    for s in subs {
        out.push(json!({
            "type": "/subscriptions",
            "id": format!("/subscriptions/{}", s.subscription_id),
            "name": s.subscription_id,
            "displayName": s.display_name,
        }));
    }
    Ok(out)
}

fn render(
    ctx: &Ctx,
    r: &impl Reader,
    req: Option<&ArmRequest>,
    g: &ManagementGroup,
) -> Result<Value, ArmError> {
    let chain = if is_root(ctx, &g.name) {
        Vec::new()
    } else {
        tenancy::group_chain(r, &g.name)?
    };
    // Ancestors nearest first, then the root.
    let mut ancestors: Vec<ManagementGroup> = Vec::new();
    for n in chain.iter().skip(1) {
        ancestors.push(find(ctx, r, n)?);
    }
    if !is_root(ctx, &g.name) {
        ancestors.push(find(ctx, r, &root(ctx))?);
    }
    let parent = ancestors.first().map(|p| {
        json!({"id": tenancy::group_id(&p.name), "name": p.name, "displayName": p.display_name})
    });
    let mut details = json!({
        "version": 1,
        "updatedTime": g.updated_at,
        "updatedBy": g.created_by,
        "parent": parent,
    });
    let mut props = json!({
        "tenantId": ctx.env().tenant_id,
        "displayName": g.display_name,
    });
    if let Some(req) = req {
        if expand(req, "path") {
            let path: Vec<Value> = ancestors
                .iter()
                .rev()
                .map(|a| json!({"name": a.name, "displayName": a.display_name}))
                .collect();
            details["path"] = Value::Array(path);
        }
        if expand(req, "ancestors") {
            details["managementGroupAncestors"] =
                json!(ancestors.iter().map(|a| a.name.clone()).collect::<Vec<_>>());
            details["managementGroupAncestorsChain"] = Value::Array(
                ancestors
                    .iter()
                    .map(|a| json!({"name": a.name, "displayName": a.display_name}))
                    .collect(),
            );
        }
        if expand(req, "children") {
            let recurse = req
                .query_get("$recurse")
                .is_some_and(|v| v.eq_ignore_ascii_case("true"));
            props["children"] =
                Value::Array(children_json(ctx, r, g, recurse, tenancy::MAX_DEPTH + 1)?);
        }
    }
    props["details"] = details;
    Ok(json!({
        "id": tenancy::group_id(&g.name),
        "type": MG_TYPE,
        "name": g.name,
        "properties": props,
    }))
}

fn get(ctx: &Ctx, req: &ArmRequest, g: &str) -> Result<Reply, ArmError> {
    let group = ctx.store().view(|r| find(ctx, r, g))?;
    if !can_read(ctx, &group.name)? {
        return Err(authorization_failed(
            &ctx.caller.object_id,
            "Microsoft.Management/managementGroups/read",
            &tenancy::group_id(g),
        ));
    }
    Ok(Reply::ok(
        ctx.store().view(|r| render(ctx, r, Some(req), &group))?,
    ))
}

fn list(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let mut all = ctx.store().view(tenancy::groups)?;
    all.insert(0, ctx.store().view(|r| find(ctx, r, &root(ctx)))?);
    let mut items = Vec::new();
    for g in all {
        if can_read(ctx, &g.name)? {
            items.push(json!({
                "id": tenancy::group_id(&g.name),
                "type": MG_TYPE,
                "name": g.name,
                "properties": {"tenantId": ctx.env().tenant_id, "displayName": g.display_name},
            }));
        }
    }
    Ok(Reply::ok(paging::page(ctx, req, items)?))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GroupBody {
    #[serde(default)]
    properties: GroupProps,
    // PATCH sends these at the top level.
    display_name: Option<String>,
    parent_group_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GroupProps {
    display_name: Option<String>,
    #[serde(default)]
    details: Details,
}

#[derive(Debug, Default, Deserialize)]
struct Details {
    parent: Option<ParentRef>,
}

#[derive(Debug, Default, Deserialize)]
struct ParentRef {
    id: Option<String>,
}

fn put(ctx: &Ctx, req: &ArmRequest, name: &str, patch: bool) -> Result<Reply, ArmError> {
    tenancy::check_group_name(name)?;
    if is_root(ctx, name) {
        return Err(TenancyError::RootImmutable.to_arm());
    }
    let body: GroupBody = req.body_or_empty()?;
    let display = body.display_name.or(body.properties.display_name);
    if let Some(d) = &display {
        tenancy::check_display_name(d)?;
    }
    let parent_id = body
        .parent_group_id
        .or(body.properties.details.parent.and_then(|p| p.id));
    let parent = parent_id
        .as_deref()
        .map(crate::group_name_of_id)
        .transpose()?;
    let existing = ctx.store().view(|r| tenancy::group(r, name))?;
    if patch && existing.is_none() {
        return Err(TenancyError::GroupNotFound(name.to_string()).to_arm());
    }
    // The parent a new group goes under, or the one an update moves it to.
    let target_parent = match (&parent, &existing) {
        (Some(p), _) => Some(p.clone()),
        (None, Some(e)) => e.parent.clone(),
        (None, None) => None,
    }
    .filter(|p| !is_root(ctx, p));
    if let Some(p) = &target_parent {
        ctx.store().view(|r| find(ctx, r, p))?;
    }
    let gid = tenancy::group_id(name);
    match &existing {
        None => {
            if let Some(p) = &target_parent {
                require(ctx, WRITE, &tenancy::group_id(p))?;
            }
        }
        Some(e) => {
            require(ctx, WRITE, &gid)?;
            if e.parent != target_parent {
                if let Some(p) = &target_parent {
                    require(ctx, WRITE, &tenancy::group_id(p))?;
                }
            }
        }
    }
    let caller = ctx.caller.object_id.clone();
    let doc = ctx.store().write(|tx| {
        let chain = match &target_parent {
            Some(p) => tenancy::group_chain(tx, p)?,
            None => Vec::new(),
        };
        let height = if existing.is_some() {
            tenancy::subtree_height(tx, name)?
        } else {
            1
        };
        tenancy::check_placement(name, &chain, height)?;
        let g = ManagementGroup {
            name: existing
                .as_ref()
                .map(|e| e.name.clone())
                .unwrap_or_else(|| name.to_string()),
            display_name: display
                .clone()
                .or_else(|| existing.as_ref().map(|e| e.display_name.clone()))
                .unwrap_or_else(|| name.to_string()),
            parent: target_parent.clone(),
            created_by: existing
                .as_ref()
                .map(|e| e.created_by.clone())
                .unwrap_or_else(|| caller.clone()),
            updated_at: time::now_string(),
        };
        tenancy::save_group(tx, &g)?;
        if existing.is_none() {
            assign(tx, "Owner", &caller, &gid, &caller)?;
        }
        render(ctx, tx, None, &g)
    })?;
    Ok(Reply::ok(doc))
}

fn delete(ctx: &Ctx, name: &str) -> Result<Reply, ArmError> {
    if is_root(ctx, name) {
        return Err(TenancyError::RootImmutable.to_arm());
    }
    let Some(g) = ctx.store().view(|r| tenancy::group(r, name))? else {
        return Ok(Reply::empty(204));
    };
    let gid = tenancy::group_id(&g.name);
    require(ctx, DELETE, &gid)?;
    ctx.store().write(|tx| {
        let (groups, subs) = tenancy::children(tx, Some(&g.name))?;
        let names: Vec<String> = groups
            .iter()
            .map(|c| c.name.clone())
            .chain(subs.iter().map(|s| s.subscription_id.clone()))
            .collect();
        tenancy::check_deletable(&g.name, &names)?;
        // Role assignments made at the group go with it.
        ctx.cascade_delete(tx, &gid)?;
        resource::delete_tree(tx, &gid)?;
        tenancy::delete_group(tx, &g.name)
    })?;
    Ok(Reply::empty(204))
}

fn descendants(ctx: &Ctx, req: &ArmRequest, g: &str) -> Result<Reply, ArmError> {
    let group = ctx.store().view(|r| find(ctx, r, g))?;
    if !can_read(ctx, &group.name)? {
        return Err(authorization_failed(
            &ctx.caller.object_id,
            "Microsoft.Management/managementGroups/descendants/read",
            &tenancy::group_id(g),
        ));
    }
    let items = ctx.store().view(|r| {
        let mut out = Vec::new();
        let mut queue = vec![group.clone()];
        let mut seen = 0;
        while let Some(cur) = queue.pop() {
            seen += 1;
            if seen > 10_000 {
                break;
            }
            let parent = if is_root(ctx, &cur.name) {
                None
            } else {
                Some(cur.name.as_str())
            };
            let (groups, subs) = tenancy::children(r, parent)?;
            let pid = tenancy::group_id(&cur.name);
            for c in groups {
                out.push(json!({
                    "id": tenancy::group_id(&c.name), "type": MG_TYPE, "name": c.name,
                    "properties": {"displayName": c.display_name, "parent": {"id": pid}},
                }));
                queue.push(c);
            }
            for s in subs {
                out.push(json!({
                    "id": format!("/subscriptions/{}", s.subscription_id), "type": "/subscriptions",
                    "name": s.subscription_id,
                    "properties": {"displayName": s.display_name, "parent": {"id": pid}},
                }));
            }
        }
        Ok::<_, ArmError>(out)
    })?;
    Ok(Reply::ok(paging::page(ctx, req, items)?))
}

fn subscription_doc(ctx: &Ctx, g: &str, s: &tenancy::Subscription) -> Value {
    json!({
        "id": format!("{}/subscriptions/{}", tenancy::group_id(g), s.subscription_id),
        "type": SUB_CHILD_TYPE,
        "name": s.subscription_id,
        "properties": {
            "tenant": ctx.env().tenant_id,
            "displayName": s.display_name,
            "parent": {"id": tenancy::group_id(g)},
            "state": s.state,
        }
    })
}

fn in_group(ctx: &Ctx, g: &str, s: &tenancy::Subscription) -> bool {
    match &s.management_group {
        Some(m) => m.eq_ignore_ascii_case(g),
        None => is_root(ctx, g),
    }
}

fn list_subscriptions(ctx: &Ctx, req: &ArmRequest, g: &str) -> Result<Reply, ArmError> {
    let group = ctx.store().view(|r| find(ctx, r, g))?;
    let subs = ctx.store().view(tenancy::subscriptions)?;
    let mut items = Vec::new();
    for s in subs.iter().filter(|s| in_group(ctx, &group.name, s)) {
        if ctx.platform.authz.has_any_access(
            &ctx.caller,
            &format!("/subscriptions/{}", s.subscription_id),
        )? {
            items.push(subscription_doc(ctx, &group.name, s));
        }
    }
    Ok(Reply::ok(paging::page(ctx, req, items)?))
}

fn sub_not_found(s: &str) -> ArmError {
    ArmError::new(
        404,
        "SubscriptionNotFound",
        format!("The subscription '{s}' could not be found."),
    )
}

fn get_subscription(ctx: &Ctx, g: &str, sid: &str) -> Result<Reply, ArmError> {
    let group = ctx.store().view(|r| find(ctx, r, g))?;
    let s = ctx
        .store()
        .view(|r| tenancy::subscription(r, sid))?
        .filter(|s| in_group(ctx, &group.name, s))
        .ok_or_else(|| sub_not_found(sid))?;
    if !ctx.platform.authz.has_any_access(
        &ctx.caller,
        &format!("/subscriptions/{}", s.subscription_id),
    )? {
        return Err(sub_not_found(sid));
    }
    Ok(Reply::ok(subscription_doc(ctx, &group.name, &s)))
}

/// `PUT` moves the subscription into group `g`; `DELETE` moves it from `g`
/// back to the root group.
fn move_subscription(ctx: &Ctx, g: &str, sid: &str, into: bool) -> Result<Reply, ArmError> {
    let group = ctx.store().view(|r| find(ctx, r, g))?;
    let s = ctx
        .store()
        .view(|r| tenancy::subscription(r, sid))?
        .ok_or_else(|| sub_not_found(sid))?;
    let sub_scope = format!("/subscriptions/{}", s.subscription_id);
    require(ctx, OWNER_ACTION, &sub_scope)?;
    let target = if into {
        require(ctx, SUB_WRITE, &tenancy::group_id(&group.name))?;
        Some(group.name.clone()).filter(|n| !is_root(ctx, n))
    } else {
        if !in_group(ctx, &group.name, &s) {
            return Err(sub_not_found(sid));
        }
        None
    };
    if let Some(old) = &s.management_group {
        if target.as_deref() != Some(old.as_str()) {
            require(
                ctx,
                if into { WRITE } else { SUB_DELETE },
                &tenancy::group_id(old),
            )?;
        }
    }
    let saved = ctx.store().write(|tx| {
        let mut s = tenancy::subscription(tx, sid)?.ok_or_else(|| sub_not_found(sid))?;
        s.management_group = target.clone();
        tenancy::save_subscription(tx, &s)?;
        Ok::<_, ArmError>(s)
    })?;
    if into {
        Ok(Reply::ok(subscription_doc(ctx, &group.name, &saved)))
    } else {
        Ok(Reply::empty(200))
    }
}

#[derive(Deserialize)]
struct CheckNameBody {
    name: String,
}

fn check_name(ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
    let body: CheckNameBody = req.body_as()?;
    if let Err(e) = tenancy::check_group_name(&body.name) {
        return Ok(Reply::ok(
            json!({"nameAvailable": false, "reason": "Invalid", "message": e.to_string()}),
        ));
    }
    let taken = is_root(ctx, &body.name)
        || ctx
            .store()
            .view(|r| tenancy::group(r, &body.name))?
            .is_some();
    Ok(Reply::ok(if taken {
        json!({"nameAvailable": false, "reason": "AlreadyExists",
               "message": format!("The management group '{}' already exists.", body.name)})
    } else {
        json!({"nameAvailable": true})
    }))
}
