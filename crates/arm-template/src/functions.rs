//! The pure template functions (strings, collections, logic, numbers,
//! conversions, dates, resource ids), with Azure's results. Functions that
//! need the deployment (`parameters`, `reference`, `resourceGroup`, …) are
//! in [`crate::eval`].

use base64::Engine as _;
use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use crate::TemplateError;

/// "The template function '{name}' is not valid."
pub fn unknown(name: &str) -> TemplateError {
    TemplateError::expr(format!(
        "The template function '{name}' is not valid. Please see https://aka.ms/arm-functions for usage details."
    ))
}

fn arity(name: &str, args: &[Value], min: usize, max: usize) -> Result<(), TemplateError> {
    if args.len() < min || args.len() > max {
        let want = if min == max {
            format!("{min}")
        } else if max == usize::MAX {
            format!("at least {min}")
        } else {
            format!("{min} to {max}")
        };
        return Err(TemplateError::expr(format!(
            "Unable to evaluate template language function '{name}': function requires {want} argument(s) while {} were provided. Please see https://aka.ms/arm-functions for usage details.",
            args.len()
        )));
    }
    Ok(())
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "Null",
        Value::Bool(_) => "Boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "Integer",
        Value::Number(_) => "Float",
        Value::String(_) => "String",
        Value::Array(_) => "Array",
        Value::Object(_) => "Object",
    }
}

fn wrong_type(name: &str, expected: &str, got: &Value) -> TemplateError {
    TemplateError::expr(format!(
        "Unable to evaluate template language function '{name}': the argument of type '{}' is not valid; expected '{expected}'. Please see https://aka.ms/arm-functions for usage details.",
        type_name(got)
    ))
}

pub fn as_str<'a>(name: &str, v: &'a Value) -> Result<&'a str, TemplateError> {
    v.as_str().ok_or_else(|| wrong_type(name, "String", v))
}

pub fn as_int(name: &str, v: &Value) -> Result<i64, TemplateError> {
    v.as_i64().ok_or_else(|| wrong_type(name, "Integer", v))
}

fn as_bool(name: &str, v: &Value) -> Result<bool, TemplateError> {
    v.as_bool().ok_or_else(|| wrong_type(name, "Boolean", v))
}

/// How `string()` and `concat()` write a value: strings as they are,
/// booleans as .NET writes them, everything else as compact JSON.
pub fn to_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Case-insensitive object property lookup, as ARM resolves property names.
pub fn get_prop<'a>(o: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    o.get(name).or_else(|| {
        o.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

