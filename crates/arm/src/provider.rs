//! The contract between the ARM router and a resource provider.

use std::sync::Arc;

use http::{HeaderMap, Method};
use serde::de::DeserializeOwned;
use serde_json::Value;

use recoverite_store::{Store, WriteTx};

use crate::error::ArmError;
use crate::id::ResourcePath;

/// Who is calling, as established from the bearer token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub object_id: String,
    pub tenant_id: String,
    /// The application (client) id.
    pub app_id: String,
}

/// Authentication and authorization, provided by the identity context.
pub trait Authorizer: Send + Sync {
    /// Validates the `Authorization` header value.
    fn authenticate(&self, authorization: Option<&str>) -> Result<Caller, ArmError>;
    /// Whether `caller` may perform `action` at `scope`.
    fn is_allowed(&self, caller: &Caller, action: &str, scope: &str) -> Result<bool, ArmError>;
    /// `Ok` when `caller` may perform `action` at `scope`, else ARM's 403
    /// `AuthorizationFailed` naming them.
    fn require(&self, caller: &Caller, action: &str, scope: &str) -> Result<(), ArmError> {
        if self.is_allowed(caller, action, scope)? {
            Ok(())
        } else {
            Err(crate::router::authorization_failed(
                &caller.object_id,
                action,
                scope,
            ))
        }
    }
    /// Whether `caller` holds any role assignment at, above or below `scope`.
    fn has_any_access(&self, caller: &Caller, scope: &str) -> Result<bool, ArmError>;
    /// Whether principal `object_id` may perform data action `data_action` at `scope`.
    fn is_allowed_data(
        &self,
        object_id: &str,
        data_action: &str,
        scope: &str,
    ) -> Result<bool, ArmError>;
}

/// Something that keeps state about scopes: when a scope is deleted (a resource
/// group, a resource), it drops what it kept for it inside the same transaction.
pub trait ScopeCascade: Send + Sync {
    fn scope_deleted(&self, tx: &mut WriteTx, scope: &str) -> Result<(), ArmError>;

    /// Called in the same transaction before the scope's resources are
    /// removed, while their documents can still be read: a provider whose
    /// resources hold bytes outside the store (disk images, blobs) records
    /// them there to be freed once the transaction has committed.
    fn scope_deleting(&self, _tx: &mut WriteTx, _scope: &str) -> Result<(), ArmError> {
        Ok(())
    }
}

/// A resource type served by a provider, as listed by `GET /providers/{ns}`.
#[derive(Debug, Clone)]
pub struct ResourceType {
    /// Type path without the namespace, e.g. `userAssignedIdentities`.
    pub name: &'static str,
    pub api_versions: &'static [&'static str],
    /// Regional types list every region; global ones list `global`.
    pub global: bool,
}

#[derive(Debug, Clone)]
pub struct ProviderInfo {
    pub namespace: &'static str,
    pub resource_types: Vec<ResourceType>,
    pub requires_registration: bool,
}

impl ProviderInfo {
    /// A namespace whose types take their api-versions from the provider's
    /// table (`api-versions.txt`).
    pub fn from_table(
        namespace: &'static str,
        types: &[&'static str],
        table: &crate::api_version::Table,
        global: bool,
        requires_registration: bool,
    ) -> ProviderInfo {
        ProviderInfo {
            namespace,
            resource_types: types
                .iter()
                .map(|name| ResourceType {
                    name,
                    api_versions: table.versions(name),
                    global,
                })
                .collect(),
            requires_registration,
        }
    }

    /// A namespace whose types all take the same api-versions.
    pub fn new(
        namespace: &'static str,
        types: &[&'static str],
        api_versions: &'static [&'static str],
        global: bool,
        requires_registration: bool,
    ) -> ProviderInfo {
        let mut info = ProviderInfo::from_table(
            namespace,
            types,
            &crate::api_version::Table::default(),
            global,
            requires_registration,
        );
        for t in &mut info.resource_types {
            t.api_versions = api_versions;
        }
        info
    }
}

/// What a request does, for authorization: the action string and where.
#[derive(Debug, Clone)]
pub struct Operation {
    pub action: String,
    pub scope: String,
    /// A list whose items the caller may see one by one even without access at `scope`.
    pub list: bool,
    pub api_versions: &'static [&'static str],
    /// The type named in api-version errors.
    pub resource_type: String,
    /// Needs an authenticated caller but no role (e.g. reading one's own permissions).
    pub public: bool,
}

