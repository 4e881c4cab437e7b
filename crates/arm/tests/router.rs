//! The router's order of checks, with a stand-in identity and provider.

use std::sync::Arc;

use http::{HeaderMap, HeaderValue, Method};
use serde_json::json;

use recoverite_arm::lro::{self, OperationRecord};
use recoverite_arm::registration::{self, Registration};
use recoverite_arm::{
    resource, ArmError, ArmRequest, Authorizer, Caller, Ctx, Environment, Platform, Provider,
    ProviderInfo, RawRequest, Reply, ResourceType, Router,
};
use recoverite_store::Store;

const SUB: &str = "00000000-0000-0000-0000-000000000001";

/// Token "owner" may do anything; token "reader" may only read.
struct FakeAuth;

impl Authorizer for FakeAuth {
    fn authenticate(&self, h: Option<&str>) -> Result<Caller, ArmError> {
        match h {
            Some("Bearer owner") | Some("Bearer reader") => Ok(Caller {
                object_id: h.unwrap()[7..].to_string(),
                tenant_id: "t".into(),
                app_id: "a".into(),
            }),
            _ => Err(ArmError::new(401, "AuthenticationFailed", "no")),
        }
    }
    fn is_allowed(&self, c: &Caller, action: &str, scope: &str) -> Result<bool, ArmError> {
        Ok(c.object_id == "owner" || (action.ends_with("/read") && scope.contains("visible")))
    }
    fn has_any_access(&self, _: &Caller, _: &str) -> Result<bool, ArmError> {
        Ok(true)
    }
    fn is_allowed_data(&self, object_id: &str, _: &str, _: &str) -> Result<bool, ArmError> {
        Ok(object_id == "owner")
    }
}

struct Things;

impl Provider for Things {
    fn info(&self) -> ProviderInfo {
        ProviderInfo {
            namespace: "Test.Things",
            resource_types: vec![ResourceType {
                name: "things",
                api_versions: &["2024-01-01"],
                global: false,
            }],
            requires_registration: true,
        }
    }
    fn handle(&self, ctx: &Ctx, req: &ArmRequest) -> Result<Reply, ArmError> {
        if req.method == Method::PUT {
            // An asynchronous create: the record is written with the resource.
            let op = ctx.store().write(|tx| {
                resource::put(tx, &req.path.id(), &json!({"id": req.path.id()}))?;
                let op = OperationRecord::new(ctx, "Test.Things", &req.path.id()).succeed(None);
                op.save(tx)?;
                Ok::<_, ArmError>(op)
            })?;
            let url = lro::status_url(ctx, SUB, "eastus", &op, &req.api_version);
            return Ok(Reply::created(json!({})).header("Azure-AsyncOperation", url));
        }
        Ok(Reply::ok(
            json!({"filtered": ctx.filtered_action.is_some()}),
        ))
    }
}

fn setup() -> (Router, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.redb")).unwrap();
    store
        .write(|tx| {
            registration::set(
                tx,
                SUB,
                "Test.Things",
                &Registration {
                    state: "Registered".into(),
                    registered_at: None,
                },
            )?;
            recoverite_arm::tenancy::save_subscription(
                tx,
                &recoverite_arm::tenancy::Subscription {
                    subscription_id: SUB.into(),
                    display_name: "s".into(),
                    state: "Enabled".into(),
                    management_group: None,
                    created_at: String::new(),
                },
            )?;
            resource::put(
                tx,
                &format!("/subscriptions/{SUB}/resourceGroups/rg"),
                &json!({"name": "rg"}),
            )
        })
        .unwrap();
    let platform = Arc::new(Platform {
        store,
        env: Environment {
            tenant_id: "t".into(),
            poll_after_secs: 1,
        },
        authz: Arc::new(FakeAuth),
        cascades: vec![],
        catalog: vec![Things.info()],
        tenant_hooks: vec![],
    });
    (Router::new(platform, vec![Arc::new(Things)]), dir)
}

fn call(r: &Router, method: Method, path: &str, query: &str, who: &str) -> Result<Reply, ArmError> {
    let mut headers = HeaderMap::new();
    headers.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {who}")).unwrap(),
    );
    r.dispatch(RawRequest {
        method,
        path: path.into(),
        query: Some(query.into()),
        headers,
        body: b"{}".to_vec(),
        base_url: "https://x".into(),
    })
}

fn code(r: Result<Reply, ArmError>) -> String {
    r.err().map(|e| e.body.code.clone()).unwrap_or_default()
}

