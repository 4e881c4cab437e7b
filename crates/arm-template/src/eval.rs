//! Evaluating template values: expressions in a scope of parameters,
//! variables and copy indices, with the deployment's functions.

use std::cell::RefCell;
use std::collections::HashSet;

use serde_json::{json, Map, Value};

use crate::expr::{self, Expr};
use crate::functions::{self, as_int, as_str, get_prop};
use crate::TemplateError;

/// What a template needs from the running platform.
pub trait Host: Sync {
    fn subscription_id(&self) -> String;
    /// `None` for a subscription-scope deployment.
    fn resource_group(&self) -> Option<String>;
    fn tenant_id(&self) -> String;
    fn resource_group_object(&self) -> Result<Value, TemplateError>;
    fn subscription_object(&self) -> Result<Value, TemplateError>;
    fn deployment_object(&self) -> Value;
    fn environment(&self) -> Value;
    /// `reference()`: the resource's `properties`, or (`full`) the whole
    /// resource. `api_version` `None` means the template's own version for
    /// a resource it declares.
    fn reference(
        &self,
        id: &str,
        api_version: Option<&str>,
        full: bool,
    ) -> Result<Value, TemplateError>;
    /// `list{Something}(id, apiVersion, body?)`.
    fn list(
        &self,
        id: &str,
        function: &str,
        api_version: &str,
        body: Option<&Value>,
    ) -> Result<Value, TemplateError>;
    /// The id of a resource the template declares under `name` (its
    /// `name` or symbolic name), for `reference('name')`.
    fn declared(&self, name: &str) -> Option<String> {
        let _ = name;
        None
    }
}

/// Where variables come from: evaluated once up front, or (while the
/// variables themselves are being evaluated) on demand.
#[derive(Clone, Copy)]
pub enum Variables<'a> {
    Resolved(&'a Map<String, Value>),
    Lazy(&'a LazyVariables),
}

/// How many variables may be evaluated inside one another (each level
/// recurses).
pub const MAX_VARIABLE_CHAIN: usize = 256;

/// Variables evaluated on first use, with cycles refused.
pub struct LazyVariables {
    pub raw: Map<String, Value>,
    /// Variable iteration: the top-level `variables.copy` entries by name.
    copies: Map<String, Value>,
    done: RefCell<Map<String, Value>>,
    pending: RefCell<HashSet<String>>,
}

impl LazyVariables {
    pub fn new(mut raw: Map<String, Value>) -> LazyVariables {
        let mut copies = Map::new();
        if let Some(Value::Array(entries)) = raw.remove("copy") {
            for e in entries {
                if let Some(n) = e.get("name").and_then(Value::as_str) {
                    copies.insert(n.to_string(), e.clone());
                    raw.insert(n.to_string(), Value::Null);
                }
            }
        }
        LazyVariables {
            raw,
            copies,
            done: RefCell::new(Map::new()),
            pending: RefCell::new(HashSet::new()),
        }
    }

    /// Every variable, evaluated.
    pub fn resolve_all(&self, scope: &Scope) -> Result<Map<String, Value>, TemplateError> {
        let mut out = Map::new();
        for k in self.raw.keys() {
            out.insert(k.clone(), self.get(k, scope)?);
        }
        Ok(out)
    }

    fn get(&self, name: &str, scope: &Scope) -> Result<Value, TemplateError> {
        let key = self
            .raw
            .keys()
            .find(|k| k.eq_ignore_ascii_case(name))
            .cloned()
            .ok_or_else(|| not_declared("variable", name, self.raw.keys()))?;
        if let Some(v) = self.done.borrow().get(&key) {
            return Ok(v.clone());
        }
        if self.pending.borrow().len() >= MAX_VARIABLE_CHAIN {
            return Err(TemplateError::invalid(format!(
                "Deployment template validation failed: 'The template variable '{key}' is reached through more than {MAX_VARIABLE_CHAIN} other variables.'"
            )));
        }
        if !self.pending.borrow_mut().insert(key.to_lowercase()) {
            return Err(TemplateError::invalid(format!(
                "Deployment template validation failed: 'The template variable '{key}' refers to itself, directly or through other variables.'"
            )));
        }
        let base = Scope {
            copy: Vec::new(),
            runtime: false,
            lambdas: Vec::new(),
            ..scope.clone()
        };
        let v = match self.copies.get(&key) {
            Some(entry) => property_copies(&Value::Array(vec![entry.clone()]), &base)
                .map(|mut c| c.pop().map(|(_, a)| a).unwrap_or(Value::Null)),
            None => eval_value(&self.raw[&key], &base),
        };
        self.pending.borrow_mut().remove(&key.to_lowercase());
        let v = v?;
        self.done.borrow_mut().insert(key, v.clone());
        Ok(v)
    }
}

fn not_declared<'a>(
    what: &str,
    name: &str,
    known: impl Iterator<Item = &'a String>,
) -> TemplateError {
    let known: Vec<&str> = known.map(String::as_str).collect();
    TemplateError::expr(format!(
        "The template {what} '{name}' is not found. Please see https://aka.ms/arm-syntax for usage details. Declared: '{}'.",
        known.join(", ")
    ))
}

/// The scope an expression is evaluated in.
#[derive(Clone)]
pub struct Scope<'a> {
    pub host: &'a dyn Host,
    pub parameters: &'a Map<String, Value>,
    pub variables: Variables<'a>,
    /// Active copy loops, innermost last: (loop name, index).
    pub copy: Vec<(String, i64)>,
    /// Whether `reference()` and `list*()` may run here (resource
    /// properties and outputs, not names, conditions or counts).
    pub runtime: bool,
    /// Whether `utcNow()` and `newGuid()` may run (parameter defaults only).
    pub parameter_default: bool,
    /// Bound lambda variables, innermost last.
    pub lambdas: Vec<(String, Value)>,
    /// User-defined functions by lower-cased `namespace.name`.
    pub functions: &'a Map<String, Value>,
}

