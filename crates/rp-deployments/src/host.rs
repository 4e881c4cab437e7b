//! What templates ask of the platform — `resourceGroup()`, `reference()`,
//! `listKeys()` — answered through the ARM router as the caller, so a
//! template can read only what its deployer may read.

use std::sync::{Arc, OnceLock};

use http::Method;
use serde_json::{json, Value};

use recoverite_arm::first_party::dispatch_reply;
use recoverite_arm::{ArmError, Reply, Router};
use recoverite_arm_template::{Host, Plan, TemplateError};

/// A caller's channel to the router: its `Authorization` header and the
/// base URL replies are built with.
#[derive(Clone)]
pub struct CallerChannel {
    pub router: Arc<Router>,
    pub authorization: Option<http::HeaderValue>,
    pub base_url: String,
}

impl CallerChannel {
    pub fn send(
        &self,
        method: Method,
        path: &str,
        api_version: &str,
        body: Option<Value>,
    ) -> Result<Reply, ArmError> {
        dispatch_reply(
            &self.router,
            self.authorization.clone(),
            method,
            path,
            api_version,
            body,
            &self.base_url,
        )
    }
}

/// A version every recoverite resource-group and subscription endpoint takes.
const RESOURCES_API: &str = "2022-12-01";

pub fn runtime_error(e: ArmError) -> TemplateError {
    TemplateError::Runtime {
        status: e.status,
        code: e.body.code.clone(),
        message: e.body.message.clone(),
    }
}

pub struct DeploymentHost {
    pub channel: CallerChannel,
    pub subscription: String,
    pub resource_group: Option<String>,
    pub tenant: String,
    pub deployment: Value,
    /// Set once the plan exists: resolves `reference('name')` and the
    /// api-version of a declared resource.
    pub plan: OnceLock<Plan>,
}

impl DeploymentHost {
    fn get(&self, path: &str, api: &str) -> Result<Value, TemplateError> {
        self.channel
            .send(Method::GET, path, api, None)
            .map(|r| r.body.unwrap_or(Value::Null))
            .map_err(runtime_error)
    }
}

impl Host for DeploymentHost {
    fn subscription_id(&self) -> String {
        self.subscription.clone()
    }

    fn resource_group(&self) -> Option<String> {
        self.resource_group.clone()
    }

    fn tenant_id(&self) -> String {
        self.tenant.clone()
    }

    fn resource_group_object(&self) -> Result<Value, TemplateError> {
        let rg = self.resource_group.as_ref().ok_or_else(|| {
            TemplateError::expr(
                "The template function 'resourceGroup' is not expected at this location: a subscription-scope deployment has no resource group.",
            )
        })?;
        self.get(
            &format!("/subscriptions/{}/resourceGroups/{rg}", self.subscription),
            RESOURCES_API,
        )
    }

    fn subscription_object(&self) -> Result<Value, TemplateError> {
        let mut s = self.get(
            &format!("/subscriptions/{}", self.subscription),
            RESOURCES_API,
        )?;
        if let Some(o) = s.as_object_mut() {
            o.retain(|k, _| {
                matches!(
                    k.as_str(),
                    "id" | "subscriptionId" | "tenantId" | "displayName"
                )
            });
        }
        Ok(s)
    }

    fn deployment_object(&self) -> Value {
        self.deployment.clone()
    }

    fn environment(&self) -> Value {
        let a = &self.channel.base_url;
        json!({
            "name": "AzureCloud",
            "gallery": format!("{a}/"),
            "graph": format!("{a}/"),
            "portal": a,
            "graphAudience": "https://graph.microsoft.com/",
            "activeDirectoryDataLake": "https://datalake.azure.net/",
            "batch": "https://batch.core.windows.net/",
            "media": format!("{a}/"),
            "sqlManagement": "https://management.core.windows.net:8443/",
            "vmImageAliasDoc": "https://raw.githubusercontent.com/Azure/azure-rest-api-specs/master/arm-compute/quickstart-templates/aliases.json",
            "resourceManager": format!("{a}/"),
            "authentication": {
                "loginEndpoint": format!("{a}/"),
                "audiences": ["https://management.core.windows.net/", "https://management.azure.com/"],
                "tenant": "common",
                "identityProvider": "AAD",
            },
            "suffixes": {
                "acrLoginServer": ".azurecr.io",
                "azureDatalakeAnalyticsCatalogAndJob": "azuredatalakeanalytics.net",
                "azureDatalakeStoreFileSystem": "azuredatalakestore.net",
                "azureFrontDoorEndpointSuffix": "azurefd.net",
                "keyvaultDns": ".vault.azure.net",
                "sqlServerHostname": ".database.windows.net",
                "storage": "core.windows.net",
            },
        })
    }

    fn reference(
        &self,
        id: &str,
        api_version: Option<&str>,
        full: bool,
    ) -> Result<Value, TemplateError> {
        if !id.starts_with('/') {
            return Err(TemplateError::expr(format!(
                "The template reference '{id}' is not valid: could not find template resource or resource copy with this name. Please see https://aka.ms/arm-function-reference for usage details."
            )));
        }
        let declared = self.plan.get().and_then(|p| p.by_id(id));
        let api = match (api_version, declared) {
            (Some(a), _) => a.to_string(),
            (None, Some(r)) => r.api_version.clone(),
            (None, None) => {
                return Err(TemplateError::expr(format!(
                    "The template function 'reference' needs an api-version for '{id}', which this template does not declare. Please see https://aka.ms/arm-function-reference for usage details."
                )))
            }
        };
        let mut body = self.get(id, &api)?;
        if full {
            if let Some(o) = body.as_object_mut() {
                o.insert("apiVersion".into(), json!(api));
            }
            return Ok(body);
        }
        Ok(body.get("properties").cloned().unwrap_or(json!({})))
    }

    fn list(
        &self,
        id: &str,
        function: &str,
        api_version: &str,
        body: Option<&Value>,
    ) -> Result<Value, TemplateError> {
        self.channel
            .send(
                Method::POST,
                &format!("{}/{function}", id.trim_end_matches('/')),
                api_version,
                body.cloned(),
            )
            .map(|r| r.body.unwrap_or(Value::Null))
            .map_err(runtime_error)
    }

    fn declared(&self, name: &str) -> Option<String> {
        self.plan.get().and_then(|p| p.declared(name))
    }
}
