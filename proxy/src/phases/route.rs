//! Routing: read the `model` (from the body, or the path for Gemini), resolve it through the
//! routing table, and prepare what each candidate upstream needs: the same bytes with only the
//! model changed when the upstream speaks the client's protocol, or a re-encoded body when it
//! speaks another one.

use super::RequestCtx;
use crate::downstream::Downstream;
use crate::endpoints::Endpoint;
use crate::error::ProxyError;
use crate::surface::{self, Surface};
use bitrouter_config::{Preset, Protocol, Resolution, Target};
use bitrouter_filters::body;
use bitrouter_filters::canonical::{CanonicalError, ChatRequest, EncodeOptions, ResponseContext};
use bitrouter_filters::{protocol, translate};
use bytes::Bytes;
use std::ops::Range;
use std::sync::OnceLock;

/// A routed request: the candidates in order and the body to adapt for each.
pub struct Plan {
    pub inbound: Protocol,
    pub stream: bool,
    pub resolution: Resolution,
    /// Gemini clients choose the stream framing: `?alt=sse` (SSE) or none (a JSON array).
    gemini_sse: bool,
    /// `POST /v1/messages/count_tokens`: Anthropic upstreams get the same sub-path.
    pub count_tokens: bool,
    /// The output cap and answers the request asks for, read with the model (`None` for
    /// Gemini bodies, which routing does not peek: budgets read them when they need them).
    pub output_ask: Option<crate::govern::bound::OutputAsk>,
    /// Stream hooks are active: a same-protocol stream is decoded and re-encoded (through the
    /// hooks) instead of passed through.
    hooked: bool,
    body: Bytes,
    model_span: Option<Range<usize>>,
    /// The request in canonical form, decoded on first need (only cross-protocol attempts
    /// need it) and reused by every later attempt.
    canonical: OnceLock<Result<ChatRequest, CanonicalError>>,
    /// An OpenAI endpoint other than chat: it goes same-protocol to providers that speak
    /// OpenAI's shape, at the endpoint's own sub-path (embeddings also to Gemini, translated).
    pub endpoint: Option<Endpoint>,
    /// A multipart upload: `body` is only its prefix (up to the `model` field); the rest
    /// streams from the client during the attempt.
    pub upload: Option<super::upload::Upload>,
}

/// One upstream call to make.
pub struct Attempt<'a> {
    pub target: &'a Target,
    /// The client's protocol.
    pub client: Protocol,
    /// The protocol spoken upstream.
    pub protocol: Protocol,
    /// Path and query on the provider's origin.
    pub path: String,
    pub body: Bytes,
    /// Set when the upstream speaks another protocol than the client.
    pub translation: Option<Translation>,
    /// A `count_tokens` call (the provider counts).
    pub count_tokens: bool,
    /// An OpenAI chat stream passed through whose usage chunk bitrouter asked for (the client
    /// did not): the relay removes it.
    pub strip_usage: bool,
    /// A Gemini embeddings answer to turn back into OpenAI's shape.
    pub reshape: Option<bitrouter_filters::embeddings::EmbedAsk>,
    /// A multipart upload: the head for the body, whose prefix is `body` and whose rest
    /// streams from the client.
    pub upload: Option<super::upload::UploadHead<'a>>,
}

/// What the response side of a cross-protocol attempt needs.
pub struct Translation {
    pub upstream: Protocol,
    pub client: Protocol,
    pub ctx: ResponseContext,
    /// Request fields with no equivalent upstream (reported in `x-bitrouter-dropped-params`).
    pub dropped: Vec<String>,
}

