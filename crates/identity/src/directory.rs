//! The directory as the rest of recoverite sees it: it authenticates bearer
//! tokens, answers access checks, issues tokens to clients, and forgets what
//! belonged to deleted scopes.

use std::sync::Arc;

use recoverite_arm::{ArmError, Authorizer, Caller, ScopeCascade};
use recoverite_store::{Store, WriteTx};

use crate::principals::{self, Principal};
use crate::rbac;
use crate::tokens::{self, TokenService};

pub struct Directory {
    pub store: Store,
    pub tokens: Arc<TokenService>,
}

/// An OAuth 2.0 error as Entra ID returns it from the token endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct OAuthError {
    pub status: u16,
    pub error: &'static str,
    pub description: String,
}

impl OAuthError {
    fn new(status: u16, error: &'static str, description: impl Into<String>) -> OAuthError {
        OAuthError {
            status,
            error,
            description: description.into(),
        }
    }
}

pub struct Grant {
    pub access_token: String,
    pub expires_in: u64,
}

impl Directory {
    pub fn new(store: Store, tokens: Arc<TokenService>) -> Directory {
        Directory { store, tokens }
    }

    /// The resource a v2 scope names (`https://management.azure.com/.default` → `https://management.azure.com`).
    pub fn resource_of_scope(scope: &str) -> Option<String> {
        scope
            .split_whitespace()
            .find_map(|s| s.strip_suffix("/.default"))
            .map(str::to_string)
    }

    /// The client-credentials grant with a client secret.
    pub fn client_credentials(
        &self,
        tenant: &str,
        client_id: &str,
        secret: &str,
        resource: &str,
    ) -> Result<Grant, OAuthError> {
        if !tenant.eq_ignore_ascii_case(&self.tokens.tenant_id) {
            return Err(OAuthError::new(
                400,
                "invalid_request",
                format!("AADSTS90002: Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID (connection.json tenantId)."),
            ));
        }
        if !self.tokens.known_resource(resource) {
            return Err(OAuthError::new(
                400,
                "invalid_resource",
                format!("AADSTS500011: The resource principal named {resource} was not found in the tenant. Request a token for https://management.azure.com/.default."),
            ));
        }
        let p: Option<Principal> = self
            .store
            .read(|r| Ok(principals::by_app_id(r, client_id)))
            .map_err(|e| OAuthError::new(500, "server_error", e.to_string()))?
            .map_err(|e| OAuthError::new(500, "server_error", e.to_string()))?;
        let p = p.ok_or_else(|| {
            OAuthError::new(
                400,
                "unauthorized_client",
                format!("AADSTS700016: Application with identifier '{client_id}' was not found in the directory '{tenant}'."),
            )
        })?;
        if !p.verify_secret(secret) {
            return Err(OAuthError::new(
                401,
                "invalid_client",
                format!("AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."),
            ));
        }
        let access_token = self
            .tokens
            .issue(&p, resource, tokens::TOKEN_LIFETIME_SECS)
            .map_err(|e| OAuthError::new(500, "server_error", e))?;
        Ok(Grant {
            access_token,
            expires_in: tokens::TOKEN_LIFETIME_SECS,
        })
    }

    fn with_challenge(&self, e: ArmError) -> ArmError {
        if e.status == 401 {
            let challenge = self.tokens.www_authenticate(&e.body.message);
            e.with_header("WWW-Authenticate", challenge)
        } else {
            e
        }
    }
}

impl Authorizer for Directory {
    fn authenticate(&self, authorization: Option<&str>) -> Result<Caller, ArmError> {
        let header = authorization.ok_or_else(|| {
            self.with_challenge(tokens::unauthorized(
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.",
            ))
        })?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| {
                self.with_challenge(tokens::unauthorized(
                    "AuthenticationFailed",
                    "Authentication failed. The 'Authorization' header is provided in an invalid format; use 'Bearer <token>'.",
                ))
            })?;
        let claims = self
            .tokens
            .verify_for_arm(token.trim())
            .map_err(|e| self.with_challenge(e))?;
        Ok(Caller {
            object_id: claims.oid,
            tenant_id: claims.tid,
            app_id: claims.appid,
        })
    }

    fn is_allowed(&self, caller: &Caller, action: &str, scope: &str) -> Result<bool, ArmError> {
        self.store
            .read(|r| Ok(rbac::is_allowed(r, &caller.object_id, action, scope)))?
    }

    fn is_allowed_data(
        &self,
        object_id: &str,
        data_action: &str,
        scope: &str,
    ) -> Result<bool, ArmError> {
        self.store
            .read(|r| Ok(rbac::is_allowed_data(r, object_id, data_action, scope)))?
    }

    fn has_any_access(&self, caller: &Caller, scope: &str) -> Result<bool, ArmError> {
        use recoverite_arm::tenancy;
        self.store.read(|r| {
            Ok((|| {
                for a in rbac::for_principal(r, &caller.object_id)? {
                    // At or above the scope (management groups included) …
                    if tenancy::assignment_reaches(r, &a.scope, scope)? {
                        return Ok(true);
                    }
                    // … or below it: a group holds the subscriptions under it.
                    let below = match tenancy::group_of_scope(scope) {
                        Some(_) => tenancy::assignment_reaches(r, scope, &a.scope)?,
                        None => recoverite_arm::id::scope_contains(scope, &a.scope),
                    };
                    if below {
                        return Ok(true);
                    }
                }
                Ok::<bool, ArmError>(false)
            })())
        })?
    }
}

/// Removes role assignments' index entries and managed identities of deleted scopes.
pub struct DirectoryCascade;

impl ScopeCascade for DirectoryCascade {
    fn scope_deleted(&self, tx: &mut WriteTx, scope: &str) -> Result<(), ArmError> {
        rbac::forget_under_scope(tx, scope)?;
        principals::delete_under_scope(tx, scope)
    }
}
