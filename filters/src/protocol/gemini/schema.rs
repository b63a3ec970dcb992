//! Schemas both ways: Gemini's OpenAPI-subset `Schema` -> canonical JSON Schema (decode), and
//! canonical JSON Schema -> Gemini (encode).
//!
//! Encoding choice: Gemini has two places for a schema. `parameters` / `responseSchema` take
//! the protobuf `Schema` message (an OpenAPI 3.0 subset; any unknown keyword is a hard 400,
//! `type` is a single enum, `enum` holds strings only, an OBJECT needs non-empty
//! `properties`), supported by every Gemini model. `parametersJsonSchema` /
//! `responseJsonSchema` take JSON Schema as-is (newer models). We convert to the `Schema`
//! subset whenever that is lossless up to annotations (`$schema`, `additionalProperties:
//! false`, unsupported `format` hints, ...), inlining non-recursive local `$ref`s; anything the
//! subset cannot express (`allOf`, `exclusiveMinimum`, tuple `items`, recursive `$ref`, map
//! objects via `additionalProperties: {schema}`, numeric `enum`, ...) makes us send the original
//! schema in the JSON Schema field instead, so no constraint is ever silently lost.

use serde_json::{Map, Value};

/// Keywords of the `Schema` message that we copy unchanged.
const COPIED: &[&str] = &[
    "title",
    "description",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "minProperties",
    "maxProperties",
    "minimum",
    "maximum",
    "pattern",
    "default",
    "example",
    "propertyOrdering",
];

/// Annotations with no effect on what the model may produce (or, for `additionalProperties:
/// false`, an effect the model already gets from `properties`), removed rather than sent.
const STRIPPED: &[&str] = &[
    "$schema",
    "$id",
    "$comment",
    "$anchor",
    "$defs",
    "definitions",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
    "contentEncoding",
    "contentMediaType",
    "strict",
];

/// How deep `$ref` inlining may go before we call the schema recursive.
const MAX_DEPTH: usize = 40;

/// Canonical JSON Schema -> Gemini `Schema`, or `None` when the subset cannot express it.
pub fn to_gemini_schema(schema: &Value) -> Option<Value> {
    let defs = root_defs(schema);
    convert(schema, &defs, 0)
}

/// The JSON Schema to send in `parametersJsonSchema` / `responseJsonSchema`: the canonical
/// schema without `$schema` (Google rejects a draft URL it does not know).
pub fn to_json_schema(schema: &Value) -> Value {
    let mut out = schema.clone();
    if let Value::Object(map) = &mut out {
        map.remove("$schema");
    }
    out
}

/// Whether a (canonical) object schema declares no properties at all: Gemini wants such a
/// function's `parameters` omitted.
pub fn is_empty_object(schema: &Value) -> bool {
    match schema {
        Value::Null => true,
        Value::Object(map) => {
            let no_props = map
                .get("properties")
                .and_then(Value::as_object)
                .is_none_or(Map::is_empty);
            let only_object_keywords = map.iter().all(|(k, v)| match k.as_str() {
                "type" => v.as_str() == Some("object"),
                "properties" | "required" => true,
                "additionalProperties" => v.is_boolean(),
                k => STRIPPED.contains(&k) || k == "title" || k == "description",
            });
            no_props && only_object_keywords
        }
        _ => false,
    }
}

fn root_defs(schema: &Value) -> Map<String, Value> {
    let mut defs = Map::new();
    for key in ["$defs", "definitions"] {
        if let Some(Value::Object(d)) = schema.get(key) {
            for (name, def) in d {
                defs.insert(format!("#/{key}/{name}"), def.clone());
            }
        }
    }
    defs
}

fn gemini_type(t: &str) -> Option<&'static str> {
    Some(match t {
        "string" => "STRING",
        "number" => "NUMBER",
        "integer" => "INTEGER",
        "boolean" => "BOOLEAN",
        "array" => "ARRAY",
        "object" => "OBJECT",
        _ => return None,
    })
}

/// `format` values Gemini documents for each type; anything else is only a hint and is dropped.
fn format_supported(ty: Option<&str>, format: &str) -> bool {
    match ty {
        Some("STRING") => matches!(format, "enum" | "date-time"),
        Some("NUMBER") => matches!(format, "float" | "double"),
        Some("INTEGER") => matches!(format, "int32" | "int64"),
        _ => false,
    }
}