/// A request parsed once: the operation the router authorizes, and the
/// handler bound to exactly what was parsed. The router cannot run anything
/// but the handler of the operation it authorized.
pub struct Routed<'a> {
    pub operation: Operation,
    handler: Handler<'a>,
}

type Handler<'a> = Box<dyn FnOnce(&Ctx, &ArmRequest) -> Result<Reply, ArmError> + 'a>;

impl<'a> Routed<'a> {
    pub fn new(
        operation: Operation,
        handler: impl FnOnce(&Ctx, &ArmRequest) -> Result<Reply, ArmError> + 'a,
    ) -> Routed<'a> {
        Routed {
            operation,
            handler: Box::new(handler),
        }
    }

    /// Runs the handler (after the router's checks).
    pub fn run(self, ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
        (self.handler)(ctx, req)
    }
}

pub trait Provider: Send + Sync {
    fn info(&self) -> ProviderInfo;

    /// Parses the request into the operation to authorize and its handler.
    /// Providers with a typed endpoint implement [`Endpoints`] instead; the
    /// default serves providers that still match paths in `handle`.
    fn route(&self, req: &ArmRequest) -> Result<Routed<'_>, ArmError> {
        let operation = self.operation(req)?;
        Ok(Routed::new(operation, move |ctx, req| {
            self.handle(ctx, req)
        }))
    }

    /// Classifies the request. The default derives the action from the path
    /// the way ARM does (`{ns}/{types}/read|write|delete`, `…/{verb}/action`).
    fn operation(&self, req: &ArmRequest) -> Result<Operation, ArmError> {
        default_operation(&self.info(), req)
    }

    fn handle(&self, ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError>;
}

/// What a typed endpoint declares about itself.
pub trait Endpoint {
    /// The RBAC action it needs, e.g. `Microsoft.RecoveryServices/vaults/read`.
    fn action(&self) -> &'static str;
    /// A list whose items a caller without the action may still see one by one.
    fn is_list(&self) -> bool {
        false
    }
}

/// A provider that parses each request once into its own endpoint type (as
/// Garage's S3 router does), declares the endpoint's action, and serves the
/// endpoint it parsed, never the raw path again.
pub trait Endpoints: Send + Sync {
    type Endpoint: Endpoint + Send;

    fn info(&self) -> ProviderInfo;

    /// (method, path, query) → endpoint; unknown paths and methods are
    /// ARM's errors here, before authorization.
    fn parse(&self, req: &ArmRequest) -> Result<Self::Endpoint, ArmError>;

    fn serve(&self, ctx: &Ctx, req: &ArmRequest, ep: Self::Endpoint) -> Result<Reply, ArmError>;
}

impl<T: Endpoints> Provider for T {
    fn info(&self) -> ProviderInfo {
        Endpoints::info(self)
    }

    fn route(&self, req: &ArmRequest) -> Result<Routed<'_>, ArmError> {
        // Scope, api-versions and the type named in errors come from the
        // registration (an unknown type is refused here); the action is the
        // endpoint's own.
        let mut operation = default_operation(&Endpoints::info(self), req)?;
        match self.parse(req) {
            Ok(ep) => {
                operation.action = ep.action().to_string();
                operation.list = ep.is_list();
                Ok(Routed::new(operation, move |ctx, req| {
                    self.serve(ctx, req, ep)
                }))
            }
            // A known type with a method or shape the provider does not
            // serve: ARM checks the api-version and the caller's right on
            // the type first, then answers the provider's error.
            Err(e) => Ok(Routed::new(operation, move |_, _| Err(e))),
        }
    }

    fn handle(&self, ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
        let ep = self.parse(req)?;
        self.serve(ctx, req, ep)
    }
}

/// A provider whose routes declare whole operations — scope and
/// visibility too — for namespaces whose actions do not all follow the path
/// (Microsoft.Resources, subscription aliases, management groups,
/// deployments). Served through [`Routes`]: the request is parsed once, the
/// operation authorized is that route's, and the handler serves that route.
pub trait RouteTable: Send + Sync {
    type Route;

    fn info(&self) -> ProviderInfo;

    /// (method, path) → route; unknown paths are ARM's errors, before
    /// authorization.
    fn parse(&self, req: &ArmRequest) -> Result<Self::Route, ArmError>;

    /// What the route is authorized as.
    fn operation(&self, req: &ArmRequest, route: &Self::Route) -> Result<Operation, ArmError>;

    fn serve(&self, ctx: &Ctx, req: &ArmRequest, route: Self::Route) -> Result<Reply, ArmError>;
}

/// The [`Provider`] of a [`RouteTable`].
pub struct Routes<T>(pub T);

