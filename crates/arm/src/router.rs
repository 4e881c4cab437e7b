//! The ARM front door: every management request passes here, in ARM's order —
//! authenticate, validate the api-version and subscription, authorize the
//! operation's action at its scope, check provider registration and the
//! resource group, then hand the request to its provider.

use std::collections::HashMap;
use std::sync::Arc;

use http::{HeaderMap, Method};
use serde_json::Value;

use recoverite_store::Reader;

use crate::api_version;
use crate::error::ArmError;
use crate::id::{self, ResourcePath};
use crate::lro;
use crate::provider::{ArmRequest, Ctx, Platform, Provider, Reply};
use crate::registration;

/// The namespace that owns subscriptions, resource groups and provider registration.
pub const RESOURCES_NAMESPACE: &str = "Microsoft.Resources";

/// Requests larger than this are refused with 413, as ARM does (4 MiB).
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

pub struct RawRequest {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub base_url: String,
}

pub struct Router {
    platform: Arc<Platform>,
    providers: HashMap<String, Arc<dyn Provider>>,
}

/// Decodes `a=b&c=d`, accepting `+` and `%20` for spaces.
pub fn parse_query(q: Option<&str>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for pair in q.unwrap_or("").split('&').filter(|s| !s.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let dec = |s: &str| {
            percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        };
        out.push((dec(k), dec(v)));
    }
    out
}

/// ARM still answers the deployment-operation paths of its first
/// api-versions, `/subscriptions/{s}/resourcegroups/{rg}/deployments/{name}/operations…`
/// (which the SDKs send to this day), as the provider path they stand for.
fn legacy_alias(path: &str) -> Option<String> {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let is = |i: usize, s: &str| segs.get(i).is_some_and(|x| x.eq_ignore_ascii_case(s));
    if segs.len() >= 6 && is(0, "subscriptions") && is(2, "resourcegroups") && is(4, "deployments")
    {
        return Some(format!(
            "/{}/providers/Microsoft.Resources/{}",
            segs[..4].join("/"),
            segs[4..].join("/")
        ));
    }
    None
}

