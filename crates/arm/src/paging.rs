//! `{"value":[…],"nextLink":…}` pages.
//!
//! The continuation is an offset in `$skiptoken`; every nextLink carries the
//! `api-version` because the network and compute SDKs follow it verbatim.

use serde_json::{json, Value};

use crate::error::ArmError;
use crate::provider::{ArmRequest, Ctx};

pub const DEFAULT_PAGE_SIZE: usize = 100;

pub fn page(ctx: &Ctx, req: &ArmRequest, items: Vec<Value>) -> Result<Value, ArmError> {
    // Filter before cutting pages, so a page holds `$top` visible items;
    // the router filters again, which catches any list not paged here.
    let items = if ctx.filtered_action.is_some() {
        let mut visible = Vec::with_capacity(items.len());
        for d in items {
            let seen = match d.get("id").and_then(Value::as_str) {
                Some(id) => ctx.can_see(id)?,
                None => false,
            };
            if seen {
                visible.push(d);
            }
        }
        visible
    } else {
        items
    };
    let skip = match req.query_get("$skiptoken") {
        Some(t) => t.parse::<usize>().map_err(|_| {
            ArmError::bad_request(
                "InvalidSkipToken",
                format!(
                    "The skip token '{t}' is not valid; use the nextLink of the previous page."
                ),
            )
        })?,
        None => 0,
    };
    let top = match req.query_get("$top") {
        Some(t) => {
            let n = t.parse::<usize>().map_err(|_| {
                ArmError::bad_request(
                    "InvalidTopParameter",
                    format!("The $top value '{t}' must be a positive whole number."),
                )
            })?;
            if n == 0 {
                return Err(ArmError::bad_request(
                    "InvalidTopParameter",
                    "The $top value must be at least 1.",
                ));
            }
            n.min(1000)
        }
        None => DEFAULT_PAGE_SIZE,
    };
    let total = items.len();
    let value: Vec<Value> = items.into_iter().skip(skip).take(top).collect();
    let mut out = json!({ "value": value });
    // Saturating: a skip token near usize::MAX is past the end, not a wrap.
    if skip.saturating_add(top) < total {
        let mut q = format!("api-version={}", req.api_version);
        for (k, v) in &req.query {
            if k.eq_ignore_ascii_case("$skiptoken") || k.eq_ignore_ascii_case("api-version") {
                continue;
            }
            q.push('&');
            q.push_str(&encode(k));
            q.push('=');
            q.push_str(&encode(v));
        }
        q.push_str(&format!("&%24skiptoken={}", skip + top));
        out["nextLink"] = Value::String(format!("{}{}?{}", ctx.base_url, req.raw_path, q));
    }
    Ok(out)
}

fn encode(s: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(s, SET).to_string()
}

/// A page of the items the caller may see (lists are filtered item by item
/// when the caller lacks read access at the list's scope).
pub fn page_visible(
    ctx: &Ctx,
    req: &ArmRequest,
    items: Vec<Value>,
) -> Result<crate::provider::Reply, ArmError> {
    Ok(crate::provider::Reply::ok(page(ctx, req, items)?))
}
