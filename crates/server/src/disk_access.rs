//! `GET|HEAD /recoverite/disks/{token}`: the download URL that a disk's
//! `beginGetAccess` hands out. The token is the credential (as an access
//! SAS is); it serves the disk's bytes, whole or by `Range`, until it
//! expires or `endGetAccess` revokes it.

use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::AppState;

fn refuse(status: StatusCode, code: &str, message: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
    );
    (
        status,
        [
            ("x-ms-error-code", code.to_string()),
            (header::CONTENT_TYPE.as_str(), "application/xml".into()),
        ],
        body,
    )
        .into_response()
}

/// `bytes=a-b` / `bytes=a-` within `size`, as (start, end inclusive).
pub fn range(h: &HeaderMap, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(v) = h
        .get("x-ms-range")
        .or_else(|| h.get(header::RANGE))
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(None);
    };
    let spec = v.strip_prefix("bytes=").ok_or(())?;
    let (a, b) = spec.split_once('-').ok_or(())?;
    let start: u64 = a.trim().parse().map_err(|_| ())?;
    let end: u64 = if b.trim().is_empty() {
        size.saturating_sub(1)
    } else {
        b.trim().parse().map_err(|_| ())?
    };
    if start > end || start >= size {
        return Err(());
    }
    Ok(Some((start, end.min(size.saturating_sub(1)))))
}

/// Reads at most this much per request, so one download cannot hold the
/// server's memory (clients page through large disks with `Range`, as
/// azcopy does).
const MAX_CHUNK: u64 = 64 << 20;

pub async fn download(
    State(s): State<Arc<AppState>>,
    Path(token): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let store = s.router.platform().store.clone();
    let grant = match store.read(|r| Ok(recoverite_rp_compute::access::by_token(r, &token))) {
        Ok(Ok(Some(g))) => g,
        _ => {
            return refuse(
                StatusCode::FORBIDDEN,
                "AuthenticationFailed",
                "The access URL is not valid, or its access was revoked.",
            )
        }
    };
    if grant.expires <= recoverite_arm::time::real_now().unix_timestamp() {
        return refuse(
            StatusCode::FORBIDDEN,
            "AuthenticationFailed",
            "The access URL has expired; grant access again.",
        );
    }
    let size = grant.size_bytes;
    let (start, end, partial) = match range(&headers, size) {
        Ok(Some((a, b))) => (a, b, true),
        Ok(None) => (0, size.saturating_sub(1), false),
        Err(()) => {
            return refuse(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "InvalidRange",
                "The range specified is invalid for the current size of the disk.",
            )
        }
    };
    let len = if size == 0 { 0 } else { end - start + 1 };
    let mut resp_headers = vec![
        (header::CONTENT_TYPE, "application/octet-stream".to_string()),
        (header::ACCEPT_RANGES, "bytes".to_string()),
        (
            header::HeaderName::from_static("x-ms-blob-type"),
            "PageBlob".to_string(),
        ),
    ];
    if method == Method::HEAD {
        resp_headers.push((header::CONTENT_LENGTH, size.to_string()));
        let mut r = StatusCode::OK.into_response();
        for (k, v) in resp_headers {
            if let Ok(v) = v.parse() {
                r.headers_mut().insert(k, v);
            }
        }
        return r;
    }
    if len > MAX_CHUNK {
        return refuse(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "InvalidRange",
            &format!("Ask for at most {MAX_CHUNK} bytes at a time (Range: bytes=start-end)."),
        );
    }
    let path = s.blocks.image(&grant.unique_id);
    let bytes = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
        let mut f = std::fs::File::open(path)?;
        f.seek(SeekFrom::Start(start))?;
        let mut buf = vec![0u8; len as usize];
        f.read_exact(&mut buf)?;
        Ok(buf)
    })
    .await;
    let bytes = match bytes {
        Ok(Ok(b)) => b,
        _ => {
            return refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "The disk's bytes could not be read.",
            )
        }
    };
    let status = if partial {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    if partial {
        resp_headers.push((header::CONTENT_RANGE, format!("bytes {start}-{end}/{size}")));
    }
    let mut r = (status, Body::from(bytes)).into_response();
    for (k, v) in resp_headers {
        if let Ok(v) = v.parse() {
            r.headers_mut().insert(k, v);
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_as_http_and_the_blob_service_write_them() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::RANGE, v.parse().unwrap());
            m
        };
        assert_eq!(range(&HeaderMap::new(), 100), Ok(None));
        assert_eq!(range(&h("bytes=0-9"), 100), Ok(Some((0, 9))));
        assert_eq!(range(&h("bytes=90-"), 100), Ok(Some((90, 99))));
        assert_eq!(range(&h("bytes=90-500"), 100), Ok(Some((90, 99))));
        assert!(range(&h("bytes=100-"), 100).is_err());
        assert!(range(&h("bytes=9-1"), 100).is_err());
        assert!(range(&h("items=0-1"), 100).is_err());
    }
}
