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

/// What this crate brings to the server: Microsoft.Authorization, and the
/// directory's clean-up of role assignments and identities, run last.
pub fn manifest() -> recoverite_manifest::Manifest {
    recoverite_manifest::Manifest::new("recoverite-identity")
        .provider(authorization_provider::AuthorizationProvider)
        .cascade(recoverite_manifest::Stage::Directory, DirectoryCascade)
}
