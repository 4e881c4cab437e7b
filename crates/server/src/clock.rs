//! The emulator clock's process side: start it from `--time-scale` and the
//! time saved in the data directory (emulated time never runs backwards
//! across restarts), save it, and the admin calls that read and advance it.

use std::path::Path;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use recoverite_arm::{time, ArmError, Authorizer};

use crate::AppState;

fn file(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("clock.json")
}

pub fn start(data_dir: &Path, scale: f64) {
    let saved = std::fs::read(file(data_dir))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["now"].as_str().and_then(time::parse));
    // A clock file from beyond what ARM can state is not trusted.
    let start = saved
        .filter(|t| *t <= time::LATEST)
        .map(|t| t.max(time::real_now()));
    time::configure(scale, start);
}

pub fn save(data_dir: &Path) {
    let body = json!({"now": time::now_string(), "scale": time::scale()}).to_string();
    let tmp = file(data_dir).with_extension("json.tmp");
    if std::fs::write(&tmp, body).is_ok() {
        let _ = std::fs::rename(tmp, file(data_dir));
    }
}

fn reading() -> serde_json::Value {
    json!({"now": time::now_string(), "scale": time::scale(), "wallClock": time::format(time::real_now())})
}

/// `GET /recoverite/clock`: the emulated time and its scale.
pub async fn get_clock() -> Response {
    Json(reading()).into_response()
}

/// `POST /recoverite/clock/advance {"seconds"|"minutes"|"hours": n}`: moves
/// emulated time forward, so time-based behaviour (recovery point cadence,
/// retention, app-consistent frequency, the 60-minute health threshold)
/// happens now. Needs Owner-level rights on the subscription.
pub async fn advance(State(s): State<Arc<AppState>>, req: Request) -> Response {
    let (auth, body): (_, serde_json::Value) = match crate::admin::authed_json(req).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let sub = format!("/subscriptions/{}", s.bootstrap.subscription_id);
    let check = || -> Result<f64, ArmError> {
        let caller = s.directory.authenticate(auth.as_deref())?;
        let action = "Microsoft.Authorization/roleAssignments/write";
        if !s.directory.is_allowed(&caller, action, &sub)? {
            return Err(recoverite_arm::router::authorization_failed(
                &caller.object_id,
                action,
                &sub,
            ));
        }
        let secs = body["seconds"].as_f64().unwrap_or(0.0)
            + body["minutes"].as_f64().unwrap_or(0.0) * 60.0
            + body["hours"].as_f64().unwrap_or(0.0) * 3600.0;
        if !(secs.is_finite() && secs > 0.0) {
            return Err(ArmError::invalid_parameter("seconds", "Say how far to move the clock forward: a positive number of seconds, minutes or hours."));
        }
        // Duration::seconds_f64 panics past i64 seconds; the clock stops at year 9999.
        let by = ::time::Duration::checked_seconds_f64(secs);
        if by
            .and_then(|b| time::check_advance(time::now(), b))
            .is_none()
        {
            return Err(ArmError::invalid_parameter(
                "seconds",
                format!(
                    "Moving the clock {secs} seconds forward would pass {}; move it less far.",
                    time::format(time::LATEST)
                ),
            ));
        }
        Ok(secs)
    };
    match check() {
        Ok(secs) => {
            time::advance(::time::Duration::seconds_f64(secs));
            Json(reading()).into_response()
        }
        Err(e) => crate::admin::err(e),
    }
}
