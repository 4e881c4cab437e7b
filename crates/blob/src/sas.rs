//! Shared access signatures signed with an account key: account SAS
//! (`ss`, `srt`) and service SAS (`sr`) for the Blob service. The same
//! string-to-sign functions sign (ARM's `listAccountSas`/`listServiceSas`)
//! and verify (the Blob plane), so the two cannot drift apart.

use std::collections::BTreeMap;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::BlobError;

/// The version recoverite's own tokens are signed with.
pub const VERSION: &str = "2022-11-02";

/// A SAS token's fields, by query name (`sv`, `sp`, `se`, `sig`, …).
pub type Fields = BTreeMap<String, String>;

pub fn parse(query: &str) -> Fields {
    query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| {
            let dec = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (dec(k), dec(v))
        })
        .collect()
}

fn f<'a>(q: &'a Fields, k: &str) -> &'a str {
    q.get(k).map(String::as_str).unwrap_or("")
}

/// Account SAS: "accountname\nsignedpermissions\nsignedservice\n
/// signedresourcetype\nsignedstart\nsignedexpiry\nsignedIP\nsignedProtocol\n
/// signedversion\n" — and "signedEncryptionScope\n" from version 2020-12-06.
pub fn account_string_to_sign(account: &str, q: &Fields) -> String {
    let mut s = format!(
        "{account}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n",
        f(q, "sp"),
        f(q, "ss"),
        f(q, "srt"),
        f(q, "st"),
        f(q, "se"),
        f(q, "sip"),
        f(q, "spr"),
        f(q, "sv")
    );
    if f(q, "sv") >= "2020-12-06" {
        s.push_str(&format!("{}\n", f(q, "ses")));
    }
    s
}

/// Service SAS for a blob or container, `canonical` being
/// `/blob/{account}/{container}[/{blob}]`: "signedPermissions\nsignedStart\n
/// signedExpiry\ncanonicalizedResource\nsignedIdentifier\nsignedIP\n
/// signedProtocol\nsignedVersion\n" then, from 2018-11-09,
/// "signedResource\nsignedSnapshotTime\n", from 2020-12-06
/// "signedEncryptionScope\n", and the five response headers.
pub fn service_string_to_sign(canonical: &str, q: &Fields) -> String {
    let mut s = format!(
        "{}\n{}\n{}\n{canonical}\n{}\n{}\n{}\n{}\n",
        f(q, "sp"),
        f(q, "st"),
        f(q, "se"),
        f(q, "si"),
        f(q, "sip"),
        f(q, "spr"),
        f(q, "sv")
    );
    let v = f(q, "sv");
    if v >= "2018-11-09" {
        s.push_str(&format!("{}\n{}\n", f(q, "sr"), f(q, "sst")));
    }
    if v >= "2020-12-06" {
        s.push_str(&format!("{}\n", f(q, "ses")));
    }
    s.push_str(&format!(
        "{}\n{}\n{}\n{}\n{}",
        f(q, "rscc"),
        f(q, "rscd"),
        f(q, "rsce"),
        f(q, "rscl"),
        f(q, "rsct")
    ));
    s
}