/// Calls a pure function by its (case-insensitive) name.
pub fn call(name: &str, args: Vec<Value>) -> Result<Value, TemplateError> {
    let lower = name.to_ascii_lowercase();
    let a = &args;
    Ok(match lower.as_str() {
        // Strings.
        "concat" => {
            arity(name, a, 1, usize::MAX)?;
            if a.iter().all(Value::is_array) {
                Value::Array(
                    a.iter()
                        .flat_map(|x| x.as_array().cloned().unwrap_or_default())
                        .collect(),
                )
            } else if let Some(bad) = a.iter().find(|x| x.is_array() || x.is_object()) {
                return Err(wrong_type(name, "String", bad));
            } else {
                json!(a.iter().map(to_text).collect::<String>())
            }
        }
        "format" => {
            arity(name, a, 1, usize::MAX)?;
            json!(format_dotnet(as_str(name, &a[0])?, &a[1..])?)
        }
        "tolower" => {
            arity(name, a, 1, 1)?;
            json!(as_str(name, &a[0])?.to_lowercase())
        }
        "toupper" => {
            arity(name, a, 1, 1)?;
            json!(as_str(name, &a[0])?.to_uppercase())
        }
        "trim" => {
            arity(name, a, 1, 1)?;
            json!(as_str(name, &a[0])?.trim())
        }
        "substring" => {
            arity(name, a, 2, 3)?;
            let s: Vec<char> = as_str(name, &a[0])?.chars().collect();
            let start = as_int(name, &a[1])?;
            let len = match a.get(2) {
                Some(l) => as_int(name, l)?,
                None => s.len() as i64 - start,
            };
            if start < 0 || len < 0 || start + len > s.len() as i64 {
                return Err(TemplateError::expr(format!(
                    "Unable to evaluate template language function 'substring'. The index and length parameters must refer to a location within the string. The index parameter: '{start}', the length parameter: '{len}', the length of the string parameter: '{}'. Please see https://aka.ms/arm-functions for usage details.",
                    s.len()
                )));
            }
            json!(s[start as usize..(start + len) as usize]
                .iter()
                .collect::<String>())
        }
        "replace" => {
            arity(name, a, 3, 3)?;
            json!(as_str(name, &a[0])?.replace(as_str(name, &a[1])?, as_str(name, &a[2])?))
        }
        "split" => {
            arity(name, a, 2, 2)?;
            let s = as_str(name, &a[0])?;
            let delims: Vec<String> = match &a[1] {
                Value::Array(d) => d.iter().map(to_text).collect(),
                other => vec![as_str(name, other)?.to_string()],
            };
            let mut parts = vec![s.to_string()];
            for d in delims.iter().filter(|d| !d.is_empty()) {
                parts = parts
                    .iter()
                    .flat_map(|p| p.split(d.as_str()).map(str::to_string).collect::<Vec<_>>())
                    .collect();
            }
            json!(parts)
        }
        "startswith" | "endswith" => {
            arity(name, a, 2, 2)?;
            let s = as_str(name, &a[0])?.to_lowercase();
            let t = as_str(name, &a[1])?.to_lowercase();
            json!(if lower == "startswith" {
                s.starts_with(&t)
            } else {
                s.ends_with(&t)
            })
        }
        "indexof" | "lastindexof" => {
            arity(name, a, 2, 2)?;
            let last = lower == "lastindexof";
            match &a[0] {
                Value::Array(items) => {
                    let pos = if last {
                        items.iter().rposition(|x| x == &a[1])
                    } else {
                        items.iter().position(|x| x == &a[1])
                    };
                    json!(pos.map_or(-1, |p| p as i64))
                }
                other => {
                    let s = as_str(name, other)?.to_lowercase();
                    let t = as_str(name, &a[1])?.to_lowercase();
                    let byte = if last { s.rfind(&t) } else { s.find(&t) };
                    json!(byte.map_or(-1, |b| s[..b].chars().count() as i64))
                }
            }
        }
        "padleft" => {
            arity(name, a, 2, 3)?;
            let s = match &a[0] {
                Value::Number(n) => n.to_string(),
                other => as_str(name, other)?.to_string(),
            };
            let total = as_int(name, &a[1])?.max(0) as usize;
            let pad = match a.get(2) {
                Some(p) => {
                    let p = as_str(name, p)?;
                    let mut c = p.chars();
                    match (c.next(), c.next()) {
                        (Some(ch), None) => ch,
                        _ => {
                            return Err(TemplateError::expr(
                                "Unable to evaluate template language function 'padLeft': the padding character must be a single character.",
                            ))
                        }
                    }
                }
                None => ' ',
            };
            let n = s.chars().count();
            json!(format!(
                "{}{s}",
                std::iter::repeat_n(pad, total.saturating_sub(n)).collect::<String>()
            ))
        }
        "string" => {
            arity(name, a, 1, 1)?;
            json!(to_text(&a[0]))
        }
        "base64" => {
            arity(name, a, 1, 1)?;
            json!(base64::engine::general_purpose::STANDARD.encode(as_str(name, &a[0])?))
        }
        "base64tostring" | "base64tojson" => {
            arity(name, a, 1, 1)?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(as_str(name, &a[0])?)
                .map_err(|e| TemplateError::expr(format!("'{name}': not base64 ({e}).")))?;
            let s = String::from_utf8_lossy(&bytes).into_owned();
            if lower == "base64tojson" {
                parse_json(name, &s)?
            } else {
                json!(s)
            }
        }
        "uricomponent" => {
            arity(name, a, 1, 1)?;
            json!(
                percent_encoding::utf8_percent_encode(as_str(name, &a[0])?, URI_COMPONENT)
                    .to_string()
            )
        }
        "uricomponenttostring" => {
            arity(name, a, 1, 1)?;
            json!(percent_encoding::percent_decode_str(as_str(name, &a[0])?)
                .decode_utf8_lossy()
                .into_owned())
        }
        "uri" => {
            arity(name, a, 2, 2)?;
            let base = as_str(name, &a[0])?;
            let rel = as_str(name, &a[1])?;
            json!(if rel.contains("://") {
                rel.to_string()
            } else if let Some(r) = rel.strip_prefix('/') {
                let origin_end = base
                    .find("://")
                    .map(|p| base[p + 3..].find('/').map_or(base.len(), |q| p + 3 + q))
                    .unwrap_or(0);
                format!("{}/{r}", &base[..origin_end])
            } else {
                let cut = base.rfind('/').map_or(0, |p| p + 1);
                format!("{}{rel}", &base[..cut])
            })
        }
        "uniquestring" => {
            arity(name, a, 1, usize::MAX)?;
            let parts = a
                .iter()
                .map(|v| as_str(name, v))
                .collect::<Result<Vec<_>, _>>()?;
            json!(crate::hash::unique_string(&parts))
        }
        "guid" => {
            arity(name, a, 1, usize::MAX)?;
            let parts = a
                .iter()
                .map(|v| as_str(name, v))
                .collect::<Result<Vec<_>, _>>()?;
            json!(crate::hash::guid(&parts))
        }
        // Collections.
        "length" => {
            arity(name, a, 1, 1)?;
            json!(match &a[0] {
                Value::String(s) => s.chars().count(),
                Value::Array(x) => x.len(),
                Value::Object(o) => o.len(),
                other => return Err(wrong_type(name, "String, Array or Object", other)),
            })
        }
        "empty" => {
            arity(name, a, 1, 1)?;
            json!(match &a[0] {
                Value::Null => true,
                Value::String(s) => s.is_empty(),
                Value::Array(x) => x.is_empty(),
                Value::Object(o) => o.is_empty(),
                _ => false,
            })
        }
        "contains" => {
            arity(name, a, 2, 2)?;
            json!(match &a[0] {
                Value::String(s) => s.contains(&to_text(&a[1])),
                Value::Array(x) => x.contains(&a[1]),
                Value::Object(o) => get_prop(o, as_str(name, &a[1])?).is_some(),
                other => return Err(wrong_type(name, "String, Array or Object", other)),
            })
        }
        "first" | "last" => {
            arity(name, a, 1, 1)?;
            let first = lower == "first";
            match &a[0] {
                Value::Array(x) => (if first { x.first() } else { x.last() })
                    .cloned()
                    .unwrap_or(Value::Null),
                Value::String(s) => json!((if first {
                    s.chars().next()
                } else {
                    s.chars().last()
                })
                .map(String::from)
                .unwrap_or_default()),
                other => return Err(wrong_type(name, "Array or String", other)),
            }
        }
        "take" | "skip" => {
            arity(name, a, 2, 2)?;
            let n = as_int(name, &a[1])?.max(0) as usize;
            let take = lower == "take";
            match &a[0] {
                Value::Array(x) => Value::Array(if take {
                    x.iter().take(n).cloned().collect()
                } else {
                    x.iter().skip(n).cloned().collect()
                }),
                Value::String(s) => json!(if take {
                    s.chars().take(n).collect::<String>()
                } else {
                    s.chars().skip(n).collect::<String>()
                }),
                other => return Err(wrong_type(name, "Array or String", other)),
            }
        }
        "union" => {
            arity(name, a, 1, usize::MAX)?;
            let mut acc = a[0].clone();
            for next in &a[1..] {
                acc = union2(name, acc, next)?;
            }
            acc
        }
        "intersection" => {
            arity(name, a, 1, usize::MAX)?;
            match &a[0] {
                Value::Array(first) => {
                    let mut out: Vec<Value> = Vec::new();
                    for item in first {
                        if !out.contains(item)
                            && a[1..]
                                .iter()
                                .all(|o| o.as_array().is_some_and(|x| x.contains(item)))
                        {
                            out.push(item.clone());
                        }
                    }
                    Value::Array(out)
                }
                Value::Object(first) => {
                    let mut out = Map::new();
                    for (k, v) in first {
                        if a[1..].iter().all(|o| {
                            o.as_object()
                                .and_then(|m| get_prop(m, k))
                                .is_some_and(|x| x == v)
                        }) {
                            out.insert(k.clone(), v.clone());
                        }
                    }
                    Value::Object(out)
                }
                other => return Err(wrong_type(name, "Array or Object", other)),
            }
        }
        "createarray" => Value::Array(args.clone()),
        "createobject" => {
            if !a.len().is_multiple_of(2) {
                return Err(TemplateError::expr(
                    "Unable to evaluate template language function 'createObject': it takes pairs of keys and values.",
                ));
            }
            let mut o = Map::new();
            for pair in a.chunks(2) {
                o.insert(as_str(name, &pair[0])?.to_string(), pair[1].clone());
            }
            Value::Object(o)
        }
        "array" => {
            arity(name, a, 1, 1)?;
            match &a[0] {
                Value::Array(_) => a[0].clone(),
                other => json!([other]),
            }
        }
        "range" => {
            arity(name, a, 2, 2)?;
            let start = as_int(name, &a[0])?;
            let count = as_int(name, &a[1])?;
            if !(0..=10_000).contains(&count) || start.checked_add(count).is_none() {
                return Err(TemplateError::expr(format!(
                    "Unable to evaluate template language function 'range': the count '{count}' must be between 0 and 10000 and start plus count must be an integer."
                )));
            }
            json!((start..start + count).collect::<Vec<_>>())
        }
        "coalesce" => a
            .iter()
            .find(|v| !v.is_null())
            .cloned()
            .unwrap_or(Value::Null),
        "items" => {
            arity(name, a, 1, 1)?;
            let o = a[0]
                .as_object()
                .ok_or_else(|| wrong_type(name, "Object", &a[0]))?;
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort_by_key(|k| k.to_lowercase());
            json!(keys
                .into_iter()
                .map(|k| json!({"key": k, "value": o[k]}))
                .collect::<Vec<_>>())
        }
        "flatten" => {
            arity(name, a, 1, 1)?;
            let outer = a[0]
                .as_array()
                .ok_or_else(|| wrong_type(name, "Array", &a[0]))?;
            let mut out = Vec::new();
            for x in outer {
                match x {
                    Value::Array(inner) => out.extend(inner.iter().cloned()),
                    other => return Err(wrong_type(name, "Array", other)),
                }
            }
            Value::Array(out)
        }
        "tryget" => {
            arity(name, a, 2, usize::MAX)?;
            let mut cur = a[0].clone();
            for key in &a[1..] {
                cur = match (&cur, key) {
                    (Value::Object(o), Value::String(k)) => {
                        get_prop(o, k).cloned().unwrap_or(Value::Null)
                    }
                    (Value::Array(x), Value::Number(n)) => n
                        .as_u64()
                        .and_then(|i| x.get(i as usize))
                        .cloned()
                        .unwrap_or(Value::Null),
                    _ => Value::Null,
                };
            }
            cur
        }
        "objectkeys" => {
            arity(name, a, 1, 1)?;
            let o = a[0]
                .as_object()
                .ok_or_else(|| wrong_type(name, "Object", &a[0]))?;
            json!(o.keys().collect::<Vec<_>>())
        }
        "min" | "max" => {
            arity(name, a, 1, usize::MAX)?;
            let items: Vec<Value> = match (a.len(), &a[0]) {
                (1, Value::Array(x)) => x.clone(),
                _ => args.clone(),
            };
            let ints = items
                .iter()
                .map(|v| as_int(name, v))
                .collect::<Result<Vec<_>, _>>()?;
            let r = if lower == "min" {
                ints.iter().min()
            } else {
                ints.iter().max()
            };
            r.map_or(Value::Null, |x| json!(x))
        }
        // Logic and comparison.
        "equals" => {
            arity(name, a, 2, 2)?;
            json!(a[0] == a[1])
        }
        "not" => {
            arity(name, a, 1, 1)?;
            json!(!as_bool(name, &a[0])?)
        }
        "less" | "lessorequals" | "greater" | "greaterorequals" => {
            arity(name, a, 2, 2)?;
            let ord = match (&a[0], &a[1]) {
                (Value::String(x), Value::String(y)) => x.cmp(y),
                (x, y) => {
                    let (x, y) = (num(name, x)?, num(name, y)?);
                    x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal)
                }
            };
            use std::cmp::Ordering::*;
            json!(match lower.as_str() {
                "less" => ord == Less,
                "lessorequals" => ord != Greater,
                "greater" => ord == Greater,
                _ => ord != Less,
            })
        }
        "true" => json!(true),
        "false" => json!(false),
        "null" => Value::Null,
        // Conversions and numbers.
        "bool" => {
            arity(name, a, 1, 1)?;
            json!(match &a[0] {
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) if s.eq_ignore_ascii_case("true") => true,
                Value::String(s) if s.eq_ignore_ascii_case("false") => false,
                other =>
                    return Err(wrong_type(
                        name,
                        "Boolean, Integer or 'true'/'false'",
                        other
                    )),
            })
        }
        "int" => {
            arity(name, a, 1, 1)?;
            json!(match &a[0] {
                Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)).unwrap_or(0),
                Value::String(s) => s.trim().parse::<i64>().map_err(|_| {
                    TemplateError::expr(format!(
                        "Unable to evaluate template language function 'int': the string '{s}' is not an integer."
                    ))
                })?,
                other => return Err(wrong_type(name, "Integer or String", other)),
            })
        }
        "json" => {
            arity(name, a, 1, 1)?;
            parse_json(name, as_str(name, &a[0])?)?
        }
        "add" | "sub" | "mul" | "div" | "mod" => {
            arity(name, a, 2, 2)?;
            let (x, y) = (as_int(name, &a[0])?, as_int(name, &a[1])?);
            let r = match lower.as_str() {
                "add" => x.checked_add(y),
                "sub" => x.checked_sub(y),
                "mul" => x.checked_mul(y),
                "div" => x.checked_div(y),
                _ => x.checked_rem(y),
            };
            json!(r.ok_or_else(|| TemplateError::expr(format!(
                "Unable to evaluate template language function '{name}': the result of {x} and {y} is not an integer (division by zero or overflow)."
            )))?)
        }
        // Dates.
        "datetimeadd" => {
            arity(name, a, 2, 3)?;
            let base = parse_time(name, as_str(name, &a[0])?)?;
            let t = add_duration(base, as_str(name, &a[1])?)?;
            json!(format_time(
                t,
                a.get(2).map(|f| as_str(name, f)).transpose()?
            ))
        }
        "datetimetoepoch" => {
            arity(name, a, 1, 1)?;
            json!(parse_time(name, as_str(name, &a[0])?)?.unix_timestamp())
        }
        "datetimefromepoch" => {
            arity(name, a, 1, 1)?;
            let t = OffsetDateTime::from_unix_timestamp(as_int(name, &a[0])?)
                .map_err(|e| TemplateError::expr(format!("'dateTimeFromEpoch': {e}.")))?;
            json!(format_time(t, None))
        }
        _ => return Err(unknown(name)),
    })
}

