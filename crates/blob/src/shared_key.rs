//! Shared Key authorization for the Blob service: `Authorization: SharedKey
//! {account}:{signature}`, where the signature is the Base64 HMAC-SHA256,
//! under one of the account's keys, of the request's string-to-sign:
//!
//! ```text
//! VERB \n Content-Encoding \n Content-Language \n Content-Length \n
//! Content-MD5 \n Content-Type \n Date \n If-Modified-Since \n If-Match \n
//! If-None-Match \n If-Unmodified-Since \n Range \n
//! CanonicalizedHeaders CanonicalizedResource
//! ```
//!
//! Content-Length is empty when it is zero (versions 2015-02-21 and later);
//! canonicalized headers are the `x-ms-*` headers, lower-cased, sorted,
//! `name:value\n`; the canonicalized resource is `/{account}{path}` and then
//! `\n{param}:{values}` for each query parameter, names lower-cased and
//! sorted, values sorted and comma-joined.

use axum::http::{HeaderMap, Method, Uri};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::BlobError;

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', "%20"))
        .decode_utf8_lossy()
        .into_owned()
}

/// The string a Shared Key signature is computed over.
pub fn string_to_sign(account: &str, method: &Method, uri: &Uri, h: &HeaderMap) -> String {
    let length = match header(h, "content-length") {
        "0" => "",
        l => l,
    };
    let mut out = format!(
        "{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n",
        method.as_str(),
        header(h, "content-encoding"),
        header(h, "content-language"),
        length,
        header(h, "content-md5"),
        header(h, "content-type"),
        // x-ms-date, when sent, stands in for Date (which is then empty).
        if h.contains_key("x-ms-date") {
            ""
        } else {
            header(h, "date")
        },
        header(h, "if-modified-since"),
        header(h, "if-match"),
        header(h, "if-none-match"),
        header(h, "if-unmodified-since"),
        header(h, "range"),
    );
    let mut ms: Vec<(String, String)> = h
        .iter()
        .filter(|(k, _)| k.as_str().starts_with("x-ms-"))
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                v.to_str().unwrap_or("").trim().to_string(),
            )
        })
        .collect();
    ms.sort();
    for (k, v) in ms {
        out.push_str(&format!("{k}:{v}\n"));
    }
    out.push_str(&format!("/{account}{}", uri.path()));
    let mut params: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for pair in uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        params
            .entry(decode(k).to_ascii_lowercase())
            .or_default()
            .push(decode(v));
    }
    for (k, mut vs) in params {
        vs.sort();
        out.push_str(&format!("\n{k}:{}", vs.join(",")));
    }
    out
}

#[cfg(test)]
pub fn sign(key: &[u8], text: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any size");
    mac.update(text.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Checks `{account}:{signature}` against every key of the account.
pub fn verify(
    signed: &str,
    account: &str,
    method: &Method,
    uri: &Uri,
    h: &HeaderMap,
    keys: &[Vec<u8>],
) -> Result<(), BlobError> {
    let (who, signature) = signed.trim().split_once(':').unwrap_or(("", ""));
    let text = string_to_sign(account, method, uri, h);
    let fail = || {
        BlobError::new(
            403,
            "AuthenticationFailed",
            format!("Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature. The MAC signature found in the HTTP request is not the same as any computed signature; the server used the string to sign {text:?}."),
        )
    };
    if !who.eq_ignore_ascii_case(account) {
        return Err(fail());
    }
    let wanted = signature.as_bytes();
    for key in keys {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any size");
        mac.update(text.as_bytes());
        let Ok(given) = base64::engine::general_purpose::STANDARD.decode(wanted) else {
            return Err(fail());
        };
        // Constant-time comparison.
        if mac.verify_slice(&given).is_ok() {
            return Ok(());
        }
    }
    Err(fail())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_to_sign_follows_the_blob_rules() {
        let mut h = HeaderMap::new();
        h.insert("x-ms-version", "2025-01-05".parse().unwrap());
        h.insert(
            "x-ms-date",
            "Mon, 01 Dec 2026 12:00:00 GMT".parse().unwrap(),
        );
        h.insert("content-length", "0".parse().unwrap());
        let uri: Uri = "/data?restype=container&comp=list&prefix=a%20b"
            .parse()
            .unwrap();
        let text = string_to_sign("acct", &Method::GET, &uri, &h);
        assert_eq!(
            text,
            "GET\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:Mon, 01 Dec 2026 12:00:00 GMT\nx-ms-version:2025-01-05\n/acct/data\ncomp:list\nprefix:a b\nrestype:container"
        );
    }

    #[test]
    fn a_signature_under_either_key_verifies_and_others_do_not() {
        let h = HeaderMap::new();
        let uri: Uri = "/data/blob1".parse().unwrap();
        let text = string_to_sign("acct", &Method::PUT, &uri, &h);
        let (k1, k2) = (b"first key".to_vec(), b"second key".to_vec());
        let good = format!("acct:{}", sign(&k2, &text));
        assert!(verify(&good, "acct", &Method::PUT, &uri, &h, &[k1.clone(), k2]).is_ok());
        assert!(verify(
            &good,
            "acct",
            &Method::PUT,
            &uri,
            &h,
            std::slice::from_ref(&k1)
        )
        .is_err());
        assert!(verify(&good, "other", &Method::PUT, &uri, &h, &[k1]).is_err());
    }
}
