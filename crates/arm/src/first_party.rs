//! Calls a service makes to other providers through ARM, the way Azure's
//! first-party services do (Site Recovery creating the failover VM, its
//! network interface, the `-asr` network or a cache storage account): the
//! request goes through the router with the service's own principal, so the
//! other provider's public interface and rules apply unchanged.

use std::sync::{Arc, OnceLock};

use http::Method;
use serde_json::Value;

use crate::ArmError;

pub trait ArmClient: Send + Sync {
    /// One ARM request; the reply body (Null when there is none).
    fn call(
        &self,
        method: Method,
        path: &str,
        api_version: &str,
        body: Option<Value>,
    ) -> Result<Value, ArmError>;
}

/// A client set once the router exists (providers are built before it).
#[derive(Default, Clone)]
pub struct LateClient(Arc<OnceLock<Arc<dyn ArmClient>>>);

impl LateClient {
    pub fn set(&self, c: Arc<dyn ArmClient>) {
        let _ = self.0.set(c);
    }

    pub fn get(&self) -> Result<&Arc<dyn ArmClient>, ArmError> {
        self.0
            .get()
            .ok_or_else(|| ArmError::internal("first-party ARM calls are not wired"))
    }

    pub fn call(
        &self,
        method: Method,
        path: &str,
        api_version: &str,
        body: Option<Value>,
    ) -> Result<Value, ArmError> {
        self.get()?.call(method, path, api_version, body)
    }
}

/// Calls made on the caller's behalf with the caller's own token (a restore
/// creating a VM and its NIC "as the caller"): every provider rule and RBAC
/// check applies exactly as if the caller had sent them. Set once the
/// router exists.
#[derive(Default, Clone)]
pub struct AsCaller(Arc<OnceLock<std::sync::Weak<crate::Router>>>);

impl AsCaller {
    pub fn set(&self, router: std::sync::Weak<crate::Router>) {
        let _ = self.0.set(router);
    }

    /// The router, for work that outlives the request (a deployment runs
    /// its resources after the PUT is answered).
    pub fn router(&self) -> Result<std::sync::Arc<crate::Router>, ArmError> {
        self.0
            .get()
            .and_then(|w| w.upgrade())
            .ok_or_else(|| ArmError::internal("calls on the caller's behalf are not wired"))
    }

    /// Sends one request with `req`'s `Authorization` header.
    pub fn call(
        &self,
        ctx: &crate::Ctx,
        req: &crate::ArmRequest,
        method: Method,
        path: &str,
        api_version: &str,
        body: Option<Value>,
    ) -> Result<Value, ArmError> {
        let router = self.router()?;
        dispatch_with(
            &router,
            req.headers.get(http::header::AUTHORIZATION).cloned(),
            method,
            path,
            api_version,
            body,
            &ctx.base_url,
        )
    }
}

/// One JSON request through the router with the given `Authorization`;
/// the reply body (Null when there is none).
pub fn dispatch_with(
    router: &crate::Router,
    authorization: Option<http::HeaderValue>,
    method: Method,
    path: &str,
    api_version: &str,
    body: Option<Value>,
    base_url: &str,
) -> Result<Value, ArmError> {
    dispatch_reply(
        router,
        authorization,
        method,
        path,
        api_version,
        body,
        base_url,
    )
    .map(|r| r.body.unwrap_or(Value::Null))
}

/// One JSON request through the router; the whole reply (status, headers).
pub fn dispatch_reply(
    router: &crate::Router,
    authorization: Option<http::HeaderValue>,
    method: Method,
    path: &str,
    api_version: &str,
    body: Option<Value>,
    base_url: &str,
) -> Result<crate::Reply, ArmError> {
    let mut headers = http::HeaderMap::new();
    if let Some(a) = authorization {
        headers.insert(http::header::AUTHORIZATION, a);
    }
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    router.dispatch(crate::RawRequest {
        method,
        path: path.to_string(),
        query: Some(format!("api-version={api_version}")),
        headers,
        body: body.map(|b| b.to_string().into_bytes()).unwrap_or_default(),
        base_url: base_url.to_string(),
    })
}