impl Scope<'_> {
    pub fn with_copy(&self, name: &str, index: i64) -> Scope<'_> {
        let mut s = self.clone();
        s.copy.push((name.to_string(), index));
        s
    }

    fn with_lambda(&self, bindings: &[(&str, Value)]) -> Scope<'_> {
        let mut s = self.clone();
        for (n, v) in bindings {
            s.lambdas.push((n.to_string(), v.clone()));
        }
        s
    }
}

/// `lambda('a', ['b',] body)`: its variable names and body.
fn lambda_of<'e>(fname: &str, e: &'e Expr) -> Result<(Vec<&'e str>, &'e Expr), TemplateError> {
    let bad = || {
        TemplateError::expr(format!(
            "The template function '{fname}' expects a lambda('name', …, expression) argument."
        ))
    };
    let Expr::Call { name, args } = e else {
        return Err(bad());
    };
    if !name.eq_ignore_ascii_case("lambda") || args.len() < 2 {
        return Err(bad());
    }
    let (body, names) = args.split_last().ok_or_else(bad)?;
    let names = names
        .iter()
        .map(|n| match n {
            Expr::Str(s) => Ok(s.as_str()),
            _ => Err(bad()),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((names, body))
}

/// The lambda functions: `filter`, `map`, `sort`, `reduce`, `toObject`,
/// `groupBy`, `mapValues` (Bicep's `=>` expressions compile to these).
fn lambda_call(
    lower: &str,
    name: &str,
    args: &[Expr],
    scope: &Scope,
) -> Result<Value, TemplateError> {
    let want = |n: usize| {
        if args.len() == n {
            Ok(())
        } else {
            Err(TemplateError::expr(format!(
                "The template function '{name}' takes {n} arguments."
            )))
        }
    };
    let items = |v: Value| -> Result<Vec<Value>, TemplateError> {
        match v {
            Value::Array(a) => Ok(a),
            other => Err(TemplateError::expr(format!(
                "The template function '{name}' expects an array; it got '{other}'."
            ))),
        }
    };
    // Binds an element (and its index, for two-name lambdas) and evaluates.
    let apply = |names: &[&str], body: &Expr, item: &Value, index: usize| {
        let mut b = vec![(names[0], item.clone())];
        if let Some(i) = names.get(1) {
            b.push((i, json!(index)));
        }
        eval(body, &scope.with_lambda(&b))
    };
    match lower {
        "filter" | "map" => {
            want(2)?;
            let arr = items(eval(&args[0], scope)?)?;
            let (names, body) = lambda_of(name, &args[1])?;
            let mut out = Vec::new();
            for (i, x) in arr.into_iter().enumerate() {
                let v = apply(&names, body, &x, i)?;
                if lower == "map" {
                    out.push(v);
                } else if v.as_bool().ok_or_else(|| {
                    TemplateError::expr("The lambda of 'filter' must return a Boolean.")
                })? {
                    out.push(x);
                }
            }
            Ok(Value::Array(out))
        }
        "sort" => {
            want(2)?;
            let mut arr = items(eval(&args[0], scope)?)?;
            let (names, body) = lambda_of(name, &args[1])?;
            if names.len() != 2 {
                return Err(TemplateError::expr(
                    "The lambda of 'sort' takes two variables.",
                ));
            }
            // Insertion sort: the comparison may fail, and templates are small.
            for i in 1..arr.len() {
                let mut j = i;
                while j > 0 {
                    let b = [(names[0], arr[j].clone()), (names[1], arr[j - 1].clone())];
                    let less = eval(body, &scope.with_lambda(&b))?;
                    if less.as_bool() != Some(true) {
                        break;
                    }
                    arr.swap(j, j - 1);
                    j -= 1;
                }
            }
            Ok(Value::Array(arr))
        }
        "reduce" => {
            want(3)?;
            let arr = items(eval(&args[0], scope)?)?;
            let mut acc = eval(&args[1], scope)?;
            let (names, body) = lambda_of(name, &args[2])?;
            if names.len() < 2 {
                return Err(TemplateError::expr(
                    "The lambda of 'reduce' takes the current and next values.",
                ));
            }
            for (i, x) in arr.into_iter().enumerate() {
                let mut b = vec![(names[0], acc), (names[1], x)];
                if let Some(n) = names.get(2) {
                    b.push((n, json!(i)));
                }
                acc = eval(body, &scope.with_lambda(&b))?;
            }
            Ok(acc)
        }
        "toobject" | "groupby" => {
            if args.len() < 2 || args.len() > 3 || (lower == "groupby" && args.len() != 2) {
                return Err(TemplateError::expr(format!(
                    "The template function '{name}' takes an array and one or two lambdas."
                )));
            }
            let arr = items(eval(&args[0], scope)?)?;
            let (kn, kb) = lambda_of(name, &args[1])?;
            let value = args.get(2).map(|a| lambda_of(name, a)).transpose()?;
            let mut out = Map::new();
            for (i, x) in arr.into_iter().enumerate() {
                let key = match apply(&kn, kb, &x, i)? {
                    Value::String(k) => k,
                    other => {
                        return Err(TemplateError::expr(format!(
                        "The key lambda of '{name}' must return a string; it returned '{other}'."
                    )))
                    }
                };
                if lower == "groupby" {
                    if let Value::Array(a) = out.entry(key).or_insert_with(|| json!([])) {
                        a.push(x);
                    }
                } else {
                    let v = match &value {
                        Some((vn, vb)) => apply(vn, vb, &x, i)?,
                        None => x,
                    };
                    out.insert(key, v);
                }
            }
            Ok(Value::Object(out))
        }
        "mapvalues" => {
            want(2)?;
            let o = match eval(&args[0], scope)? {
                Value::Object(o) => o,
                other => {
                    return Err(TemplateError::expr(format!(
                        "The template function 'mapValues' expects an object; it got '{other}'."
                    )))
                }
            };
            let (names, body) = lambda_of(name, &args[1])?;
            let mut out = Map::new();
            for (i, (k, v)) in o.into_iter().enumerate() {
                out.insert(k, apply(&names, body, &v, i)?);
            }
            Ok(Value::Object(out))
        }
        _ => Err(functions::unknown(name)),
    }
}

static EMPTY: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);

/// The `functions` section as a map from lower-cased `namespace.name` to
/// the member's definition.
pub fn user_functions(section: Option<&Value>) -> Result<Map<String, Value>, TemplateError> {
    let mut out = Map::new();
    for ns in section.and_then(Value::as_array).into_iter().flatten() {
        let namespace = ns.get("namespace").and_then(Value::as_str).ok_or_else(|| {
            TemplateError::invalid("Deployment template validation failed: 'Each entry of 'functions' needs a 'namespace'.'")
        })?;
        for (name, def) in ns
            .get("members")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            out.insert(
                format!("{namespace}.{name}").to_ascii_lowercase(),
                def.clone(),
            );
        }
    }
    Ok(out)
}

