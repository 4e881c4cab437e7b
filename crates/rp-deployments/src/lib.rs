//! Microsoft.Resources/deployments: ARM template deployments at
//! resource-group and subscription scope.
//!
//! A deployment is validated whole before anything happens (the template
//! language in `recoverite-arm-template`, then the caller's right to write
//! every resource it declares, as ARM's preflight does); then each resource
//! is sent through the ARM router **as the caller**, so every provider's
//! rules and every RBAC check apply exactly as if the caller had sent the
//! resource itself. The deployment record is typed and stored; its
//! long-running operation is the generic operation record.

mod handlers;
pub mod host;
pub mod nested;
pub mod record;
pub mod run;

use recoverite_arm::first_party::AsCaller;
use recoverite_arm::{
    ArmError, ArmRequest, Ctx, Operation, ProviderInfo, Reply, RouteTable, Routes,
};
use recoverite_store::WriteTx;

pub const NAMESPACE: &str = "Microsoft.Resources";
pub const TYPE: &str = "Microsoft.Resources/deployments";

recoverite_arm::api_versions!("../api-versions.txt", ["deployments"]);

/// The provider; `Clone` shares its running-deployment registry.
#[derive(Clone, Default)]
pub struct DeploymentsProvider {
    pub as_caller: AsCaller,
    pub running: run::Running,
}

/// What a request under `…/providers/Microsoft.Resources/deployments` is.
#[derive(Debug, PartialEq)]
pub enum Route {
    List {
        scope: String,
    },
    Deployment {
        scope: String,
        name: String,
    },
    Action {
        scope: String,
        name: String,
        action: Action,
    },
    Operations {
        scope: String,
        name: String,
    },
    Operation {
        scope: String,
        name: String,
        operation: String,
    },
    OperationStatus {
        scope: String,
        name: String,
        operation: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Action {
    Validate,
    Cancel,
    ExportTemplate,
    WhatIf,
}

impl Action {
    fn rbac(self) -> &'static str {
        match self {
            Action::Validate => "validate",
            Action::Cancel => "cancel",
            Action::ExportTemplate => "exportTemplate",
            Action::WhatIf => "whatIf",
        }
    }
}

impl Route {
    pub fn parse(req: &ArmRequest) -> Result<Route, ArmError> {
        let p = req.provider_part()?;
        // Ids are written as ARM writes them, whatever the request's casing.
        let sub = req.path.subscription.clone().unwrap_or_default();
        let scope = match (p.scope_len, &req.path.resource_group) {
            (2, _) if !sub.is_empty() => Some(format!("/subscriptions/{sub}")),
            (4, Some(rg)) => Some(format!("/subscriptions/{sub}/resourceGroups/{rg}")),
            _ => None,
        };
        let Some(scope) = scope else {
            let scope = format!("/{}", req.path.segments[..p.scope_len].join("/"));
            return Err(ArmError::bad_request(
                "InvalidDeploymentScope",
                format!("recoverite serves deployments at resource-group and subscription scope; '{scope}' is neither (management-group and tenant deployments are not served)."),
            ));
        };
        let t: Vec<String> = p.types.iter().map(|s| s.to_ascii_lowercase()).collect();
        let t: Vec<&str> = t.iter().map(String::as_str).collect();
        let n = &p.names;
        let name = || n[0].clone();
        Ok(match (t.as_slice(), n.len()) {
            (["deployments"], 0) => Route::List { scope },
            (["deployments"], 1) => Route::Deployment {
                scope,
                name: name(),
            },
            (["deployments", a], 1) => {
                let action = match *a {
                    "validate" => Action::Validate,
                    "cancel" => Action::Cancel,
                    "exporttemplate" => Action::ExportTemplate,
                    "whatif" => Action::WhatIf,
                    "operations" => return Ok(Route::Operations { scope, name: name() }),
                    other => {
                        return Err(ArmError::bad_request(
                            "InvalidResourceType",
                            format!("'{other}' is not a deployment action recoverite serves (validate, cancel, exportTemplate, operations)."),
                        ))
                    }
                };
                Route::Action {
                    scope,
                    name: name(),
                    action,
                }
            }
            (["deployments", "operations"], 2) => Route::Operation {
                scope,
                name: name(),
                operation: n[1].clone(),
            },
            (["deployments", "operationstatuses"], 2) => Route::OperationStatus {
                scope,
                name: name(),
                operation: n[1].clone(),
            },
            _ => {
                return Err(ArmError::bad_request(
                    "InvalidResourceType",
                    format!(
                        "The path '{}' is not a deployment resource recoverite serves.",
                        req.path.id()
                    ),
                ))
            }
        })
    }
}

pub fn deployment_id(scope: &str, name: &str) -> String {
    format!("{scope}/providers/{TYPE}/{name}")
}

impl RouteTable for DeploymentsProvider {
    type Route = Route;

