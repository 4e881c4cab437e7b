//! `listAccountSas` and `listServiceSas`: SAS tokens signed with one of the
//! account's keys, in the Blob service's own format (the Blob plane checks
//! them with the same string-to-sign, `recoverite_blob::sas`).

use base64::Engine;
use serde::Deserialize;
use serde_json::json;

use recoverite_arm::{ArmError, ArmRequest, Ctx, Reply};
use recoverite_blob::sas::{self, Fields};

use crate::keys;

fn only(field: &str, value: &str, allowed: &str) -> Result<(), ArmError> {
    if value.is_empty() || !value.chars().all(|c| allowed.contains(c)) {
        return Err(ArmError::invalid_parameter(
            field,
            format!("'{value}' is not valid for {field}: use letters from '{allowed}'."),
        ));
    }
    Ok(())
}

fn check_time(field: &str, value: &str) -> Result<(), ArmError> {
    sas::parse_time(value).map(|_| ()).ok_or_else(|| {
        ArmError::invalid_parameter(field, format!("'{value}' is not an ISO 8601 UTC time."))
    })
}

fn check_protocol(p: &str) -> Result<(), ArmError> {
    match p {
        "https" | "https,http" => Ok(()),
        _ => Err(ArmError::invalid_parameter(
            "signedProtocol",
            format!("signedProtocol '{p}' is not valid: use 'https' or 'https,http'."),
        )),
    }
}

/// The decoded key `keyToSign` names (key1 when absent).
fn signing_key(ctx: &Ctx, account_id: &str, which: Option<&str>) -> Result<Vec<u8>, ArmError> {
    let which = keys::regenerate_target(which.unwrap_or("key1"))?;
    let all = ctx.store().write(|tx| keys::ensure(tx, account_id))?;
    let k = all
        .iter()
        .find(|k| k.name == which)
        .ok_or_else(|| ArmError::internal("the account has no such key"))?;
    base64::engine::general_purpose::STANDARD
        .decode(&k.value)
        .map_err(|e| ArmError::internal(format!("stored key is not base64: {e}")))
}

fn put(q: &mut Fields, k: &str, v: Option<String>) {
    if let Some(v) = v.filter(|v| !v.is_empty()) {
        q.insert(k.to_string(), v);
    }
}

/// `POST …/listAccountSas`.
pub fn account(
    ctx: &Ctx,
    req: &ArmRequest,
    account_id: &str,
    account: &str,
) -> Result<Reply, ArmError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Body {
        signed_services: String,
        signed_resource_types: String,
        signed_permission: String,
        signed_ip: Option<String>,
        signed_protocol: Option<String>,
        signed_start: Option<String>,
        signed_expiry: String,
        key_to_sign: Option<String>,
    }
    let b: Body = req.body_as()?;
    only("signedServices", &b.signed_services, "bqtf")?;
    only("signedResourceTypes", &b.signed_resource_types, "sco")?;
    only("signedPermission", &b.signed_permission, "rwdxylacuptfi")?;
    check_time("signedExpiry", &b.signed_expiry)?;
    if let Some(s) = &b.signed_start {
        check_time("signedStart", s)?;
    }
    if let Some(p) = &b.signed_protocol {
        check_protocol(p)?;
    }
    let mut q = Fields::new();
    q.insert("sv".into(), sas::VERSION.into());
    q.insert("ss".into(), b.signed_services);
    q.insert("srt".into(), b.signed_resource_types);
    q.insert("sp".into(), b.signed_permission);
    q.insert("se".into(), b.signed_expiry);
    put(&mut q, "st", b.signed_start);
    put(&mut q, "sip", b.signed_ip);
    put(&mut q, "spr", b.signed_protocol);
    let key = signing_key(ctx, account_id, b.key_to_sign.as_deref())?;
    let sig = sas::sign(&key, &sas::account_string_to_sign(account, &q));
    Ok(Reply::ok(json!({"accountSasToken": sas::token(&q, &sig)})))
}

/// `POST …/listServiceSas` for a Blob container (`sr=c`) or blob (`sr=b`).
pub fn service(
    ctx: &Ctx,
    req: &ArmRequest,
    account_id: &str,
    account: &str,
) -> Result<Reply, ArmError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Body {
        canonicalized_resource: String,
        signed_resource: Option<String>,
        signed_permission: Option<String>,
        signed_ip: Option<String>,
        signed_protocol: Option<String>,
        signed_start: Option<String>,
        signed_expiry: Option<String>,
        signed_identifier: Option<String>,
        key_to_sign: Option<String>,
        rscc: Option<String>,
        rscd: Option<String>,
        rsce: Option<String>,
        rscl: Option<String>,
        rsct: Option<String>,
    }
    let b: Body = req.body_as()?;
    let prefix = format!("/blob/{account}/");
    let rest = b
        .canonicalized_resource
        .strip_prefix(&prefix)
        .filter(|r| !r.is_empty())
        .ok_or_else(|| {
            ArmError::invalid_parameter(
                "canonicalizedResource",
                format!("canonicalizedResource must be '/blob/{account}/{{container}}[/{{blob}}]' (recoverite serves the Blob service's SAS)."),
            )
        })?;
    let sr = b.signed_resource.clone().unwrap_or_else(|| {
        if rest.contains('/') {
            "b".into()
        } else {
            "c".into()
        }
    });
    match (sr.as_str(), rest.contains('/')) {
        ("c", false) | ("b", true) => {}
        _ => {
            return Err(ArmError::invalid_parameter(
                "signedResource",
                format!("signedResource '{sr}' does not match '{}': use 'c' for a container, 'b' for a blob.", b.canonicalized_resource),
            ))
        }
    }
    if let Some(p) = &b.signed_permission {
        only("signedPermission", p, "racwdl")?;
    }
    match (&b.signed_expiry, &b.signed_identifier) {
        (Some(e), _) => check_time("signedExpiry", e)?,
        (None, Some(_)) => {}
        (None, None) => return Err(ArmError::invalid_parameter("signedExpiry", "A service SAS needs signedExpiry (or a signedIdentifier naming a stored access policy).")),
    }
    if let Some(p) = &b.signed_protocol {
        check_protocol(p)?;
    }
    let mut q = Fields::new();
    q.insert("sv".into(), sas::VERSION.into());
    q.insert("sr".into(), sr);
    put(&mut q, "sp", b.signed_permission);
    put(&mut q, "st", b.signed_start);
    put(&mut q, "se", b.signed_expiry);
    put(&mut q, "si", b.signed_identifier);
    put(&mut q, "sip", b.signed_ip);
    put(&mut q, "spr", b.signed_protocol);
    for (k, v) in [
        ("rscc", b.rscc),
        ("rscd", b.rscd),
        ("rsce", b.rsce),
        ("rscl", b.rscl),
        ("rsct", b.rsct),
    ] {
        put(&mut q, k, v);
    }
    let key = signing_key(ctx, account_id, b.key_to_sign.as_deref())?;
    let sig = sas::sign(
        &key,
        &sas::service_string_to_sign(&b.canonicalized_resource, &q),
    );
    Ok(Reply::ok(json!({"serviceSasToken": sas::token(&q, &sig)})))
}