/// Reads the model and resolves it.
pub fn plan(
    dn: &Downstream<'_>,
    gemini_sse: bool,
    body: Bytes,
    ctx: &mut RequestCtx,
) -> Result<Plan, ProxyError> {
    let (inbound, model, stream, model_span, output_ask) = match ctx.surface {
        Surface::Gemini { stream } => {
            body::validate_json(&body)?;
            let model =
                surface::gemini_model(dn.req().uri.path()).ok_or(ProxyError::MissingModel)?;
            (Protocol::GenerateContent, model, stream, None, None)
        }
        other => {
            let inbound = other
                .protocol()
                .ok_or_else(|| ProxyError::Internal("routing a non-LLM surface".into()))?;
            let peek = body::peek(&body)?;
            let endpoint = match other {
                Surface::Endpoint(e) => Some(e),
                _ => None,
            };
            let ask = crate::govern::bound::OutputAsk {
                // No token output (embeddings, images, ...): the budget reserves the input
                // bound alone.
                max_tokens: if endpoint.is_none_or(|e| e.has_token_output()) {
                    peek.max_tokens
                } else {
                    Some(0)
                },
                choices: peek.choices.unwrap_or(1).clamp(1, 128),
            };
            let model = peek.model.ok_or(ProxyError::MissingModel)?;
            // Of the OpenAI endpoints, only completions stream.
            let stream = peek.stream && endpoint.is_none_or(|e| e == Endpoint::Completions);
            (inbound, model, stream, peek.model_span, Some(ask))
        }
    };
    let count_tokens = ctx.surface == Surface::CountTokens;
    let stream = stream && !count_tokens;
    ctx.stream = stream;
    let resolution = ctx.snapshot.table.resolve(&model)?;
    ctx.model = Some(model);
    Ok(Plan {
        inbound,
        stream,
        resolution,
        gemini_sse,
        count_tokens,
        output_ask,
        hooked: !ctx.snapshot.stream_hooks.is_empty() || ctx.snapshot.guards_down(),
        body,
        model_span,
        canonical: OnceLock::new(),
        endpoint: match ctx.surface {
            Surface::Endpoint(e) => Some(e),
            _ => None,
        },
        upload: None,
    })
}

/// The plan of a multipart upload, from its prefix (which holds the `model` field).
pub fn plan_upload(
    endpoint: Endpoint,
    model: String,
    prefix: Bytes,
    upload: super::upload::Upload,
    ctx: &mut RequestCtx,
) -> Result<Plan, ProxyError> {
    ctx.stream = false;
    let resolution = ctx.snapshot.table.resolve(&model)?;
    ctx.model = Some(model);
    Ok(Plan {
        inbound: Protocol::ChatCompletions,
        stream: false,
        resolution,
        gemini_sse: false,
        count_tokens: false,
        // Audio is billed by duration, which no prefix bounds: the budget reserves the
        // prefix's input bound (docs/endpoints.md).
        output_ask: Some(crate::govern::bound::OutputAsk {
            max_tokens: Some(0),
            choices: 1,
        }),
        hooked: false,
        body: prefix,
        model_span: None,
        canonical: OnceLock::new(),
        endpoint: Some(endpoint),
        upload: Some(upload),
    })
}