/// "User-defined functions … can't access variables … can't use the
/// reference function … can't call other user-defined functions": the
/// body sees only its own parameters and the built-in functions.
fn user_call(
    name: &str,
    def: &Value,
    args: &[Expr],
    scope: &Scope,
) -> Result<Value, TemplateError> {
    let declared: Vec<&str> = def
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("name").and_then(Value::as_str))
        .collect();
    if declared.len() != args.len() {
        return Err(TemplateError::expr(format!(
            "The user-defined function '{name}' takes {} argument(s); {} were given.",
            declared.len(),
            args.len()
        )));
    }
    let mut params = Map::new();
    for (n, a) in declared.iter().zip(args) {
        params.insert(n.to_string(), eval(a, scope)?);
    }
    let output = def.get("output").and_then(|o| o.get("value")).ok_or_else(|| {
        TemplateError::invalid(format!(
            "Deployment template validation failed: 'The user-defined function '{name}' has no output value.'"
        ))
    })?;
    let inner = Scope {
        host: scope.host,
        parameters: &params,
        variables: Variables::Resolved(&EMPTY),
        copy: Vec::new(),
        runtime: false,
        parameter_default: false,
        lambdas: Vec::new(),
        // "User-defined functions can't call other user-defined functions."
        functions: &EMPTY,
    };
    eval_value(output, &inner)
}

/// Evaluates a template value: expression strings are evaluated, arrays
/// and objects recursively, and an object's property `copy` array
/// (property iteration) becomes the arrays it describes.
pub fn eval_value(v: &Value, scope: &Scope) -> Result<Value, TemplateError> {
    match v {
        Value::String(s) => match expr::classify(s)? {
            expr::Template::Literal(l) => Ok(Value::String(l)),
            expr::Template::Expression(e) => eval(&e, scope),
        },
        Value::Array(items) => items
            .iter()
            .map(|x| eval_value(x, scope))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        Value::Object(o) => {
            let mut out = Map::new();
            for (k, x) in o {
                if k.eq_ignore_ascii_case("copy") && x.is_array() {
                    for (name, arr) in property_copies(x, scope)? {
                        out.insert(name, arr);
                    }
                    continue;
                }
                out.insert(k.clone(), eval_value(x, scope)?);
            }
            Ok(Value::Object(out))
        }
        other => Ok(other.clone()),
    }
}

/// "copy": [{"name", "count", "input"}] → (name, [input evaluated for each index]).
pub(crate) fn property_copies(
    copies: &Value,
    scope: &Scope,
) -> Result<Vec<(String, Value)>, TemplateError> {
    let mut out = Vec::new();
    for c in copies.as_array().into_iter().flatten() {
        let o = c.as_object().ok_or_else(|| {
            TemplateError::invalid("Deployment template validation failed: 'Each property copy must be an object with 'name', 'count' and 'input'.'")
        })?;
        let name = get_prop(o, "name")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                TemplateError::invalid(
                    "Deployment template validation failed: 'A property copy has no 'name'.'",
                )
            })?
            .to_string();
        let count = copy_count(get_prop(o, "count"), scope, &name)?;
        let input = get_prop(o, "input").ok_or_else(|| {
            TemplateError::invalid(format!(
                "Deployment template validation failed: 'The property copy '{name}' has no 'input'.'"
            ))
        })?;
        let mut items = Vec::new();
        for i in 0..count {
            items.push(eval_value(input, &scope.with_copy(&name, i))?);
        }
        out.push((name, Value::Array(items)));
    }
    Ok(out)
}

