//! From a template and parameter values to a deployment plan: parameters
//! bound and validated, variables evaluated, resources expanded (copy
//! loops, conditions, nested children) with their ids, and the dependency
//! graph ordered into waves of resources that can be deployed together.

use std::collections::{BTreeSet, HashMap};

use serde_json::{json, Map, Value};

use crate::eval::{self, eval_value, Host, LazyVariables, Scope, Variables};
use crate::expr::{self, Expr};
use crate::functions::get_prop;
use crate::TemplateError;

/// "Resources: 800" (Resource Manager's template limits).
pub const MAX_RESOURCES: usize = 800;
/// "Parameters: 256", "Outputs: 64".
pub const MAX_PARAMETERS: usize = 256;
pub const MAX_OUTPUTS: usize = 64;

fn invalid(msg: impl std::fmt::Display) -> TemplateError {
    TemplateError::invalid(format!("Deployment template validation failed: '{msg}'."))
}

/// A resource still to expand: as written, its symbolic name, and its
/// parent's index and copy indices when it is nested.
type Work = (Value, Option<String>, Option<(usize, Vec<(String, i64)>)>);

/// A template resource instance to deploy.
#[derive(Debug, Clone)]
pub struct PlannedResource {
    /// The symbolic name (language version 2.0), if any.
    pub symbolic: Option<String>,
    /// The resource copy loop it belongs to.
    pub copy_name: Option<String>,
    /// Full type (`Microsoft.Network/virtualNetworks/subnets`).
    pub resource_type: String,
    /// Full name (`vnet1/subnet1`).
    pub name: String,
    pub api_version: String,
    pub id: String,
    /// Copy indices in force for this instance.
    pub copy: Vec<(String, i64)>,
    /// The resource as written (its body is evaluated at deployment time,
    /// when `reference()` can see what was deployed before it).
    pub raw: Value,
    /// Indices (into [`Plan::resources`]) it waits for.
    pub depends_on: Vec<usize>,
    /// 0 for resources that depend on nothing; otherwise one more than the
    /// highest wave among its dependencies.
    pub wave: usize,
    /// `existing: true` (language version 2.0): read, not deployed.
    pub existing: bool,
    /// For nested deployments: the resource group they target, if not the
    /// deployment's own.
    pub target_resource_group: Option<String>,
    pub target_subscription: Option<String>,
}

impl PlannedResource {
    pub fn namespace(&self) -> &str {
        self.resource_type.split('/').next().unwrap_or_default()
    }

    pub fn is_deployment(&self) -> bool {
        self.resource_type
            .eq_ignore_ascii_case("Microsoft.Resources/deployments")
    }
}

/// A parameter as the deployment reports it.
#[derive(Debug, Clone)]
pub struct BoundParameter {
    pub name: String,
    /// Azure's spelling: String, Int, Bool, Object, Array, SecureString, SecureObject.
    pub type_name: String,
    pub value: Value,
}

impl BoundParameter {
    pub fn secure(&self) -> bool {
        self.type_name.starts_with("Secure")
    }
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub parameters: Vec<BoundParameter>,
    pub parameter_values: Map<String, Value>,
    pub variables: Map<String, Value>,
    pub resources: Vec<PlannedResource>,
    pub outputs: Map<String, Value>,
    pub content_version: String,
    /// User-defined functions by lower-cased `namespace.name`, and the
    /// section as written (passed on to outer-scope nested templates).
    pub functions: Map<String, Value>,
    pub functions_section: Option<Value>,
}

/// What the deployment inherits when a nested template is evaluated in its
/// parent's scope (`expressionEvaluationOptions.scope: outer`).
pub struct Inherited<'a> {
    pub parameters: &'a Map<String, Value>,
    pub variables: &'a Map<String, Value>,
}

const META: &[&str] = &[
    "name",
    "type",
    "apiVersion",
    "dependsOn",
    "copy",
    "condition",
    "resources",
    "comments",
    "scope",
    "existing",
    "metadata",
    "resourceGroup",
    "subscriptionId",
    "import",
];

