//! Microsoft.Resources: subscriptions, tenants, locations, resource groups,
//! generic resource listing and resource-provider registration.

pub mod groups;
mod registration;
mod subscriptions;

use http::Method;

use recoverite_arm::{
    ArmError, ArmRequest, Ctx, Operation, ProviderInfo, Reply, RouteTable, Routes,
};

pub const NAMESPACE: &str = "Microsoft.Resources";

recoverite_arm::api_versions!(
    "../api-versions.txt",
    ["tenants", "subscriptions", "resourceGroups"]
);

pub struct ResourcesProvider;

/// The shape of a request under Microsoft.Resources.
#[derive(Debug, PartialEq)]
pub enum Route {
    Tenants,
    Subscriptions,
    Subscription,
    Locations,
    ResourceGroups,
    ResourceGroup(String),
    GroupResources(String),
    SubscriptionResources,
    OperationResult(String),
    Providers,
    Provider(String),
    Register(String),
    Unregister(String),
}

fn route(req: &ArmRequest) -> Result<Route, ArmError> {
    let seg: Vec<String> = req
        .path
        .segments
        .iter()
        .map(|s| s.to_ascii_lowercase())
        .collect();
    let orig = &req.path.segments;
    let s: Vec<&str> = seg.iter().map(String::as_str).collect();
    let r = match s.as_slice() {
        ["tenants"] => Route::Tenants,
        ["subscriptions"] => Route::Subscriptions,
        ["subscriptions", _] => Route::Subscription,
        ["subscriptions", _, "locations"] => Route::Locations,
        ["subscriptions", _, "resourcegroups"] => Route::ResourceGroups,
        ["subscriptions", _, "resourcegroups", _] => Route::ResourceGroup(orig[3].clone()),
        ["subscriptions", _, "resourcegroups", _, "resources"] => Route::GroupResources(orig[3].clone()),
        ["subscriptions", _, "resources"] => Route::SubscriptionResources,
        ["subscriptions", _, "operationresults", _] => Route::OperationResult(orig[3].clone()),
        ["subscriptions", _, "providers"] => Route::Providers,
        ["subscriptions", _, "providers", _] => Route::Provider(orig[3].clone()),
        ["subscriptions", _, "providers", _, "register"] => Route::Register(orig[3].clone()),
        ["subscriptions", _, "providers", _, "unregister"] => Route::Unregister(orig[3].clone()),
        _ => {
            return Err(ArmError::bad_request(
                "InvalidResourceType",
                format!("The path '{}' is not a Microsoft.Resources resource or collection recoverite serves.", req.path.id()),
            ))
        }
    };
    Ok(r)
}

fn sub_id(req: &ArmRequest) -> String {
    format!(
        "/subscriptions/{}",
        req.path.subscription.clone().unwrap_or_default()
    )
}

impl RouteTable for ResourcesProvider {
    type Route = Route;

    fn info(&self) -> ProviderInfo {
        ProviderInfo::new(
            NAMESPACE,
            &[
                "tenants",
                "subscriptions",
                "resourceGroups",
                "subscriptions/resourceGroups",
                "subscriptions/locations",
                "subscriptions/providers",
                "subscriptions/resources",
                "subscriptions/resourceGroups/resources",
                "subscriptions/operationresults",
            ],
            API.versions("resourceGroups"),
            true,
            false,
        )
    }

    fn parse(&self, req: &ArmRequest) -> Result<Route, ArmError> {
        route(req)
    }

    fn operation(&self, req: &ArmRequest, r: &Route) -> Result<Operation, ArmError> {
        Ok(operation_of(req, r))
    }

    fn serve(&self, ctx: &Ctx, req: &ArmRequest, r: Route) -> Result<Reply, ArmError> {
        serve(ctx, req, r)
    }
}

