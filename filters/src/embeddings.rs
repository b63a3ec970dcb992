//! OpenAI `POST /v1/embeddings` to Gemini's `batchEmbedContents` and back.
//!
//! Gemini has its own embeddings API: `POST {base}/models/{model}:batchEmbedContents` with
//! `{requests: [{model: "models/x", content: {parts: [{text}]}, outputDimensionality?}]}`,
//! answered `{embeddings: [{values: [...]}]}`. An OpenAI client (a RAG pipeline, the openai SDK)
//! routed to a Gemini model gets the OpenAI shape back: one `data` entry per input, in order,
//! floats or, when it asked `encoding_format: "base64"`, the little-endian `f32` bytes in
//! base64 (what OpenAI sends, and what the openai python SDK asks for by default).
//!
//! Gemini reports no token count for embeddings; the usage is the text estimate of
//! [`crate::tokens`] so the ledger has a number (marked as an estimate in the docs).

use crate::canonical::{CanonicalError, ErrorKind};
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};

/// What the response side needs from the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbedAsk {
    /// The model name the client sent (echoed in the response).
    pub client_model: String,
    /// `encoding_format: "base64"`.
    pub base64: bool,
    /// The estimated input tokens (Gemini reports none).
    pub prompt_tokens: u64,
}

#[derive(Deserialize)]
struct OpenAiEmbeddingsRequest {
    input: Value,
    #[serde(default)]
    dimensions: Option<u64>,
    #[serde(default)]
    encoding_format: Option<String>,
}

fn invalid(message: impl Into<String>) -> CanonicalError {
    CanonicalError::new(ErrorKind::InvalidRequest, message)
}

/// The texts of an OpenAI `input`: a string or an array of strings. Token arrays (`[1, 2]`,
/// `[[1, 2]]`) have no meaning for Gemini, which tokenizes itself: a 400 naming why.
fn texts(input: &Value) -> Result<Vec<&str>, CanonicalError> {
    let token_input = || {
        invalid("token-array `input` cannot be sent to a Gemini embeddings model (Gemini takes text only): send the text as a string or an array of strings")
            .with_param("input")
    };
    match input {
        Value::String(s) => Ok(vec![s.as_str()]),
        Value::Array(items) if items.is_empty() => {
            Err(invalid("`input` must not be an empty array").with_param("input"))
        }
        Value::Array(items) => {
            items
                .iter()
                .map(|item| match item {
                    Value::String(s) => Ok(s.as_str()),
                    Value::Number(_) | Value::Array(_) => Err(token_input()),
                    _ => Err(invalid("`input` must be a string or an array of strings")
                        .with_param("input")),
                })
                .collect()
        }
        _ => Err(invalid("`input` must be a string or an array of strings").with_param("input")),
    }
}

/// The Gemini `batchEmbedContents` body for an OpenAI embeddings request to `service_id`.
pub fn to_gemini(
    body: &[u8],
    client_model: &str,
    service_id: &str,
) -> Result<(Vec<u8>, EmbedAsk), CanonicalError> {
    let request: OpenAiEmbeddingsRequest = serde_json::from_slice(body).map_err(|e| {
        invalid(format!("invalid embeddings request: {e}")).with_code("invalid_json")
    })?;
    let base64 = match request.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(invalid(format!(
                "`encoding_format` must be `float` or `base64`, not `{other}`"
            ))
            .with_param("encoding_format"))
        }
    };
    let texts = texts(&request.input)?;
    let id = service_id.strip_prefix("models/").unwrap_or(service_id);
    let resource = format!("models/{id}");
    let mut units = 0u64;
    let requests: Vec<Value> = texts
        .iter()
        .map(|text| {
            units = units.saturating_add(crate::tokens::text_units(text));
            let mut entry = json!({
                "model": resource,
                "content": {"parts": [{"text": text}]},
            });
            if let (Some(d), Some(obj)) = (request.dimensions, entry.as_object_mut()) {
                obj.insert("outputDimensionality".into(), json!(d));
            }
            entry
        })
        .collect();
    let out = serde_json::to_vec(&json!({ "requests": requests }))
        .map_err(|e| CanonicalError::new(ErrorKind::Internal, e.to_string()))?;
    Ok((
        out,
        EmbedAsk {
            client_model: client_model.to_string(),
            base64,
            prompt_tokens: units
                .div_ceil(crate::tokens::UNITS_PER_TOKEN)
                .max(texts.len() as u64),
        },
    ))
}