impl Plan {
    /// Binds parameters, evaluates variables and expands resources; every
    /// preflight rule is checked here, before anything is deployed.
    pub fn build(
        template: &Value,
        supplied: &Map<String, Value>,
        host: &dyn Host,
        inherited: Option<Inherited>,
    ) -> Result<Plan, TemplateError> {
        let t = template
            .as_object()
            .ok_or_else(|| invalid("The template must be a JSON object"))?;
        let content_version = get_prop(t, "contentVersion")
            .and_then(Value::as_str)
            .unwrap_or("1.0.0.0")
            .to_string();
        if let Some(schema) = get_prop(t, "$schema").and_then(Value::as_str) {
            if !schema.to_ascii_lowercase().contains("deploymenttemplate")
                && !schema.to_ascii_lowercase().contains("deploymentparameters")
            {
                return Err(invalid(format!(
                    "The template schema '{schema}' is not supported. Supported schemas are the 2015-01-01 and 2019-04-01 deployment template schemas (https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#)"
                )));
            }
        }
        let functions_section = get_prop(t, "functions").cloned();
        let functions = eval::user_functions(functions_section.as_ref())?;
        let (parameters, parameter_values, variables) = match inherited {
            Some(i) => (Vec::new(), i.parameters.clone(), i.variables.clone()),
            None => {
                let params = bind_parameters(t, supplied, host, &functions)?;
                let values: Map<String, Value> = params
                    .iter()
                    .map(|p| (p.name.clone(), p.value.clone()))
                    .collect();
                let raw_vars = get_prop(t, "variables")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                let lazy = LazyVariables::new(raw_vars);
                let scope = Scope {
                    host,
                    parameters: &values,
                    variables: Variables::Lazy(&lazy),
                    copy: vec![],
                    runtime: false,
                    parameter_default: false,
                    lambdas: Vec::new(),
                    functions: &functions,
                };
                let vars = lazy.resolve_all(&scope)?;
                (params, values, vars)
            }
        };
        let outputs = get_prop(t, "outputs")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        if outputs.len() > MAX_OUTPUTS {
            return Err(invalid(format!(
                "The number of template outputs limit exceeded. Limit: '{MAX_OUTPUTS}' and actual: '{}'",
                outputs.len()
            )));
        }
        let mut plan = Plan {
            parameters,
            parameter_values,
            variables,
            resources: Vec::new(),
            outputs,
            content_version,
            functions,
            functions_section,
        };
        plan.expand(t, host)?;
        Ok(plan)
    }

    fn scope<'a>(&'a self, host: &'a dyn Host, copy: &[(String, i64)], runtime: bool) -> Scope<'a> {
        Scope {
            host,
            parameters: &self.parameter_values,
            variables: Variables::Resolved(&self.variables),
            copy: copy.to_vec(),
            runtime,
            parameter_default: false,
            lambdas: Vec::new(),
            functions: &self.functions,
        }
    }

