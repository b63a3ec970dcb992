//! What the response side of a translation needs to know about the request: set when the
//! request is encoded, read when the response or stream is encoded back.

use super::request::{ChatRequest, ToolNamespaces};
use bitrouter_config::ModelCapabilities;

/// Request-derived facts the response encoders and decoders need.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ResponseContext {
    /// The model name the client asked for: responses carry it back, not the upstream's id.
    pub client_model: String,
    /// The client asked for a stream.
    pub stream: bool,
    /// The client wants usage in the stream (OpenAI `stream_options.include_usage`).
    pub include_usage: bool,
    /// Structured output emulated with a forced tool (Anthropic): its name. The response
    /// decoders turn that tool's input back into message text.
    pub structured_output_tool: Option<String>,
    /// For a Gemini client without `?alt=sse`: answer the stream as a JSON array.
    pub json_array_stream: bool,
    /// The request's namespaced tools (Responses clients): the Responses encoders name a call
    /// to a flattened name by its namespace and short name again, and the Responses decoders
    /// flatten an upstream's namespaced call the same way the request was.
    pub tool_namespaces: ToolNamespaces,
}

impl ResponseContext {
    pub fn for_request(client_model: &str, request: &ChatRequest) -> ResponseContext {
        ResponseContext {
            client_model: client_model.to_string(),
            stream: request.stream,
            include_usage: request.include_usage,
            structured_output_tool: None,
            json_array_stream: false,
            tool_namespaces: ToolNamespaces::for_request(request),
        }
    }
}

/// Settings for encoding a request for a particular upstream.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EncodeOptions {
    /// What the target model accepts: which field carries the output cap, the cap to send
    /// when the target requires one and the client gave none, whether sampling parameters and
    /// `reasoning_effort` are accepted, how thinking is controlled. The proxy takes it from
    /// `Provider::capabilities` (the config's table with the provider's per-model overrides);
    /// the encoders never guess from the model id.
    pub capabilities: ModelCapabilities,
}

impl EncodeOptions {
    /// Options for `model_id` from the built-in capability table alone (no provider
    /// overrides): for tests, benchmarks and tools without a config.
    pub fn for_model(model_id: &str) -> EncodeOptions {
        EncodeOptions {
            capabilities: ModelCapabilities::for_model(model_id),
        }
    }
}

/// An encoded upstream request plus what the translation had to leave out.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Encoded {
    pub body: Vec<u8>,
    /// Request fields with no equivalent in the target protocol, dropped.
    pub dropped: Vec<String>,
    /// Set by encoders that emulate structured output with a forced tool.
    pub structured_output_tool: Option<String>,
}