impl<T: RouteTable> Provider for Routes<T> {
    fn info(&self) -> ProviderInfo {
        self.0.info()
    }

    fn route(&self, req: &ArmRequest) -> Result<Routed<'_>, ArmError> {
        let r = self.0.parse(req)?;
        let operation = self.0.operation(req, &r)?;
        Ok(Routed::new(operation, move |ctx, req| {
            self.0.serve(ctx, req, r)
        }))
    }

    fn operation(&self, req: &ArmRequest) -> Result<Operation, ArmError> {
        let r = self.0.parse(req)?;
        self.0.operation(req, &r)
    }

    fn handle(&self, ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
        let r = self.0.parse(req)?;
        self.0.serve(ctx, req, r)
    }
}

/// ARM's action for a provider path, and the resource type's api-versions.
pub fn default_operation(info: &ProviderInfo, req: &ArmRequest) -> Result<Operation, ArmError> {
    let p = req.path.provider.as_ref().ok_or_else(|| {
        ArmError::bad_request(
            "InvalidResourceType",
            "The request path names no resource type.",
        )
    })?;
    let full = p.type_path();
    let is_action = !p.is_resource() && req.method != Method::GET;
    let action = if p.is_resource() {
        let verb = match req.method {
            Method::GET | Method::HEAD => "read",
            Method::PUT | Method::PATCH => "write",
            Method::DELETE => "delete",
            _ => "action",
        };
        format!("{}/{full}/{verb}", p.namespace)
    } else if is_action {
        // POST …/{resource}/{verb}: the last segment names the action.
        format!("{}/{full}/action", p.namespace)
    } else {
        format!("{}/{full}/read", p.namespace)
    };
    // An action is looked up as its own type first (`checkNameAvailability`),
    // then as an action on its parent type.
    let parent = p.types[..p.types.len().saturating_sub(1)].join("/");
    let find = |name: &str| {
        info.resource_types
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case(name))
    };
    let rt = find(&full)
        .or_else(|| if is_action { find(&parent) } else { None })
        .ok_or_else(|| {
            ArmError::bad_request(
                "InvalidResourceType",
                format!(
                    "The resource type '{full}' could not be found in the namespace '{}' for api version '{}': recoverite does not implement it (the README lists what it serves).",
                    info.namespace, req.api_version
                ),
            )
        })?;
    let scope = if p.is_resource() {
        req.path.id()
    } else {
        req.path.parent_id()
    };
    Ok(Operation {
        action,
        scope,
        list: !p.is_resource() && req.method == Method::GET,
        api_versions: rt.api_versions,
        resource_type: format!("{}/{}", info.namespace, rt.name),
        public: false,
    })
}

#[derive(Debug, Clone)]
pub struct ArmRequest {
    pub method: Method,
    pub path: ResourcePath,
    /// The path exactly as received (used to build nextLinks).
    pub raw_path: String,
    /// Decoded query pairs, in order.
    pub query: Vec<(String, String)>,
    pub api_version: String,
    pub headers: HeaderMap,
    pub body: Option<Value>,
}

impl ArmRequest {
    /// The provider part of the path (`providers/{ns}/{types…}`); a request
    /// without one never reaches a provider's own routes, but a typed
    /// error beats a panic if one does.
    pub fn provider_part(&self) -> Result<&crate::id::ProviderPart, ArmError> {
        self.path.provider.as_ref().ok_or_else(|| {
            ArmError::bad_request(
                "InvalidResourceType",
                "The request path names no resource type.",
            )
        })
    }

    /// The provider part's type segments, lower-cased, for matching routes.
    pub fn types_lower(&self) -> Result<Vec<String>, ArmError> {
        Ok(self
            .provider_part()?
            .types
            .iter()
            .map(|t| t.to_ascii_lowercase())
            .collect())
    }