    fn expand(&mut self, t: &Map<String, Value>, host: &dyn Host) -> Result<(), TemplateError> {
        // (resource, symbolic name)
        let top: Vec<(Value, Option<String>)> = match get_prop(t, "resources") {
            None => Vec::new(),
            Some(Value::Array(a)) => a.iter().map(|r| (r.clone(), None)).collect(),
            Some(Value::Object(o)) => o
                .iter()
                .map(|(k, r)| (r.clone(), Some(k.clone())))
                .collect(),
            Some(_) => return Err(invalid("The template 'resources' must be an array")),
        };
        let mut pending_deps: Vec<Vec<String>> = Vec::new();
        let mut implicit: Vec<Vec<String>> = Vec::new();
        let mut parent_of: Vec<Option<usize>> = Vec::new();
        let mut serial: Vec<(String, i64, i64)> = Vec::new(); // (loop, index, batch) per instance
        let mut skipped: Vec<PlannedResource> = Vec::new();
        let mut work: Vec<Work> = top.into_iter().rev().map(|(r, s)| (r, s, None)).collect();
        while let Some((raw, symbolic, parent)) = work.pop() {
            let o = raw
                .as_object()
                .ok_or_else(|| invalid("Each template resource must be a JSON object"))?;
            let outer_copy = parent.as_ref().map(|(_, c)| c.clone()).unwrap_or_default();
            let (loop_name, count, batch) = match get_prop(o, "copy") {
                Some(Value::Object(c)) => {
                    let name = get_prop(c, "name")
                        .and_then(Value::as_str)
                        .ok_or_else(|| invalid("A resource copy loop needs a 'name'"))?
                        .to_string();
                    let count = eval::copy_count(
                        get_prop(c, "count"),
                        &self.scope(host, &outer_copy, false),
                        &name,
                    )?;
                    let serial_mode = get_prop(c, "mode")
                        .and_then(Value::as_str)
                        .is_some_and(|m| m.eq_ignore_ascii_case("serial"));
                    let batch = if serial_mode {
                        get_prop(c, "batchSize")
                            .and_then(Value::as_i64)
                            .unwrap_or(1)
                            .max(1)
                    } else {
                        0
                    };
                    (Some(name), count, batch)
                }
                Some(_) => {
                    return Err(invalid(
                        "A resource 'copy' must be an object with 'name' and 'count'",
                    ))
                }
                None => (None, 1, 0),
            };
            for i in 0..count {
                let mut copy = outer_copy.clone();
                if let Some(l) = &loop_name {
                    copy.push((l.clone(), i));
                }
                let scope = self.scope(host, &copy, false);
                let s = |key: &str| -> Result<Option<String>, TemplateError> {
                    match get_prop(o, key) {
                        None => Ok(None),
                        Some(v) => match eval_value(v, &scope)? {
                            Value::String(s) => Ok(Some(s)),
                            Value::Null => Ok(None),
                            other => Err(invalid(format!(
                                "The template resource property '{key}' must be a string; it is '{other}'"
                            ))),
                        },
                    }
                };
                let ty = s("type")?.ok_or_else(|| invalid("A template resource has no 'type'"))?;
                let name = s("name")?.ok_or_else(|| {
                    invalid(format!("A template resource of type '{ty}' has no 'name'"))
                })?;
                let api_version = s("apiVersion")?.unwrap_or_default();
                let (full_type, full_name) = match &parent {
                    Some((p, _)) if !ty.contains('/') => {
                        let p = &self.resources[*p];
                        (
                            format!("{}/{ty}", p.resource_type),
                            format!("{}/{name}", p.name),
                        )
                    }
                    _ => (ty.clone(), name.clone()),
                };
                let condition = match get_prop(o, "condition") {
                    None => true,
                    Some(c) => match eval_value(c, &scope)? {
                        Value::Bool(b) => b,
                        Value::String(s) if s.eq_ignore_ascii_case("true") => true,
                        Value::String(s) if s.eq_ignore_ascii_case("false") => false,
                        other => {
                            return Err(invalid(format!(
                                "The template resource '{full_name}' condition must be a Boolean; it is '{other}'"
                            )))
                        }
                    },
                };
                let target_resource_group = s("resourceGroup")?;
                let target_subscription = s("subscriptionId")?;
                let scope_prop = s("scope")?;
                let id = resource_id(
                    host,
                    &full_type,
                    &full_name,
                    scope_prop.as_deref(),
                    target_subscription.as_deref(),
                    target_resource_group.as_deref(),
                )?;
                if api_version.is_empty() {
                    return Err(invalid(format!(
                        "The template resource '{full_name}' of type '{full_type}' has no 'apiVersion'"
                    )));
                }
                let deps: Vec<String> = match get_prop(o, "dependsOn") {
                    None => Vec::new(),
                    Some(d) => match eval_value(d, &scope)? {
                        Value::Array(a) => a
                            .into_iter()
                            .map(|x| match x {
                                Value::String(s) => Ok(s),
                                other => Err(invalid(format!(
                                    "The template resource '{full_name}' dependsOn entries must be strings; '{other}' is not"
                                ))),
                            })
                            .collect::<Result<_, _>>()?,
                        other => {
                            return Err(invalid(format!(
                                "The template resource '{full_name}' dependsOn must be an array; it is '{other}'"
                            )))
                        }
                    },
                };
                let refs = implicit_targets(&raw, &scope);
                let planned = PlannedResource {
                    symbolic: symbolic.clone(),
                    copy_name: loop_name.clone(),
                    resource_type: full_type,
                    name: full_name,
                    api_version,
                    id,
                    copy: copy.clone(),
                    raw: raw.clone(),
                    depends_on: Vec::new(),
                    wave: 0,
                    existing: get_prop(o, "existing")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                    target_resource_group,
                    target_subscription,
                };
                if !condition {
                    // A resource left out by its condition is not deployed,
                    // and dependencies on it are dropped.
                    skipped.push(planned);
                    continue;
                }
                let idx = self.resources.len();
                self.resources.push(planned);
                pending_deps.push(deps);
                implicit.push(refs);
                parent_of.push(parent.as_ref().map(|(p, _)| *p));
                serial.push((loop_name.clone().unwrap_or_default(), i, batch));
                if self.resources.len() > MAX_RESOURCES {
                    return Err(invalid(format!(
                        "The number of template resources limit exceeded. Limit: '{MAX_RESOURCES}' and actual: more than '{MAX_RESOURCES}'"
                    )));
                }
                if let Some(Value::Array(children)) = get_prop(o, "resources") {
                    for c in children.iter().rev() {
                        work.push((c.clone(), None, Some((idx, copy.clone()))));
                    }
                }
            }
        }
        // Resolve dependencies.
        for i in 0..self.resources.len() {
            let mut deps: BTreeSet<usize> = BTreeSet::new();
            for d in &pending_deps[i] {
                let found = self.matching(d);
                if found.is_empty() {
                    if skipped.iter().any(|s| matches_resource(s, d)) {
                        continue;
                    }
                    return Err(invalid(format!(
                        "The resource '{d}' is not defined in the template"
                    )));
                }
                deps.extend(found);
            }
            for r in &implicit[i] {
                deps.extend(self.matching(r));
            }
            if let Some(p) = parent_of[i] {
                deps.insert(p);
            }
            let (l, idx, batch) = &serial[i];
            if *batch > 0 && *idx >= *batch {
                let prev_batch = idx / batch - 1;
                let outer = |r: &PlannedResource| r.copy[..r.copy.len().saturating_sub(1)].to_vec();
                let mine = outer(&self.resources[i]);
                for (j, (lj, jdx, _)) in serial.iter().enumerate() {
                    if lj == l
                        && jdx / batch == prev_batch
                        && self.resources[j].copy_name == self.resources[i].copy_name
                        && outer(&self.resources[j]) == mine
                    {
                        deps.insert(j);
                    }
                }
            }
            deps.remove(&i);
            self.resources[i].depends_on = deps.into_iter().collect();
        }
        self.order()
    }

