//! A small JSON Schema (2020-12) validator for the subset the P-ASM schemas use:
//! `type`, `properties`, `required`, `additionalProperties`, `items`, `enum`,
//! `const`, `minimum`, `maximum`, `minLength`, `maxLength`, `minItems`,
//! `maxItems`, `oneOf`, `anyOf` and local `$ref` (`#/$defs/NAME`). Annotations
//! (`$schema`, `$id`, `$defs`, `title`, `description`, `$comment`, `format`,
//! `default`, `examples`) are ignored. Any other keyword is reported as an
//! error, so a schema can never silently ask for more than is checked.

use serde_json::Value;

const ANNOTATIONS: &[&str] = &[
    "$schema",
    "$id",
    "$defs",
    "title",
    "description",
    "$comment",
    "format",
    "default",
    "examples",
];
const KEYWORDS: &[&str] = &[
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "enum",
    "const",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "oneOf",
    "anyOf",
    "$ref",
];

/// Validates `instance` against `schema` (whose `$defs` resolve `$ref`s).
/// Returns every violation as "POINTER: message"; empty when valid.
pub fn validate(schema: &Value, instance: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    check(schema, schema, instance, "", &mut errs, 0);
    errs
}

fn type_ok(t: &str, v: &Value) -> bool {
    match t {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
        _ => false,
    }
}

fn check(root: &Value, s: &Value, v: &Value, at: &str, errs: &mut Vec<String>, depth: u32) {
    if depth > 64 {
        errs.push(format!("{at}: schema nesting too deep (a $ref cycle?)"));
        return;
    }
    let Some(obj) = s.as_object() else {
        if s == &Value::Bool(false) {
            errs.push(format!("{at}: no value is allowed here"));
        }
        return;
    };
    for k in obj.keys() {
        if !KEYWORDS.contains(&k.as_str()) && !ANNOTATIONS.contains(&k.as_str()) {
            errs.push(format!(
                "{at}: schema keyword {k:?} is not supported by this validator"
            ));
        }
    }
    if let Some(r) = obj.get("$ref").and_then(Value::as_str) {
        match r
            .strip_prefix("#/$defs/")
            .and_then(|n| root["$defs"].get(n))
        {
            Some(target) => check(root, target, v, at, errs, depth + 1),
            None => errs.push(format!("{at}: unresolvable $ref {r:?}")),
        }
    }
    match obj.get("type") {
        Some(Value::String(t)) if !type_ok(t, v) => {
            errs.push(format!("{at}: expected {t}, got {v}"))
        }
        Some(Value::Array(ts)) if !ts.iter().any(|t| t.as_str().is_some_and(|t| type_ok(t, v))) => {
            errs.push(format!(
                "{at}: expected one of {}, got {v}",
                Value::Array(ts.clone())
            ))
        }
        _ => {}
    }
    if let Some(Value::Array(e)) = obj.get("enum")
        && !e.contains(v)
    {
        errs.push(format!(
            "{at}: {v} is not one of {}",
            Value::Array(e.clone())
        ));
    }
    if let Some(c) = obj.get("const")
        && c != v
    {
        errs.push(format!("{at}: expected {c}, got {v}"));
    }
    if let Some(n) = v.as_f64() {
        if let Some(min) = obj.get("minimum").and_then(Value::as_f64)
            && n < min
        {
            errs.push(format!("{at}: {v} is below the minimum {min}"));
        }
        if let Some(max) = obj.get("maximum").and_then(Value::as_f64)
            && n > max
        {
            errs.push(format!("{at}: {v} is above the maximum {max}"));
        }
    }
    if let Some(s) = v.as_str() {
        let n = s.chars().count() as u64;
        if obj
            .get("minLength")
            .and_then(Value::as_u64)
            .is_some_and(|m| n < m)
        {
            errs.push(format!("{at}: string shorter than minLength"));
        }
        if obj
            .get("maxLength")
            .and_then(Value::as_u64)
            .is_some_and(|m| n > m)
        {
            errs.push(format!("{at}: string longer than maxLength"));
        }
    }
    if let Some(a) = v.as_array() {
        let n = a.len() as u64;
        if obj
            .get("minItems")
            .and_then(Value::as_u64)
            .is_some_and(|m| n < m)
        {
            errs.push(format!("{at}: fewer than minItems items"));
        }
        if obj
            .get("maxItems")
            .and_then(Value::as_u64)
            .is_some_and(|m| n > m)
        {
            errs.push(format!("{at}: more than maxItems items"));
        }
        if let Some(items) = obj.get("items") {
            for (i, x) in a.iter().enumerate() {
                check(root, items, x, &format!("{at}/{i}"), errs, depth + 1);
            }
        }
    }
    if let Some(o) = v.as_object() {
        if let Some(Value::Array(req)) = obj.get("required") {
            for r in req.iter().filter_map(Value::as_str) {
                if !o.contains_key(r) {
                    errs.push(format!("{at}: required property {r:?} is missing"));
                }
            }
        }
        let props = obj.get("properties").and_then(Value::as_object);
        for (k, x) in o {
            let sub = format!("{at}/{}", super::locate::escape_token(k));
            match props.and_then(|p| p.get(k)) {
                Some(ps) => check(root, ps, x, &sub, errs, depth + 1),
                None => match obj.get("additionalProperties") {
                    Some(Value::Bool(false)) => errs.push(format!("{sub}: property not allowed")),
                    Some(ap @ Value::Object(_)) => check(root, ap, x, &sub, errs, depth + 1),
                    _ => {}
                },
            }
        }
    }
    for (kw, exactly_one) in [("oneOf", true), ("anyOf", false)] {
        if let Some(Value::Array(alts)) = obj.get(kw) {
            let mut passing = 0;
            let mut first_errs = Vec::new();
            for alt in alts {
                let mut e = Vec::new();
                check(root, alt, v, at, &mut e, depth + 1);
                if e.is_empty() {
                    passing += 1;
                } else if first_errs.is_empty() || e.len() < first_errs.len() {
                    first_errs = e;
                }
            }
            if passing == 0 {
                errs.push(format!(
                    "{at}: matches none of {kw} (closest: {})",
                    first_errs.join("; ")
                ));
            } else if exactly_one && passing > 1 {
                errs.push(format!("{at}: matches {passing} alternatives of oneOf"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subset_works() {
        let s = json!({"$defs":{"n":{"type":"integer","minimum":1,"maximum":3}},
            "type":"object","required":["a"],"additionalProperties":false,
            "properties":{"a":{"$ref":"#/$defs/n"},"b":{"type":"array","items":{"enum":["x","y"]},"maxItems":2},
                "c":{"oneOf":[{"type":"string","maxLength":2},{"const":7}]}}});
        assert!(validate(&s, &json!({"a":2,"b":["x"],"c":"ab"})).is_empty());
        assert!(validate(&s, &json!({"a":2,"c":7})).is_empty());
        let e = validate(&s, &json!({"a":4,"b":["z","x","y"],"c":"abc","d":1}));
        let all = e.join("\n");
        for w in [
            "/a: 4 is above",
            "/b/0",
            "more than maxItems",
            "/c: matches none",
            "/d: property not allowed",
        ] {
            assert!(all.contains(w), "{w} not in {all}");
        }
        assert!(!validate(&s, &json!({})).is_empty());
        assert!(!validate(&json!({"pattern":"x"}), &json!("x")).is_empty());
        assert!(!validate(&json!({"$ref":"#/$defs/nope"}), &json!(1)).is_empty());
    }
}
