//! The Azure Resource Manager surface shared by every recoverite resource provider.

pub mod api_version;
pub mod document;
pub mod endpoint_checks;
pub mod error;
pub mod first_party;
pub mod id;
pub mod lro;
pub mod names;
pub mod paging;
pub mod provider;
pub mod regions;
pub mod registration;
pub mod resource;
pub mod router;
pub mod tenancy;
pub mod time;
pub mod tracked;

pub use error::{ArmError, ArmResult, ErrorBody};
pub use provider::{
    ArmRequest, Authorizer, Caller, Ctx, Endpoint, Endpoints, Environment, Operation, Platform,
    Provider, ProviderInfo, Reply, ResourceType, RouteTable, Routed, Routes, ScopeCascade,
    TenantHook,
};
pub use router::{RawRequest, Router, RESOURCES};