    /// Indices of the resources a `dependsOn` or `reference()` string names.
    fn matching(&self, d: &str) -> Vec<usize> {
        self.resources
            .iter()
            .enumerate()
            .filter(|(_, r)| matches_resource(r, d))
            .map(|(i, _)| i)
            .collect()
    }

    /// Kahn's algorithm: waves, or the resources of a cycle.
    fn order(&mut self) -> Result<(), TemplateError> {
        let n = self.resources.len();
        let mut wave: Vec<Option<usize>> = vec![None; n];
        let mut remaining = n;
        loop {
            let mut progressed = false;
            for i in 0..n {
                if wave[i].is_some() {
                    continue;
                }
                let deps = &self.resources[i].depends_on;
                if deps.iter().all(|d| wave[*d].is_some()) {
                    wave[i] = Some(
                        deps.iter()
                            .map(|d| wave[*d].unwrap_or(0) + 1)
                            .max()
                            .unwrap_or(0),
                    );
                    remaining -= 1;
                    progressed = true;
                }
            }
            if remaining == 0 {
                break;
            }
            if !progressed {
                let cycle: Vec<&str> = (0..n)
                    .filter(|i| wave[*i].is_none())
                    .map(|i| self.resources[i].id.as_str())
                    .collect();
                return Err(invalid(format!(
                    "Circular dependency detected on resource: '{}'. Please see https://aka.ms/arm-syntax-resources for usage details",
                    cycle.join("', '")
                )));
            }
        }
        for (r, w) in self.resources.iter_mut().zip(wave) {
            r.wave = w.unwrap_or(0);
        }
        Ok(())
    }

    /// The id of a declared resource by name, symbolic name or `type/name`.
    pub fn declared(&self, name: &str) -> Option<String> {
        self.resources
            .iter()
            .find(|r| matches_resource(r, name))
            .map(|r| r.id.clone())
    }

    /// The declared resource with this id.
    pub fn by_id(&self, id: &str) -> Option<&PlannedResource> {
        self.resources
            .iter()
            .find(|r| r.id.eq_ignore_ascii_case(id))
    }

    /// A resource's request body, evaluated now (after its dependencies):
    /// everything but the template's own keywords. A nested deployment's
    /// inner template is passed on unevaluated.
    pub fn body(&self, r: &PlannedResource, host: &dyn Host) -> Result<Value, TemplateError> {
        let o = r.raw.as_object().cloned().unwrap_or_default();
        let scope = self.scope(host, &r.copy, true);
        let mut out = Map::new();
        for (k, v) in o {
            if META.iter().any(|m| m.eq_ignore_ascii_case(&k)) {
                continue;
            }
            if r.is_deployment() && k.eq_ignore_ascii_case("properties") {
                out.insert(k, self.nested_properties(&v, &scope)?);
                continue;
            }
            out.insert(k, eval_value(&v, &scope)?);
        }
        Ok(Value::Object(out))
    }

    fn nested_properties(&self, v: &Value, scope: &Scope) -> Result<Value, TemplateError> {
        let mut out = Map::new();
        for (k, x) in v.as_object().cloned().unwrap_or_default() {
            if k.eq_ignore_ascii_case("template") {
                out.insert(k, x);
            } else {
                out.insert(k, eval_value(&x, scope)?);
            }
        }
        Ok(Value::Object(out))
    }

    /// The outputs, evaluated after every resource is deployed.
    pub fn evaluate_outputs(&self, host: &dyn Host) -> Result<Map<String, Value>, TemplateError> {
        let mut out = Map::new();
        let scope = self.scope(host, &[], true);
        for (name, decl) in &self.outputs {
            let d = decl.as_object().cloned().unwrap_or_default();
            let ty = get_prop(&d, "type")
                .and_then(Value::as_str)
                .unwrap_or("string");
            if let Some(c) = get_prop(&d, "condition") {
                if eval_value(c, &scope)? == json!(false) {
                    continue;
                }
            }
            let value = match get_prop(&d, "copy").and_then(Value::as_object) {
                Some(c) => {
                    let count = eval::copy_count(get_prop(c, "count"), &scope, name)?;
                    let input = get_prop(c, "input").cloned().unwrap_or(Value::Null);
                    let mut items = Vec::new();
                    for i in 0..count {
                        items.push(eval_value(&input, &scope.with_copy(name, i))?);
                    }
                    Value::Array(items)
                }
                None => eval_value(get_prop(&d, "value").unwrap_or(&Value::Null), &scope)?,
            };
            check_type(&format!("output '{name}'"), ty, &value)?;
            out.insert(name.clone(), json!({"type": type_name(ty), "value": value}));
        }
        Ok(out)
    }
}

/// Whether `d` (a dependsOn entry or reference target) names `r`.
fn matches_resource(r: &PlannedResource, d: &str) -> bool {
    let eq = |a: &str| a.eq_ignore_ascii_case(d);
    eq(&r.id)
        || r.symbolic.as_deref().is_some_and(eq)
        || r.copy_name.as_deref().is_some_and(eq)
        || eq(&r.name)
        || eq(&format!("{}/{}", r.resource_type, r.name))
        || d.to_ascii_lowercase()
            .ends_with(&format!("/providers/{}", type_name_path(r)).to_ascii_lowercase())
}

