//! Signed access tokens (RS256 JWTs) and the key that signs them.
//!
//! The signing key lives in the data directory. Generating a 2048-bit RSA key
//! takes a noticeable fraction of a second, so on first start it is generated
//! on a background thread while the listeners come up; anything that needs it
//! waits for it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use rsa::traits::PublicKeyParts;
use rsa::RsaPrivateKey;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use recoverite_arm::ArmError;

use crate::principals::Principal;

pub const TOKEN_LIFETIME_SECS: u64 = 3599;

/// Audiences Azure Resource Manager accepts.
pub const ARM_AUDIENCES: &[&str] = &[
    "https://management.azure.com",
    "https://management.azure.com/",
    "https://management.core.windows.net",
    "https://management.core.windows.net/",
];

/// Other resources this directory issues tokens for (data planes).
pub const OTHER_RESOURCES: &[&str] = &[
    "https://storage.azure.com",
    "https://storage.azure.com/",
    "https://vault.azure.net",
    "https://graph.microsoft.com",
];

/// A Recovery Services vault's audience for its agents
/// (`https://RecoveryServiceVault/{region}/{vault}/{id}`, the vault
/// certificate's `aadAudience`).
pub fn is_vault_audience(resource: &str) -> bool {
    let r = resource.trim_end_matches('/').to_ascii_lowercase();
    r.strip_prefix("https://recoveryservicevault/")
        .is_some_and(|rest| rest.split('/').filter(|p| !p.is_empty()).count() == 3)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub aud: String,
    pub iss: String,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
    pub oid: String,
    pub tid: String,
    pub sub: String,
    pub appid: String,
    pub azp: String,
    pub idtyp: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xms_mirid: Option<String>,
}

pub struct KeyMaterial {
    encoding: EncodingKey,
    decoding: DecodingKey,
    pub kid: String,
    pub jwk: Value,
}

impl KeyMaterial {
    fn from_private(key: &RsaPrivateKey) -> Result<KeyMaterial, String> {
        let pem = key
            .to_pkcs1_pem(rsa::pkcs8::LineEnding::LF)
            .map_err(|e| e.to_string())?;
        let encoding = EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| e.to_string())?;
        let n = URL_SAFE_NO_PAD.encode(key.n().to_bytes_be());
        let e = URL_SAFE_NO_PAD.encode(key.e().to_bytes_be());
        let decoding = DecodingKey::from_rsa_components(&n, &e).map_err(|e| e.to_string())?;
        let kid = URL_SAFE_NO_PAD.encode(&Sha256::digest(n.as_bytes())[..20]);
        let jwk = json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid, "n": n, "e": e});
        Ok(KeyMaterial {
            encoding,
            decoding,
            kid,
            jwk,
        })
    }
}

fn load_or_generate(path: &Path) -> Result<KeyMaterial, String> {
    if let Ok(pem) = std::fs::read_to_string(path) {
        let key =
            RsaPrivateKey::from_pkcs1_pem(&pem).map_err(|e| format!("{}: {e}", path.display()))?;
        return KeyMaterial::from_private(&key);
    }
    let key = RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).map_err(|e| e.to_string())?;
    let pem = key
        .to_pkcs1_pem(rsa::pkcs8::LineEnding::LF)
        .map_err(|e| e.to_string())?;
    write_private_file(path, pem.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))?;
    KeyMaterial::from_private(&key)
}