pub fn sign(key: &[u8], text: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any size");
    mac.update(text.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// A token's query string: its fields in Azure's order, then `sig`.
pub fn token(q: &Fields, sig: &str) -> String {
    const ORDER: &[&str] = &[
        "sv", "ss", "srt", "sp", "st", "se", "sip", "spr", "sr", "si", "ses", "rscc", "rscd",
        "rsce", "rscl", "rsct",
    ];
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    let enc = |s: &str| percent_encoding::utf8_percent_encode(s, SET).to_string();
    let mut parts: Vec<String> = ORDER
        .iter()
        .filter_map(|k| {
            q.get(*k)
                .filter(|v| !v.is_empty())
                .map(|v| format!("{k}={}", enc(v)))
        })
        .collect();
    parts.push(format!("sig={}", enc(sig)));
    parts.join("&")
}

/// An ISO 8601 UTC time as SAS fields carry it (a date alone is midnight).
pub fn parse_time(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339)
        .or_else(|_| OffsetDateTime::parse(&format!("{s}T00:00:00Z"), &Rfc3339))
        .ok()
}

/// What a request needs of a SAS: a permission letter (any of), and the
/// account-SAS resource type (`s` service, `c` container, `o` object).
#[derive(Debug, Clone, Copy)]
pub struct Need {
    pub permissions: &'static str,
    pub resource_type: char,
}

fn auth_failed(msg: String) -> BlobError {
    BlobError::new(
        403,
        "AuthenticationFailed",
        format!("Server failed to authenticate the request. {msg}"),
    )
}

/// Checks a SAS request: the signature under one of the keys, the time
/// window, the service, resource type or resource, and the permissions.
pub fn verify(
    account: &str,
    container: &str,
    blob: Option<&str>,
    q: &Fields,
    need: Need,
    keys: &[Vec<u8>],
    now: OffsetDateTime,
) -> Result<(), BlobError> {
    let account_sas = q.contains_key("ss") || q.contains_key("srt");
    let text = if account_sas {
        account_string_to_sign(account, q)
    } else {
        let sr = f(q, "sr");
        let canonical = match (sr, blob) {
            ("c", _) => format!("/blob/{account}/{container}"),
            ("b", Some(b)) => format!("/blob/{account}/{container}/{b}"),
            _ => {
                return Err(BlobError::new(
                    403,
                    "AuthorizationResourceTypeMismatch",
                    format!("This request is not authorized to perform this operation using this resource type: a service SAS with sr='{sr}' does not cover it."),
                ))
            }
        };
        service_string_to_sign(&canonical, q)
    };
    let given = base64::engine::general_purpose::STANDARD
        .decode(f(q, "sig"))
        .map_err(|_| auth_failed("The sig parameter is not base64.".into()))?;
    let ok = keys.iter().any(|k| {
        let mut mac = Hmac::<Sha256>::new_from_slice(k).expect("HMAC takes keys of any size");
        mac.update(text.as_bytes());
        mac.verify_slice(&given).is_ok()
    });
    if !ok {
        return Err(auth_failed(format!(
            "Signature did not match. String to sign used was {text:?}."
        )));
    }
    let expiry = parse_time(f(q, "se")).ok_or_else(|| {
        auth_failed("Signed expiry (se) is missing or not an ISO 8601 time.".into())
    })?;
    if now >= expiry {
        return Err(auth_failed("Signed expiry time has passed.".into()));
    }
    if let Some(start) = q.get("st").and_then(|s| parse_time(s)) {
        if now < start {
            return Err(auth_failed("Signed start time is still ahead.".into()));
        }
    }
    if account_sas {
        if !f(q, "ss").contains('b') {
            return Err(BlobError::new(403, "AuthorizationServiceMismatch", "This request is not authorized to perform this operation using this service: the SAS does not include the Blob service (ss=b)."));
        }
        if !f(q, "srt").contains(need.resource_type) {
            return Err(BlobError::new(403, "AuthorizationResourceTypeMismatch", format!("This request is not authorized to perform this operation using this resource type: it needs srt to include '{}'.", need.resource_type)));
        }
    }
    let sp = f(q, "sp");
    if !need.permissions.chars().any(|p| sp.contains(p)) {
        return Err(BlobError::new(
            403,
            "AuthorizationPermissionMismatch",
            format!("This request is not authorized to perform this operation using this permission: it needs one of '{}' in sp.", need.permissions),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Fields {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn account_string_to_sign_by_version() {
        let old = fields(&[
            ("sv", "2015-04-05"),
            ("ss", "b"),
            ("srt", "sco"),
            ("sp", "rl"),
            ("se", "2030-01-01T00:00:00Z"),
        ]);
        assert_eq!(
            account_string_to_sign("acct", &old),
            "acct\nrl\nb\nsco\n\n2030-01-01T00:00:00Z\n\n\n2015-04-05\n"
        );
        let new = fields(&[
            ("sv", "2022-11-02"),
            ("ss", "b"),
            ("srt", "o"),
            ("sp", "r"),
            ("se", "2030-01-01"),
        ]);
        assert!(account_string_to_sign("acct", &new).ends_with("2022-11-02\n\n"));
    }

    #[test]
    fn service_string_to_sign_by_version() {
        let q = fields(&[
            ("sv", "2022-11-02"),
            ("sr", "c"),
            ("sp", "rl"),
            ("se", "2030-01-01"),
        ]);
        assert_eq!(
            service_string_to_sign("/blob/a/c", &q),
            "rl\n\n2030-01-01\n/blob/a/c\n\n\n\n2022-11-02\nc\n\n\n\n\n\n\n"
        );
        let q = fields(&[("sv", "2015-04-05"), ("sr", "c"), ("sp", "r"), ("se", "x")]);
        assert_eq!(
            service_string_to_sign("/blob/a/c", &q),
            "r\n\nx\n/blob/a/c\n\n\n\n2015-04-05\n\n\n\n\n"
        );
    }

    #[test]
    fn tokens_verify_within_their_window_permissions_and_scope() {
        let key = b"k".repeat(64);
        let keys = vec![key.clone()];
        let now = parse_time("2026-06-01T00:00:00Z").unwrap();
        let mut q = fields(&[
            ("sv", VERSION),
            ("ss", "b"),
            ("srt", "co"),
            ("sp", "rl"),
            ("se", "2026-06-02T00:00:00Z"),
        ]);
        let sig = sign(&key, &account_string_to_sign("acct", &q));
        q.insert("sig".into(), sig);
        let read = Need {
            permissions: "r",
            resource_type: 'o',
        };
        assert!(verify("acct", "c", Some("b"), &q, read, &keys, now).is_ok());
        let write = Need {
            permissions: "wc",
            resource_type: 'o',
        };
        assert_eq!(
            verify("acct", "c", Some("b"), &q, write, &keys, now)
                .unwrap_err()
                .code,
            "AuthorizationPermissionMismatch"
        );
        let service = Need {
            permissions: "r",
            resource_type: 's',
        };
        assert_eq!(
            verify("acct", "c", None, &q, service, &keys, now)
                .unwrap_err()
                .code,
            "AuthorizationResourceTypeMismatch"
        );
        let later = parse_time("2026-06-03T00:00:00Z").unwrap();
        assert_eq!(
            verify("acct", "c", Some("b"), &q, read, &keys, later)
                .unwrap_err()
                .code,
            "AuthenticationFailed"
        );
        assert!(
            verify("other", "c", Some("b"), &q, read, &keys, now).is_err(),
            "signed for another account"
        );
        assert!(
            verify("acct", "c", Some("b"), &q, read, &[b"x".repeat(64)], now).is_err(),
            "another key"
        );
        // A service SAS for one container does not open another.
        let mut s = fields(&[
            ("sv", VERSION),
            ("sr", "c"),
            ("sp", "r"),
            ("se", "2026-06-02"),
        ]);
        let sig = sign(&key, &service_string_to_sign("/blob/acct/c", &s));
        s.insert("sig".into(), sig);
        assert!(verify("acct", "c", Some("b"), &s, read, &keys, now).is_ok());
        assert!(verify("acct", "other", Some("b"), &s, read, &keys, now).is_err());
    }

    #[test]
    fn tokens_carry_fields_in_order_and_encoded() {
        let q = fields(&[
            ("sv", VERSION),
            ("se", "2030-01-01T00:00:00Z"),
            ("sp", "r"),
            ("ss", "b"),
            ("srt", "o"),
        ]);
        assert_eq!(
            token(&q, "a+b/c="),
            "sv=2022-11-02&ss=b&srt=o&sp=r&se=2030-01-01T00%3A00%3A00Z&sig=a%2Bb%2Fc%3D"
        );
    }
}