/// What a route is authorized as: Microsoft.Resources' actions do not all
/// follow the path (registration is the namespace's own action).
fn operation_of(req: &ArmRequest, r: &Route) -> Operation {
    let sub = sub_id(req);
    let verb = match req.method {
        Method::GET | Method::HEAD => "read",
        Method::PUT | Method::PATCH => "write",
        Method::DELETE => "delete",
        _ => "action",
    };
    let op = |action: String, scope: String, list: bool, public: bool| Operation {
        action,
        scope,
        list,
        api_versions: API.versions("resourceGroups"),
        resource_type: NAMESPACE.to_string(),
        public,
    };
    let rg_action = |v: &str| format!("Microsoft.Resources/subscriptions/resourceGroups/{v}");
    match r {
        // Visibility of tenants, subscriptions and locations follows from
        // having any role at all; the handlers check that.
        Route::Tenants
        | Route::Subscriptions
        | Route::Subscription
        | Route::Locations
        | Route::OperationResult(_) => op(
            "Microsoft.Resources/subscriptions/read".into(),
            sub,
            false,
            true,
        ),
        Route::ResourceGroups => op(rg_action("read"), sub, true, false),
        Route::ResourceGroup(_) => op(rg_action(verb), req.path.id(), false, false),
        Route::GroupResources(_) => op(
            rg_action("resources/read"),
            req.path.parent_id(),
            true,
            false,
        ),
        Route::SubscriptionResources => op(
            "Microsoft.Resources/subscriptions/resources/read".into(),
            sub,
            true,
            false,
        ),
        Route::Providers | Route::Provider(_) => op(
            "Microsoft.Resources/subscriptions/providers/read".into(),
            sub,
            false,
            false,
        ),
        Route::Register(ns) => op(format!("{ns}/register/action"), sub, false, false),
        Route::Unregister(ns) => op(format!("{ns}/unregister/action"), sub, false, false),
    }
}

fn serve(ctx: &Ctx, req: &ArmRequest, r: Route) -> Result<Reply, ArmError> {
    let m = req.method.clone();
    match (r, m) {
        (Route::Tenants, Method::GET) => subscriptions::tenants(ctx, req),
        (Route::Subscriptions, Method::GET) => subscriptions::list(ctx, req),
        (Route::Subscription, Method::GET) => subscriptions::get(ctx, req),
        (Route::Locations, Method::GET) => subscriptions::locations(ctx, req),
        (Route::ResourceGroups, Method::GET) => groups::list(ctx, req),
        (Route::ResourceGroup(rg), Method::GET) => groups::get(ctx, req, &rg),
        (Route::ResourceGroup(rg), Method::HEAD) => groups::exists(ctx, req, &rg),
        (Route::ResourceGroup(rg), Method::PUT) => groups::put(ctx, req, &rg),
        (Route::ResourceGroup(rg), Method::PATCH) => groups::patch(ctx, req, &rg),
        (Route::ResourceGroup(rg), Method::DELETE) => groups::delete(ctx, req, &rg),
        (Route::GroupResources(_), Method::GET) => {
            groups::list_resources(ctx, req, &req.path.parent_id())
        }
        (Route::SubscriptionResources, Method::GET) => {
            groups::list_resources(ctx, req, &sub_id(req))
        }
        (Route::OperationResult(id), Method::GET) => groups::operation_result(ctx, req, &id),
        (Route::Providers, Method::GET) => registration::list(ctx, req),
        (Route::Provider(ns), Method::GET) => registration::get(ctx, req, &ns),
        (Route::Register(ns), Method::POST) => registration::register(ctx, req, &ns, true),
        (Route::Unregister(ns), Method::POST) => registration::register(ctx, req, &ns, false),
        (_, m) => Err(ArmError::method_not_allowed(m.as_str())),
    }
}

/// Registers every namespace in `namespaces` for a subscription (bootstrap).
pub use registration::register_all;

/// What this crate brings to the server: Microsoft.Resources' root (groups,
/// resources, providers, tags).
pub fn manifest() -> recoverite_manifest::Manifest {
    recoverite_manifest::Manifest::new("recoverite-rp-resources")
        .provider(Routes(ResourcesProvider))
}
