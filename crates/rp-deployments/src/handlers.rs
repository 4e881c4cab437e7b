//! The deployment operations: PUT (validate, then run in the background),
//! GET/HEAD/list, DELETE, validate, cancel, exportTemplate, the operation
//! list and the operation status.

use std::sync::{Arc, OnceLock};

use serde::Deserialize;
use serde_json::{json, Map, Value};

use recoverite_arm::lro::{self, OperationRecord};
use recoverite_arm::{paging, time, ArmError, ArmRequest, Ctx, Reply};
use recoverite_arm_template::{hash, Plan, TemplateError};

use crate::host::{CallerChannel, DeploymentHost};
use crate::record::{
    self, Dependency, DeploymentRecord, ParameterRecord, ProviderEntry, TargetResource, TypeEntry,
};
use crate::run::{self, Job};
use crate::{deployment_id, DeploymentsProvider, NAMESPACE};

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct DeploymentBody {
    location: Option<String>,
    tags: Option<Value>,
    properties: Option<DeploymentProperties>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct DeploymentProperties {
    mode: Option<String>,
    template: Option<Value>,
    template_link: Option<Value>,
    parameters: Option<Map<String, Value>>,
    parameters_link: Option<Value>,
    expression_evaluation_options: Option<Value>,
}

/// "Deployment names: 1–64 characters: alphanumerics, underscores,
/// parentheses, hyphens and periods" (Microsoft.Resources naming rules).
pub fn check_name(name: &str) -> Result<(), ArmError> {
    let ok = (1..=64).contains(&name.chars().count())
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '(' | ')' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(ArmError::bad_request(
            "InvalidDeploymentName",
            format!("The deployment name '{name}' is invalid. It can contain only alphanumerics, underscores, parentheses, hyphens and periods, and be 1 to 64 characters long."),
        ))
    }
}

fn not_found(name: &str) -> ArmError {
    ArmError::new(
        404,
        "DeploymentNotFound",
        format!("Deployment '{name}' could not be found."),
    )
}

fn template_error(e: TemplateError) -> ArmError {
    match e {
        TemplateError::Runtime {
            status,
            code,
            message,
        } => ArmError::new(status, &code, message),
        other => ArmError::bad_request("InvalidTemplate", other.to_string()),
    }
}

/// The template's hash as ARM reports it: a number made from the minified
/// template.
fn template_hash(t: &Value) -> String {
    hash::murmur64(t.to_string().as_bytes()).to_string()
}

/// The write action a template resource needs, checked at preflight.
fn write_action(r: &recoverite_arm_template::PlannedResource) -> String {
    if r.resource_type
        .eq_ignore_ascii_case("Microsoft.Resources/resourceGroups")
    {
        "Microsoft.Resources/subscriptions/resourceGroups/write".into()
    } else {
        format!("{}/write", r.resource_type)
    }
}

struct Prepared {
    host: Arc<DeploymentHost>,
    mode: String,
    template: Value,
    template_hash: String,
    location: Option<String>,
    tags: Map<String, Value>,
    expression_scope: Option<String>,
}

impl Prepared {
    fn plan(&self) -> &Plan {
        self.host
            .plan
            .get()
            .expect("prepared deployments have a plan")
    }