/// A copy loop's `count`: an integer from 0 to 800.
pub fn copy_count(v: Option<&Value>, scope: &Scope, name: &str) -> Result<i64, TemplateError> {
    let v = match v {
        Some(v) => eval_value(v, scope)?,
        None => {
            return Err(TemplateError::invalid(format!(
                "Deployment template validation failed: 'The copy '{name}' has no 'count'.'"
            )))
        }
    };
    let n = v.as_i64().ok_or_else(|| {
        TemplateError::invalid(format!(
            "Deployment template validation failed: 'The copy '{name}' count must be an integer; it is '{v}'.'"
        ))
    })?;
    if !(0..=800).contains(&n) {
        return Err(TemplateError::invalid(format!(
            "Deployment template validation failed: 'The copy '{name}' count '{n}' is not valid: it must be between 0 and 800.'"
        )));
    }
    Ok(n)
}

fn not_here(name: &str) -> TemplateError {
    TemplateError::expr(format!(
        "The template function '{name}' is not expected at this location. Please see https://aka.ms/arm-functions for usage details."
    ))
}

/// How deep evaluation may recurse in all (expressions within variables
/// within expressions…). Evaluation runs on a thread with
/// [`STACK_BYTES`] of stack, which this depth stays well inside.
pub const MAX_EVAL_DEPTH: usize = 512;

/// The stack evaluation needs: run [`crate::plan::Plan::build`] and resource
/// bodies on a thread this big (`std::thread::Builder::stack_size`).
pub const STACK_BYTES: usize = 64 << 20;

thread_local! {
    static DEPTH: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Evaluates one parsed expression.
pub fn eval(e: &Expr, scope: &Scope) -> Result<Value, TemplateError> {
    let depth = DEPTH.with(|d| {
        d.set(d.get() + 1);
        d.get()
    });
    let out = if depth > MAX_EVAL_DEPTH {
        Err(TemplateError::expr(format!(
            "The template's expressions and variables nest deeper than {MAX_EVAL_DEPTH} levels."
        )))
    } else {
        eval_inner(e, scope)
    };
    DEPTH.with(|d| d.set(d.get() - 1));
    out
}

fn eval_inner(e: &Expr, scope: &Scope) -> Result<Value, TemplateError> {
    match e {
        Expr::Str(s) => Ok(json!(s)),
        Expr::Int(i) => Ok(json!(i)),
        Expr::Bool(b) => Ok(json!(b)),
        Expr::Null => Ok(Value::Null),
        Expr::Prop(inner, name, safe) => {
            let v = eval(inner, scope)?;
            match &v {
                Value::Object(o) => match get_prop(o, name) {
                    Some(x) => Ok(x.clone()),
                    None if *safe => Ok(Value::Null),
                    None => Err(TemplateError::expr(format!(
                        "The language expression property '{name}' doesn't exist, available properties are '{}'.",
                        o.keys().cloned().collect::<Vec<_>>().join(", ")
                    ))),
                },
                Value::Null if *safe => Ok(Value::Null),
                _ => Err(TemplateError::expr(format!(
                    "The language expression property '{name}' can't be evaluated: the value is of type '{}', not an object.",
                    kind(&v)
                ))),
            }
        }
        Expr::Index(inner, idx) => {
            let v = eval(inner, scope)?;
            let i = eval(idx, scope)?;
            match (&v, &i) {
                (Value::Array(a), Value::Number(n)) => {
                    let k = n.as_i64().unwrap_or(-1);
                    usize::try_from(k)
                        .ok()
                        .and_then(|k| a.get(k))
                        .cloned()
                        .ok_or_else(|| {
                            TemplateError::expr(format!(
                                "The language expression property array index '{k}' is out of bounds."
                            ))
                        })
                }
                (Value::Object(o), Value::String(s)) => get_prop(o, s).cloned().ok_or_else(|| {
                    TemplateError::expr(format!(
                        "The language expression property '{s}' doesn't exist, available properties are '{}'.",
                        o.keys().cloned().collect::<Vec<_>>().join(", ")
                    ))
                }),
                _ => Err(TemplateError::expr(format!(
                    "The language expression cannot index a value of type '{}' with '{i}'.",
                    kind(&v)
                ))),
            }
        }
        Expr::Call { name, args } => call(name, args, scope),
    }
}

/// A value's type as template error messages name it.
pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "Null",
        Value::Bool(_) => "Boolean",
        Value::Number(_) => "Integer",
        Value::String(_) => "String",
        Value::Array(_) => "Array",
        Value::Object(_) => "Object",
    }
}

fn args_of(args: &[Expr], scope: &Scope) -> Result<Vec<Value>, TemplateError> {
    args.iter().map(|a| eval(a, scope)).collect()
}