impl Plan {
    /// The upstream call for `target`. The provider's own protocol list decides: the client's
    /// protocol when the provider speaks it (bytes pass through with only `model` rewritten, or
    /// only the Gemini path), else the provider's preferred protocol with the body translated.
    pub fn attempt<'a>(&'a self, target: &'a Target) -> Result<Attempt<'a>, ProxyError> {
        if let Some(endpoint) = self.endpoint {
            return self.endpoint_attempt(endpoint, target);
        }
        let provider = &target.provider;
        let protocol = if provider
            .protocols_for(&target.service_id)
            .contains(&self.inbound)
        {
            self.inbound
        } else {
            target.protocol
        };
        let mut path = provider.endpoint_path(protocol, &target.service_id, self.stream);
        if self.count_tokens {
            // Only an upstream that speaks Messages counts tokens itself (the caller skips the
            // others and estimates when none is left).
            if protocol != Protocol::Messages {
                return Err(ProxyError::Internal(
                    "count_tokens routed to a provider that does not speak messages".into(),
                ));
            }
            path.push_str("/count_tokens");
        }
        let same = protocol == self.inbound;
        // With stream hooks active a same-protocol stream is decoded, hooked and re-encoded;
        // the request itself still goes as the client sent it.
        let hooked_stream = self.hooked && self.stream && !self.count_tokens;
        if same
            && !hooked_stream
            && protocol == Protocol::GenerateContent
            && self.stream
            && !self.gemini_sse
        {
            // The response passes through, so it keeps the client's framing: no `alt=sse`, a
            // JSON array comes back.
            if let Some(p) = path.strip_suffix("?alt=sse") {
                path = p.to_string();
            }
        }
        // A token count passes through as sent: an overlay's sampling parameters do not change
        // the count, and the counting endpoint refuses generation-only fields.
        if same && !hooked_stream && (self.resolution.overlay.is_none() || self.count_tokens) {
            let body = self.passthrough_body(&target.service_id);
            let (body, strip_usage) = self.ask_usage(protocol, body);
            return Ok(Attempt {
                target,
                client: self.inbound,
                protocol,
                path,
                body,
                translation: None,
                count_tokens: self.count_tokens,
                strip_usage,
                reshape: None,
                upload: None,
            });
        }
        let canonical = self.canonical()?;
        let mut request = canonical.clone();
        request.model = target.service_id.clone();
        if let Some(overlay) = &self.resolution.overlay {
            apply_overlay(&mut request, overlay);
        }
        let (body, structured_output_tool, encode_dropped) =
            if same && self.resolution.overlay.is_none() {
                // Hooked: the stream is decoded and re-encoded, and the chat encoder leaves out
                // a usage chunk the client did not ask for.
                let body = self.ask_usage(protocol, self.passthrough_body(&target.service_id));
                (body.0, None, Vec::new())
            } else {
                let options = EncodeOptions {
                    capabilities: target.provider.capabilities(&target.service_id),
                };
                let encoded = translate::translate_request(&request, protocol, &options)
                    .map_err(ProxyError::Translate)?;
                (
                    Bytes::from(encoded.body),
                    encoded.structured_output_tool,
                    encoded.dropped,
                )
            };
        if same && !hooked_stream {
            // Same protocol with a preset or variant applied: the request was re-encoded with
            // the overlay (the chat encoder asks a stream for usage), the response passes
            // through.
            return Ok(Attempt {
                target,
                client: self.inbound,
                protocol,
                path,
                body,
                translation: None,
                count_tokens: false,
                strip_usage: self.stream
                    && protocol == Protocol::ChatCompletions
                    && !canonical.include_usage,
                reshape: None,
                upload: None,
            });
        }
        let mut ctx = ResponseContext::for_request(&self.resolution.requested, &request);
        ctx.structured_output_tool = structured_output_tool;
        ctx.json_array_stream = self.inbound == Protocol::GenerateContent && !self.gemini_sse;
        let mut dropped = if same {
            Vec::new()
        } else {
            canonical.dropped.clone()
        };
        for name in encode_dropped {
            if !dropped.contains(&name) {
                dropped.push(name);
            }
        }
        Ok(Attempt {
            target,
            client: self.inbound,
            protocol,
            path,
            body,
            translation: Some(Translation {
                upstream: protocol,
                client: self.inbound,
                ctx,
                dropped,
            }),
            count_tokens: false,
            strip_usage: false,
            reshape: None,
            upload: None,
        })
    }