/// `Microsoft.Network/virtualNetworks/v/subnets/s` for a resource.
fn type_name_path(r: &PlannedResource) -> String {
    let mut types = r.resource_type.split('/');
    let mut out = types.next().unwrap_or_default().to_string();
    for (t, n) in types.zip(r.name.split('/')) {
        out.push_str(&format!("/{t}/{n}"));
    }
    out
}

/// Targets of `reference()` and `list*()` calls in a resource, where the
/// target can be worked out before deployment: implicit dependencies.
fn implicit_targets(raw: &Value, scope: &Scope) -> Vec<String> {
    let mut out = Vec::new();
    let mut strings = Vec::new();
    collect_strings(raw, &mut strings);
    for s in strings {
        let Ok(expr::Template::Expression(e)) = expr::classify(s) else {
            continue;
        };
        let mut calls: Vec<(&str, &[Expr])> = Vec::new();
        expr::calls(&e, &mut calls);
        for (name, args) in calls {
            let lower = name.to_ascii_lowercase();
            if lower != "reference" && !lower.starts_with("list") {
                continue;
            }
            if let Some(first) = args.first() {
                if let Ok(Value::String(t)) = eval::eval(first, scope) {
                    out.push(t);
                }
            }
        }
    }
    out
}

fn collect_strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(a) => a.iter().for_each(|x| collect_strings(x, out)),
        Value::Object(o) => {
            for (k, x) in o {
                if k.eq_ignore_ascii_case("resources") {
                    continue;
                }
                collect_strings(x, out)
            }
        }
        _ => {}
    }
}

/// The id a template resource will have.
fn resource_id(
    host: &dyn Host,
    ty: &str,
    name: &str,
    scope: Option<&str>,
    target_sub: Option<&str>,
    target_rg: Option<&str>,
) -> Result<String, TemplateError> {
    let types: Vec<&str> = ty.split('/').collect();
    let names: Vec<&str> = name.split('/').collect();
    if types.len() < 2 || types.len() != names.len() + 1 || names.iter().any(|n| n.is_empty()) {
        return Err(invalid(format!(
            "The template resource '{name}' for type '{ty}' has incorrect segment lengths. A nested resource type must have identical number of segments as its resource name. A root resource type must have segment length one greater than its resource name. Please see https://aka.ms/arm-syntax-resources for usage details"
        )));
    }
    let sub = target_sub
        .map(str::to_string)
        .unwrap_or_else(|| host.subscription_id());
    if ty.eq_ignore_ascii_case("Microsoft.Resources/resourceGroups") {
        return Ok(format!("/subscriptions/{sub}/resourceGroups/{name}"));
    }
    let deployment_scope = match (target_rg, host.resource_group()) {
        (Some(rg), _) => format!("/subscriptions/{sub}/resourceGroups/{rg}"),
        (None, Some(rg)) if target_sub.is_none() => {
            format!("/subscriptions/{sub}/resourceGroups/{rg}")
        }
        _ => format!("/subscriptions/{sub}"),
    };
    let base = match scope {
        Some(s) if s.starts_with('/') => s.trim_end_matches('/').to_string(),
        Some(s) => format!("{deployment_scope}/providers/{}", s.trim_matches('/')),
        None => deployment_scope,
    };
    let tail = eval::provider_path("resource", &[&[ty], names.as_slice()].concat())?;
    Ok(format!("{base}{tail}"))
}

/// Azure's spelling of a parameter or output type.
pub fn type_name(ty: &str) -> String {
    match ty.to_ascii_lowercase().as_str() {
        "string" => "String",
        "securestring" => "SecureString",
        "int" => "Int",
        "bool" => "Bool",
        "object" => "Object",
        "secureobject" => "SecureObject",
        "array" => "Array",
        _ => "String",
    }
    .to_string()
}

fn check_type(what: &str, ty: &str, v: &Value) -> Result<(), TemplateError> {
    let ok = match ty.to_ascii_lowercase().as_str() {
        "string" | "securestring" => v.is_string(),
        "int" => v.is_i64() || v.is_u64(),
        "bool" => v.is_boolean(),
        "object" | "secureobject" => v.is_object(),
        "array" => v.is_array(),
        other => {
            return Err(invalid(format!(
                "The {what} has type '{other}', which is not one of string, securestring, int, bool, object, secureObject, array"
            )))
        }
    };
    if ok {
        Ok(())
    } else {
        Err(TemplateError::invalid(format!(
            "Template {what} was provided an invalid value. Expected a value of type '{}', but received a value of type '{}'.",
            type_name(ty),
            eval::kind(v)
        )))
    }
}