    fn record(&self, id: &str, name: &str, scope: &str, state: &str) -> DeploymentRecord {
        let plan = self.plan();
        let t = |r: &recoverite_arm_template::PlannedResource| TargetResource {
            id: r.id.clone(),
            resource_type: r.resource_type.clone(),
            resource_name: r.name.clone(),
        };
        let mut providers: Vec<ProviderEntry> = Vec::new();
        for r in &plan.resources {
            let (ns, ty) = r
                .resource_type
                .split_once('/')
                .unwrap_or((&r.resource_type, ""));
            let pos = match providers
                .iter()
                .position(|p| p.namespace.eq_ignore_ascii_case(ns))
            {
                Some(p) => p,
                None => {
                    providers.push(ProviderEntry {
                        namespace: ns.to_string(),
                        resource_types: Vec::new(),
                    });
                    providers.len() - 1
                }
            };
            let location = r
                .raw
                .get("location")
                .and_then(Value::as_str)
                .filter(|l| !l.starts_with('['))
                .map(str::to_string);
            let types = &mut providers[pos].resource_types;
            if !types
                .iter()
                .any(|t| t.resource_type.eq_ignore_ascii_case(ty))
            {
                types.push(TypeEntry {
                    resource_type: ty.to_string(),
                    location,
                });
            }
        }
        DeploymentRecord {
            id: id.to_string(),
            name: name.to_string(),
            scope: scope.to_string(),
            location: self.location.clone(),
            tags: self.tags.clone(),
            mode: self.mode.clone(),
            template: self.template.clone(),
            template_hash: self.template_hash.clone(),
            parameters: plan
                .parameters
                .iter()
                .map(|p| ParameterRecord {
                    name: p.name.clone(),
                    type_name: p.type_name.clone(),
                    value: (!p.secure()).then(|| p.value.clone()),
                })
                .collect(),
            provisioning_state: state.to_string(),
            timestamp: time::now_string(),
            duration: "PT0S".into(),
            correlation_id: uuid::Uuid::new_v4().to_string(),
            started_by: String::new(),
            operation: String::new(),
            outputs: None,
            output_resources: Vec::new(),
            dependencies: plan
                .resources
                .iter()
                .filter(|r| !r.depends_on.is_empty())
                .map(|r| Dependency {
                    target: t(r),
                    depends_on: r
                        .depends_on
                        .iter()
                        .map(|&i| t(&plan.resources[i]))
                        .collect(),
                })
                .collect(),
            providers,
            operations: Vec::new(),
            error: None,
            expression_scope: self.expression_scope.clone(),
        }
    }
}

/// Validates a deployment request whole: body, mode, template language,
/// parameters, and the caller's right to write every declared resource.
fn prepare(
    p: &DeploymentsProvider,
    ctx: &Ctx,
    req: &ArmRequest,
    name: &str,
) -> Result<Prepared, ArmError> {
    check_name(name)?;
    let body: DeploymentBody = req.body_as()?;
    let props = body.properties.ok_or_else(|| {
        ArmError::bad_request(
            "InvalidRequestContent",
            "The request content was invalid and could not be deserialized: 'Required property 'properties' not found in JSON.'",
        )
    })?;
    let subscription = req.path.subscription.clone().unwrap_or_default();
    let resource_group = req.path.resource_group.clone();
    let mode = match props.mode.as_deref() {
        Some(m) if m.eq_ignore_ascii_case("incremental") => "Incremental",
        Some(m) if m.eq_ignore_ascii_case("complete") => "Complete",
        Some(m) => {
            return Err(ArmError::bad_request(
                "InvalidDeploymentMode",
                format!("The deployment mode '{m}' is not valid: use 'Incremental' or 'Complete'."),
            ))
        }
        None => {
            return Err(ArmError::bad_request(
                "InvalidRequestContent",
                "The request content was invalid and could not be deserialized: 'Required property 'mode' not found in JSON.'",
            ))
        }
    };
    if mode == "Complete" && resource_group.is_none() {
        return Err(ArmError::bad_request(
            "InvalidDeploymentMode",
            "Complete mode is only supported for resource-group deployments; deploy at subscription scope in Incremental mode.",
        ));
    }
    if resource_group.is_none() && body.location.is_none() {
        return Err(ArmError::bad_request(
            "LocationRequired",
            "The location property is required for this definition: a subscription-scope deployment needs 'location' (where its history is kept).",
        ));
    }
    if props.parameters_link.is_some()
        || (props.template_link.is_some() && props.template.is_none())
    {
        return Err(ArmError::bad_request(
            "InvalidContentLink",
            "recoverite runs offline and cannot download linked templates or parameter files; send 'template' and 'parameters' inline (az deployment … --template-file / --parameters @file do).",
        ));
    }
    let template = props.template.ok_or_else(|| {
        ArmError::bad_request(
            "InvalidRequestContent",
            "The request content was invalid and could not be deserialized: 'Required property 'template' not found in JSON.'",
        )
    })?;
    if let Some(l) = &body.location {
        recoverite_arm::regions::require(l, crate::TYPE)?;
    }
    let tags = recoverite_arm::resource::validate_tags(body.tags.as_ref())?;
    let hash = template_hash(&template);
    let router = p.as_caller.router()?;
    let deployment = {
        let mut d = json!({
            "name": name,
            "properties": {
                "template": {"contentVersion": template.get("contentVersion").cloned().unwrap_or(json!("1.0.0.0"))},
                "templateHash": hash,
                "mode": mode,
                "provisioningState": record::ACCEPTED,
            },
        });
        if let Some(l) = &body.location {
            d["location"] = json!(l);
        }
        d
    };
    let host = Arc::new(DeploymentHost {
        channel: CallerChannel {
            router,
            authorization: req.headers.get(http::header::AUTHORIZATION).cloned(),
            base_url: ctx.base_url.clone(),
        },
        subscription,
        resource_group,
        tenant: ctx.env().tenant_id.clone(),
        deployment,
        plan: OnceLock::new(),
    });
    let supplied = props.parameters.unwrap_or_default();
    let plan = run::on_evaluation_stack(|| Plan::build(&template, &supplied, host.as_ref(), None))?
        .map_err(template_error)?;
    for r in plan.resources.iter().filter(|r| !r.existing) {
        ctx.require(&write_action(r), &r.id)?;
    }
    let _ = host.plan.set(plan);
    Ok(Prepared {
        host,
        mode: mode.to_string(),
        template,
        template_hash: hash,
        location: body.location,
        tags,
        expression_scope: props
            .expression_evaluation_options
            .and_then(|o| o.get("scope").and_then(Value::as_str).map(str::to_string)),
    })
}

