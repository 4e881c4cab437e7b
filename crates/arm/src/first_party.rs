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
