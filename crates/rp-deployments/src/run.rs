//! Running a deployment: each wave of the plan's resources is sent through
//! the ARM router as the caller (in parallel within a wave), long-running
//! replies are followed to the end, Complete mode removes what the
//! template no longer lists, and the outputs are evaluated last. Progress
//! is written to the deployment record after every wave.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::Method;
use serde_json::{json, Map, Value};

use recoverite_arm::lro::{self, OperationRecord};
use recoverite_arm::{time, ArmError, ErrorBody, ProviderInfo};
use recoverite_arm_template::plan::{waves, PlannedResource};
use recoverite_arm_template::{Plan, TemplateError};
use recoverite_store::Store;

use crate::host::DeploymentHost;
use crate::record::{self, iso_duration, OperationEntry, TargetResource};

/// At most this many resources of one wave are sent at once.
const PARALLEL: usize = 8;
/// How long a resource's own long-running operation is followed.
const RESOURCE_TIMEOUT: Duration = Duration::from_secs(600);

/// Deployments running in this process, with their cancel flags. A stored
/// deployment that is not finished and not here was cut off by a restart.
#[derive(Default, Clone)]
pub struct Running(pub Arc<Mutex<HashMap<String, Arc<AtomicBool>>>>);

impl Running {
    pub fn start(&self, id: &str) -> Arc<AtomicBool> {
        let flag = Arc::new(AtomicBool::new(false));
        self.lock().insert(record::key(id), flag.clone());
        flag
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<AtomicBool>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn is_running(&self, id: &str) -> bool {
        self.lock().contains_key(&record::key(id))
    }

    pub fn cancel(&self, id: &str) -> bool {
        match self.lock().get(&record::key(id)) {
            Some(f) => {
                f.store(true, Ordering::SeqCst);
                true
            }
            None => false,
        }
    }

    fn finish(&self, id: &str) {
        self.lock().remove(&record::key(id));
    }
}

pub struct Job {
    pub id: String,
    pub host: Arc<DeploymentHost>,
    pub store: Store,
    pub complete: bool,
    pub cancel: Arc<AtomicBool>,
    pub running: Running,
    pub catalog: Vec<ProviderInfo>,
}

impl Job {
    fn plan(&self) -> &Plan {
        self.host
            .plan
            .get()
            .expect("a job is made from a built plan")
    }
}

fn status_text(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "NoContent",
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        409 => "Conflict",
        412 => "PreconditionFailed",
        429 => "TooManyRequests",
        _ if status >= 500 => "InternalServerError",
        _ => "BadRequest",
    }
}

fn target(r: &PlannedResource) -> TargetResource {
    TargetResource {
        id: r.id.clone(),
        resource_type: r.resource_type.clone(),
        resource_name: r.name.clone(),
    }
}

fn op_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..16].to_ascii_uppercase()
}

fn template_error(r: &PlannedResource, e: TemplateError) -> ArmError {
    match e {
        TemplateError::Runtime {
            status,
            code,
            message,
        } => ArmError::new(status, &code, message),
        other => ArmError::bad_request(
            "InvalidTemplate",
            format!(
                "Unable to process template language expressions for resource '{}'. {other}",
                r.id
            ),
        ),
    }
}

fn entry(
    r: &TargetResource,
    operation: &str,
    started: Instant,
    result: &Result<u16, ArmError>,
) -> OperationEntry {
    let (state, code, message) = match result {
        Ok(s) => (record::SUCCEEDED, status_text(*s).to_string(), None),
        Err(e) => (
            record::FAILED,
            status_text(e.status).to_string(),
            Some(json!({"status": "Failed", "error": e.body})),
        ),
    };
    OperationEntry {
        operation_id: op_id(),
        provisioning_operation: operation.to_string(),
        provisioning_state: state.to_string(),
        timestamp: time::now_string(),
        duration: iso_duration(started.elapsed()),
        status_code: code,
        status_message: message,
        target: r.clone(),
    }
}

/// A provisioning state that is still moving.
fn in_flight(body: &Value) -> bool {
    let state = body
        .pointer("/properties/provisioningState")
        .and_then(Value::as_str)
        .unwrap_or("Succeeded");
    !matches!(
        state.to_ascii_lowercase().as_str(),
        "succeeded" | "failed" | "canceled" | "cancelled"
    )
}

fn failed_state(body: &Value) -> Option<ArmError> {
    let state = body
        .pointer("/properties/provisioningState")
        .and_then(Value::as_str)?;
    if !state.eq_ignore_ascii_case("failed") && !state.eq_ignore_ascii_case("canceled") {
        return None;
    }
    let inner = body
        .pointer("/properties/error")
        .cloned()
        .and_then(|e| serde_json::from_value::<ErrorBody>(e).ok());
    Some(match inner {
        Some(b) => ArmError::from_body(400, b),
        None => ArmError::bad_request(
            "ResourceDeploymentFailure",
            format!("The resource provisioning operation ended in the terminal state '{state}'."),
        ),
    })
}