/// A stored deployment that is unfinished but not running here was cut
/// off by a restart: it is failed (deployments are idempotent; run it again).
fn settle(
    p: &DeploymentsProvider,
    ctx: &Ctx,
    mut d: DeploymentRecord,
) -> Result<DeploymentRecord, ArmError> {
    if record::is_terminal(&d.provisioning_state) || p.running.is_running(&d.id) {
        return Ok(d);
    }
    let err = ArmError::conflict(
        "DeploymentInterrupted",
        format!("The deployment '{}' was interrupted because recoverite stopped while it ran. Deployments are idempotent: deploy the same template again.", d.name),
    );
    d.provisioning_state = record::FAILED.into();
    d.error = Some(err.body.clone());
    let saved = d.clone();
    ctx.store().write(|tx| -> Result<(), ArmError> {
        record::save(tx, &saved)?;
        if let Some(op) = lro::load(tx, &saved.operation)? {
            if op.status == lro::IN_PROGRESS {
                op.fail(&err).save(tx)?;
            }
        }
        Ok(())
    })?;
    Ok(d)
}

fn load(
    p: &DeploymentsProvider,
    ctx: &Ctx,
    scope: &str,
    name: &str,
) -> Result<DeploymentRecord, ArmError> {
    let id = deployment_id(scope, name);
    let d = ctx
        .store()
        .read(|r| Ok(record::load(r, &id)))??
        .ok_or_else(|| not_found(name))?;
    settle(p, ctx, d)
}

pub fn put(
    p: &DeploymentsProvider,
    ctx: &Ctx,
    req: &ArmRequest,
    scope: &str,
    name: &str,
) -> Result<Reply, ArmError> {
    let id = deployment_id(scope, name);
    let existing = ctx.store().read(|r| Ok(record::load(r, &id)))??;
    if let Some(d) = existing.clone() {
        let d = settle(p, ctx, d)?;
        if !record::is_terminal(&d.provisioning_state) {
            return Err(ArmError::conflict(
                "DeploymentActive",
                format!("Unable to edit or replace deployment '{name}': previous deployment from '{}' is still active. Please see https://aka.ms/arm-deploy-resources for usage details.", d.timestamp),
            ));
        }
    }
    let prepared = prepare(p, ctx, req, name)?;
    let op = OperationRecord::new(ctx, NAMESPACE, &id);
    let mut rec = prepared.record(&id, name, scope, record::ACCEPTED);
    rec.started_by = ctx.caller.object_id.clone();
    rec.operation = op.id.clone();
    ctx.store().write(|tx| -> Result<(), ArmError> {
        record::save(tx, &rec)?;
        op.save(tx)
    })?;
    let cancel = p.running.start(&id);
    let job = Job {
        id: id.clone(),
        host: prepared.host.clone(),
        store: ctx.store().clone(),
        complete: prepared.mode == "Complete",
        cancel,
        running: p.running.clone(),
        catalog: ctx.platform.catalog.clone(),
    };
    let handle = tokio::runtime::Handle::try_current().ok();
    let spawned = std::thread::Builder::new()
        .name("deployment".into())
        .stack_size(recoverite_arm_template::eval::STACK_BYTES)
        .spawn(move || {
            let _g = handle.as_ref().map(|h| h.enter());
            run::execute(job)
        });
    if let Err(e) = spawned {
        p.running.cancel(&id);
        return Err(ArmError::internal(format!(
            "the deployment could not start: {e}"
        )));
    }
    let status_url = format!(
        "{}{id}/operationStatuses/{}?api-version={}",
        ctx.base_url, op.id, req.api_version
    );
    let reply = Reply::json(if existing.is_some() { 200 } else { 201 }, rec.to_json())
        .header("Azure-AsyncOperation", status_url);
    Ok(lro::with_retry_after(ctx, reply))
}

