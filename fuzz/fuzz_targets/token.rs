//! The token endpoints' form parsing (v1 and v2, client secret in the form
//! or as HTTP Basic), before any authentication.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let s = recoverite_fuzz::server();
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let tenant = &s.running.connection.tenant_id;
    let path = if which & 1 == 0 {
        format!("/{tenant}/oauth2/v2.0/token")
    } else {
        format!("/{tenant}/oauth2/token")
    };
    // The rest is header lines, a blank line, then the form.
    let split = rest
        .windows(2)
        .position(|w| w == b"\n\n")
        .unwrap_or(0);
    let mut headers: Vec<(String, String)> = String::from_utf8_lossy(&rest[..split])
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let form = rest.get(split..).unwrap_or_default().trim_ascii_start().to_vec();
    if which & 2 == 0 {
        headers.push(("content-type".into(), "application/x-www-form-urlencoded".into()));
    }
    let Some(req) = recoverite_fuzz::request(http::Method::POST, &path, &headers, form) else {
        return;
    };
    let (status, body) = s.send(req);
    assert!(status != 500, "500 {}", String::from_utf8_lossy(&body));
});
