//! Routing: read the `model` (from the body, or the path for Gemini), resolve it through the
//! routing table, and prepare what each candidate upstream needs.

use super::RequestCtx;
use crate::error::ProxyError;
use crate::state::AppState;
use crate::surface::Surface;
use bitrouter_config::{Protocol, Resolution, Target};
use bitrouter_filters::body;
use bytes::Bytes;
use std::ops::Range;

/// A routed request: the candidates in order and the body to adapt for each.
pub struct Plan {
    pub inbound: Protocol,
    pub stream: bool,
    pub resolution: Resolution,
    body: Bytes,
    model_span: Option<Range<usize>>,
}

/// One upstream call to make.
pub struct Attempt<'a> {
    pub target: &'a Target,
    pub protocol: Protocol,
    /// Path and query on the provider's origin.
    pub path: String,
    pub body: Bytes,
}

/// Reads the model and resolves it.
pub fn plan(
    state: &AppState,
    surface: &Surface,
    body: Bytes,
    ctx: &mut RequestCtx,
) -> Result<Plan, ProxyError> {
    let (inbound, model, stream, model_span) = match surface {
        Surface::Gemini { model, stream } => {
            body::validate_json(&body)?;
            (Protocol::GenerateContent, model.clone(), *stream, None)
        }
        other => {
            let inbound = other
                .protocol()
                .ok_or_else(|| ProxyError::Internal("routing a non-LLM surface".into()))?;
            let peek = body::peek(&body)?;
            let model = peek.model.ok_or(ProxyError::MissingModel)?;
            (inbound, model, peek.stream, peek.model_span)
        }
    };
    ctx.stream = stream;
    ctx.model = Some(model.clone());
    let resolution = state.table.resolve(&model)?;
    Ok(Plan {
        inbound,
        stream,
        resolution,
        body,
        model_span,
    })
}

impl Plan {
    /// The upstream call for `target`: same-protocol targets get the body with only `model`
    /// rewritten (Gemini: only the path). A target that needs another protocol is refused until
    /// translation lands.
    pub fn attempt<'a>(&self, target: &'a Target) -> Result<Attempt<'a>, ProxyError> {
        let provider = &target.provider;
        let protocol = if provider
            .protocols_for(&target.service_id)
            .contains(&self.inbound)
        {
            self.inbound
        } else {
            target.protocol
        };
        if protocol != self.inbound {
            return Err(ProxyError::CrossProtocol {
                model: self.resolution.requested.clone(),
                provider: provider.id.clone(),
                inbound: self.inbound,
                upstream: protocol,
            });
        }
        let body = match &self.model_span {
            Some(span)
                if self.body.get(span.start + 1..span.end.saturating_sub(1))
                    != Some(target.service_id.as_bytes()) =>
            {
                Bytes::from(body::replace_model(
                    &self.body,
                    span.clone(),
                    &target.service_id,
                ))
            }
            _ => self.body.clone(),
        };
        Ok(Attempt {
            target,
            protocol,
            path: provider.endpoint_path(protocol, &target.service_id, self.stream),
            body,
        })
    }
}