fn num(name: &str, v: &Value) -> Result<f64, TemplateError> {
    v.as_f64()
        .ok_or_else(|| wrong_type(name, "Integer or String", v))
}

fn parse_json(name: &str, s: &str) -> Result<Value, TemplateError> {
    serde_json::from_str(s).map_err(|e| {
        TemplateError::expr(format!(
            "Unable to evaluate template language function '{name}': the argument is not valid JSON ({e})."
        ))
    })
}

const URI_COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `union`: arrays keep the first occurrence of each element; objects take
/// later values, merging nested objects and arrays recursively.
fn union2(name: &str, a: Value, b: &Value) -> Result<Value, TemplateError> {
    Ok(match (a, b) {
        (Value::Array(mut x), Value::Array(y)) => {
            for item in y {
                if !x.contains(item) {
                    x.push(item.clone());
                }
            }
            Value::Array(x)
        }
        (Value::Object(mut x), Value::Object(y)) => {
            for (k, v) in y {
                let merged = match x.remove(k) {
                    Some(old @ (Value::Object(_) | Value::Array(_)))
                        if std::mem::discriminant(&old) == std::mem::discriminant(v) =>
                    {
                        union2(name, old, v)?
                    }
                    _ => v.clone(),
                };
                x.insert(k.clone(), merged);
            }
            Value::Object(x)
        }
        (x, y) => {
            return Err(wrong_type(
                name,
                if x.is_array() { "Array" } else { "Object" },
                if x.is_array() || x.is_object() { y } else { &x },
            ))
        }
    })
}