    fn info(&self) -> ProviderInfo {
        ProviderInfo::from_table(
            NAMESPACE,
            &[
                "deployments",
                "deployments/operations",
                "deployments/operationStatuses",
            ],
            &API,
            true,
            false,
        )
    }

    fn parse(&self, req: &ArmRequest) -> Result<Route, ArmError> {
        Route::parse(req)
    }

    fn operation(&self, req: &ArmRequest, r: &Route) -> Result<Operation, ArmError> {
        Ok(self.operation_of(req, r))
    }

    fn serve(&self, ctx: &Ctx, req: &ArmRequest, r: Route) -> Result<Reply, ArmError> {
        self.serve_route(ctx, req, r)
    }
}

impl DeploymentsProvider {
    fn operation_of(&self, req: &ArmRequest, r: &Route) -> Operation {
        let verb = match req.method {
            http::Method::GET | http::Method::HEAD => "read",
            http::Method::PUT | http::Method::PATCH => "write",
            http::Method::DELETE => "delete",
            _ => "action",
        };
        let (action, scope, list) = match r {
            Route::List { scope } => (format!("{TYPE}/read"), scope.clone(), true),
            Route::Deployment { scope, name } => {
                (format!("{TYPE}/{verb}"), deployment_id(scope, name), false)
            }
            Route::Action {
                scope,
                name,
                action,
            } => (
                format!("{TYPE}/{}/action", action.rbac()),
                deployment_id(scope, name),
                false,
            ),
            Route::Operations { scope, name } => (
                format!("{TYPE}/operations/read"),
                deployment_id(scope, name),
                false,
            ),
            Route::Operation { scope, name, .. } => (
                format!("{TYPE}/operations/read"),
                deployment_id(scope, name),
                false,
            ),
            Route::OperationStatus { scope, name, .. } => (
                format!("{TYPE}/operationstatuses/read"),
                deployment_id(scope, name),
                false,
            ),
        };
        Operation {
            action,
            scope,
            list,
            api_versions: API.versions("deployments"),
            resource_type: TYPE.to_string(),
            public: false,
        }
    }

    fn serve_route(&self, ctx: &Ctx, req: &ArmRequest, r: Route) -> Result<Reply, ArmError> {
        use http::Method as M;
        match (r, req.method.clone()) {
            (Route::List { scope }, M::GET) => handlers::list(self, ctx, req, &scope),
            (Route::Deployment { scope, name }, M::PUT) => handlers::put(self, ctx, req, &scope, &name),
            (Route::Deployment { scope, name }, M::GET) => handlers::get(self, ctx, &scope, &name),
            (Route::Deployment { scope, name }, M::HEAD) => handlers::exists(self, ctx, &scope, &name),
            (Route::Deployment { scope, name }, M::DELETE) => {
                handlers::delete(self, ctx, req, &scope, &name)
            }
            (Route::Action { scope, name, action: Action::Validate }, M::POST) => {
                handlers::validate(self, ctx, req, &scope, &name)
            }
            (Route::Action { scope, name, action: Action::Cancel }, M::POST) => {
                handlers::cancel(self, ctx, &scope, &name)
            }
            (Route::Action { scope, name, action: Action::ExportTemplate }, M::POST) => {
                handlers::export_template(self, ctx, &scope, &name)
            }
            (Route::Action { action: Action::WhatIf, .. }, M::POST) => Err(ArmError::bad_request(
                "InvalidResourceType",
                "recoverite does not implement what-if; deploy with validate (POST …/validate) to check a template without changing anything.",
            )),
            (Route::Operations { scope, name }, M::GET) => handlers::operations(self, ctx, req, &scope, &name),
            (Route::Operation { scope, name, operation }, M::GET) => {
                handlers::operation(self, ctx, &scope, &name, &operation)
            }
            (Route::OperationStatus { scope, name, operation }, M::GET) => {
                handlers::operation_status(self, ctx, req, &scope, &name, &operation)
            }
            (_, m) => Err(ArmError::method_not_allowed(m.as_str())),
        }
    }
}

/// Deleting a resource group deletes its deployment history with it.
pub struct DeploymentsCascade;

impl recoverite_arm::ScopeCascade for DeploymentsCascade {
    fn scope_deleted(&self, tx: &mut WriteTx, scope: &str) -> Result<(), ArmError> {
        let prefix = record::key(&format!("{scope}/providers/{TYPE}/"));
        tx.delete_prefix(record::DEPLOYMENTS, &prefix)?;
        Ok(())
    }
}

/// What this crate brings to the server: template deployments (under
/// Microsoft.Resources, after its root) and their clean-up.
pub fn manifest(as_caller: &AsCaller) -> recoverite_manifest::Manifest {
    recoverite_manifest::Manifest::new("recoverite-rp-deployments")
        .provider(Routes(DeploymentsProvider {
            as_caller: as_caller.clone(),
            running: Default::default(),
        }))
        .cascade(recoverite_manifest::Stage::Deployments, DeploymentsCascade)
}
