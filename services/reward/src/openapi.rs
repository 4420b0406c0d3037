//! The OpenAPI 3.1 document served at `/openapi.json`. Written by hand; a test holds it to the
//! router (every route is documented, every documented route answers).

use serde_json::{Value, json};

/// Every route the service answers, as (method, path).
pub const ROUTES: &[(&str, &str)] = &[
    ("post", "/v1/evaluate"),
    ("post", "/v1/evaluate/batch"),
    ("get", "/openapi.json"),
    ("get", "/healthz"),
    ("get", "/readyz"),
];

fn scoring_options() -> Value {
    json!({
        "partial": {"type": "boolean", "default": false,
            "description": "Partial credit for wrong results: 0.1 if the SQL runs + 0.3 × cell-F1."},
        "format_gate": {"type": "boolean", "default": false,
            "description": "Score 0 unless the completion is <think>…</think><sql>…</sql>."},
        "tolerance": {"type": "number", "minimum": 0, "default": 1e-6,
            "description": "Relative tolerance for numbers that are not both exact integers."},
        "abs_tolerance": {"type": "number", "minimum": 0, "default": 1e-9,
            "description": "Absolute tolerance for numbers near zero."},
        "mode": {"type": "string", "enum": ["exact", "set"], "default": "exact",
            "description": "exact: rows as a multiset under one column permutation; set: BIRD-style set(pred) == set(gold), columns in order."},
        "ordered": {"type": "boolean",
            "description": "Row order matters. Default: whether the gold SQL's outermost query has ORDER BY; unordered without gold SQL."},
        "gold_sql": {"type": "string",
            "description": "Gold SQL: the ground truth when `ground_truth` is absent (executed, cached), else it decides ordering."},
        "columns": {"type": "array", "items": {"type": "string"},
            "description": "With `types`: DuckDB types for the columns of a list-of-row-objects ground truth."},
        "types": {"type": "array", "items": {"type": "string"}}
    })
}

fn with_options(mut properties: Value, required: &[&str], description: &str) -> Value {
    if let (Some(target), Value::Object(extra)) = (properties.as_object_mut(), scoring_options()) {
        target.extend(extra);
    }
    json!({
        "type": "object",
        "description": description,
        "required": required,
        "additionalProperties": true,
        "properties": properties
    })
}