    /// The call for an OpenAI endpoint other than chat: the same bytes (only `model`
    /// rewritten) to a provider that speaks OpenAI's shape, at the endpoint's sub-path;
    /// embeddings translated for a Gemini provider; anything else cannot take it (a 400
    /// naming why, when no target can).
    fn endpoint_attempt<'a>(
        &'a self,
        endpoint: Endpoint,
        target: &'a Target,
    ) -> Result<Attempt<'a>, ProxyError> {
        let provider = &target.provider;
        let protocols = provider.protocols_for(&target.service_id);
        let sub_path = |protocol: Protocol, tail: &str, with: &str| {
            let full = provider.endpoint_path(protocol, &target.service_id, false);
            full.strip_suffix(tail)
                .map(|base| format!("{base}{with}"))
                .ok_or_else(|| ProxyError::Internal(format!("unexpected endpoint path {full}")))
        };
        if protocols.contains(&Protocol::ChatCompletions) {
            let path = sub_path(
                Protocol::ChatCompletions,
                "/chat/completions",
                endpoint.upstream_suffix(),
            )?;
            let (body, upload) = match &self.upload {
                Some(upload) => {
                    let (prefix, head) = upload.for_target(&self.body, &target.service_id);
                    (prefix, Some(head))
                }
                None => (self.passthrough_body(&target.service_id), None),
            };
            // A streamed completion asks for the usage chunk the ledger needs, as chat does
            // (vLLM and OpenAI accept `stream_options` on /v1/completions); the relay removes
            // it again when the client did not ask.
            let (body, strip_usage) = if endpoint == Endpoint::Completions {
                self.ask_usage(Protocol::ChatCompletions, body)
            } else {
                (body, false)
            };
            return Ok(Attempt {
                target,
                client: self.inbound,
                protocol: Protocol::ChatCompletions,
                path,
                body,
                translation: None,
                count_tokens: false,
                strip_usage,
                reshape: None,
                upload,
            });
        }
        if endpoint == Endpoint::Embeddings && protocols.contains(&Protocol::GenerateContent) {
            let path = sub_path(
                Protocol::GenerateContent,
                ":generateContent",
                ":batchEmbedContents",
            )?;
            let (body, ask) = bitrouter_filters::embeddings::to_gemini(
                &self.body,
                &self.resolution.requested,
                &target.service_id,
            )
            .map_err(ProxyError::Translate)?;
            return Ok(Attempt {
                target,
                client: self.inbound,
                protocol: Protocol::GenerateContent,
                path,
                body: Bytes::from(body),
                translation: None,
                count_tokens: false,
                strip_usage: false,
                reshape: Some(ask),
                upload: None,
            });
        }
        let speaks: Vec<&str> = protocols.iter().map(|p| p.as_str()).collect();
        let also = if endpoint == Endpoint::Embeddings {
            " or Gemini's (generate_content)"
        } else {
            ""
        };
        Err(ProxyError::Translate(
            CanonicalError::new(
                bitrouter_filters::canonical::ErrorKind::InvalidRequest,
                format!(
                    "provider `{}` cannot serve /v1{} for `{}`: it speaks {}, and this endpoint goes only to providers that speak OpenAI's API (api_protocol: chat_completions){also}",
                    provider.id,
                    endpoint.upstream_suffix(),
                    target.service_id,
                    speaks.join(", "),
                ),
            )
            .with_code("endpoint_not_supported"),
        ))
    }

    /// An OpenAI chat stream that did not ask for usage asks for it (the ledger needs the
    /// provider's count); `true` when the body was changed, so the relay removes the usage
    /// chunk the client did not ask for.
    fn ask_usage(&self, protocol: Protocol, body: Bytes) -> (Bytes, bool) {
        if !self.stream || self.count_tokens || protocol != Protocol::ChatCompletions {
            return (body, false);
        }
        match bitrouter_filters::usage::ask_stream_usage_of_stream(&body) {
            Some(changed) => (Bytes::from(changed), true),
            None => (body, false),
        }
    }

    /// The client's body with only `model` replaced by the target's service id.
    fn passthrough_body(&self, service_id: &str) -> Bytes {
        match &self.model_span {
            Some(span)
                if self.body.get(span.start + 1..span.end.saturating_sub(1))
                    != Some(service_id.as_bytes()) =>
            {
                Bytes::from(body::replace_model(&self.body, span.clone(), service_id))
            }
            _ => self.body.clone(),
        }
    }

    /// The client's body as received.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The request in canonical form (decoded once, then shared by every attempt).
    pub fn canonical(&self) -> Result<&ChatRequest, ProxyError> {
        self.canonical
            .get_or_init(|| self.decode())
            .as_ref()
            .map_err(|e| ProxyError::Translate(e.clone()))
    }

    /// Whether `target` can answer without translation (it speaks the client's protocol).
    pub fn speaks_inbound(&self, target: &Target) -> bool {
        target
            .provider
            .protocols_for(&target.service_id)
            .contains(&self.inbound)
    }

    fn decode(&self) -> Result<ChatRequest, CanonicalError> {
        let mut request = protocol::decode_request(self.inbound, &self.body)?;
        request.model = self.resolution.requested.clone();
        if self.inbound == Protocol::GenerateContent {
            // The Gemini body has no model and no stream flag: both live in the path.
            request.stream = self.stream;
            request.include_usage = true;
        }
        Ok(request)
    }
}

