//! Nested deployments (`Microsoft.Resources/deployments` inside a template).
//!
//! "`outer` … the nested template's expressions are evaluated using the
//! parent template's parameters and variables; `inner` … the nested
//! template's own parameters and variables, and values passed in
//! `parameters`" (ARM docs, "Expression evaluation scope in nested
//! templates"; `outer` is the default). An outer-scope nested template is
//! made self-contained before it is sent: the parent's parameter values
//! become the nested template's parameter defaults and its evaluated
//! variables become literal variables (strings escaped with `[[`), so the
//! nested deployment is an ordinary deployment of its own.

use serde_json::{json, Map, Value};

use recoverite_arm::ArmError;
use recoverite_arm_template::Plan;

/// A value as a template literal: strings that would read as expressions
/// get the `[[` escape.
pub fn escape(v: &Value) -> Value {
    match v {
        Value::String(s) if s.starts_with('[') => Value::String(format!("[{s}")),
        Value::Array(a) => Value::Array(a.iter().map(escape).collect()),
        Value::Object(o) => Value::Object(o.iter().map(|(k, x)| (k.clone(), escape(x))).collect()),
        other => other.clone(),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Bool(_) => "bool",
        Value::Number(_) => "int",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
        _ => "string",
    }
}

/// Readies a nested deployment's evaluated body for its PUT.
pub fn prepare(body: &mut Value, parent: &Plan) -> Result<(), ArmError> {
    let props = body
        .get_mut("properties")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| {
            ArmError::bad_request(
                "InvalidTemplate",
                "A nested deployment needs 'properties' with 'mode' and 'template'.",
            )
        })?;
    if props.contains_key("templateLink") && !props.contains_key("template") {
        return Err(ArmError::bad_request(
            "InvalidContentLink",
            "recoverite runs offline and cannot download linked templates; put the template inline ('template') instead of 'templateLink'.",
        ));
    }
    let inner = props
        .get("expressionEvaluationOptions")
        .and_then(|o| o.get("scope"))
        .and_then(Value::as_str)
        .is_some_and(|s| s.eq_ignore_ascii_case("inner"));
    if inner {
        return Ok(());
    }
    let template = props
        .get_mut("template")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| {
            ArmError::bad_request(
                "InvalidTemplate",
                "A nested deployment needs an inline 'template' object.",
            )
        })?;
    let secure: Vec<String> = parent
        .parameters
        .iter()
        .filter(|p| p.secure())
        .map(|p| p.name.to_ascii_lowercase())
        .collect();
    let mut params = Map::new();
    for (k, v) in &parent.parameter_values {
        let ty = if secure.contains(&k.to_ascii_lowercase()) {
            if v.is_object() {
                "secureObject"
            } else {
                "securestring"
            }
        } else {
            kind(v)
        };
        params.insert(k.clone(), json!({"type": ty, "defaultValue": escape(v)}));
    }
    template.insert("parameters".into(), Value::Object(params));
    template.insert(
        "variables".into(),
        escape(&Value::Object(parent.variables.clone())),
    );
    props.remove("parameters");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_values_read_back_as_literals() {
        assert_eq!(
            escape(&json!({"a": "[not]", "b": ["x", "[y]"], "c": 1})),
            json!({"a": "[[not]", "b": ["x", "[[y]"], "c": 1})
        );
    }
}
