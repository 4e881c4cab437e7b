//! The Blob API's request parsing: container and blob paths, query strings,
//! headers (ranges, block lists, metadata), Shared Key and SAS signatures,
//! on an in-memory object store.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use recoverite_blob::{Access, Admitted, Authorize, BlobError};
use tower::ServiceExt;

struct Anyone;

impl Authorize for Anyone {
    fn authorize(&self, _: &str, authorization: Option<&str>, _: Access) -> Result<(), BlobError> {
        match authorization {
            Some("Bearer ok") => Ok(()),
            _ => Err(BlobError::new(403, "AuthorizationFailure", "not signed in")),
        }
    }
    fn shared_keys(&self, _: &str) -> Result<Vec<Vec<u8>>, BlobError> {
        Ok(vec![b"0123456789abcdef0123456789abcdef".to_vec()])
    }
}

fn fixture() -> &'static (tokio::runtime::Runtime, axum::Router) {
    static F: OnceLock<(tokio::runtime::Runtime, axum::Router)> = OnceLock::new();
    F.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let store = Arc::new(object_store::memory::InMemory::new());
        (rt, recoverite_blob::app(store, Arc::new(Anyone)))
    })
}

fuzz_target!(|data: &[u8]| {
    let (rt, app) = fixture();
    let Some((method, path, mut headers, body)) = recoverite_fuzz::decode(data) else {
        return;
    };
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        headers.push(("host".into(), "acct.blob.core.windows.net".into()));
    }
    let Some(mut req) = recoverite_fuzz::request(method, &path, &headers, body) else {
        return;
    };
    req.extensions_mut()
        .insert(axum::extract::ConnectInfo(Admitted("acct".into())));
    let status = rt.block_on(async {
        app.clone()
            .oneshot(req)
            .await
            .expect("the router is infallible")
            .status()
    });
    assert!(status.as_u16() != 500, "500 for {path}");
});