pub fn get(p: &DeploymentsProvider, ctx: &Ctx, scope: &str, name: &str) -> Result<Reply, ArmError> {
    Ok(Reply::ok(load(p, ctx, scope, name)?.to_json()))
}

pub fn exists(
    p: &DeploymentsProvider,
    ctx: &Ctx,
    scope: &str,
    name: &str,
) -> Result<Reply, ArmError> {
    match load(p, ctx, scope, name) {
        Ok(_) => Ok(Reply::empty(204)),
        Err(e) if e.status == 404 => Ok(Reply::empty(404)),
        Err(e) => Err(e),
    }
}

/// `$filter=provisioningState eq 'Failed'` is the one filter ARM takes here.
fn state_filter(req: &ArmRequest) -> Result<Option<String>, ArmError> {
    let Some(f) = req.query_get("$filter") else {
        return Ok(None);
    };
    let parts: Vec<&str> = f.split_whitespace().collect();
    match parts.as_slice() {
        [field, op, value] if field.eq_ignore_ascii_case("provisioningState") && op.eq_ignore_ascii_case("eq") => {
            Ok(Some(value.trim_matches('\'').to_string()))
        }
        _ => Err(ArmError::bad_request(
            "InvalidFilter",
            format!("The filter '{f}' is not valid; deployments can be filtered with provisioningState eq '{{state}}'."),
        )),
    }
}

pub fn list(
    p: &DeploymentsProvider,
    ctx: &Ctx,
    req: &ArmRequest,
    scope: &str,
) -> Result<Reply, ArmError> {
    let want = state_filter(req)?;
    let mut items = Vec::new();
    for d in ctx.store().read(|r| Ok(record::list(r, scope)))?? {
        let d = settle(p, ctx, d)?;
        if want
            .as_deref()
            .is_none_or(|w| w.eq_ignore_ascii_case(&d.provisioning_state))
        {
            items.push(d);
        }
    }
    items.sort_by(|a, b| b.timestamp.cmp(&a.timestamp));
    paging::page_visible(
        ctx,
        req,
        items.iter().map(DeploymentRecord::to_json).collect(),
    )
}

pub fn delete(
    p: &DeploymentsProvider,
    ctx: &Ctx,
    req: &ArmRequest,
    scope: &str,
    name: &str,
) -> Result<Reply, ArmError> {
    let id = deployment_id(scope, name);
    let Some(d) = ctx.store().read(|r| Ok(record::load(r, &id)))?? else {
        return Ok(Reply::empty(204));
    };
    let d = settle(p, ctx, d)?;
    if !record::is_terminal(&d.provisioning_state) {
        return Err(ArmError::conflict(
            "DeploymentActive",
            format!("The deployment '{name}' is still running; cancel it (POST …/cancel) or wait for it before deleting it."),
        ));
    }
    let op = OperationRecord::new(ctx, NAMESPACE, &id).succeed(None);
    ctx.store().write(|tx| -> Result<(), ArmError> {
        tx.delete(record::DEPLOYMENTS, &record::key(&id))?;
        op.save(tx)
    })?;
    let sub = req.path.subscription.clone().unwrap_or_default();
    let location = d.location.clone().unwrap_or_else(|| "global".into());
    Ok(lro::with_retry_after(
        ctx,
        Reply::empty(202).header(
            "Location",
            lro::result_url(ctx, &sub, &location, &op, &req.api_version),
        ),
    ))
}