#[derive(Deserialize)]
struct GeminiEmbeddings {
    #[serde(default)]
    embeddings: Vec<GeminiValues>,
    /// `embedContent` answers a single `embedding`.
    #[serde(default)]
    embedding: Option<GeminiValues>,
}

#[derive(Deserialize)]
struct GeminiValues {
    #[serde(default)]
    values: Vec<f64>,
}

/// The OpenAI embeddings response for a Gemini `batchEmbedContents` (or `embedContent`)
/// answer.
pub fn from_gemini(body: &[u8], ask: &EmbedAsk) -> Result<Vec<u8>, CanonicalError> {
    let parsed: GeminiEmbeddings = serde_json::from_slice(body).map_err(|e| {
        CanonicalError::new(
            ErrorKind::BadGateway,
            format!("the Gemini embeddings answer could not be read: {e}"),
        )
    })?;
    let mut all = parsed.embeddings;
    if let Some(one) = parsed.embedding {
        all.push(one);
    }
    let data: Vec<Value> = all
        .into_iter()
        .enumerate()
        .map(|(index, e)| {
            let embedding = if ask.base64 {
                let mut bytes = Vec::with_capacity(e.values.len() * 4);
                for v in &e.values {
                    bytes.extend_from_slice(&(*v as f32).to_le_bytes());
                }
                Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(e.values)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    serde_json::to_vec(&json!({
        "object": "list",
        "data": data,
        "model": ask.client_model,
        "usage": {"prompt_tokens": ask.prompt_tokens, "total_tokens": ask.prompt_tokens},
    }))
    .map_err(|e| CanonicalError::new(ErrorKind::Internal, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn single_and_batch_inputs_with_dimensions() {
        let (body, ask) = to_gemini(
            br#"{"model":"emb","input":"hello world"}"#,
            "emb",
            "gemini-embedding-001",
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            parse(&body),
            json!({"requests":[{"model":"models/gemini-embedding-001","content":{"parts":[{"text":"hello world"}]}}]})
        );
        assert!(!ask.base64);
        assert!(ask.prompt_tokens >= 1);
        let (body, _) = to_gemini(
            br#"{"model":"emb","input":["a","b"],"dimensions":8,"encoding_format":"float"}"#,
            "emb",
            "models/text-embedding-004",
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        let v = parse(&body);
        assert_eq!(v["requests"].as_array().map(Vec::len), Some(2));
        assert_eq!(v["requests"][1]["content"]["parts"][0]["text"], "b");
        assert_eq!(v["requests"][0]["outputDimensionality"], 8);
        assert_eq!(v["requests"][0]["model"], "models/text-embedding-004");
    }

    #[test]
    fn token_arrays_and_bad_inputs_are_400s() {
        for body in [
            r#"{"input":[1,2,3]}"#,
            r#"{"input":[[1,2],[3]]}"#,
            r#"{"input":[]}"#,
            r#"{"input":{"x":1}}"#,
            r#"{"input":"x","encoding_format":"int8"}"#,
            r#"{"model":"x"}"#,
            "nope",
        ] {
            let e = to_gemini(body.as_bytes(), "m", "g").err();
            assert_eq!(e.map(|e| e.status), Some(400), "{body}");
        }
        let e = to_gemini(br#"{"input":[1]}"#, "m", "g").err();
        assert!(e.is_some_and(|e| e.message.contains("token-array")));
    }

    #[test]
    fn answers_in_openai_shape_floats_and_base64() {
        let ask = EmbedAsk {
            client_model: "emb".into(),
            base64: false,
            prompt_tokens: 3,
        };
        let out = from_gemini(
            br#"{"embeddings":[{"values":[0.5,-1.0]},{"values":[2.0]}]}"#,
            &ask,
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            parse(&out),
            json!({"object":"list","data":[
                {"object":"embedding","index":0,"embedding":[0.5,-1.0]},
                {"object":"embedding","index":1,"embedding":[2.0]}],
              "model":"emb","usage":{"prompt_tokens":3,"total_tokens":3}})
        );
        let ask = EmbedAsk {
            base64: true,
            ..ask
        };
        let out = from_gemini(br#"{"embedding":{"values":[1.0,0.5]}}"#, &ask)
            .unwrap_or_else(|e| panic!("{e:?}"));
        let v = parse(&out);
        let text = v["data"][0]["embedding"].as_str().unwrap_or_default();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .unwrap_or_default();
        let mut expected = 1.0f32.to_le_bytes().to_vec();
        expected.extend_from_slice(&0.5f32.to_le_bytes());
        assert_eq!(bytes, expected);
        assert_eq!(
            from_gemini(b"<html>", &ask).err().map(|e| e.status),
            Some(502)
        );
    }
}