fn call(name: &str, args: &[Expr], scope: &Scope) -> Result<Value, TemplateError> {
    let lower = name.to_ascii_lowercase();
    let host = scope.host;
    match lower.as_str() {
        "filter" | "map" | "sort" | "reduce" | "toobject" | "groupby" | "mapvalues" => {
            lambda_call(&lower, name, args, scope)
        }
        "lambda" => Err(TemplateError::expr(
            "The template function 'lambda' can only be an argument of filter, map, sort, reduce, toObject, groupBy or mapValues.",
        )),
        "lambdavariables" => {
            let a = args_of(args, scope)?;
            let n = one_str(name, &a)?;
            scope
                .lambdas
                .iter()
                .rev()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.clone())
                .ok_or_else(|| {
                    TemplateError::expr(format!(
                        "The lambda variable '{n}' is not defined here."
                    ))
                })
        }
        // Lazy: only the branch taken is evaluated.
        "if" => {
            if args.len() != 3 {
                return Err(TemplateError::expr(
                    "The template language function 'if' must have three arguments.",
                ));
            }
            let c = eval(&args[0], scope)?;
            let c = c.as_bool().ok_or_else(|| {
                TemplateError::expr("The template language function 'if' expects its first argument to be a Boolean.")
            })?;
            eval(&args[if c { 1 } else { 2 }], scope)
        }
        "and" | "or" => {
            if args.len() < 2 {
                return Err(TemplateError::expr(format!(
                    "The template language function '{name}' must have at least two arguments."
                )));
            }
            let want = lower == "or";
            for a in args {
                let v = eval(a, scope)?;
                let b = v.as_bool().ok_or_else(|| {
                    TemplateError::expr(format!(
                        "The template language function '{name}' expects Boolean arguments; got '{v}'."
                    ))
                })?;
                if b == want {
                    return Ok(json!(want));
                }
            }
            Ok(json!(!want))
        }
        "parameters" => {
            let a = args_of(args, scope)?;
            let n = one_str(name, &a)?;
            scope
                .parameters
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.clone())
                .ok_or_else(|| not_declared("parameter", n, scope.parameters.keys()))
        }
        "variables" => {
            let a = args_of(args, scope)?;
            let n = one_str(name, &a)?;
            match scope.variables {
                Variables::Resolved(m) => m
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(n))
                    .map(|(_, v)| v.clone())
                    .ok_or_else(|| not_declared("variable", n, m.keys())),
                Variables::Lazy(l) => l.get(n, scope),
            }
        }
        "copyindex" => {
            let a = args_of(args, scope)?;
            let (loop_name, offset) = match a.as_slice() {
                [] => (None, 0),
                [Value::Number(n)] => (None, n.as_i64().unwrap_or(0)),
                [Value::String(s)] => (Some(s.as_str()), 0),
                [Value::String(s), o] => (Some(s.as_str()), as_int(name, o)?),
                _ => {
                    return Err(TemplateError::expr(
                        "The template function 'copyIndex' takes an optional loop name and an optional offset.",
                    ))
                }
            };
            let found = match loop_name {
                None => scope.copy.last(),
                Some(l) => scope
                    .copy
                    .iter()
                    .rev()
                    .find(|(n, _)| n.eq_ignore_ascii_case(l)),
            };
            let (_, i) = found.ok_or_else(|| {
                TemplateError::expr(match loop_name {
                    Some(l) => format!("The template function 'copyIndex' refers to the copy loop '{l}', which does not enclose this expression."),
                    None => "The template function 'copyIndex' is not expected at this location: no copy loop encloses it.".to_string(),
                })
            })?;
            Ok(json!(i + offset))
        }
        "utcnow" => {
            if !scope.parameter_default {
                return Err(TemplateError::expr(
                    "The template function 'utcNow' is not expected at this location. It can only be used with parameter default values.",
                ));
            }
            let a = args_of(args, scope)?;
            let fmt = a.first().map(|f| as_str(name, f)).transpose()?;
            Ok(json!(functions::format_time(
                time::OffsetDateTime::now_utc(),
                Some(fmt.unwrap_or("yyyyMMddTHHmmssZ"))
            )))
        }
        "newguid" => {
            if !scope.parameter_default {
                return Err(TemplateError::expr(
                    "The template function 'newGuid' is not expected at this location. It can only be used with parameter default values.",
                ));
            }
            Ok(json!(uuid::Uuid::new_v4().to_string()))
        }
        "resourcegroup" => host.resource_group_object(),
        "subscription" => host.subscription_object(),
        "tenant" => Ok(json!({
            "tenantId": host.tenant_id(),
            "countryCode": "US",
            "displayName": "recoverite",
        })),
        "deployment" => Ok(host.deployment_object()),
        "environment" => Ok(host.environment()),
        "resourceid" => {
            let a = args_of(args, scope)?;
            resource_id(host, &a)
        }
        "subscriptionresourceid" => {
            let a = args_of(args, scope)?;
            let strs = strs(name, &a)?;
            let t = type_index(name, &strs)?;
            let sub = if t == 1 {
                strs[0].to_string()
            } else {
                host.subscription_id()
            };
            Ok(json!(format!(
                "/subscriptions/{sub}{}",
                provider_path(name, &strs[t..])?
            )))
        }
        "tenantresourceid" => {
            let a = args_of(args, scope)?;
            let strs = strs(name, &a)?;
            Ok(json!(provider_path(name, &strs)?))
        }
        "extensionresourceid" => {
            let a = args_of(args, scope)?;
            let strs = strs(name, &a)?;
            if strs.len() < 3 {
                return Err(TemplateError::expr(
                    "The template function 'extensionResourceId' takes the resource id, the extension type and its names.",
                ));
            }
            Ok(json!(format!(
                "{}{}",
                strs[0].trim_end_matches('/'),
                provider_path(name, &strs[1..])?
            )))
        }
        "reference" => {
            if !scope.runtime {
                return Err(not_here(name));
            }
            let a = args_of(args, scope)?;
            if a.is_empty() || a.len() > 3 {
                return Err(TemplateError::expr(
                    "The template function 'reference' takes a resource name or id, an optional api-version and an optional 'Full'.",
                ));
            }
            let target = as_str(name, &a[0])?;
            let id = resolve_target(host, target);
            let api = a.get(1).map(|v| as_str(name, v)).transpose()?;
            let full = a
                .get(2)
                .and_then(Value::as_str)
                .is_some_and(|s| s.eq_ignore_ascii_case("full"));
            host.reference(&id, api.filter(|s| !s.is_empty()), full)
        }
        _ if lower.starts_with("list") && lower != "list" => {
            if !scope.runtime {
                return Err(not_here(name));
            }
            let a = args_of(args, scope)?;
            if a.len() < 2 || a.len() > 3 {
                return Err(TemplateError::expr(format!(
                    "The template function '{name}' takes a resource id, an api-version and an optional body."
                )));
            }
            let id = resolve_target(host, as_str(name, &a[0])?);
            host.list(&id, name, as_str(name, &a[1])?, a.get(2))
        }
        _ if name.contains('.') => match scope.functions.get(&lower) {
            Some(def) => user_call(name, def, args, scope),
            None => Err(functions::unknown(name)),
        },
        _ => functions::call(name, args_of(args, scope)?),
    }
}