pub fn validate(
    p: &DeploymentsProvider,
    ctx: &Ctx,
    req: &ArmRequest,
    scope: &str,
    name: &str,
) -> Result<Reply, ArmError> {
    let id = deployment_id(scope, name);
    let prepared = prepare(p, ctx, req, name)?;
    let rec = prepared.record(&id, name, scope, record::SUCCEEDED);
    let mut v = rec.to_json();
    v["properties"]["validatedResources"] = Value::Array(
        prepared
            .plan()
            .resources
            .iter()
            .map(|r| json!({"id": r.id}))
            .collect(),
    );
    Ok(Reply::ok(v))
}

pub fn cancel(
    p: &DeploymentsProvider,
    ctx: &Ctx,
    scope: &str,
    name: &str,
) -> Result<Reply, ArmError> {
    let d = load(p, ctx, scope, name)?;
    if p.running.cancel(&d.id) {
        Ok(Reply::empty(204))
    } else {
        Err(ArmError::conflict(
            "DeploymentCannotBeCancelled",
            format!("The deployment '{name}' is '{}'; only an Accepted or Running deployment can be canceled.", d.provisioning_state),
        ))
    }
}

pub fn export_template(
    p: &DeploymentsProvider,
    ctx: &Ctx,
    scope: &str,
    name: &str,
) -> Result<Reply, ArmError> {
    let d = load(p, ctx, scope, name)?;
    Ok(Reply::ok(json!({"template": d.template})))
}

pub fn operations(
    p: &DeploymentsProvider,
    ctx: &Ctx,
    req: &ArmRequest,
    scope: &str,
    name: &str,
) -> Result<Reply, ArmError> {
    let d = load(p, ctx, scope, name)?;
    let items = d.operations.iter().map(|o| d.operation_json(o)).collect();
    Ok(Reply::ok(paging::page(ctx, req, items)?))
}

pub fn operation(
    p: &DeploymentsProvider,
    ctx: &Ctx,
    scope: &str,
    name: &str,
    op: &str,
) -> Result<Reply, ArmError> {
    let d = load(p, ctx, scope, name)?;
    d.operations
        .iter()
        .find(|o| o.operation_id.eq_ignore_ascii_case(op))
        .map(|o| Reply::ok(d.operation_json(o)))
        .ok_or_else(|| {
            ArmError::new(
                404,
                "DeploymentOperationNotFound",
                format!(
                    "The deployment operation '{op}' of deployment '{name}' could not be found."
                ),
            )
        })
}

pub fn operation_status(
    p: &DeploymentsProvider,
    ctx: &Ctx,
    req: &ArmRequest,
    scope: &str,
    name: &str,
    op: &str,
) -> Result<Reply, ArmError> {
    load(p, ctx, scope, name)?;
    let rec = ctx
        .store()
        .read(|r| Ok(lro::load(r, op)))??
        .filter(|r| r.scope.eq_ignore_ascii_case(&deployment_id(scope, name)))
        .ok_or_else(|| {
            ArmError::new(
                404,
                "OperationNotFound",
                format!("The operation '{op}' of deployment '{name}' was not found."),
            )
        })?;
    Ok(lro::status_reply(ctx, &rec, &req.path.id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_names_follow_arms_rule() {
        assert!(check_name("vm_deploy_Ab3(1).x-y").is_ok());
        assert!(check_name(&"a".repeat(64)).is_ok());
        assert!(check_name(&"a".repeat(65)).is_err());
        assert!(check_name("").is_err());
        assert_eq!(
            check_name("a/b").unwrap_err().code(),
            "InvalidDeploymentName"
        );
    }

    #[test]
    fn template_hash_is_stable_and_content_sensitive() {
        let a = template_hash(&json!({"resources": []}));
        assert_eq!(a, template_hash(&json!({"resources": []})));
        assert_ne!(a, template_hash(&json!({"resources": [1]})));
        assert!(a.chars().all(|c| c.is_ascii_digit()));
    }
}
