//! A deployment as stored (typed), and its wire form.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use recoverite_arm::{ArmError, ErrorBody};
use recoverite_store::{Reader, Table, WriteTx};

pub const DEPLOYMENTS: Table = Table("deployments");

pub const ACCEPTED: &str = "Accepted";
pub const RUNNING: &str = "Running";
pub const SUCCEEDED: &str = "Succeeded";
pub const FAILED: &str = "Failed";
pub const CANCELED: &str = "Canceled";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ParameterRecord {
    pub name: String,
    pub type_name: String,
    /// `None` for secure parameters: their values are never stored.
    pub value: Option<Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetResource {
    pub id: String,
    pub resource_type: String,
    pub resource_name: String,
}

impl TargetResource {
    fn to_json(&self) -> Value {
        json!({"id": self.id, "resourceType": self.resource_type, "resourceName": self.resource_name})
    }
}

/// One resource's deployment operation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OperationEntry {
    pub operation_id: String,
    /// Create, Read (an `existing` resource), Delete (Complete mode).
    pub provisioning_operation: String,
    pub provisioning_state: String,
    pub timestamp: String,
    pub duration: String,
    pub status_code: String,
    pub status_message: Option<Value>,
    pub target: TargetResource,
}

/// A namespace the template deploys to, with its types and where.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProviderEntry {
    pub namespace: String,
    /// (resource type, location when the template names one literally)
    pub resource_types: Vec<TypeEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TypeEntry {
    pub resource_type: String,
    pub location: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dependency {
    pub target: TargetResource,
    pub depends_on: Vec<TargetResource>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeploymentRecord {
    pub id: String,
    pub name: String,
    /// The resource group or subscription the deployment is in.
    pub scope: String,
    pub location: Option<String>,
    pub tags: Map<String, Value>,
    pub mode: String,
    pub template: Value,
    pub template_hash: String,
    pub parameters: Vec<ParameterRecord>,
    pub provisioning_state: String,
    pub timestamp: String,
    pub duration: String,
    pub correlation_id: String,
    pub started_by: String,
    /// The long-running operation record polled through `Azure-AsyncOperation`.
    pub operation: String,
    pub outputs: Option<Map<String, Value>>,
    pub output_resources: Vec<String>,
    pub dependencies: Vec<Dependency>,
    pub providers: Vec<ProviderEntry>,
    pub operations: Vec<OperationEntry>,
    pub error: Option<ErrorBody>,
    pub expression_scope: Option<String>,
}

pub fn key(id: &str) -> String {
    id.to_ascii_lowercase()
}

pub fn load(r: &impl Reader, id: &str) -> Result<Option<DeploymentRecord>, ArmError> {
    Ok(r.get_json(DEPLOYMENTS, &key(id))?)
}

pub fn save(tx: &mut WriteTx, d: &DeploymentRecord) -> Result<(), ArmError> {
    tx.put_json(DEPLOYMENTS, &key(&d.id), d)?;
    Ok(())
}

/// The deployments directly in `scope` (a resource group or subscription).
pub fn list(r: &impl Reader, scope: &str) -> Result<Vec<DeploymentRecord>, ArmError> {
    let prefix = key(&format!(
        "{scope}/providers/Microsoft.Resources/deployments/"
    ));
    let mut out = Vec::new();
    for (k, bytes) in r.scan_prefix(DEPLOYMENTS, &prefix)? {
        if k[prefix.len()..].contains('/') {
            continue;
        }
        if let Ok(d) = serde_json::from_slice::<DeploymentRecord>(&bytes) {
            out.push(d);
        }
    }
    Ok(out)
}

pub fn is_terminal(state: &str) -> bool {
    matches!(state, SUCCEEDED | FAILED | CANCELED)
}

impl DeploymentRecord {
    pub fn to_json(&self) -> Value {
        let mut params = Map::new();
        for p in &self.parameters {
            let mut v = json!({"type": p.type_name});
            if let Some(value) = &p.value {
                v["value"] = value.clone();
            }
            params.insert(p.name.clone(), v);
        }
        let mut props = json!({
            "templateHash": self.template_hash,
            "parameters": params,
            "mode": self.mode,
            "provisioningState": self.provisioning_state,
            "timestamp": self.timestamp,
            "duration": self.duration,
            "correlationId": self.correlation_id,
            "providers": self.providers.iter().map(|p| json!({
                "namespace": p.namespace,
                "resourceTypes": p.resource_types.iter().map(|t| json!({
                    "resourceType": t.resource_type,
                    "locations": t.location.iter().collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "dependencies": self.dependencies.iter().map(|d| {
                let mut v = d.target.to_json();
                v["dependsOn"] = Value::Array(d.depends_on.iter().map(TargetResource::to_json).collect());
                v
            }).collect::<Vec<_>>(),
            "outputResources": self.output_resources.iter().map(|id| json!({"id": id})).collect::<Vec<_>>(),
        });
        if let Some(o) = &self.outputs {
            props["outputs"] = Value::Object(o.clone());
        }
        if let Some(e) = &self.error {
            props["error"] = serde_json::to_value(e).unwrap_or(Value::Null);
        }
        let mut v = json!({
            "id": self.id,
            "name": self.name,
            "type": "Microsoft.Resources/deployments",
            "tags": self.tags,
            "properties": props,
        });
        if let Some(l) = &self.location {
            v["location"] = json!(l);
        }
        v
    }

    pub fn operation_json(&self, op: &OperationEntry) -> Value {
        let mut props = json!({
            "provisioningOperation": op.provisioning_operation,
            "provisioningState": op.provisioning_state,
            "timestamp": op.timestamp,
            "duration": op.duration,
            "trackingId": op.operation_id,
            "serviceRequestId": op.operation_id,
            "statusCode": op.status_code,
            "targetResource": op.target.to_json(),
        });
        if let Some(m) = &op.status_message {
            props["statusMessage"] = m.clone();
        }
        json!({
            "id": format!("{}/operations/{}", self.id, op.operation_id),
            "operationId": op.operation_id,
            "properties": props,
        })
    }
}

/// ISO 8601 duration of `d`, as ARM writes it (`PT1.2345678S`).
pub fn iso_duration(d: std::time::Duration) -> String {
    let secs = d.as_secs_f64();
    if secs >= 3600.0 {
        let h = (secs / 3600.0).floor();
        let m = ((secs - h * 3600.0) / 60.0).floor();
        format!("PT{h}H{m}M{:.7}S", secs - h * 3600.0 - m * 60.0)
    } else if secs >= 60.0 {
        let m = (secs / 60.0).floor();
        format!("PT{m}M{:.7}S", secs - m * 60.0)
    } else {
        format!("PT{secs:.7}S")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_arms() {
        assert_eq!(
            iso_duration(std::time::Duration::from_millis(1500)),
            "PT1.5000000S"
        );
        assert_eq!(
            iso_duration(std::time::Duration::from_secs(61)),
            "PT1M1.0000000S"
        );
        assert_eq!(
            iso_duration(std::time::Duration::from_secs(3661)),
            "PT1H1M1.0000000S"
        );
    }
}