fn is_guid_like(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

impl Router {
    pub fn new(platform: Arc<Platform>, providers: Vec<Arc<dyn Provider>>) -> Router {
        let providers = providers
            .into_iter()
            .map(|p| (p.info().namespace.to_ascii_lowercase(), p))
            .collect();
        Router {
            platform,
            providers,
        }
    }

    pub fn platform(&self) -> &Arc<Platform> {
        &self.platform
    }

    /// Handles one management request end to end.
    pub fn dispatch(&self, mut raw: RawRequest) -> Result<Reply, ArmError> {
        if let Some(p) = legacy_alias(&raw.path) {
            raw.path = p;
        }
        let path = ResourcePath::parse(&raw.path)?;
        let query = parse_query(raw.query.as_deref());
        let authz = &self.platform.authz;
        let auth_header = raw
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let caller = authz.authenticate(auth_header)?;

        let api_version = query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("api-version"))
            .map(|(_, v)| v.clone())
            .ok_or_else(api_version::missing)?;
        if !api_version::is_well_formed(&api_version) {
            return Err(api_version::invalid(&api_version, &[]));
        }

        if let Some(sub) = &path.subscription {
            if !is_guid_like(sub) {
                return Err(ArmError::bad_request(
                    "InvalidSubscriptionId",
                    format!(
                        "The provided subscription identifier '{sub}' is malformed or invalid."
                    ),
                ));
            }
            if !self.platform.knows_subscription(sub)? {
                return Err(ArmError::new(
                    404,
                    "SubscriptionNotFound",
                    format!("The subscription '{sub}' could not be found."),
                ));
            }
        }

        let provider = self.provider_for(&path)?;
        let body = parse_body(&raw)?;
        let req = ArmRequest {
            method: raw.method.clone(),
            path,
            raw_path: raw.path.clone(),
            query,
            api_version,
            headers: raw.headers,
            body,
        };
        let mut ctx = Ctx {
            platform: self.platform.clone(),
            caller,
            base_url: raw.base_url,
            filtered_action: None,
        };

        if let Some((is_status, op_id)) = lro::generic_endpoint(&req) {
            if req.method != Method::GET {
                return Err(ArmError::method_not_allowed(req.method.as_str()));
            }
            return lro::serve(&ctx, &req, is_status, &op_id);
        }

        if let Some(reply) = operations_list(provider.as_ref(), &req)? {
            return Ok(reply);
        }
        let routed = provider.route(&req)?;
        let op = &routed.operation;
        if !op
            .api_versions
            .iter()
            .any(|v| v.eq_ignore_ascii_case(&req.api_version))
        {
            return Err(if op.resource_type.starts_with(RESOURCES_NAMESPACE) {
                api_version::invalid(&req.api_version, op.api_versions)
            } else {
                let loc = req
                    .body
                    .as_ref()
                    .and_then(|b| b.get("location"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                api_version::unsupported(&req.api_version, &op.resource_type, loc, op.api_versions)
            });
        }
        if !op.public && !authz.is_allowed(&ctx.caller, &op.action, &op.scope)? {
            if op.list {
                ctx.filtered_action = Some(op.action.clone());
            } else {
                return Err(authorization_failed(
                    &ctx.caller.object_id,
                    &op.action,
                    &op.scope,
                ));
            }
        }

        let info = provider.info();
        if let Some(sub) = &req.path.subscription {
            if info.requires_registration
                && !info.namespace.eq_ignore_ascii_case(RESOURCES_NAMESPACE)
            {
                let reg = self
                    .platform
                    .store
                    .read(|r| Ok(registration::get(r, sub, info.namespace)))??;
                if reg.map(|r| r.state) != Some(registration::REGISTERED.to_string()) {
                    return Err(registration::missing(info.namespace));
                }
            }
        }
        if let (Some(rg), Some(rg_id)) = (&req.path.resource_group, req.path.resource_group_id()) {
            if req.path.segments.len() > 4 {
                let exists = self
                    .platform
                    .store
                    .read(|r| r.get(RESOURCES, &id::key(&rg_id)))?
                    .is_some();
                if !exists {
                    return Err(ArmError::resource_group_not_found(rg));
                }
            }
        }
        let reply = routed.run(&ctx, &req)?;
        if ctx.filtered_action.is_some() {
            return only_visible(&ctx, reply);
        }
        Ok(reply)
    }

    fn provider_for(&self, path: &ResourcePath) -> Result<&Arc<dyn Provider>, ArmError> {
        let root = || {
            self.providers
                .get(&RESOURCES_NAMESPACE.to_ascii_lowercase())
                .ok_or_else(|| ArmError::internal("no Microsoft.Resources provider is installed"))
        };
        let Some(p) = &path.provider else {
            return root();
        };
        // `{S}/providers/{ns}` and `{S}/providers/{ns}/register|unregister`
        // are provider-registration calls, served by Microsoft.Resources.
        let registration_call = p.scope_len <= 2
            && (p.types.is_empty()
                || (p.types.len() == 1
                    && (p.types[0].eq_ignore_ascii_case("register")
                        || p.types[0].eq_ignore_ascii_case("unregister"))));
        if registration_call {
            return root();
        }
        self.providers
            .get(&p.namespace.to_ascii_lowercase())
            .ok_or_else(|| {
                ArmError::bad_request(
                    "InvalidResourceNamespace",
                    format!("The resource namespace '{}' is invalid.", p.namespace),
                )
            })
    }
}

/// `GET /providers/{namespace}/operations`: the operations a provider
/// serves, as RBAC actions (what custom roles and tools list), made from its
/// registered types. Any signed-in caller may read it, as in Azure.
fn operations_list(provider: &dyn Provider, req: &ArmRequest) -> Result<Option<Reply>, ArmError> {
    let Some(p) = &req.path.provider else {
        return Ok(None);
    };
    // Site Recovery's clients ask for the list under a resource group
    // (`/subscriptions/{s}/resourceGroups/{g}/providers/Microsoft.RecoveryServices/operations`),
    // which Azure serves too.
    let tenant_scope = p.scope_len == 0 && req.path.subscription.is_none();
    let group_scope = p
        .namespace
        .eq_ignore_ascii_case("Microsoft.RecoveryServices")
        && req.path.resource_group.is_some()
        && p.scope_len == 4;
    let is_ops = (tenant_scope || group_scope)
        && p.types.len() == 1
        && p.names.is_empty()
        && p.types[0].eq_ignore_ascii_case("operations");
    if !is_ops {
        return Ok(None);
    }
    if req.method != Method::GET {
        return Err(ArmError::method_not_allowed(req.method.as_str()));
    }
    let info = provider.info();
    let ns = info.namespace;
    let mut value = Vec::new();
    for t in &info.resource_types {
        if t.name.eq_ignore_ascii_case("operations") {
            continue;
        }
        let leaf = t.name.rsplit('/').next().unwrap_or(t.name);
        for (verb, what) in [
            ("read", "Read"),
            ("write", "Create or update"),
            ("delete", "Delete"),
        ] {
            value.push(serde_json::json!({
                "name": format!("{ns}/{}/{verb}", t.name),
                "isDataAction": false,
                "display": {
                    "provider": ns,
                    "resource": leaf,
                    "operation": format!("{what} {leaf}"),
                    "description": format!("{what} {leaf} ({} api-versions served)", t.api_versions.len()),
                },
                "origin": "user,system",
            }));
        }
    }
    Ok(Some(Reply::ok(serde_json::json!({ "value": value }))))
}

/// Deny by default: a list the caller may not read at its own scope keeps
/// only the items it may read at theirs, whatever the handler returned. An
/// item without an `id` cannot be checked, so it is left out.
fn only_visible(ctx: &Ctx, mut reply: Reply) -> Result<Reply, ArmError> {
    let Some(Value::Array(items)) = reply.body.as_mut().and_then(|b| b.get_mut("value")) else {
        return Ok(reply);
    };
    let mut kept = Vec::with_capacity(items.len());
    for item in items.drain(..) {
        let visible = match item.get("id").and_then(Value::as_str) {
            Some(id) => ctx.can_see(id)?,
            None => false,
        };
        if visible {
            kept.push(item);
        }
    }
    *items = kept;
    Ok(reply)
}

/// The table in which tracked resources (and resource groups) are stored.
pub const RESOURCES: recoverite_store::Table = recoverite_store::Table("resources");

pub fn authorization_failed(object_id: &str, action: &str, scope: &str) -> ArmError {
    ArmError::new(
        403,
        "AuthorizationFailed",
        format!(
            "The client '{object_id}' with object id '{object_id}' does not have authorization to perform action '{action}' over scope '{scope}' or the scope is invalid. If access was recently granted, please refresh your credentials."
        ),
    )
}

/// ARM's refusal when the caller may perform the operation but not the
/// linked action its body needs on another resource (joining a subnet,
/// linking a zone, peering with a network), in Azure's words.
pub fn linked_authorization_failed(
    object_id: &str,
    action: &str,
    scope: &str,
    linked_action: &str,
    linked_scope: &str,
) -> ArmError {
    ArmError::new(
        403,
        "LinkedAuthorizationFailed",
        format!(
            "The client '{object_id}' with object id '{object_id}' has permission to perform action '{action}' on scope '{scope}'; however, it does not have permission to perform action(s) '{linked_action}' on the linked scope(s) '{linked_scope}' (respectively) or the linked scope(s) are invalid."
        ),
    )
}

/// The lenient reader recurses per level; deeper bodies (which the strict
/// reader refuses past its own limit of 128) are not handed to it.
const MAX_LENIENT_DEPTH: usize = 128;

/// How deep `{`/`[` nest in a JSON-like text, strings (either quote) and
/// comments skipped as the lenient reader skips them.
fn nesting_depth(text: &str) -> usize {
    let t = text.as_bytes();
    let (mut depth, mut max, mut i) = (0usize, 0usize, 0usize);
    while i < t.len() {
        match t[i] {
            q @ (b'"' | b'\'') => {
                i += 1;
                while i < t.len() && t[i] != q {
                    i += if t[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'/' if t.get(i + 1) == Some(&b'/') => {
                while i < t.len() && t[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if t.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < t.len() && !(t[i] == b'*' && t[i + 1] == b'/') {
                    i += 1;
                }
                i += 1;
            }
            b'{' | b'[' => {
                depth += 1;
                max = max.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    max
}

fn parse_body(raw: &RawRequest) -> Result<Option<Value>, ArmError> {
    if raw.body.len() > MAX_BODY_BYTES {
        return Err(ArmError::new(
            413,
            "RequestEntityTooLarge",
            format!("The request content size exceeds the maximum of {MAX_BODY_BYTES} bytes; send a smaller body."),
        ));
    }
    if raw.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    if let Some(ct) = raw
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    {
        if !ct.to_ascii_lowercase().contains("json") {
            return Err(ArmError::new(
                415,
                "UnsupportedMediaType",
                format!("The content media type '{ct}' is not supported. Only 'application/json' is supported."),
            ));
        }
    }
    match serde_json::from_slice::<Value>(&raw.body) {
        Ok(v) => Ok(Some(v)),
        // Resource Manager reads bodies with a lenient JSON reader: comments,
        // unquoted property names and trailing commas pass. azure-cli relies
        // on it — `az deployment … create` splices the template file's text,
        // comments included, into the body after an unquoted `template:` key.
        Err(strict) => std::str::from_utf8(&raw.body)
            .ok()
            .filter(|text| nesting_depth(text) <= MAX_LENIENT_DEPTH)
            .and_then(|text| json5::from_str::<Value>(text).ok())
            .map(Some)
            .ok_or_else(|| ArmError::invalid_content(strict)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(body: &str) -> RawRequest {
        RawRequest {
            method: Method::PUT,
            path: "/".into(),
            query: None,
            headers: http::HeaderMap::new(),
            body: body.as_bytes().to_vec(),
            base_url: String::new(),
        }
    }

    #[test]
    fn bodies_are_read_as_leniently_as_arm_reads_them() {
        // What `az deployment group create --template-file` sends.
        let cli = "{\"properties\": {\"mode\": \"Incremental\", template:{\n // comment\n \"resources\": [],\n}}}";
        let v = parse_body(&raw(cli)).unwrap().unwrap();
        assert_eq!(
            v["properties"]["template"]["resources"],
            serde_json::json!([])
        );
        let e = parse_body(&raw("{\"a\": ")).unwrap_err();
        assert_eq!(e.code(), "InvalidRequestContent");
    }

    #[test]
    fn deep_bodies_are_refused_without_the_lenient_reader() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(
            parse_body(&raw(&deep)).unwrap_err().code(),
            "InvalidRequestContent"
        );
        let deep_lenient = format!("{{a:{}{}}}", "[".repeat(50_000), "]".repeat(50_000));
        assert_eq!(
            parse_body(&raw(&deep_lenient)).unwrap_err().code(),
            "InvalidRequestContent"
        );
        assert_eq!(nesting_depth("{\"a\": \"[[[\", b: ['{']}"), 2);
        assert_eq!(nesting_depth("{ // it's\n a: [[1]] /* ' */ }"), 3);
    }

    #[test]
    fn legacy_deployment_operation_paths_are_aliased() {
        assert_eq!(
            legacy_alias("/subscriptions/s/resourcegroups/rg/deployments/d/operations").as_deref(),
            Some("/subscriptions/s/resourcegroups/rg/providers/Microsoft.Resources/deployments/d/operations")
        );
        assert_eq!(
            legacy_alias("/subscriptions/s/resourcegroups/rg/providers/X/y/z"),
            None
        );
        assert_eq!(legacy_alias("/subscriptions/s/resourcegroups/rg"), None);
    }
}