/// .NET composite formatting as `format()` applies it: `{index}`,
/// `{index:D3}`/`{index:N0}`/`{index:X}` for integers, `{{` and `}}`.
pub fn format_dotnet(fmt: &str, args: &[Value]) -> Result<String, TemplateError> {
    let bad = || {
        TemplateError::expr(format!(
            "Unable to evaluate template language function 'format': the format string '{fmt}' is not valid."
        ))
    };
    let mut out = String::new();
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                out.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                out.push('}');
            }
            '{' => {
                let mut spec = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(ch) => spec.push(ch),
                        None => return Err(bad()),
                    }
                }
                let (index, style) = spec.split_once(':').unwrap_or((&spec, ""));
                let index: usize = index.trim().parse().map_err(|_| bad())?;
                let v = args.get(index).ok_or_else(|| {
                    TemplateError::expr(format!(
                        "Unable to evaluate template language function 'format': the format string refers to argument {index}, but only {} were given.",
                        args.len()
                    ))
                })?;
                out.push_str(&format_one(v, style));
            }
            '}' => return Err(bad()),
            other => out.push(other),
        }
    }
    Ok(out)
}

fn format_one(v: &Value, style: &str) -> String {
    let Some(n) = v.as_i64() else {
        return to_text(v);
    };
    let (kind, width) = style.split_at(style.len().min(1));
    let width: usize = width.parse().unwrap_or(0);
    match kind {
        "D" | "d" => {
            let digits = format!("{:0width$}", n.unsigned_abs());
            if n < 0 {
                format!("-{digits}")
            } else {
                digits
            }
        }
        "X" => format!("{n:0width$X}"),
        "x" => format!("{n:0width$x}"),
        "N" | "n" => {
            let s = n.unsigned_abs().to_string();
            let mut grouped = String::new();
            for (i, ch) in s.chars().enumerate() {
                if i > 0 && (s.len() - i) % 3 == 0 {
                    grouped.push(',');
                }
                grouped.push(ch);
            }
            let frac = if width > 0 {
                format!(".{}", "0".repeat(width))
            } else {
                String::new()
            };
            format!("{}{grouped}{frac}", if n < 0 { "-" } else { "" })
        }
        _ => n.to_string(),
    }
}