/// A `reference()` target: a full id as is, a name the template declares
/// as that resource's id.
fn resolve_target(host: &dyn Host, target: &str) -> String {
    if target.starts_with('/') {
        return target.to_string();
    }
    host.declared(target).unwrap_or_else(|| target.to_string())
}

fn one_str<'a>(name: &str, a: &'a [Value]) -> Result<&'a str, TemplateError> {
    match a {
        [v] => as_str(name, v),
        _ => Err(TemplateError::expr(format!(
            "The template function '{name}' takes exactly one string argument."
        ))),
    }
}

fn strs<'a>(name: &str, a: &'a [Value]) -> Result<Vec<&'a str>, TemplateError> {
    a.iter().map(|v| as_str(name, v)).collect()
}

/// Index of the argument that is the resource type (`Namespace/type…`).
fn type_index(name: &str, a: &[&str]) -> Result<usize, TemplateError> {
    a.iter()
        .position(|s| s.contains('/') && !s.starts_with('/'))
        .filter(|&i| i <= 2)
        .ok_or_else(|| {
            TemplateError::expr(format!(
                "Unable to evaluate template language function '{name}': the resource type must be 'Namespace/type', optionally after a subscription id and resource group name."
            ))
        })
}

/// `/providers/{ns}/{t1}/{n1}/…` for `[type, names…]`.
pub fn provider_path(name: &str, a: &[&str]) -> Result<String, TemplateError> {
    let (ty, names) = a.split_first().ok_or_else(|| {
        TemplateError::expr(format!(
            "The template function '{name}' needs a resource type."
        ))
    })?;
    let mut parts = ty.split('/');
    let ns = parts.next().unwrap_or_default();
    let types: Vec<&str> = parts.collect();
    if types.len() != names.len() || types.is_empty() {
        return Err(TemplateError::expr(format!(
            "Unable to evaluate template language function '{name}': the type '{ty}' requires {} resource name argument(s).",
            types.len()
        )));
    }
    let mut out = format!("/providers/{ns}");
    for (t, n) in types.iter().zip(names) {
        out.push_str(&format!("/{t}/{n}"));
    }
    Ok(out)
}