    pub fn query_get(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as `T`, or `InvalidRequestContent` naming what is wrong.
    /// The name of the resource the path addresses ("" for a collection).
    pub fn resource_name(&self) -> &str {
        self.path
            .provider
            .as_ref()
            .and_then(|p| p.name())
            .unwrap_or("")
    }

    pub fn body_as<T: DeserializeOwned>(&self) -> Result<T, ArmError> {
        let body = self
            .body
            .clone()
            .ok_or_else(|| ArmError::bad_request("InvalidRequestContent", "The request content was invalid and could not be deserialized: the request body is empty; send a JSON object."))?;
        serde_json::from_value(body).map_err(ArmError::invalid_content)
    }

    pub fn body_or_empty<T: DeserializeOwned + Default>(&self) -> Result<T, ArmError> {
        match &self.body {
            None => Ok(T::default()),
            Some(_) => self.body_as(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Option<Value>,
    pub headers: Vec<(String, String)>,
}

impl Reply {
    pub fn json(status: u16, body: Value) -> Reply {
        Reply {
            status,
            body: Some(body),
            headers: Vec::new(),
        }
    }
    pub fn ok(body: Value) -> Reply {
        Reply::json(200, body)
    }
    pub fn created(body: Value) -> Reply {
        Reply::json(201, body)
    }
    pub fn empty(status: u16) -> Reply {
        Reply {
            status,
            body: None,
            headers: Vec::new(),
        }
    }
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Reply {
        self.headers.push((name.to_string(), value.into()));
        self
    }
}

/// Settings of this emulated Azure. The tenant's subscriptions are state,
/// not settings: see [`crate::tenancy`].
#[derive(Debug, Clone)]
pub struct Environment {
    pub tenant_id: String,
    /// Seconds a client should wait between long-running-operation polls.
    pub poll_after_secs: u64,
}

/// Told when the tenant gains a subscription, inside the transaction that
/// creates it: the server registers the providers there and gives its
/// first-party principals their roles, and rewrites `connection.json`.
pub trait TenantHook: Send + Sync {
    fn subscription_created(&self, tx: &mut WriteTx, subscription: &str) -> Result<(), ArmError>;
    /// After the creating transaction committed.
    fn subscriptions_changed(&self) {}
}

/// Everything shared by all requests.
pub struct Platform {
    pub store: Store,
    pub env: Environment,
    pub authz: Arc<dyn Authorizer>,
    pub cascades: Vec<Arc<dyn ScopeCascade>>,
    pub catalog: Vec<ProviderInfo>,
    pub tenant_hooks: Vec<Arc<dyn TenantHook>>,
}

impl Platform {
    /// Whether the tenant holds subscription `id`.
    pub fn knows_subscription(&self, id: &str) -> Result<bool, ArmError> {
        Ok(self
            .store
            .read(|r| Ok(crate::tenancy::subscription(r, id)))??
            .is_some())
    }

    /// Runs every tenant hook for a subscription created in `tx`.
    pub fn subscription_created(&self, tx: &mut WriteTx, sub: &str) -> Result<(), ArmError> {
        for h in &self.tenant_hooks {
            h.subscription_created(tx, sub)?;
        }
        Ok(())
    }

    pub fn subscriptions_changed(&self) {
        for h in &self.tenant_hooks {
            h.subscriptions_changed();
        }
    }
}

/// One request's context, handed to the provider.
#[derive(Clone)]
pub struct Ctx {
    pub platform: Arc<Platform>,
    pub caller: Caller,
    /// `https://127.0.0.1:10443`, for absolute URLs in replies.
    pub base_url: String,
    /// Set for list operations the caller may not read whole: items are filtered.
    pub filtered_action: Option<String>,
}

impl Ctx {
    pub fn store(&self) -> &Store {
        &self.platform.store
    }
    pub fn env(&self) -> &Environment {
        &self.platform.env
    }

    /// Runs every cascade for a deleted scope, inside the caller's transaction.
    /// Before a scope's resources are removed (see `ScopeCascade::scope_deleting`).
    pub fn cascade_deleting(&self, tx: &mut WriteTx, scope: &str) -> Result<(), ArmError> {
        for c in &self.platform.cascades {
            c.scope_deleting(tx, scope)?;
        }
        Ok(())
    }

    pub fn cascade_delete(&self, tx: &mut WriteTx, scope: &str) -> Result<(), ArmError> {
        for c in &self.platform.cascades {
            c.scope_deleted(tx, scope)?;
        }
        Ok(())
    }

    /// Whether the caller may see a list item with this id.
    pub fn can_see(&self, id: &str) -> Result<bool, ArmError> {
        match &self.filtered_action {
            None => Ok(true),
            Some(action) => self.platform.authz.is_allowed(&self.caller, action, id),
        }
    }

    /// The linked access check ARM makes for a resource the body references:
    /// the caller needs `linked_action` on `linked_scope` too, else 403
    /// `LinkedAuthorizationFailed` naming both.
    pub fn require_linked(
        &self,
        action: &str,
        scope: &str,
        linked_action: &str,
        linked_scope: &str,
    ) -> Result<(), ArmError> {
        if self.is_allowed(linked_action, linked_scope)? {
            Ok(())
        } else {
            Err(crate::router::linked_authorization_failed(
                &self.caller.object_id,
                action,
                scope,
                linked_action,
                linked_scope,
            ))
        }
    }

    pub fn is_allowed(&self, action: &str, scope: &str) -> Result<bool, ArmError> {
        self.platform.authz.is_allowed(&self.caller, action, scope)
    }

    /// The caller may perform `action` at `scope`, or 403 `AuthorizationFailed`.
    pub fn require(&self, action: &str, scope: &str) -> Result<(), ArmError> {
        self.platform.authz.require(&self.caller, action, scope)
    }

    /// The authorizer, to ask about principals other than the caller (a
    /// vault's managed identity, say).
    pub fn authorizer(&self) -> &dyn Authorizer {
        self.platform.authz.as_ref()
    }
}

/// A namespace that can be registered before recoverite serves any of its
/// resource types (so automation that registers providers up front works).
pub struct RegistrationOnly(pub &'static str);

impl Provider for RegistrationOnly {
    fn info(&self) -> ProviderInfo {
        ProviderInfo {
            namespace: self.0,
            resource_types: Vec::new(),
            requires_registration: true,
        }
    }

    fn handle(&self, _: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
        Err(ArmError::bad_request(
            "InvalidResourceType",
            format!(
                "recoverite does not serve resource types of '{}' yet ({}).",
                self.0,
                req.path.id()
            ),
        ))
    }
}

/// Several crates serving one namespace (Microsoft.Network holds virtual
/// networks and private DNS zones; Microsoft.RecoveryServices holds vaults
/// and Site Recovery): a request goes to the member declaring the longest
/// resource type that the request's type path starts with.
pub struct NamespaceGroup {
    pub members: Vec<Arc<dyn Provider>>,
}

impl NamespaceGroup {
    fn member(&self, req: &ArmRequest) -> Result<&Arc<dyn Provider>, ArmError> {
        // Paths with no type of this namespace (resource groups and
        // subscriptions, registration calls for any namespace) belong to
        // the first member, which serves the namespace's root.
        let ns = self.members[0].info().namespace;
        let own = req
            .path
            .provider
            .as_ref()
            .filter(|p| p.namespace.eq_ignore_ascii_case(ns) && !p.types.is_empty());
        let root_namespace = ns.eq_ignore_ascii_case(crate::router::RESOURCES_NAMESPACE);
        if own.is_none() {
            return Ok(&self.members[0]);
        }
        let types: Vec<String> = req
            .path
            .provider
            .as_ref()
            .map(|p| p.types.clone())
            .unwrap_or_default();
        // A full prefix scores its length; sharing only the top-level type
        // (an action or sub-resource the member handles itself) scores 0.
        let depth = |m: &Arc<dyn Provider>| {
            m.info()
                .resource_types
                .iter()
                .map(|t| t.name.split('/').collect::<Vec<_>>())
                .filter_map(|segs| {
                    let top = types
                        .first()
                        .is_some_and(|f| segs[0].eq_ignore_ascii_case(f));
                    let full = segs.len() <= types.len()
                        && segs
                            .iter()
                            .zip(&types)
                            .all(|(a, b)| a.eq_ignore_ascii_case(b));
                    if full {
                        Some(segs.len())
                    } else if top {
                        Some(0)
                    } else {
                        None
                    }
                })
                .max()
        };
        self.members
            .iter()
            .filter_map(|m| depth(m).map(|d| (d, m)))
            // Ties go to the earlier member.
            .fold(None, |best: Option<(usize, &Arc<dyn Provider>)>, (d, m)| match best {
                Some((bd, _)) if bd >= d => best,
                _ => Some((d, m)),
            })
            .map(|(_, m)| m)
            .or(root_namespace.then_some(&self.members[0]))
            .ok_or_else(|| {
                ArmError::bad_request(
                    "InvalidResourceType",
                    format!(
                        "The resource type '{}' could not be found in the namespace '{}' for api version '{}': recoverite does not implement it (the README lists what it serves).",
                        types.join("/"),
                        self.info().namespace,
                        req.api_version
                    ),
                )
            })
    }
}

impl Provider for NamespaceGroup {
    fn info(&self) -> ProviderInfo {
        let mut info = self.members[0].info();
        for m in &self.members[1..] {
            info.resource_types.extend(m.info().resource_types);
        }
        info
    }

    fn route(&self, req: &ArmRequest) -> Result<Routed<'_>, ArmError> {
        self.member(req)?.route(req)
    }

    fn operation(&self, req: &ArmRequest) -> Result<Operation, ArmError> {
        self.member(req)?.operation(req)
    }

    fn handle(&self, ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
        self.member(req)?.handle(ctx, req)
    }
}