fn is_null_schema(v: &Value) -> bool {
    v.get("type").and_then(Value::as_str) == Some("null")
        && v.as_object().is_some_and(|m| m.len() == 1)
}

fn convert(schema: &Value, defs: &Map<String, Value>, depth: usize) -> Option<Value> {
    if depth > MAX_DEPTH {
        return None;
    }
    let map = schema.as_object()?;

    // A local `$ref`: inline its target; only annotations may sit beside it.
    if let Some(reference) = map.get("$ref") {
        let target = defs.get(reference.as_str()?)?;
        let mut inlined = convert(target, defs, depth + 1)?;
        for (k, v) in map {
            match k.as_str() {
                "$ref" => {}
                "description" | "title" => {
                    if let Value::Object(m) = &mut inlined {
                        m.insert(k.clone(), v.clone());
                    }
                }
                k if STRIPPED.contains(&k) => {}
                _ => return None,
            }
        }
        return Some(inlined);
    }

    let mut out = Map::new();
    let mut nullable = map
        .get("nullable")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut ty: Option<&'static str> = None;

    match map.get("type") {
        None => {}
        Some(Value::String(t)) => ty = Some(gemini_type(&t.to_ascii_lowercase())?),
        Some(Value::Array(types)) => {
            let mut non_null = Vec::new();
            for t in types {
                match t.as_str()?.to_ascii_lowercase().as_str() {
                    "null" => nullable = true,
                    other => non_null.push(gemini_type(other)?),
                }
            }
            if non_null.len() != 1 {
                return None;
            }
            ty = non_null.first().copied();
        }
        Some(_) => return None,
    }

    for (key, value) in map {
        match key.as_str() {
            "type" | "nullable" => {}
            "enum" => {
                let mut values = Vec::new();
                for v in value.as_array()? {
                    match v {
                        Value::String(s) => values.push(Value::String(s.clone())),
                        Value::Null => nullable = true,
                        _ => return None,
                    }
                }
                if ty.is_none() {
                    ty = Some("STRING");
                }
                out.insert("enum".into(), Value::Array(values));
            }
            "const" => {
                let s = value.as_str()?;
                if ty.is_none() {
                    ty = Some("STRING");
                }
                out.insert("enum".into(), Value::Array(vec![Value::String(s.into())]));
            }
            "format" => {
                // Checked against the type below, once the type is known.
            }
            "properties" => {
                let mut props = Map::new();
                for (name, prop) in value.as_object()? {
                    props.insert(name.clone(), convert(prop, defs, depth + 1)?);
                }
                out.insert("properties".into(), Value::Object(props));
            }
            "required" => {
                let names: Vec<Value> = value
                    .as_array()?
                    .iter()
                    .filter(|n| {
                        // Gemini rejects a required name with no property behind it.
                        n.as_str()
                            .is_some_and(|n| map.get("properties").and_then(|p| p.get(n)).is_some())
                    })
                    .cloned()
                    .collect();
                if !names.is_empty() {
                    out.insert("required".into(), Value::Array(names));
                }
            }
            "items" => {
                if !value.is_object() {
                    return None;
                }
                out.insert("items".into(), convert(value, defs, depth + 1)?);
            }
            "anyOf" | "oneOf" => {
                if key == "oneOf" && map.contains_key("anyOf") {
                    return None;
                }
                let mut variants = Vec::new();
                for variant in value.as_array()? {
                    if is_null_schema(variant) {
                        nullable = true;
                    } else {
                        variants.push(convert(variant, defs, depth + 1)?);
                    }
                }
                if variants.is_empty() {
                    return None;
                }
                out.insert("anyOf".into(), Value::Array(variants));
            }
            "additionalProperties" => {
                // `false`/`true`/`{}` only restate what `properties` already tells the model;
                // a schema for extra keys (a map type) is not expressible.
                let harmless = value.is_boolean() || value.as_object().is_some_and(Map::is_empty);
                if !harmless {
                    return None;
                }
            }
            k if COPIED.contains(&k) => {
                out.insert(k.to_string(), value.clone());
            }
            k if STRIPPED.contains(&k) => {}
            _ => return None,
        }
    }

    if let Some(Value::String(format)) = map.get("format") {
        if format_supported(ty, format) {
            out.insert("format".into(), Value::String(format.clone()));
        }
    }
    let no_properties = out
        .get("properties")
        .and_then(Value::as_object)
        .is_none_or(Map::is_empty);
    match ty {
        // Gemini: "properties: should be non-empty for OBJECT type".
        Some("OBJECT") if no_properties => return None,
        Some("ARRAY") if !out.contains_key("items") => return None,
        None if !out.contains_key("anyOf") && !out.contains_key("enum") => {
            // A schema without a type (an "anything" value) has no Gemini equivalent.
            return None;
        }
        _ => {}
    }
    if let Some(t) = ty {
        out.insert("type".into(), Value::String(t.into()));
    }
    if nullable {
        out.insert("nullable".into(), Value::Bool(true));
    }
    Some(Value::Object(out))
}