/// Parses an ISO 8601 date-time as templates write them (`2020-04-07T14:53:14Z`,
/// a space instead of `T`, a date alone).
pub fn parse_time(name: &str, s: &str) -> Result<OffsetDateTime, TemplateError> {
    let t = s.trim().replacen(' ', "T", 1);
    let candidates = [t.clone(), format!("{t}Z"), format!("{t}T00:00:00Z")];
    candidates
        .iter()
        .find_map(|c| OffsetDateTime::parse(c, &Rfc3339).ok())
        .ok_or_else(|| {
            TemplateError::expr(format!(
                "Unable to evaluate template language function '{name}': '{s}' is not an ISO 8601 date and time."
            ))
        })
}

/// Adds an ISO 8601 duration (`P1Y2M3DT4H5M6S`, `-PT1H`).
pub fn add_duration(t: OffsetDateTime, d: &str) -> Result<OffsetDateTime, TemplateError> {
    let bad = || {
        TemplateError::expr(format!(
            "Unable to evaluate template language function 'dateTimeAdd': '{d}' is not an ISO 8601 duration."
        ))
    };
    let (neg, body) = match d.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, d),
    };
    let body = body.strip_prefix('P').ok_or_else(bad)?;
    let (date, time_part) = body.split_once('T').unwrap_or((body, ""));
    let sign = if neg { -1 } else { 1 };
    let mut months = 0i64;
    let mut secs = 0f64;
    let mut read = |part: &str, in_time: bool| -> Result<(), TemplateError> {
        let mut n = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' {
                n.push(c);
                continue;
            }
            let v: f64 = n.parse().map_err(|_| bad())?;
            n.clear();
            match (in_time, c) {
                (false, 'Y') => months += 12 * v as i64,
                (false, 'M') => months += v as i64,
                (false, 'W') => secs += v * 7.0 * 86400.0,
                (false, 'D') => secs += v * 86400.0,
                (true, 'H') => secs += v * 3600.0,
                (true, 'M') => secs += v * 60.0,
                (true, 'S') => secs += v,
                _ => return Err(bad()),
            }
        }
        if n.is_empty() {
            Ok(())
        } else {
            Err(bad())
        }
    };
    read(date, false)?;
    read(time_part, true)?;
    let mut out = t;
    if months != 0 {
        let total =
            i64::from(out.year()) * 12 + i64::from(u8::from(out.month())) - 1 + sign * months;
        let (y, m) = (total.div_euclid(12), total.rem_euclid(12) + 1);
        let month = time::Month::try_from(m as u8).map_err(|_| bad())?;
        let last = month.length(y as i32);
        let date = time::Date::from_calendar_date(y as i32, month, out.day().min(last))
            .map_err(|_| bad())?;
        out = out.replace_date(date);
    }
    out.checked_add(Duration::seconds_f64(sign as f64 * secs))
        .ok_or_else(bad)
}