/// `resourceId([subscriptionId], [resourceGroupName], type, names…)`.
pub fn resource_id(host: &dyn Host, a: &[Value]) -> Result<Value, TemplateError> {
    let name = "resourceId";
    let strs = strs(name, a)?;
    let t = type_index(name, &strs)?;
    let (sub, rg) = match t {
        0 => (host.subscription_id(), host.resource_group()),
        1 => (host.subscription_id(), Some(strs[0].to_string())),
        _ => (strs[0].to_string(), Some(strs[1].to_string())),
    };
    let scope = match rg {
        Some(rg) => format!("/subscriptions/{sub}/resourceGroups/{rg}"),
        None => format!("/subscriptions/{sub}"),
    };
    Ok(json!(format!(
        "{scope}{}",
        provider_path(name, &strs[t..])?
    )))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub struct TestHost;

    impl Host for TestHost {
        fn subscription_id(&self) -> String {
            "00000000-0000-0000-0000-000000000001".into()
        }
        fn resource_group(&self) -> Option<String> {
            Some("rg1".into())
        }
        fn tenant_id(&self) -> String {
            "t".into()
        }
        fn resource_group_object(&self) -> Result<Value, TemplateError> {
            Ok(
                json!({"name": "rg1", "location": "westeurope", "id": "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg1"}),
            )
        }
        fn subscription_object(&self) -> Result<Value, TemplateError> {
            Ok(json!({"subscriptionId": self.subscription_id()}))
        }
        fn deployment_object(&self) -> Value {
            json!({"name": "d1"})
        }
        fn environment(&self) -> Value {
            json!({"name": "AzureCloud"})
        }
        fn reference(&self, id: &str, _: Option<&str>, full: bool) -> Result<Value, TemplateError> {
            Ok(if full {
                json!({"id": id, "properties": {"x": 1}})
            } else {
                json!({"x": 1, "id": id})
            })
        }
        fn list(
            &self,
            id: &str,
            f: &str,
            _: &str,
            _: Option<&Value>,
        ) -> Result<Value, TemplateError> {
            Ok(json!({"keys": [{"value": format!("{f}:{id}")}]}))
        }
        fn declared(&self, name: &str) -> Option<String> {
            (name == "st1").then(|| "/subscriptions/s/resourceGroups/rg1/providers/Microsoft.Storage/storageAccounts/st1".into())
        }
    }

    pub fn ev(s: &str, params: Value, vars: Value) -> Result<Value, TemplateError> {
        let p = params.as_object().cloned().unwrap_or_default();
        let v = vars.as_object().cloned().unwrap_or_default();
        let scope = Scope {
            host: &TestHost,
            parameters: &p,
            variables: Variables::Resolved(&v),
            copy: vec![("loop".into(), 2)],
            runtime: true,
            parameter_default: false,
            lambdas: Vec::new(),
            functions: &EMPTY,
        };
        eval_value(&json!(s), &scope)
    }

    #[test]
    fn resource_ids_as_azure_builds_them() {
        assert_eq!(
            ev("[resourceId('Microsoft.Network/virtualNetworks/subnets', 'v', 's')]", json!({}), json!({})).unwrap(),
            json!("/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg1/providers/Microsoft.Network/virtualNetworks/v/subnets/s")
        );
        assert_eq!(
            ev("[resourceId('otherRg', 'Microsoft.Storage/storageAccounts', 'st')]", json!({}), json!({})).unwrap(),
            json!("/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/otherRg/providers/Microsoft.Storage/storageAccounts/st")
        );
        assert_eq!(
            ev("[subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'abc')]", json!({}), json!({})).unwrap(),
            json!("/subscriptions/00000000-0000-0000-0000-000000000001/providers/Microsoft.Authorization/roleDefinitions/abc")
        );
        assert_eq!(
            ev("[extensionResourceId('/subscriptions/s/resourceGroups/r', 'Microsoft.Authorization/locks', 'l')]", json!({}), json!({})).unwrap(),
            json!("/subscriptions/s/resourceGroups/r/providers/Microsoft.Authorization/locks/l")
        );
        assert_eq!(
            ev(
                "[tenantResourceId('Microsoft.Management/managementGroups', 'mg')]",
                json!({}),
                json!({})
            )
            .unwrap(),
            json!("/providers/Microsoft.Management/managementGroups/mg")
        );
        assert!(ev(
            "[resourceId('Microsoft.Network/virtualNetworks/subnets', 'v')]",
            json!({}),
            json!({})
        )
        .is_err());
    }

    #[test]
    fn scope_functions() {
        assert_eq!(
            ev("[parameters('P')]", json!({"p": 5}), json!({})).unwrap(),
            json!(5)
        );
        assert_eq!(
            ev("[variables('v').a]", json!({}), json!({"v": {"A": 1}})).unwrap(),
            json!(1)
        );
        assert_eq!(
            ev("[copyIndex(1)]", json!({}), json!({})).unwrap(),
            json!(3)
        );
        assert_eq!(
            ev("[copyIndex('loop', 10)]", json!({}), json!({})).unwrap(),
            json!(12)
        );
        assert!(ev("[copyIndex('other')]", json!({}), json!({})).is_err());
        assert_eq!(
            ev("[resourceGroup().location]", json!({}), json!({})).unwrap(),
            json!("westeurope")
        );
        assert_eq!(ev("[reference('st1').id]", json!({}), json!({})).unwrap(), json!("/subscriptions/s/resourceGroups/rg1/providers/Microsoft.Storage/storageAccounts/st1"));
        assert_eq!(ev("[listKeys('st1', '2023-01-01').keys[0].value]", json!({}), json!({})).unwrap(), json!("listKeys:/subscriptions/s/resourceGroups/rg1/providers/Microsoft.Storage/storageAccounts/st1"));
        assert!(ev("[parameters('nope')]", json!({"p": 1}), json!({})).is_err());
        assert!(ev("[utcNow()]", json!({}), json!({})).is_err());
    }

    #[test]
    fn if_and_or_are_lazy() {
        assert_eq!(
            ev(
                "[if(true(), 'a', parameters('missing'))]",
                json!({}),
                json!({})
            )
            .unwrap(),
            json!("a")
        );
        assert_eq!(
            ev("[or(true(), parameters('missing'))]", json!({}), json!({})).unwrap(),
            json!(true)
        );
        assert_eq!(
            ev("[and(equals(1, 1), not(false()))]", json!({}), json!({})).unwrap(),
            json!(true)
        );
    }

    /// What Bicep's `=>` expressions compile to.
    #[test]
    fn lambda_functions() {
        let vars = json!({"dogs": [{"name": "Evie", "age": 5}, {"name": "Casper", "age": 3}, {"name": "Indy", "age": 2}]});
        let ev2 = |s: &str| ev(s, json!({}), vars.clone()).unwrap();
        assert_eq!(
            ev2("[filter(variables('dogs'), lambda('dog', greaterOrEquals(lambdaVariables('dog').age, 3)))]"),
            json!([{"name": "Evie", "age": 5}, {"name": "Casper", "age": 3}])
        );
        assert_eq!(
            ev2("[map(variables('dogs'), lambda('dog', lambdaVariables('dog').name))]"),
            json!(["Evie", "Casper", "Indy"])
        );
        assert_eq!(ev2("[map(variables('dogs'), lambda('d', 'i', concat(string(lambdaVariables('i')), lambdaVariables('d').name)))]"), json!(["0Evie", "1Casper", "2Indy"]));
        assert_eq!(ev2("[reduce(map(variables('dogs'), lambda('d', lambdaVariables('d').age)), 0, lambda('cur', 'next', add(lambdaVariables('cur'), lambdaVariables('next'))))]"), json!(10));
        assert_eq!(
            ev2("[sort(variables('dogs'), lambda('a', 'b', less(lambdaVariables('a').age, lambdaVariables('b').age)))]")[0]["name"],
            json!("Indy")
        );
        assert_eq!(ev2("[toObject(variables('dogs'), lambda('d', lambdaVariables('d').name), lambda('d', lambdaVariables('d').age))]"), json!({"Evie": 5, "Casper": 3, "Indy": 2}));
        assert_eq!(ev2("[groupBy(createArray('foo', 'bar', 'baz'), lambda('x', substring(lambdaVariables('x'), 0, 1)))]"), json!({"f": ["foo"], "b": ["bar", "baz"]}));
        assert_eq!(
            ev2("[mapValues(createObject('a', 1), lambda('v', mul(lambdaVariables('v'), 2)))]"),
            json!({"a": 2})
        );
        assert!(ev("[lambdaVariables('x')]", json!({}), json!({})).is_err());
        assert!(ev("[lambda('x', 1)]", json!({}), json!({})).is_err());
    }

    #[test]
    fn user_defined_functions_see_only_their_parameters() {
        let fns = user_functions(Some(&json!([{"namespace": "contoso", "members": {
            "uniqueName": {"parameters": [{"name": "namePrefix", "type": "string"}],
                           "output": {"type": "string", "value": "[concat(toLower(parameters('namePrefix')), 'x')]"}},
            "leaky": {"parameters": [], "output": {"type": "string", "value": "[variables('v')]"}}}}])))
        .unwrap();
        let p = Map::new();
        let v = json!({"v": "secret"}).as_object().cloned().unwrap();
        let scope = Scope {
            host: &TestHost,
            parameters: &p,
            variables: Variables::Resolved(&v),
            copy: vec![],
            runtime: true,
            parameter_default: false,
            lambdas: Vec::new(),
            functions: &fns,
        };
        assert_eq!(
            eval_value(&json!("[contoso.uniqueName('ABC')]"), &scope).unwrap(),
            json!("abcx")
        );
        assert!(eval_value(&json!("[contoso.leaky()]"), &scope).is_err());
        assert!(eval_value(&json!("[contoso.uniqueName()]"), &scope).is_err());
        assert!(eval_value(&json!("[contoso.nope()]"), &scope).is_err());
        let looping = user_functions(Some(
            &json!([{"namespace": "x", "members": {"f": {"parameters": [],
            "output": {"type": "string", "value": "[x.f()]"}}}}]),
        ))
        .unwrap();
        let scope = Scope {
            functions: &looping,
            ..scope
        };
        assert!(
            eval_value(&json!("[x.f()]"), &scope).is_err(),
            "no recursion through user functions"
        );
    }

    #[test]
    fn the_deepest_expression_evaluates_on_a_small_stack() {
        let depth = crate::expr::MAX_DEPTH - 2;
        let e = format!("[{}'x'{}]", "concat(".repeat(depth), ")".repeat(depth));
        assert_eq!(ev(&e, json!({}), json!({})).unwrap(), json!("x"));
    }

    #[test]
    fn safe_access_and_errors() {
        assert_eq!(
            ev("[variables('v').?missing]", json!({}), json!({"v": {}})).unwrap(),
            Value::Null
        );
        let e = ev(
            "[variables('v').missing]",
            json!({}),
            json!({"v": {"a": 1}}),
        )
        .unwrap_err();
        assert!(e.to_string().contains("'missing' doesn't exist"), "{e}");
        assert_eq!(
            ev("[variables('v')['a']]", json!({}), json!({"v": {"a": 1}})).unwrap(),
            json!(1)
        );
        assert!(ev("[createArray(1)[3]]", json!({}), json!({})).is_err());
    }

    #[test]
    fn property_copy_builds_arrays() {
        let p = Map::new();
        let v = Map::new();
        let scope = Scope {
            host: &TestHost,
            parameters: &p,
            variables: Variables::Resolved(&v),
            copy: vec![],
            runtime: false,
            parameter_default: false,
            lambdas: Vec::new(),
            functions: &EMPTY,
        };
        let out = eval_value(
            &json!({"copy": [{"name": "disks", "count": 3, "input": {"lun": "[copyIndex('disks')]"}}], "x": "[[lit]"}),
            &scope,
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"disks": [{"lun": 0}, {"lun": 1}, {"lun": 2}], "x": "[lit]"})
        );
    }

    #[test]
    fn lazy_variables_refuse_cycles() {
        let p = Map::new();
        let lazy = LazyVariables::new(
            json!({"a": "[variables('b')]", "b": "[variables('a')]", "c": "[concat(variables('d'), 'x')]", "d": "y"})
                .as_object()
                .cloned()
                .unwrap(),
        );
        let scope = Scope {
            host: &TestHost,
            parameters: &p,
            variables: Variables::Lazy(&lazy),
            copy: vec![],
            runtime: false,
            parameter_default: false,
            lambdas: Vec::new(),
            functions: &EMPTY,
        };
        assert_eq!(
            eval_value(&json!("[variables('c')]"), &scope).unwrap(),
            json!("yx")
        );
        assert!(eval_value(&json!("[variables('a')]"), &scope).is_err());
    }

    /// Hostile nesting ends in an error on the evaluation stack, not an overflow.
    #[test]
    fn long_chains_are_refused_on_the_evaluation_stack() {
        std::thread::Builder::new()
            .stack_size(STACK_BYTES)
            .spawn(|| {
                let p = Map::new();
                let deep = format!("[{}'x'{}]", "concat(".repeat(60), ")".repeat(60));
                let mut chain = Map::new();
                for i in 0..10_000 {
                    chain.insert(
                        format!("v{i}"),
                        json!(format!("[concat(variables('v{}'), '{}')]", i + 1, deep)),
                    );
                }
                chain.insert("v10000".into(), json!("end"));
                let lazy = LazyVariables::new(chain);
                let scope = Scope {
                    host: &TestHost,
                    parameters: &p,
                    variables: Variables::Lazy(&lazy),
                    copy: vec![],
                    runtime: false,
                    parameter_default: false,
                    lambdas: Vec::new(),
                    functions: &EMPTY,
                };
                assert!(eval_value(&json!("[variables('v0')]"), &scope).is_err());
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