#[test]
fn checks_run_in_arms_order() {
    let (r, _d) = setup();
    let thing = format!("/subscriptions/{SUB}/resourceGroups/rg/providers/Test.Things/things/a");
    assert_eq!(
        code(call(
            &r,
            Method::GET,
            &thing,
            "api-version=2024-01-01",
            "nobody"
        )),
        "AuthenticationFailed"
    );
    assert_eq!(
        code(call(&r, Method::GET, &thing, "", "owner")),
        "MissingApiVersionParameter"
    );
    assert_eq!(
        code(call(
            &r,
            Method::GET,
            &thing,
            "api-version=2030-01-01",
            "owner"
        )),
        "NoRegisteredProviderFound"
    );
    assert_eq!(
        code(call(
            &r,
            Method::PUT,
            &thing,
            "api-version=2024-01-01",
            "reader"
        )),
        "AuthorizationFailed"
    );
    let missing_rg =
        format!("/subscriptions/{SUB}/resourceGroups/zz/providers/Test.Things/things/a");
    assert_eq!(
        code(call(
            &r,
            Method::GET,
            &missing_rg,
            "api-version=2024-01-01",
            "owner"
        )),
        "ResourceGroupNotFound"
    );
    let other = format!("/subscriptions/{SUB}/resourceGroups/rg/providers/Test.Other/things/a");
    assert_eq!(
        code(call(
            &r,
            Method::GET,
            &other,
            "api-version=2024-01-01",
            "owner"
        )),
        "InvalidResourceNamespace"
    );
    let wrong_type =
        format!("/subscriptions/{SUB}/resourceGroups/rg/providers/Test.Things/widgets/a");
    assert_eq!(
        code(call(
            &r,
            Method::GET,
            &wrong_type,
            "api-version=2024-01-01",
            "owner"
        )),
        "InvalidResourceType"
    );
    assert_eq!(
        code(call(
            &r,
            Method::GET,
            "/subscriptions/not-a-guid!/resourcegroups",
            "api-version=2024-01-01",
            "owner"
        )),
        "InvalidSubscriptionId"
    );
    assert!(call(&r, Method::PUT, &thing, "api-version=2024-01-01", "owner").is_ok());
}

#[test]
fn unregistered_namespace_is_refused_with_409() {
    let (r, _d) = setup();
    r.platform()
        .store
        .write(|tx| {
            registration::set(
                tx,
                SUB,
                "Test.Things",
                &Registration {
                    state: "NotRegistered".into(),
                    registered_at: None,
                },
            )
        })
        .unwrap();
    let thing = format!("/subscriptions/{SUB}/resourceGroups/rg/providers/Test.Things/things/a");
    let e = call(&r, Method::PUT, &thing, "api-version=2024-01-01", "owner").unwrap_err();
    assert_eq!(
        (e.status, e.body.code.as_str()),
        (409, "MissingSubscriptionRegistration")
    );
    assert!(e.body.message.contains("'Test.Things'"));
}

#[test]
fn lists_without_access_are_filtered_not_refused() {
    let (r, _d) = setup();
    let list = format!("/subscriptions/{SUB}/resourceGroups/rg/providers/Test.Things/things");
    let reply = call(&r, Method::GET, &list, "api-version=2024-01-01", "reader").unwrap();
    assert_eq!(reply.body.unwrap()["filtered"], true);
    let reply = call(&r, Method::GET, &list, "api-version=2024-01-01", "owner").unwrap();
    assert_eq!(reply.body.unwrap()["filtered"], false);
}

#[test]
fn async_operation_status_is_served_generically() {
    let (r, _d) = setup();
    let thing = format!("/subscriptions/{SUB}/resourceGroups/rg/providers/Test.Things/things/a");
    let reply = call(&r, Method::PUT, &thing, "api-version=2024-01-01", "owner").unwrap();
    let url = reply
        .headers
        .iter()
        .find(|(k, _)| k == "Azure-AsyncOperation")
        .unwrap()
        .1
        .clone();
    let (path, query) = url.trim_start_matches("https://x").split_once('?').unwrap();
    let status = call(&r, Method::GET, path, query, "owner").unwrap();
    let body = status.body.unwrap();
    assert_eq!(body["status"], "Succeeded");
    assert!(body["startTime"].is_string() && body["endTime"].is_string());
    // Someone without access to the resource cannot read its operations.
    assert_eq!(
        code(call(&r, Method::GET, path, query, "reader")),
        "OperationNotFound"
    );
    let results = path.replace("operationStatuses", "operationResults");
    assert_eq!(
        call(&r, Method::GET, &results, query, "owner")
            .unwrap()
            .status,
        204
    );
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        #[test]
        fn any_path_query_and_body(
            path in "(/[A-Za-z0-9%._~!$'()*+,;=:@-]{0,12}){0,12}",
            query in "[A-Za-z0-9%=&+$-]{0,40}",
            body in proptest::collection::vec(any::<u8>(), 0..64),
            method in prop_oneof![Just(Method::GET), Just(Method::PUT), Just(Method::POST), Just(Method::DELETE), Just(Method::PATCH), Just(Method::HEAD)],
        ) {
            let (r, _d) = setup();
            let mut headers = HeaderMap::new();
            headers.insert("authorization", HeaderValue::from_static("Bearer owner"));
            let _ = r.dispatch(RawRequest { method, path, query: Some(query), headers, body, base_url: "https://x".into() });
        }
    }
}