/// A date-time as ARM writes one: ISO 8601 UTC by default, or the .NET
/// custom/standard format given (`u`, `s`, `o`, `yyyyMMddTHHmmssZ`, …).
pub fn format_time(t: OffsetDateTime, fmt: Option<&str>) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let fmt = match fmt {
        None => "yyyy-MM-ddTHH:mm:ssZ",
        Some("u") => "yyyy-MM-dd HH:mm:ssZ",
        Some("s") => "yyyy-MM-ddTHH:mm:ss",
        Some("o") | Some("O") => "yyyy-MM-ddTHH:mm:ss.fffffffZ",
        Some("d") => "M/d/yyyy",
        Some(f) => f,
    };
    let mut out = String::new();
    let chars: Vec<char> = fmt.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let mut n = 1;
        while i + n < chars.len() && chars[i + n] == c {
            n += 1;
        }
        let piece = match c {
            'y' if n >= 4 => format!("{:04}", t.year()),
            'y' => format!("{:02}", t.year() % 100),
            'M' if n >= 2 => format!("{:02}", u8::from(t.month())),
            'M' => format!("{}", u8::from(t.month())),
            'd' if n >= 2 => format!("{:02}", t.day()),
            'd' => format!("{}", t.day()),
            'H' if n >= 2 => format!("{:02}", t.hour()),
            'H' => format!("{}", t.hour()),
            'm' if n >= 2 => format!("{:02}", t.minute()),
            'm' => format!("{}", t.minute()),
            's' if n >= 2 => format!("{:02}", t.second()),
            's' => format!("{}", t.second()),
            'f' => format!("{:09}", t.nanosecond())[..n.min(9)].to_string(),
            _ => std::iter::repeat_n(c, n).collect(),
        };
        out.push_str(&piece);
        i += n;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(name: &str, args: Value) -> Value {
        call(name, args.as_array().unwrap().clone()).unwrap()
    }

    /// Results as the template function reference documents them.
    #[test]
    fn string_functions() {
        assert_eq!(f("padLeft", json!(["123", 10, "0"])), json!("0000000123"));
        assert_eq!(f("padLeft", json!([123, 5])), json!("  123"));
        assert_eq!(f("substring", json!(["hello world", 0, 5])), json!("hello"));
        assert!(call("substring", vec![json!("abc"), json!(2), json!(5)]).is_err());
        assert_eq!(
            f("replace", json!(["123-123-1234", "-", ""])),
            json!("1231231234")
        );
        assert_eq!(
            f("split", json!(["one,two,three", ","])),
            json!(["one", "two", "three"])
        );
        assert_eq!(
            f("split", json!(["one;two,three", [",", ";"]])),
            json!(["one", "two", "three"])
        );
        assert_eq!(f("startsWith", json!(["abcdef", "AB"])), json!(true));
        assert_eq!(f("endsWith", json!(["abcdef", "EF"])), json!(true));
        assert_eq!(f("indexOf", json!(["test", "T"])), json!(0));
        assert_eq!(f("lastIndexOf", json!(["abcdef", "AB"])), json!(0));
        assert_eq!(f("indexOf", json!(["abcdef", "z"])), json!(-1));
        assert_eq!(f("toUpper", json!(["One Two"])), json!("ONE TWO"));
        assert_eq!(
            f("trim", json!(["    one two three   "])),
            json!("one two three")
        );
        assert_eq!(
            f("string", json!([{"valueA": 10, "valueB": "Example Text"}])),
            json!("{\"valueA\":10,\"valueB\":\"Example Text\"}")
        );
        assert_eq!(f("string", json!([5])), json!("5"));
        assert_eq!(f("concat", json!(["prefix", "-", 5])), json!("prefix-5"));
        assert_eq!(
            f("concat", json!([["1-1"], ["2-1", "2-2"]])),
            json!(["1-1", "2-1", "2-2"])
        );
        assert_eq!(
            f("base64", json!(["one, two, three"])),
            json!("b25lLCB0d28sIHRocmVl")
        );
        assert_eq!(
            f("base64ToString", json!(["b25lLCB0d28sIHRocmVl"])),
            json!("one, two, three")
        );
        assert_eq!(
            f(
                "uriComponent",
                json!(["http://contoso.com/resources/nested/azuredeploy.json"])
            ),
            json!("http%3A%2F%2Fcontoso.com%2Fresources%2Fnested%2Fazuredeploy.json")
        );
        assert_eq!(
            f(
                "uri",
                json!(["http://contoso.com/resources/", "nested/azuredeploy.json"])
            ),
            json!("http://contoso.com/resources/nested/azuredeploy.json")
        );
    }

    #[test]
    fn format_as_dotnet() {
        assert_eq!(
            f(
                "format",
                json!([
                    "{0}, {1}. Formatted number: {2:N0}",
                    "Hello",
                    "User",
                    8175133
                ])
            ),
            json!("Hello, User. Formatted number: 8,175,133")
        );
        assert_eq!(f("format", json!(["vm{0:D3}", 7])), json!("vm007"));
        assert_eq!(
            f("format", json!(["{{literal}} {0}", "x"])),
            json!("{literal} x")
        );
        assert!(call("format", vec![json!("{1}"), json!("a")]).is_err());
    }

    #[test]
    fn collections() {
        assert_eq!(f("length", json!([["a", "b", "c"]])), json!(3));
        assert_eq!(f("length", json!(["One Two Three"])), json!(13));
        assert_eq!(f("empty", json!([{}])), json!(true));
        assert_eq!(f("contains", json!([{"one": "a"}, "ONE"])), json!(true));
        assert_eq!(f("contains", json!(["OneTwoThree", "two"])), json!(false));
        assert_eq!(f("first", json!([["one", "two"]])), json!("one"));
        assert_eq!(f("last", json!(["One Two Three"])), json!("e"));
        assert_eq!(
            f("take", json!([["one", "two", "three"], 2])),
            json!(["one", "two"])
        );
        assert_eq!(f("skip", json!(["one two three", 4])), json!("two three"));
        assert_eq!(f("range", json!([1, 5])), json!([1, 2, 3, 4, 5]));
        assert!(call("range", vec![json!(0), json!(10_001)]).is_err());
        assert_eq!(
            f(
                "union",
                json!([{"one": "a", "two": "b", "three": "c"}, {"three": "d", "four": "e"}])
            ),
            json!({"one": "a", "two": "b", "three": "d", "four": "e"})
        );
        assert_eq!(
            f("union", json!([["one", "two", "three"], ["three", "four"]])),
            json!(["one", "two", "three", "four"])
        );
        assert_eq!(
            f(
                "union",
                json!([{"n": {"a": 1, "l": [1]}}, {"n": {"b": 2, "l": [2]}}])
            ),
            json!({"n": {"a": 1, "l": [1, 2], "b": 2}})
        );
        assert_eq!(
            f(
                "intersection",
                json!([{"one": "a", "two": "b", "three": "c"}, {"one": "a", "two": "z", "three": "c"}])
            ),
            json!({"one": "a", "three": "c"})
        );
        assert_eq!(
            f(
                "intersection",
                json!([["one", "two", "three"], ["two", "three"]])
            ),
            json!(["two", "three"])
        );
        assert_eq!(
            f("createObject", json!(["intProp", 1, "stringProp", "abc"])),
            json!({"intProp": 1, "stringProp": "abc"})
        );
        assert_eq!(f("array", json!([1])), json!([1]));
        assert_eq!(f("min", json!([[0, 3, 2, 5, 4]])), json!(0));
        assert_eq!(f("max", json!([0, 3, 2, 5, 4])), json!(5));
        assert_eq!(
            f("coalesce", json!([null, null, "default"])),
            json!("default")
        );
        assert_eq!(
            f("items", json!([{"b": 2, "a": 1}])),
            json!([{"key": "a", "value": 1}, {"key": "b", "value": 2}])
        );
        assert_eq!(
            f("flatten", json!([[["one", "two"], ["three"]]])),
            json!(["one", "two", "three"])
        );
    }

    #[test]
    fn logic_and_numbers() {
        assert_eq!(f("equals", json!([{"a": [1]}, {"a": [1]}])), json!(true));
        assert_eq!(f("equals", json!(["a", "A"])), json!(false));
        assert_eq!(f("less", json!(["A", "a"])), json!(true));
        assert_eq!(f("greaterOrEquals", json!([10, 10])), json!(true));
        assert_eq!(f("add", json!([5, 3])), json!(8));
        assert_eq!(f("sub", json!([7, 3])), json!(4));
        assert_eq!(f("mul", json!([5, 3])), json!(15));
        assert_eq!(f("div", json!([8, 3])), json!(2));
        assert_eq!(f("mod", json!([7, 3])), json!(1));
        assert!(call("div", vec![json!(1), json!(0)]).is_err());
        assert_eq!(f("bool", json!(["TRUE"])), json!(true));
        assert_eq!(f("bool", json!([0])), json!(false));
        assert_eq!(f("int", json!(["4"])), json!(4));
        assert_eq!(f("json", json!(["{\"a\": \"b\"}"])), json!({"a": "b"}));
        assert_eq!(f("string", json!([true])), json!("True"));
    }

    #[test]
    fn dates() {
        assert_eq!(
            f("dateTimeAdd", json!(["2020-04-07 14:53:14Z", "P3Y"])),
            json!("2023-04-07T14:53:14Z")
        );
        assert_eq!(
            f("dateTimeAdd", json!(["2020-04-07 14:53:14Z", "-PT9M"])),
            json!("2020-04-07T14:44:14Z")
        );
        assert_eq!(
            f("dateTimeAdd", json!(["2020-04-07 14:53:14Z", "PT1H"])),
            json!("2020-04-07T15:53:14Z")
        );
        assert_eq!(
            f("dateTimeAdd", json!(["2020-01-31T00:00:00Z", "P1M"])),
            json!("2020-02-29T00:00:00Z")
        );
        assert_eq!(
            f("dateTimeToEpoch", json!(["2023-02-05T00:00:00Z"])),
            json!(1675555200)
        );
        assert_eq!(
            f("dateTimeFromEpoch", json!([1683040573])),
            json!("2023-05-02T15:16:13Z")
        );
        assert_eq!(
            format_time(
                parse_time("t", "2020-04-07T14:53:14Z").unwrap(),
                Some("yyyyMMddTHHmmssZ")
            ),
            "20200407T145314Z"
        );
        assert!(call("dateTimeAdd", vec![json!("2020-01-01"), json!("3Y")]).is_err());
    }

    #[test]
    fn unknown_functions_are_named() {
        let e = call("nosuch", vec![]).unwrap_err();
        assert!(e.to_string().contains("'nosuch' is not valid"));
        assert_eq!(e.code(), "InvalidTemplate");
    }
}