/// Writes a secret file atomically (temp file + rename) with owner-only access.
pub fn write_private_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    // Created 0600 from the start: the secret is never readable by others,
    // not even between writing and a later chmod.
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    {
        use std::io::Write;
        let mut f = opts.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

pub struct TokenService {
    keys: Arc<OnceLock<Result<KeyMaterial, String>>>,
    pub tenant_id: String,
    /// `https://127.0.0.1:10443`: the authority host and the ARM endpoint share an origin.
    pub authority: String,
    pub issuer: String,
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl TokenService {
    /// Loads the signing key, or starts generating it in the background.
    pub fn start(key_path: PathBuf, authority: &str, tenant_id: &str) -> TokenService {
        let keys = Arc::new(OnceLock::new());
        if key_path.exists() {
            let _ = keys.set(load_or_generate(&key_path));
        } else {
            let k = keys.clone();
            std::thread::spawn(move || {
                let _ = k.set(load_or_generate(&key_path));
            });
        }
        TokenService {
            keys,
            tenant_id: tenant_id.to_string(),
            authority: authority.to_string(),
            issuer: format!("{authority}/{tenant_id}/v2.0"),
        }
    }

    /// The key material, waiting for first-start generation if needed.
    pub fn keys(&self) -> Result<&KeyMaterial, String> {
        self.keys.wait().as_ref().map_err(Clone::clone)
    }

    pub fn jwks(&self) -> Result<Value, String> {
        Ok(json!({ "keys": [self.keys()?.jwk.clone()] }))
    }

    /// Whether `resource` names something this directory issues tokens for.
    pub fn known_resource(&self, resource: &str) -> bool {
        let r = resource.trim_end_matches('/');
        ARM_AUDIENCES
            .iter()
            .chain(OTHER_RESOURCES)
            .any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(r))
            || r.eq_ignore_ascii_case(&self.authority)
            || is_vault_audience(r)
    }

    pub fn issue(
        &self,
        p: &Principal,
        audience: &str,
        lifetime_secs: u64,
    ) -> Result<String, String> {
        self.issue_at(p, audience, unix_now(), lifetime_secs)
    }

    /// Issues a token valid from `iat` (used by tests to mint expired tokens).
    pub fn issue_at(
        &self,
        p: &Principal,
        audience: &str,
        iat: u64,
        lifetime_secs: u64,
    ) -> Result<String, String> {
        let keys = self.keys()?;
        let claims = Claims {
            aud: audience.to_string(),
            iss: self.issuer.clone(),
            iat,
            nbf: iat,
            exp: iat + lifetime_secs,
            oid: p.object_id.clone(),
            tid: self.tenant_id.clone(),
            sub: p.object_id.clone(),
            appid: p.app_id.clone(),
            azp: p.app_id.clone(),
            idtyp: "app".into(),
            xms_mirid: p.resource_id.clone(),
        };
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(keys.kid.clone());
        header.typ = Some("JWT".into());
        jsonwebtoken::encode(&header, &claims, &keys.encoding).map_err(|e| e.to_string())
    }

    /// Validates a bearer token for ARM; errors are ARM's 401s.
    pub fn verify_for_arm(&self, token: &str) -> Result<Claims, ArmError> {
        self.verify_for(token, ARM_AUDIENCES)
    }

    /// Validates a bearer token issued for one audience (a vault's
    /// `aadAudience`, for its registered agents).
    pub fn verify_for_audience(&self, token: &str, audience: &str) -> Result<Claims, ArmError> {
        self.verify_for(token, &[audience, &format!("{audience}/")])
    }

    /// Validates a bearer token for Azure Storage's data plane.
    pub fn verify_for_storage(&self, token: &str) -> Result<Claims, ArmError> {
        self.verify_for(
            token,
            &["https://storage.azure.com", "https://storage.azure.com/"],
        )
    }

    fn verify_for(&self, token: &str, audiences: &[&str]) -> Result<Claims, ArmError> {
        let keys = self.keys().map_err(ArmError::internal)?;
        let mut v = Validation::new(Algorithm::RS256);
        v.leeway = 0;
        v.validate_aud = false;
        v.set_issuer(&[&self.issuer]);
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        let data = jsonwebtoken::decode::<Claims>(token, &keys.decoding, &v).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::ExpiredSignature => expired(token),
                ErrorKind::InvalidIssuer => unauthorized(
                    "InvalidAuthenticationTokenTenant",
                    "The access token is from the wrong issuer. It must match the tenant associated with this subscription. Please use the authority (URL) from connection.json to get the token.",
                ),
                _ => unauthorized("InvalidAuthenticationToken", "The access token is invalid."),
            }
        })?;
        let c = data.claims;
        let arm_ok = audiences.iter().any(|a| *a == c.aud)
            || c.aud
                .trim_end_matches('/')
                .eq_ignore_ascii_case(&self.authority);
        if !arm_ok {
            return Err(unauthorized(
                "InvalidAuthenticationTokenAudience",
                format!(
                    "The access token has been obtained for wrong audience or resource '{}'. It should exactly match with one of the allowed audiences '{}'.",
                    c.aud,
                    audiences.join("','")
                ),
            ));
        }
        if !c.tid.eq_ignore_ascii_case(&self.tenant_id) {
            return Err(unauthorized(
                "InvalidAuthenticationTokenTenant",
                format!("The access token is from the wrong issuer '{}'.", c.tid),
            ));
        }
        Ok(c)
    }

    pub fn www_authenticate(&self, description: &str) -> String {
        format!(
            "Bearer authorization_uri=\"{}/{}\", error=\"invalid_token\", error_description=\"{}\"",
            self.authority,
            self.tenant_id,
            description.replace('"', "'")
        )
    }
}

fn expired(token: &str) -> ArmError {
    // Decode the claims without checking them, only to quote the expiry.
    let exp = token
        .split('.')
        .nth(1)
        .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| v.get("exp").and_then(Value::as_i64))
        .and_then(|e| time::OffsetDateTime::from_unix_timestamp(e).ok());
    let fmt = |t: time::OffsetDateTime| recoverite_arm::time::format(t);
    unauthorized(
        "ExpiredAuthenticationToken",
        format!(
            "The access token expiry UTC time '{}' is earlier than current UTC time '{}'.",
            exp.map(fmt).unwrap_or_default(),
            fmt(recoverite_arm::time::real_now())
        ),
    )
}

pub fn unauthorized(code: &str, message: impl Into<String>) -> ArmError {
    ArmError::new(401, code, message)
}