/// PUTs one resource as the caller and follows it until it settles.
fn deploy(job: &Job, r: &PlannedResource) -> OperationEntry {
    let started = Instant::now();
    let host = job.host.as_ref();
    let plan = job.plan();
    let t = target(r);
    if r.existing {
        let res = host
            .channel
            .send(Method::GET, &r.id, &r.api_version, None)
            .map(|rep| rep.status);
        return entry(&t, "Read", started, &res);
    }
    let result = (|| -> Result<u16, ArmError> {
        let mut body = plan.body(r, host).map_err(|e| template_error(r, e))?;
        if r.is_deployment() {
            crate::nested::prepare(&mut body, plan)?;
        }
        let rep = host
            .channel
            .send(Method::PUT, &r.id, &r.api_version, Some(body))?;
        let mut last = rep.body.clone().unwrap_or(Value::Null);
        let deadline = Instant::now() + RESOURCE_TIMEOUT;
        while rep.status == 202 && last.is_null() || in_flight(&last) {
            if Instant::now() > deadline {
                return Err(ArmError::new(
                    409,
                    "ResourceDeploymentTimeout",
                    format!(
                        "The resource '{}' did not finish provisioning within {} seconds.",
                        r.id,
                        RESOURCE_TIMEOUT.as_secs()
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
            last = host
                .channel
                .send(Method::GET, &r.id, &r.api_version, None)?
                .body
                .unwrap_or(Value::Null);
        }
        if let Some(e) = failed_state(&last) {
            return Err(e);
        }
        Ok(rep.status)
    })();
    entry(&t, "Create", started, &result)
}

fn deploy_wave(job: &Job, wave: &[usize]) -> Vec<OperationEntry> {
    let plan = job.plan();
    let handle = tokio::runtime::Handle::try_current().ok();
    let mut out = Vec::new();
    for chunk in wave.chunks(PARALLEL) {
        let results: Vec<OperationEntry> = std::thread::scope(|s| {
            let hs: Vec<_> = chunk
                .iter()
                .map(|&i| {
                    let handle = handle.clone();
                    std::thread::Builder::new()
                        .stack_size(recoverite_arm_template::eval::STACK_BYTES)
                        .spawn_scoped(s, move || {
                            let _g = handle.as_ref().map(|h| h.enter());
                            deploy(job, &plan.resources[i])
                        })
                })
                .collect();
            hs.into_iter()
                .zip(chunk)
                .map(|(h, &i)| {
                    h.ok().and_then(|h| h.join().ok()).unwrap_or_else(|| {
                        entry(
                            &target(&plan.resources[i]),
                            "Create",
                            Instant::now(),
                            &Err(ArmError::internal(
                                "the resource deployment stopped unexpectedly",
                            )),
                        )
                    })
                })
                .collect()
        });
        out.extend(results);
    }
    out
}

/// The newest stable api-version recoverite serves for a full type.
fn api_version_for(catalog: &[ProviderInfo], full_type: &str) -> Option<String> {
    let (ns, ty) = full_type.split_once('/')?;
    let info = catalog
        .iter()
        .find(|p| p.namespace.eq_ignore_ascii_case(ns))?;
    let rt = info
        .resource_types
        .iter()
        .find(|t| t.name.eq_ignore_ascii_case(ty))?;
    rt.api_versions
        .iter()
        .filter(|v| !v.contains("preview"))
        .max()
        .or_else(|| rt.api_versions.iter().max())
        .map(|v| v.to_string())
}

/// Complete mode: deletes, as the caller, every resource of the group the
/// template does not list. Deletes that are refused because another
/// resource still uses the target are tried again after the others.
fn complete_cleanup(job: &Job) -> Vec<OperationEntry> {
    let host = job.host.as_ref();
    let Some(rg) = &host.resource_group else {
        return Vec::new();
    };
    let scope = format!("/subscriptions/{}/resourceGroups/{rg}", host.subscription);
    let listed = match host.channel.send(
        Method::GET,
        &format!("{scope}/resources"),
        "2021-04-01",
        None,
    ) {
        Ok(r) => r.body.unwrap_or(Value::Null),
        Err(e) => {
            return vec![entry(
                &TargetResource {
                    id: scope.clone(),
                    resource_type: "Microsoft.Resources/resourceGroups".into(),
                    resource_name: rg.clone(),
                },
                "Delete",
                Instant::now(),
                &Err(e),
            )]
        }
    };
    let keep: HashSet<String> = job
        .plan()
        .resources
        .iter()
        .map(|r| r.id.to_ascii_lowercase())
        .collect();
    let mut todo: Vec<TargetResource> = listed
        .get("value")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| {
            let id = r.get("id")?.as_str()?;
            (!keep.contains(&id.to_ascii_lowercase())).then(|| TargetResource {
                id: id.to_string(),
                resource_type: r
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                resource_name: r
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            })
        })
        .collect();
    let mut out = Vec::new();
    loop {
        let mut failed = Vec::new();
        let before = todo.len();
        for t in todo {
            let started = Instant::now();
            let res = match api_version_for(&job.catalog, &t.resource_type) {
                Some(api) => host
                    .channel
                    .send(Method::DELETE, &t.id, &api, None)
                    .map(|r| r.status),
                None => Err(ArmError::bad_request(
                    "InvalidResourceType",
                    format!(
                        "recoverite cannot delete '{}' of type '{}' in Complete mode.",
                        t.id, t.resource_type
                    ),
                )),
            };
            match res {
                Err(e) if e.status == 404 => {}
                Err(e) => failed.push((t, started, Err(e))),
                ok => out.push(entry(&t, "Delete", started, &ok)),
            }
        }
        if failed.is_empty() || failed.len() == before {
            out.extend(
                failed
                    .into_iter()
                    .map(|(t, s, r)| entry(&t, "Delete", s, &r)),
            );
            return out;
        }
        todo = failed.into_iter().map(|(t, _, _)| t).collect();
    }
}

/// Runs `f` (template evaluation) on a thread with the stack evaluation
/// is bounded for.
pub fn on_evaluation_stack<T: Send>(f: impl FnOnce() -> T + Send) -> Result<T, ArmError> {
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .stack_size(recoverite_arm_template::eval::STACK_BYTES)
            .spawn_scoped(s, f)
            .map_err(|e| ArmError::internal(format!("no thread for template evaluation: {e}")))?
            .join()
            .map_err(|_| ArmError::internal("template evaluation stopped unexpectedly"))
    })
}

/// Runs a deployment to its end and records the outcome; never panics.
pub fn execute(job: Job) {
    let started = Instant::now();
    let plan = job.plan();
    let mut ops: Vec<OperationEntry> = Vec::new();
    let mut error: Option<ArmError> = None;
    let mut canceled = false;
    save_progress(&job, record::RUNNING, &ops, None, None, started);
    for wave in waves(plan) {
        if job.cancel.load(Ordering::SeqCst) {
            canceled = true;
            break;
        }
        let done = deploy_wave(&job, &wave);
        let failed = done.iter().any(|o| o.provisioning_state == record::FAILED);
        ops.extend(done);
        save_progress(&job, record::RUNNING, &ops, None, None, started);
        if failed {
            error = Some(deployment_failed(&ops));
            break;
        }
    }
    if error.is_none() && !canceled && job.complete {
        let deleted = complete_cleanup(&job);
        let failed = deleted
            .iter()
            .any(|o| o.provisioning_state == record::FAILED);
        ops.extend(deleted);
        if failed {
            error = Some(deployment_failed(&ops));
        }
    }
    let mut outputs = None;
    if error.is_none() && !canceled {
        match plan.evaluate_outputs(job.host.as_ref()) {
            Ok(o) => outputs = Some(o),
            Err(e) => {
                error = Some(ArmError::bad_request(
                    "InvalidTemplate",
                    format!("Unable to evaluate the template outputs: {e}"),
                ))
            }
        }
    }
    let state = if canceled {
        record::CANCELED
    } else if error.is_some() {
        record::FAILED
    } else {
        record::SUCCEEDED
    };
    save_progress(&job, state, &ops, outputs, error, started);
    job.running.finish(&job.id);
}

fn deployment_failed(ops: &[OperationEntry]) -> ArmError {
    let details: Vec<ErrorBody> = ops
        .iter()
        .filter(|o| o.provisioning_state == record::FAILED)
        .filter_map(|o| o.status_message.as_ref()?.get("error").cloned())
        .filter_map(|e| serde_json::from_value(e).ok())
        .collect();
    ArmError::from_body(
        400,
        ErrorBody {
            code: "DeploymentFailed".into(),
            message: "At least one resource deployment operation failed. Please list deployment operations for details. Please see https://aka.ms/arm-deployment-operations for usage details.".into(),
            target: None,
            details,
        },
    )
}

fn save_progress(
    job: &Job,
    state: &str,
    ops: &[OperationEntry],
    outputs: Option<Map<String, Value>>,
    error: Option<ArmError>,
    started: Instant,
) {
    let res = job.store.write(|tx| -> Result<(), ArmError> {
        let Some(mut d) = record::load(tx, &job.id)? else {
            return Ok(());
        };
        d.provisioning_state = state.to_string();
        d.operations = ops.to_vec();
        d.duration = iso_duration(started.elapsed());
        d.timestamp = time::now_string();
        if record::is_terminal(state) {
            d.outputs = outputs.clone();
            d.output_resources = ops
                .iter()
                .filter(|o| {
                    o.provisioning_operation == "Create"
                        && o.provisioning_state == record::SUCCEEDED
                })
                .map(|o| o.target.id.clone())
                .collect();
            d.error = error.as_ref().map(|e| e.body.clone());
            if let Some(op) = lro::load(tx, &d.operation)? {
                let op: OperationRecord = match &error {
                    Some(e) => op.fail(e),
                    None if state == record::CANCELED => {
                        let mut o = op.succeed(None);
                        o.status = record::CANCELED.to_string();
                        o
                    }
                    None => op.succeed(None),
                };
                op.save(tx)?;
            }
        }
        record::save(tx, &d)
    });
    if let Err(e) = res {
        tracing::warn!("deployment {}: could not record progress: {e:?}", job.id);
    }
}