/// Gemini `Schema` (decoded from a client) -> canonical JSON Schema: lower-case types,
/// `nullable: true` turned into a `null` type / variant, int64 counts sent as strings turned
/// into numbers. Everything else (including `propertyOrdering`) is kept.
pub fn from_gemini_schema(mut schema: Value) -> Value {
    crate::protocol::util::lowercase_schema_types(&mut schema);
    normalize(&mut schema);
    schema
}

/// Schema keywords Google also accepts in snake_case (protobuf JSON), and their JSON Schema names.
const SNAKE_KEYWORDS: &[(&str, &str)] = &[
    ("any_of", "anyOf"),
    ("min_items", "minItems"),
    ("max_items", "maxItems"),
    ("min_length", "minLength"),
    ("max_length", "maxLength"),
    ("min_properties", "minProperties"),
    ("max_properties", "maxProperties"),
    ("property_ordering", "propertyOrdering"),
];

fn normalize(schema: &mut Value) {
    let Value::Object(map) = schema else {
        return;
    };
    for (snake, camel) in SNAKE_KEYWORDS {
        if !map.contains_key(*camel) {
            if let Some(v) = map.remove(*snake) {
                map.insert((*camel).to_string(), v);
            }
        }
    }
    for key in [
        "minItems",
        "maxItems",
        "minLength",
        "maxLength",
        "minProperties",
        "maxProperties",
    ] {
        if let Some(Value::String(s)) = map.get(key) {
            if let Ok(n) = s.parse::<u64>() {
                map.insert(key.into(), Value::from(n));
            }
        }
    }
    for key in ["minimum", "maximum"] {
        if let Some(Value::String(s)) = map.get(key) {
            if let Some(n) = s.parse::<f64>().ok().and_then(serde_json::Number::from_f64) {
                map.insert(key.into(), Value::Number(n));
            }
        }
    }
    if let Some(Value::Object(props)) = map.get_mut("properties") {
        for prop in props.values_mut() {
            normalize(prop);
        }
    }
    if let Some(items) = map.get_mut("items") {
        normalize(items);
    }
    if let Some(Value::Array(variants)) = map.get_mut("anyOf") {
        for v in variants {
            normalize(v);
        }
    }
    match map.remove("nullable") {
        Some(Value::Bool(true)) => {
            let null = Value::String("null".into());
            match map.get_mut("type") {
                Some(Value::String(t)) => {
                    let t = std::mem::take(t);
                    map.insert(
                        "type".into(),
                        Value::Array(vec![Value::String(t), null.clone()]),
                    );
                }
                Some(Value::Array(types)) => {
                    if !types.contains(&null) {
                        types.push(null.clone());
                    }
                }
                _ => {
                    if let Some(Value::Array(variants)) = map.get_mut("anyOf") {
                        variants.push(serde_json::json!({"type": "null"}));
                    }
                }
            }
            if let Some(Value::Array(values)) = map.get_mut("enum") {
                if !values.contains(&Value::Null) {
                    values.push(Value::Null);
                }
            }
        }
        Some(Value::Bool(false)) | None => {}
        Some(other) => {
            // Not a boolean: not ours to interpret; keep it.
            map.insert("nullable".into(), other);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn simple_schema_converts_with_upper_case_types() {
        let s = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City", "format": "uri"},
                "unit": {"type": ["string", "null"], "enum": ["c", "f", null]},
                "days": {"type": "integer", "minimum": 1, "format": "int32"},
                "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3}
            },
            "required": ["city", "ghost"],
            "additionalProperties": false
        });
        let g = to_gemini_schema(&s).unwrap();
        assert_eq!(
            g,
            json!({
                "type": "OBJECT",
                "properties": {
                    "city": {"type": "STRING", "description": "City"},
                    "unit": {"type": "STRING", "enum": ["c", "f"], "nullable": true},
                    "days": {"type": "INTEGER", "minimum": 1, "format": "int32"},
                    "tags": {"type": "ARRAY", "items": {"type": "STRING"}, "maxItems": 3}
                },
                "required": ["city"]
            })
        );
    }

    #[test]
    fn refs_are_inlined_and_optional_any_of_becomes_nullable() {
        let s = json!({
            "type": "object",
            "$defs": {"Pt": {"type": "object", "properties": {"x": {"type": "number"}}}},
            "properties": {
                "at": {"$ref": "#/$defs/Pt", "description": "where"},
                "kind": {"anyOf": [{"const": "a"}, {"type": "null"}]}
            }
        });
        let g = to_gemini_schema(&s).unwrap();
        assert_eq!(
            g["properties"]["at"],
            json!({"type": "OBJECT", "properties": {"x": {"type": "NUMBER"}}, "description": "where"})
        );
        assert_eq!(
            g["properties"]["kind"],
            json!({"anyOf": [{"type": "STRING", "enum": ["a"]}], "nullable": true})
        );
    }

    #[test]
    fn inexpressible_schemas_fall_back() {
        for s in [
            json!({"type": "object", "properties": {"n": {"type": "integer", "exclusiveMinimum": 0}}}),
            json!({"type": "object", "properties": {"m": {"type": "object", "additionalProperties": {"type": "string"}}}}),
            json!({"type": "object", "properties": {"e": {"enum": [1, 2]}}}),
            json!({"type": "object", "properties": {"t": {"type": ["string", "number"]}}}),
            json!({"type": "object", "properties": {"o": {"type": "object"}}}),
            json!({"$defs": {"N": {"type": "object", "properties": {"next": {"$ref": "#/$defs/N"}}}},
                   "type": "object", "properties": {"n": {"$ref": "#/$defs/N"}}}),
            json!({"type": "object", "properties": {"a": {"allOf": [{"type": "string"}]}}}),
        ] {
            assert_eq!(to_gemini_schema(&s), None, "{s}");
        }
    }

    #[test]
    fn empty_objects_detected() {
        assert!(is_empty_object(
            &json!({"type": "object", "properties": {}})
        ));
        assert!(is_empty_object(
            &json!({"type": "object", "additionalProperties": false})
        ));
        assert!(is_empty_object(&Value::Null));
        assert!(!is_empty_object(
            &json!({"type": "object", "properties": {"a": {"type": "string"}}})
        ));
        assert!(!is_empty_object(
            &json!({"type": "object", "additionalProperties": {"type": "string"}})
        ));
    }

    #[test]
    fn gemini_schema_normalised() {
        let s = json!({
            "type": "OBJECT",
            "properties": {
                "a": {"type": "STRING", "nullable": true, "enum": ["x"]},
                "b": {"type": "ARRAY", "items": {"type": "INTEGER"}, "minItems": "1"},
                "c": {"anyOf": [{"type": "STRING"}], "nullable": true}
            },
            "propertyOrdering": ["a", "b", "c"]
        });
        assert_eq!(
            from_gemini_schema(s),
            json!({
                "type": "object",
                "properties": {
                    "a": {"type": ["string", "null"], "enum": ["x", null]},
                    "b": {"type": "array", "items": {"type": "integer"}, "minItems": 1},
                    "c": {"anyOf": [{"type": "string"}, {"type": "null"}]}
                },
                "propertyOrdering": ["a", "b", "c"]
            })
        );
    }
}