/// Applies a preset / variant overlay: set values replace the client's, a system prompt prefix
/// goes first.
fn apply_overlay(request: &mut ChatRequest, overlay: &Preset) {
    if let Some(t) = overlay.temperature {
        request.params.temperature = Some(t);
    }
    if let Some(p) = overlay.top_p {
        request.params.top_p = Some(p);
    }
    if let Some(m) = overlay.max_tokens {
        request.params.max_tokens = Some(m);
    }
    if let Some(prefix) = &overlay.system_prompt_prefix {
        request.system.insert(0, prefix.clone());
    }
    if let Some(effort) = &overlay.reasoning_effort {
        request
            .reasoning
            .get_or_insert_with(Default::default)
            .effort = Some(effort.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitrouter_config::{MapEnv, RoutingTable};

    fn plan(hooked: bool, stream: bool) -> Plan {
        let config = bitrouter_config::load_str(
            "providers:\n  a:\n    api_base: http://127.0.0.1:1/v1\n    api_protocol: chat_completions\n    models: [m1]\n",
            "bitrouter.yaml",
            &MapEnv::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let table = RoutingTable::new(&config);
        let body = Bytes::from(format!(
            r#"{{"model":"m1","stream":{stream},"messages":[{{"role":"user","content":"hi"}}],"x_unknown":1}}"#
        ));
        let peek = body::peek(&body).unwrap_or_else(|e| panic!("{e}"));
        Plan {
            inbound: Protocol::ChatCompletions,
            stream,
            resolution: table.resolve("m1").unwrap_or_else(|e| panic!("{e}")),
            gemini_sse: false,
            count_tokens: false,
            output_ask: None,
            hooked,
            body,
            model_span: peek.model_span,
            canonical: OnceLock::new(),
            endpoint: None,
            upload: None,
        }
    }

    #[test]
    fn same_protocol_streams_pass_through_unless_a_hook_is_active() {
        let p = plan(false, true);
        let a = p
            .attempt(&p.resolution.targets[0])
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(a.translation.is_none(), "no hook: zero-copy pass-through");
        // The bytes the client sent, but for the usage the ledger needs (the client did not
        // ask for it: the relay removes the usage chunk again).
        let asked = format!(
            "{{\"stream_options\":{{\"include_usage\":true}},{}",
            String::from_utf8_lossy(&p.body[1..])
        );
        assert_eq!(String::from_utf8_lossy(&a.body), asked);
        assert!(a.strip_usage);
        let p = plan(false, false);
        let a = p
            .attempt(&p.resolution.targets[0])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            a.body, p.body,
            "not streamed: the very bytes the client sent"
        );
        assert!(!a.strip_usage);

        let p = plan(true, true);
        let a = p
            .attempt(&p.resolution.targets[0])
            .unwrap_or_else(|e| panic!("{e}"));
        let t = a
            .translation
            .as_ref()
            .unwrap_or_else(|| panic!("decoded for the hook"));
        assert_eq!(
            (t.upstream, t.client),
            (Protocol::ChatCompletions, Protocol::ChatCompletions)
        );
        assert!(t.dropped.is_empty());
        // The request still goes as sent (only `model` would be rewritten).
        assert!(String::from_utf8_lossy(&a.body).contains("x_unknown"));

        // A hook only concerns streams.
        let p = plan(true, false);
        let a = p
            .attempt(&p.resolution.targets[0])
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(a.translation.is_none());
    }
}
