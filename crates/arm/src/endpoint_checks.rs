//! Checks every typed provider's tests run on its endpoints: the action an
//! endpoint declares is the one ARM derives from the request's path, and it
//! is a list exactly when ARM treats the request as one.

use http::Method;

use crate::id::ResourcePath;
use crate::provider::{default_operation, ArmRequest, Endpoint, ProviderInfo};
use crate::ArmError;

/// A request as the router hands it to a provider (no body, no headers).
pub fn request(method: Method, path: &str) -> ArmRequest {
    ArmRequest {
        method,
        path: ResourcePath::parse(path).expect("a well-formed test path"),
        raw_path: path.to_string(),
        query: vec![],
        api_version: "2025-08-01".into(),
        headers: Default::default(),
        body: None,
    }
}

/// Parses each (method, path) with `parse` and compares the endpoint's
/// declaration with ARM's derivation; returns the endpoints' debug names.
pub fn assert_declared_actions<E: Endpoint + std::fmt::Debug>(
    info: &ProviderInfo,
    cases: &[(Method, String)],
    parse: impl Fn(&ArmRequest) -> Result<E, ArmError>,
) -> std::collections::BTreeSet<String> {
    let mut seen = std::collections::BTreeSet::new();
    for (m, path) in cases {
        let r = request(m.clone(), path);
        let ep = parse(&r).unwrap_or_else(|e| panic!("{m} {path}: {e:?}"));
        let derived = default_operation(info, &r).expect("a served type");
        assert!(
            ep.action().eq_ignore_ascii_case(&derived.action),
            "{m} {path}: declares {} but ARM derives {}",
            ep.action(),
            derived.action
        );
        assert_eq!(ep.is_list(), derived.list, "{m} {path}: list");
        seen.insert(format!("{ep:?}"));
    }
    seen
}

/// Any path under `prefix` with any method: `parse` must answer, never panic.
pub fn parse_any(prefix: &str, rest: &str, method: u8, parse: impl Fn(&ArmRequest)) {
    const METHODS: [Method; 6] = [
        Method::GET,
        Method::PUT,
        Method::POST,
        Method::DELETE,
        Method::PATCH,
        Method::HEAD,
    ];
    let path = format!("{prefix}{rest}");
    if let Ok(p) = ResourcePath::parse(&path) {
        let mut r = request(METHODS[method as usize % 6].clone(), prefix);
        r.path = p;
        r.raw_path = path;
        parse(&r);
    }
}
