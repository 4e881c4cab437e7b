//! Long-running operations.
//!
//! Every asynchronous reply points at an operation record kept in the store,
//! so a poller gets a consistent answer even across a restart. The generic
//! endpoints `…/providers/{ns}/locations/{loc}/operationStatuses/{id}`
//! (`Azure-AsyncOperation`) and `…/operationResults/{id}` (`Location`) serve
//! any provider's records.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use recoverite_store::{Reader, Table, WriteTx};

use crate::error::{ArmError, ErrorBody};
use crate::provider::{ArmRequest, Ctx, Reply};
use crate::time;

pub const OPERATIONS: Table = Table("operations");

pub const IN_PROGRESS: &str = "InProgress";
pub const SUCCEEDED: &str = "Succeeded";
pub const FAILED: &str = "Failed";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OperationRecord {
    pub id: String,
    pub namespace: String,
    /// The resource the operation acts on (authorizes reads of the record).
    pub scope: String,
    pub started_by: String,
    pub status: String,
    pub start_time: String,
    pub end_time: Option<String>,
    pub error: Option<ErrorBody>,
    pub error_status: Option<u16>,
    /// What the `Location` URL returns once done (`None` → 204 No Content).
    pub result: Option<Value>,
}

impl OperationRecord {
    pub fn new(ctx: &Ctx, namespace: &str, scope: &str) -> OperationRecord {
        OperationRecord {
            id: uuid::Uuid::new_v4().to_string(),
            namespace: namespace.to_string(),
            scope: scope.to_string(),
            started_by: ctx.caller.object_id.clone(),
            status: IN_PROGRESS.to_string(),
            start_time: time::now_string(),
            end_time: None,
            error: None,
            error_status: None,
            result: None,
        }
    }

    pub fn succeed(mut self, result: Option<Value>) -> OperationRecord {
        self.status = SUCCEEDED.to_string();
        self.end_time = Some(time::now_string());
        self.result = result;
        self
    }

    pub fn fail(mut self, err: &ArmError) -> OperationRecord {
        self.status = FAILED.to_string();
        self.end_time = Some(time::now_string());
        self.error = Some(err.body.clone());
        self.error_status = Some(err.status);
        self
    }

    pub fn save(&self, tx: &mut WriteTx) -> Result<(), ArmError> {
        tx.put_json(OPERATIONS, &self.id, self)?;
        Ok(())
    }

    /// The operation-status document.
    pub fn status_body(&self, self_id: &str) -> Value {
        let mut v = json!({
            "id": self_id,
            "name": self.id,
            "status": self.status,
            "startTime": self.start_time,
        });
        if let Some(end) = &self.end_time {
            v["endTime"] = json!(end);
        }
        if let Some(err) = &self.error {
            v["error"] = serde_json::to_value(err).unwrap_or(Value::Null);
        }
        v
    }
}

pub fn load(r: &impl Reader, id: &str) -> Result<Option<OperationRecord>, ArmError> {
    Ok(r.get_json(OPERATIONS, id)?)
}

/// URL of the generic status endpoint for `op`.
pub fn status_url(
    ctx: &Ctx,
    subscription: &str,
    location: &str,
    op: &OperationRecord,
    api_version: &str,
) -> String {
    format!(
        "{}/subscriptions/{subscription}/providers/{}/locations/{location}/operationStatuses/{}?api-version={api_version}",
        ctx.base_url, op.namespace, op.id
    )
}

/// URL of the generic result endpoint for `op`.
pub fn result_url(
    ctx: &Ctx,
    subscription: &str,
    location: &str,
    op: &OperationRecord,
    api_version: &str,
) -> String {
    format!(
        "{}/subscriptions/{subscription}/providers/{}/locations/{location}/operationResults/{}?api-version={api_version}",
        ctx.base_url, op.namespace, op.id
    )
}

/// Adds the polling delay headers to an asynchronous reply.
pub fn with_retry_after(ctx: &Ctx, reply: Reply) -> Reply {
    reply.header("Retry-After", ctx.env().poll_after_secs.to_string())
}

/// Whether a provider path is one of the generic operation endpoints; returns
/// (kind, operation id).
pub fn generic_endpoint(req: &ArmRequest) -> Option<(bool, String)> {
    let p = req.path.provider.as_ref()?;
    if p.types.len() != 2 || p.names.len() != 2 || !p.types[0].eq_ignore_ascii_case("locations") {
        return None;
    }
    let kind = p.types[1].to_ascii_lowercase();
    let is_status = match kind.as_str() {
        "operationstatuses" | "asyncoperations" | "operations" => true,
        "operationresults" => false,
        _ => return None,
    };
    Some((is_status, p.names[1].clone()))
}

/// Serves a generic status or result endpoint.
pub fn serve(ctx: &Ctx, req: &ArmRequest, is_status: bool, op_id: &str) -> Result<Reply, ArmError> {
    let rec = ctx
        .store()
        .read(|r| r.get_json::<OperationRecord>(OPERATIONS, op_id))?;
    let not_found = || {
        ArmError::new(
            404,
            "OperationNotFound",
            format!("The operation '{op_id}' was not found; operation ids come from the Azure-AsyncOperation or Location header of an accepted request."),
        )
    };
    let rec = rec.ok_or_else(not_found)?;
    let action = format!("{}/locations/operationStatuses/read", rec.namespace);
    if rec.started_by != ctx.caller.object_id && !ctx.is_allowed(&action, &rec.scope)? {
        return Err(not_found());
    }
    if is_status {
        return Ok(status_reply(ctx, &rec, &req.path.id()));
    }
    result_reply(
        ctx,
        &rec,
        &format!(
            "{}{}?api-version={}",
            ctx.base_url, req.raw_path, req.api_version
        ),
    )
}

/// An operation-status answer; while the operation runs it says when to
/// poll again (`Retry-After`), or clients fall back to their own default
/// (30 s in the Azure SDKs).
pub fn status_reply(ctx: &Ctx, rec: &OperationRecord, self_id: &str) -> Reply {
    let reply = Reply::ok(rec.status_body(self_id));
    if rec.status == IN_PROGRESS {
        with_retry_after(ctx, reply)
    } else {
        reply
    }
}

/// What a `Location` poll answers: 202 while running, then the result.
pub fn result_reply(ctx: &Ctx, rec: &OperationRecord, self_url: &str) -> Result<Reply, ArmError> {
    match rec.status.as_str() {
        IN_PROGRESS => Ok(with_retry_after(
            ctx,
            Reply::empty(202).header("Location", self_url),
        )),
        FAILED => {
            let body = rec.error.clone().unwrap_or(ErrorBody {
                code: "OperationFailed".into(),
                message: "The operation failed.".into(),
                target: None,
                details: vec![],
            });
            Err(ArmError::from_body(rec.error_status.unwrap_or(400), body))
        }
        _ => Ok(match &rec.result {
            Some(v) => Reply::ok(v.clone()),
            None => Reply::empty(204),
        }),
    }
}
