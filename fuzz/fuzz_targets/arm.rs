//! The ARM request path: the real router, authorization and every provider,
//! as the instance's Owner. Paths that do not start with `/` are taken
//! under the instance's subscription, so the fuzzer reaches providers fast.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let s = recoverite_fuzz::server();
    let Some((method, path, mut headers, body)) = recoverite_fuzz::decode(data) else {
        return;
    };
    let uri = if path.starts_with('/') {
        path
    } else {
        format!("/subscriptions/{}/{path}", s.running.connection.subscription_id)
    };
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("authorization")) {
        headers.push(("authorization".into(), s.bearer.clone()));
    }
    headers.push(("content-type".into(), "application/json".into()));
    let Some(req) = recoverite_fuzz::request(method, &uri, &headers, body) else {
        return;
    };
    let (status, body) = s.send(req);
    // A 500 is a defect too: every refusal has its own ARM code.
    assert!(
        status != 500,
        "{uri}: 500 {}",
        String::from_utf8_lossy(&body)
    );
});