/// The document.
pub fn document() -> Value {
    let message = json!({
        "type": "object", "required": ["role"],
        "properties": {"role": {"type": "string"}, "content": {"type": ["string", "array", "null"]}}
    });
    let evaluate_request = with_options(
        json!({
            "messages": {"type": "array", "items": {"$ref": "#/components/schemas/Message"},
                "description": "The chat; the completion is the last assistant message."},
            "ground_truth": {"$ref": "#/components/schemas/GroundTruth"}
        }),
        &["messages"],
        "The Fireworks evaluator shape {messages, ground_truth, ...kwargs}; other fields are ignored.",
    );
    let batch_request = with_options(
        json!({
            "completions": {"type": "array", "items": {"type": "string"}},
            "messages_list": {"type": "array", "items": {"type": "array", "items": {"$ref": "#/components/schemas/Message"}}},
            "messages": {"type": "array", "items": {"$ref": "#/components/schemas/Message"},
                "description": "The prompt (ignored; accepted for the trainer's convenience)."},
            "ground_truth": {"$ref": "#/components/schemas/GroundTruth"},
            "ground_truths": {"type": "array", "items": {"$ref": "#/components/schemas/GroundTruth"}}
        }),
        &[],
        "Many completions (`completions` or `messages_list`) against one `ground_truth` (a GRPO group) or one each (`ground_truths`).",
    );
    let metric = json!({
        "type": "object", "required": ["score", "reason", "is_score_valid"],
        "properties": {"score": {"type": "number"}, "reason": {"type": "string"}, "is_score_valid": {"type": "boolean"}}
    });
    let evaluation = json!({
        "type": "object", "required": ["score", "reason", "is_score_valid", "metrics"],
        "properties": {
            "score": {"type": "number", "minimum": 0, "maximum": 1},
            "reason": {"type": "string"},
            "is_score_valid": {"type": "boolean",
                "description": "false when infrastructure failed (executor down, timeout, gold SQL failed): do not train on the score."},
            "metrics": {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/MetricResult"},
                "description": "format_strict, format_approx, sql_extracted, executes, result_match, cell_f1, partial_credit."}
        }
    });
    let ground_truth = json!({
        "description": "Typed {columns, types, rows_json, ordered, sql} (rows as one JSON string, what sqlrft build writes); the earlier typed form with rows as a list; the tutorial's list of row objects; or a gold SQL string.",
        "oneOf": [
            {"type": "object", "required": ["columns", "rows_json"], "properties": {
                "columns": {"type": "array", "items": {"type": "string"}},
                "types": {"type": "array", "items": {"type": "string"}},
                "rows_json": {"type": "string", "description": "JSON list of rows, each a list of typed cells"},
                "ordered": {"type": "boolean"}, "sql": {"type": "string"}}},
            {"type": "object", "required": ["columns", "rows"], "properties": {
                "columns": {"type": "array", "items": {"type": "string"}},
                "types": {"type": "array", "items": {"type": "string"}},
                "rows": {"type": "array", "items": {"type": "array"}},
                "ordered": {"type": "boolean"}, "sql": {"type": "string"}}},
            {"type": "array", "items": {"type": "object"}},
            {"type": "string"}
        ]
    });
    let error = json!({"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}});
    let json_body = |schema: &str| json!({"content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}});
    let errors = json!({
        "400": {"description": "Unreadable request; the message names the field.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
        "401": {"description": "Missing or wrong bearer token."},
        "413": {"description": "Body larger than the limit."},
        "503": {"description": "Too many evaluations in flight; retry after Retry-After."}
    });
    let mut evaluate_responses = errors.clone();
    evaluate_responses["200"] =
        json!({"description": "The evaluation.", "content": json_body("Evaluation")["content"]});
    let mut batch_responses = errors;
    batch_responses["200"] = json!({"description": "One evaluation per completion, in order.",
        "content": {"application/json": {"schema": {"type": "object", "required": ["results"],
            "properties": {"results": {"type": "array", "items": {"$ref": "#/components/schemas/Evaluation"}}}}}}});
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "sqlrft reward service",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Scores SQL completions by executing them and comparing typed results with the ground truth."
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Message": message,
                "GroundTruth": ground_truth,
                "EvaluateRequest": evaluate_request,
                "BatchRequest": batch_request,
                "Evaluation": evaluation,
                "MetricResult": metric,
                "Error": error
            }
        },
        "paths": {
            "/v1/evaluate": {"post": {
                "summary": "Score one completion (Fireworks evaluator shape).",
                "security": [{"bearer": []}],
                "requestBody": {"required": true, "content": json_body("EvaluateRequest")["content"]},
                "responses": evaluate_responses
            }},
            "/v1/evaluate/batch": {"post": {
                "summary": "Score many completions in one call (a GRPO group).",
                "security": [{"bearer": []}],
                "requestBody": {"required": true, "content": json_body("BatchRequest")["content"]},
                "responses": batch_responses
            }},
            "/openapi.json": {"get": {"summary": "This document.", "responses": {"200": {"description": "OpenAPI 3.1 JSON."}}}},
            "/healthz": {"get": {"summary": "Liveness: the process answers.", "responses": {"200": {"description": "ok"}}}},
            "/readyz": {"get": {"summary": "Readiness: the executor runs `SELECT 1`.",
                "responses": {"200": {"description": "ready"}, "503": {"description": "the executor cannot run SQL"}}}}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented_and_nothing_else() {
        let doc = document();
        let paths = doc["paths"].as_object().unwrap();
        for (method, path) in ROUTES {
            assert!(paths[*path].get(*method).is_some(), "{method} {path}");
        }
        let documented: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
        assert_eq!(documented, ROUTES.len());
    }

    #[test]
    fn every_reference_resolves() {
        fn refs(value: &Value, out: &mut Vec<String>) {
            match value {
                Value::Object(map) => {
                    if let Some(Value::String(r)) = map.get("$ref") {
                        out.push(r.clone());
                    }
                    map.values().for_each(|v| refs(v, out));
                }
                Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
                _ => {}
            }
        }
        let doc = document();
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(!found.is_empty());
        for r in found {
            let name = r
                .strip_prefix("#/components/schemas/")
                .expect("local schema ref");
            assert!(doc["components"]["schemas"].get(name).is_some(), "{r}");
        }
    }
}
