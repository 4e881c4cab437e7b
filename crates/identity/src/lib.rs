//! Entra ID and Azure RBAC for recoverite.

pub mod authorization_provider;
pub mod directory;
pub mod graph;
pub mod identity_block;
pub mod principals;
pub mod rbac;
pub mod roles;
pub mod tokens;

pub use directory::{Directory, DirectoryCascade, Grant, OAuthError};
pub use principals::{Principal, PrincipalKind};
pub use tokens::TokenService;