/// Parameters: the supplied `{name: {value}}` or the default, type-checked
/// and validated against `allowedValues`, `minValue`/`maxValue` and
/// `minLength`/`maxLength`.
fn bind_parameters(
    t: &Map<String, Value>,
    supplied: &Map<String, Value>,
    host: &dyn Host,
    functions: &Map<String, Value>,
) -> Result<Vec<BoundParameter>, TemplateError> {
    let decls = get_prop(t, "parameters")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if decls.len() > MAX_PARAMETERS {
        return Err(invalid(format!(
            "The number of template parameters limit exceeded. Limit: '{MAX_PARAMETERS}' and actual: '{}'",
            decls.len()
        )));
    }
    let unknown: Vec<&String> = supplied
        .keys()
        .filter(|k| !decls.keys().any(|d| d.eq_ignore_ascii_case(k)))
        .collect();
    if !unknown.is_empty() {
        return Err(invalid(format!(
            "The template parameters '{}' in the parameters file are not valid; they are not present in the original template and can therefore not be provided at deployment time. The only supported parameters for this template are '{}'. Please see https://aka.ms/arm-pass-parameter-values for usage details",
            unknown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
            decls.keys().cloned().collect::<Vec<_>>().join(", ")
        )));
    }
    let mut values = Map::new();
    let mut out = Vec::new();
    for (name, decl) in &decls {
        let d = decl.as_object().cloned().unwrap_or_default();
        let ty = get_prop(&d, "type")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(format!("The template parameter '{name}' has no 'type'")))?;
        let given = supplied
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v);
        let value = match given {
            Some(g) => {
                if g.get("reference").is_some() {
                    return Err(invalid(format!(
                        "The template parameter '{name}' is a Key Vault reference; recoverite does not serve Key Vault secrets, so pass the value itself"
                    )));
                }
                g.get("value").cloned().unwrap_or(g.clone())
            }
            None => match get_prop(&d, "defaultValue") {
                Some(dv) => {
                    let empty = Map::new();
                    let scope = Scope {
                        host,
                        parameters: &values,
                        variables: Variables::Resolved(&empty),
                        copy: vec![],
                        runtime: false,
                        parameter_default: true,
                        lambdas: Vec::new(),
                        functions,
                    };
                    eval_value(dv, &scope)?
                }
                None => {
                    return Err(invalid(format!(
                        "The value for the template parameter '{name}' is not provided. Please see https://aka.ms/arm-create-parameter-file for usage details"
                    )))
                }
            },
        };
        check_type(&format!("parameter '{name}'"), ty, &value)?;
        check_constraints(name, &d, &value)?;
        values.insert(name.clone(), value.clone());
        out.push(BoundParameter {
            name: name.clone(),
            type_name: type_name(ty),
            value,
        });
    }
    Ok(out)
}

/// `allowedValues`, `minValue`/`maxValue`, `minLength`/`maxLength`.
pub fn check_constraints(
    name: &str,
    d: &Map<String, Value>,
    v: &Value,
) -> Result<(), TemplateError> {
    if let Some(Value::Array(allowed)) = get_prop(d, "allowedValues") {
        let ok = match v {
            Value::Array(items) => items.iter().all(|i| allowed.contains(i)),
            other => allowed.contains(other),
        };
        if !ok {
            return Err(invalid(format!(
                "The provided value for the template parameter '{name}' is not valid. The value '{}' is not part of the allowed value(s): '{}'",
                crate::functions::to_text(v),
                allowed.iter().map(crate::functions::to_text).collect::<Vec<_>>().join(",")
            )));
        }
    }
    if let Some(n) = v.as_i64() {
        if let Some(min) = get_prop(d, "minValue").and_then(Value::as_i64) {
            if n < min {
                return Err(invalid(format!(
                    "The provided value for the template parameter '{name}' is not valid. The value '{n}' is less than the minimum value of '{min}'"
                )));
            }
        }
        if let Some(max) = get_prop(d, "maxValue").and_then(Value::as_i64) {
            if n > max {
                return Err(invalid(format!(
                    "The provided value for the template parameter '{name}' is not valid. The value '{n}' is greater than the maximum value of '{max}'"
                )));
            }
        }
    }
    let len = match v {
        Value::String(s) => Some(s.chars().count() as i64),
        Value::Array(a) => Some(a.len() as i64),
        _ => None,
    };
    if let Some(len) = len {
        if let Some(min) = get_prop(d, "minLength").and_then(Value::as_i64) {
            if len < min {
                return Err(invalid(format!(
                    "The provided value for the template parameter '{name}' is not valid. Length of the value should be greater than or equal to '{min}'"
                )));
            }
        }
        if let Some(max) = get_prop(d, "maxLength").and_then(Value::as_i64) {
            if len > max {
                return Err(invalid(format!(
                    "The provided value for the template parameter '{name}' is not valid. Length of the value should be less than or equal to '{max}'"
                )));
            }
        }
    }
    Ok(())
}

/// Resources grouped by wave, in deployment order.
pub fn waves(plan: &Plan) -> Vec<Vec<usize>> {
    let mut by: HashMap<usize, Vec<usize>> = HashMap::new();
    for (i, r) in plan.resources.iter().enumerate() {
        by.entry(r.wave).or_default().push(i);
    }
    let mut keys: Vec<usize> = by.keys().copied().collect();
    keys.sort();
    keys.into_iter()
        .map(|k| by.remove(&k).unwrap_or_default())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::tests::TestHost;

    fn plan(t: Value, p: Value) -> Result<Plan, TemplateError> {
        Plan::build(&t, p.as_object().unwrap(), &TestHost, None)
    }

    fn vnet_template() -> Value {
        json!({
            "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
            "contentVersion": "1.0.0.0",
            "parameters": {
                "prefix": {"type": "string", "defaultValue": "dr", "minLength": 2, "maxLength": 10},
                "count": {"type": "int", "defaultValue": 2, "minValue": 1, "maxValue": 5},
                "sku": {"type": "string", "defaultValue": "Standard_LRS", "allowedValues": ["Standard_LRS", "Standard_GRS"]}
            },
            "variables": {
                "vnet": "[concat(parameters('prefix'), '-vnet')]",
                "copy": [{"name": "subnets", "count": "[parameters('count')]", "input": {"name": "[concat('s', copyIndex('subnets'))]"}}]
            },
            "resources": [
                {"type": "Microsoft.Network/networkSecurityGroups", "apiVersion": "2023-09-01", "name": "nsg", "location": "westeurope"},
                {"type": "Microsoft.Network/virtualNetworks", "apiVersion": "2023-09-01", "name": "[variables('vnet')]",
                 "dependsOn": ["[resourceId('Microsoft.Network/networkSecurityGroups', 'nsg')]"],
                 "properties": {"subnets": "[variables('subnets')]"},
                 "resources": [{"type": "subnets", "apiVersion": "2023-09-01", "name": "extra", "properties": {}}]},
                {"type": "Microsoft.Storage/storageAccounts", "apiVersion": "2023-01-01", "name": "[concat('st', copyIndex())]",
                 "copy": {"name": "accounts", "count": 3, "mode": "serial", "batchSize": 2},
                 "sku": {"name": "[parameters('sku')]"},
                 "properties": {"x": "[reference(variables('vnet')).provisioningState]"}},
                {"type": "Microsoft.Network/routeTables", "apiVersion": "2023-09-01", "name": "rt", "condition": false},
                {"type": "Microsoft.Network/publicIPAddresses", "apiVersion": "2023-09-01", "name": "ip", "dependsOn": ["rt", "accounts"]}
            ],
            "outputs": {"names": {"type": "array", "copy": {"count": 2, "input": "[concat('n', copyIndex())]"}},
                         "vnet": {"type": "string", "value": "[variables('vnet')]"}}
        })
    }

    #[test]
    fn expands_loops_children_conditions_and_dependencies() {
        let p = plan(vnet_template(), json!({})).unwrap();
        let names: Vec<&str> = p.resources.iter().map(|r| r.name.as_str()).collect();
        assert!(names.contains(&"dr-vnet/extra"), "{names:?}");
        assert!(!names.contains(&"rt"), "condition false is left out");
        assert_eq!(
            p.variables["subnets"],
            json!([{"name": "s0"}, {"name": "s1"}])
        );
        let idx = |n: &str| names.iter().position(|x| *x == n).unwrap();
        let vnet = &p.resources[idx("dr-vnet")];
        assert_eq!(vnet.depends_on, vec![idx("nsg")]);
        assert_eq!(
            p.resources[idx("dr-vnet/extra")].resource_type,
            "Microsoft.Network/virtualNetworks/subnets"
        );
        assert!(
            p.resources[idx("dr-vnet/extra")]
                .depends_on
                .contains(&idx("dr-vnet")),
            "nested child waits for its parent"
        );
        // Implicit dependency through reference(), serial batches of two.
        assert!(p.resources[idx("st0")].depends_on.contains(&idx("dr-vnet")));
        assert!(p.resources[idx("st2")].depends_on.contains(&idx("st0")));
        assert!(p.resources[idx("st2")].depends_on.contains(&idx("st1")));
        assert!(!p.resources[idx("st1")].depends_on.contains(&idx("st0")));
        // A dependency on a whole loop; one on a resource left out is dropped.
        let ip = &p.resources[idx("ip")];
        assert_eq!(ip.depends_on.len(), 3);
        assert!(ip.wave > p.resources[idx("st2")].wave);
        assert_eq!(
            p.resources[idx("dr-vnet/extra")].id,
            "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg1/providers/Microsoft.Network/virtualNetworks/dr-vnet/subnets/extra"
        );
        let outs = p.evaluate_outputs(&TestHost).unwrap();
        assert_eq!(
            outs["names"],
            json!({"type": "Array", "value": ["n0", "n1"]})
        );
        assert_eq!(outs["vnet"]["value"], json!("dr-vnet"));
    }

    #[test]
    fn parameters_are_validated() {
        let e = plan(vnet_template(), json!({"sku": {"value": "Premium_LRS"}})).unwrap_err();
        assert!(
            e.to_string().contains("not part of the allowed value"),
            "{e}"
        );
        let e = plan(vnet_template(), json!({"count": {"value": 9}})).unwrap_err();
        assert!(e.to_string().contains("greater than the maximum"), "{e}");
        let e = plan(vnet_template(), json!({"count": {"value": "2"}})).unwrap_err();
        assert!(
            e.to_string().contains("Expected a value of type 'Int'"),
            "{e}"
        );
        let e = plan(vnet_template(), json!({"prefix": {"value": "x"}})).unwrap_err();
        assert!(
            e.to_string().contains("greater than or equal to '2'"),
            "{e}"
        );
        let e = plan(vnet_template(), json!({"nope": {"value": 1}})).unwrap_err();
        assert!(e.to_string().contains("'nope'"), "{e}");
        let e = plan(
            json!({"parameters": {"p": {"type": "string"}}, "resources": []}),
            json!({}),
        )
        .unwrap_err();
        assert!(e.to_string().contains("is not provided"), "{e}");
        assert_eq!(e.code(), "InvalidTemplate");
        let p = plan(json!({"parameters": {"when": {"type": "string", "defaultValue": "[utcNow('yyyy')]"}}, "resources": []}), json!({})).unwrap();
        assert_eq!(p.parameter_values["when"].as_str().unwrap().len(), 4);
    }

    #[test]
    fn cycles_and_undefined_dependencies_are_refused() {
        let t = json!({"resources": [
            {"type": "Microsoft.Network/virtualNetworks", "apiVersion": "2023-09-01", "name": "a", "dependsOn": ["b"]},
            {"type": "Microsoft.Network/virtualNetworks", "apiVersion": "2023-09-01", "name": "b", "dependsOn": ["[resourceId('Microsoft.Network/virtualNetworks', 'a')]"]}
        ]});
        let e = plan(t, json!({})).unwrap_err();
        assert!(
            e.to_string().contains("Circular dependency detected"),
            "{e}"
        );
        let t = json!({"resources": [
            {"type": "Microsoft.Network/virtualNetworks", "apiVersion": "2023-09-01", "name": "a", "dependsOn": ["ghost"]}
        ]});
        assert!(plan(t, json!({}))
            .unwrap_err()
            .to_string()
            .contains("'ghost' is not defined"));
        let t = json!({"resources": [{"type": "Microsoft.Network/virtualNetworks/subnets", "apiVersion": "x", "name": "a"}]});
        assert!(plan(t, json!({}))
            .unwrap_err()
            .to_string()
            .contains("incorrect segment lengths"));
        let t = json!({"resources": [{"type": "Microsoft.Network/virtualNetworks", "apiVersion": "x", "name": "[reference('a').x]"}]});
        assert!(plan(t, json!({}))
            .unwrap_err()
            .to_string()
            .contains("not expected at this location"));
    }

    #[test]
    fn user_functions_and_lambdas_in_names_and_loops() {
        let t = json!({
            "functions": [{"namespace": "__bicep", "members": {"nsgName": {
                "parameters": [{"name": "n", "type": "string"}],
                "output": {"type": "string", "value": "[format('{0}-nsg', parameters('n'))]"}}}}],
            "parameters": {"apps": {"type": "array", "defaultValue": [{"n": "a", "on": true}, {"n": "b", "on": false}, {"n": "c", "on": true}]}},
            "variables": {"enabled": "[filter(parameters('apps'), lambda('x', lambdaVariables('x').on))]"},
            "resources": [{"type": "Microsoft.Network/networkSecurityGroups", "apiVersion": "2023-09-01",
                           "name": "[__bicep.nsgName(variables('enabled')[copyIndex()].n)]",
                           "copy": {"name": "nsgs", "count": "[length(variables('enabled'))]"}}]
        });
        let p = plan(t, json!({})).unwrap();
        let names: Vec<&str> = p.resources.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, vec!["a-nsg", "c-nsg"]);
    }

    #[test]
    fn extension_scopes_and_symbolic_names() {
        let t = json!({"languageVersion": "2.0", "resources": {
            "st": {"type": "Microsoft.Storage/storageAccounts", "apiVersion": "2023-01-01", "name": "st1"},
            "ra": {"type": "Microsoft.Authorization/roleAssignments", "apiVersion": "2022-04-01",
                   "scope": "Microsoft.Storage/storageAccounts/st1", "name": "[guid('x')]", "dependsOn": ["st"]}
        }});
        let p = plan(t, json!({})).unwrap();
        let ra = p
            .resources
            .iter()
            .find(|r| r.symbolic.as_deref() == Some("ra"))
            .unwrap();
        assert!(ra.id.starts_with("/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg1/providers/Microsoft.Storage/storageAccounts/st1/providers/Microsoft.Authorization/roleAssignments/"), "{}", ra.id);
        assert_eq!(ra.depends_on.len(), 1);
        let body = p.body(ra, &TestHost).unwrap();
        assert!(body.get("scope").is_none() && body.get("name").is_none());
    }
}
