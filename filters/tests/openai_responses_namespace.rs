//! OpenAI Responses `namespace` tools and hosted tools, as the Codex CLI (0.171.0) sends them:
//! a captured Codex request decodes; namespace members travel upstream under flat names and
//! come back to the client as `namespace` + short `name`; history and `tool_choice` are
//! requalified; hosted tools are dropped and named unless forced.
//! (Kept apart from `openai_responses.rs`, which is already past the ~1,500-line limit.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bitrouter_config::{ModelCapabilities, Protocol};
use bitrouter_filters::canonical::{
    ChatRequest, ChatResponse, EncodeOptions, ErrorKind, NamespacedTool, Part, PartKind,
    ResponseContext, StopReason, StreamEvent, ToolCall, ToolChoice, Usage,
};
use bitrouter_filters::protocol::{self, openai_responses};
use bitrouter_filters::sse::{SseEvent, SseParser};
use serde_json::{json, Value};

const CODEX: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/openai_responses/codex_0_171_request.json"
);

fn codex() -> ChatRequest {
    openai_responses::decode_request(&std::fs::read(CODEX).unwrap()).unwrap()
}

fn decode(body: Value) -> ChatRequest {
    openai_responses::decode_request(body.to_string().as_bytes())
        .unwrap_or_else(|e| panic!("{body}: {e:?}"))
}

fn reject(body: Value) -> String {
    let e =
        openai_responses::decode_request(body.to_string().as_bytes()).expect_err(&body.to_string());
    assert_eq!(e.kind, ErrorKind::InvalidRequest, "{body}");
    assert_eq!(e.status, 400, "{body}");
    e.message
}

fn function(name: &str) -> Value {
    json!({"type": "function", "name": name, "description": format!("{name} it."),
           "parameters": {"type": "object", "properties": {}}})
}

fn namespace(name: &str, members: &[&str]) -> Value {
    json!({"type": "namespace", "name": name, "description": "Tools for spawning and managing sub-agents.",
           "tools": members.iter().map(|m| function(m)).collect::<Vec<_>>()})
}

fn request_with(tools: Vec<Value>) -> ChatRequest {
    decode(json!({"model": "m", "input": "hi", "tools": tools}))
}

/// A request with the `multi_agent_v1` namespace (close_agent, spawn_agent) and one top-level
/// function `exec_command`.
fn agents_request() -> ChatRequest {
    request_with(vec![
        function("exec_command"),
        namespace("multi_agent_v1", &["close_agent", "spawn_agent"]),
    ])
}

fn tool_names(r: &ChatRequest) -> Vec<&str> {
    r.tools.iter().map(|t| t.name.as_str()).collect()
}

fn call(id: &str, name: &str, arguments: &str) -> Part {
    Part::ToolCall(ToolCall {
        id: id.into(),
        name: name.into(),
        arguments: arguments.into(),
    })
}

fn response(parts: Vec<Part>) -> ChatResponse {
    ChatResponse {
        id: "resp_1".into(),
        model: "upstream".into(),
        created: 1741476542,
        parts,
        stop: StopReason::ToolUse,
        usage: Usage::default(),
    }
}

/// The whole-body Responses encoding of `parts` for `request`'s client: (output items, raw).
fn encode_body(request: &ChatRequest, parts: Vec<Part>) -> (Vec<Value>, String) {
    let ctx = ResponseContext::for_request("client-model", request);
    let bytes = openai_responses::encode_response(&response(parts), &ctx);
    let raw = String::from_utf8(bytes).unwrap();
    let body: Value = serde_json::from_str(&raw).unwrap();
    (body["output"].as_array().unwrap().clone(), raw)
}

fn parse_sse(bytes: &[u8]) -> Vec<SseEvent> {
    let mut p = SseParser::default();
    let mut out = Vec::new();
    p.feed(bytes, &mut out).unwrap();
    p.finish(&mut out);
    out
}

/// The Responses stream a client of `request` gets for one tool call to `name` whose
/// arguments arrive in `deltas`: (event type, data) in order.
fn encode_stream(request: &ChatRequest, name: &str, deltas: &[&str]) -> Vec<(String, Value)> {
    let ctx = ResponseContext::for_request("client-model", request);
    let mut e = openai_responses::StreamEncoder::new(&ctx);
    let mut events = vec![
        StreamEvent::Start {
            id: "1".into(),
            model: "upstream".into(),
            created: 1741476542,
            usage: None,
        },
        StreamEvent::PartStart {
            index: 0,
            kind: PartKind::ToolCall {
                id: "call_1".into(),
                name: name.into(),
            },
        },
    ];
    for d in deltas {
        events.push(StreamEvent::ToolArgsDelta {
            index: 0,
            json: (*d).into(),
        });
    }
    events.extend([
        StreamEvent::PartStop { index: 0 },
        StreamEvent::Finish {
            stop: StopReason::ToolUse,
        },
        StreamEvent::Done,
    ]);
    let mut out = Vec::new();
    for ev in &events {
        e.encode(ev, &mut out);
    }
    parse_sse(&out)
        .into_iter()
        .map(|ev| {
            let data: Value = serde_json::from_str(&ev.data).unwrap();
            (ev.event.unwrap_or_default(), data)
        })
        .collect()
}

fn events_of<'a>(events: &'a [(String, Value)], kind: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|(k, _)| k == kind)
        .map(|(_, v)| v)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The captured Codex request

#[test]
fn codex_0_171_request_decodes() {
    let r = codex();
    assert_eq!(r.model, "gpt-5");
    assert!(r.stream);
    assert_eq!(
        tool_names(&r),
        [
            "exec_command",
            "view_image",
            "multi_agent_v1__close_agent",
            "multi_agent_v1__spawn_agent"
        ]
    );
    assert_eq!(
        r.tool_namespaces,
        [
            NamespacedTool {
                flat: "multi_agent_v1__close_agent".into(),
                namespace: "multi_agent_v1".into(),
                name: "close_agent".into(),
            },
            NamespacedTool {
                flat: "multi_agent_v1__spawn_agent".into(),
                namespace: "multi_agent_v1".into(),
                name: "spawn_agent".into(),
            },
        ]
    );
    let spawn = &r.tools[3];
    assert_eq!(
        spawn.description.as_deref(),
        Some(
            "[multi_agent_v1: Tools for spawning and managing sub-agents.] Spawn a sub-agent for \
             a well-scoped task. Returns the agent id (and the user-facing nickname when available)."
        )
    );
    assert_eq!(spawn.parameters["type"], "object");
    assert_eq!(spawn.strict, Some(false));
    // The plain functions are untouched.
    assert_eq!(
        r.tools[0].description.as_deref(),
        Some("Runs a command in a PTY, returning output or a session ID for ongoing interaction.")
    );
    // The two developer messages are system text; the two user messages stay.
    assert_eq!(r.system.len(), 2);
    assert!(r.system[0].starts_with("You are a coding agent running in the Codex CLI"));
    assert_eq!(r.messages.len(), 2);
    assert_eq!(r.tool_choice, Some(ToolChoice::Auto));
    assert_eq!(r.parallel_tool_calls, Some(true));
    assert_eq!(r.reasoning.as_ref().unwrap().include_thoughts, Some(true));
    // What could not be carried is named: the hosted web search, the prompt cache key and
    // Codex's client metadata. `include: [reasoning.encrypted_content]` and `store: false`
    // are understood, not dropped.
    let mut dropped = r.dropped.clone();
    dropped.sort();
    assert_eq!(
        dropped,
        ["client_metadata", "prompt_cache_key", "tools[3].web_search"]
    );
}

#[test]
fn codex_request_translates_to_every_other_protocol() {
    let mut r = codex();
    r.model = "target-model".into();
    let opts = EncodeOptions {
        capabilities: ModelCapabilities {
            default_max_tokens: 1024,
            ..ModelCapabilities::DEFAULT
        },
    };
    for target in Protocol::ALL {
        let encoded = protocol::encode_request(target, &r, &opts)
            .unwrap_or_else(|e| panic!("{target}: {e:?}"));
        let body = String::from_utf8(encoded.body).unwrap();
        for name in ["exec_command", "multi_agent_v1__spawn_agent"] {
            assert!(body.contains(name), "{target}: {name} missing");
        }
        assert!(!body.contains("web_search"), "{target}: {body}");
        assert!(!body.contains("\"namespace\""), "{target}: {body}");
        // What the upstream gets declares each flattened name once.
        let again = protocol::decode_request(target, body.as_bytes()).unwrap();
        assert_eq!(tool_names(&again), tool_names(&r), "{target}");
    }
}

// ---------------------------------------------------------------------------------------------
// Request side

#[test]
fn namespace_members_get_flat_names() {
    assert_eq!(
        NamespacedTool::flat_name("multi_agent_v1", "spawn_agent"),
        "multi_agent_v1__spawn_agent"
    );
    // Codex's MCP namespaces already end in the separator.
    assert_eq!(
        NamespacedTool::flat_name("mcp__server__", "status"),
        "mcp__server__status"
    );
    let r = request_with(vec![
        namespace("mcp__server__", &["status"]),
        namespace("multi_agent_v1", &["spawn_agent"]),
    ]);
    assert_eq!(
        tool_names(&r),
        ["mcp__server__status", "multi_agent_v1__spawn_agent"]
    );
    assert_eq!(r.tool_namespaces[0].namespace, "mcp__server__");
    assert_eq!(r.tool_namespaces[0].name, "status");
    // A namespace without a description adds nothing to its members'.
    let r = request_with(vec![
        json!({"type": "namespace", "name": "ns", "tools": [function("f")]}),
    ]);
    assert_eq!(r.tools[0].description.as_deref(), Some("f it."));
}

#[test]
fn namespace_errors_name_the_element() {
    // A flattened name that is taken: both tools are named.
    let m = reject(json!({"model": "m", "input": "hi", "tools": [
        function("multi_agent_v1__spawn_agent"),
        namespace("multi_agent_v1", &["close_agent", "spawn_agent"]),
    ]}));
    assert!(
        m.contains("tools[1].tools[1]") && m.contains("tools[0]"),
        "{m}"
    );
    assert!(m.contains("multi_agent_v1__spawn_agent"), "{m}");
    // Two namespaces flattening to the same name (`a_` + `_b` and `a` + `b` joined by `__`).
    let m = reject(json!({"model": "m", "input": "hi", "tools": [
        namespace("a", &["b"]),
        namespace("a_", &["_b"]),
    ]}));
    assert!(
        m.contains("tools[1].tools[0]") && m.contains("tools[0].tools[0]"),
        "{m}"
    );
    // Members follow the rules of top-level tools: custom tools cannot be translated.
    let m = reject(json!({"model": "m", "input": "hi", "tools": [
        {"type": "namespace", "name": "ns", "tools": [{"type": "custom", "name": "grammar"}]},
    ]}));
    assert!(
        m.contains("tools[0].tools[0]") && m.contains("custom tools"),
        "{m}"
    );
    let m = reject(json!({"model": "m", "input": "hi", "tools": [
        {"type": "namespace", "name": "ns", "tools": [{"type": "web_search"}]},
    ]}));
    assert!(m.contains("tools[0].tools[0].type"), "{m}");
    let m = reject(
        json!({"model": "m", "input": "hi", "tools": [{"type": "namespace", "name": "ns"}]}),
    );
    assert!(m.contains("tools[0].tools"), "{m}");
    let m =
        reject(json!({"model": "m", "input": "hi", "tools": [{"type": "namespace", "tools": []}]}));
    assert!(m.contains("tools[0].name"), "{m}");
}

#[test]
fn long_flat_names_are_shortened_and_map_back() {
    let ns = "mcp__a_very_long_model_context_protocol_server_name__";
    let member = "fetch_the_complete_repository_history";
    let other = "fetch_the_complete_repository_issues";
    let r = request_with(vec![namespace(ns, &[member, other])]);
    let flat = r.tools[0].name.clone();
    assert!(flat.len() <= 64, "{flat}");
    assert!(flat.starts_with("mcp__a_very_long"), "{flat}");
    assert_ne!(r.tools[1].name, flat, "distinct members stay distinct");
    assert!(r.tools[1].name.len() <= 64);
    // Deterministic: the next turn gets the same names.
    assert_eq!(
        tool_names(&request_with(vec![namespace(ns, &[member, other])])),
        tool_names(&r)
    );
    assert_eq!(NamespacedTool::flat_name(ns, member), flat);
    // History naming the member by namespace gets the shortened name too.
    let h = decode(
        json!({"model": "m", "tools": [namespace(ns, &[member, other])], "input": [
            {"type": "function_call", "call_id": "c1", "namespace": ns, "name": member, "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "ok"},
        ]}),
    );
    assert_eq!(h.tool_name_for("c1"), Some(flat.as_str()));
    // And a call to the shortened name reaches the client as namespace + full short name.
    let (output, _) = encode_body(&r, vec![call("c2", &flat, "{}")]);
    assert_eq!(output[0]["namespace"], ns);
    assert_eq!(output[0]["name"], member);
}

#[test]
fn history_calls_are_requalified_to_flat_names() {
    let r = decode(json!({"model": "m",
        "tools": [function("exec_command"), namespace("multi_agent_v1", &["close_agent", "spawn_agent"])],
        "input": [
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "start one"}]},
            {"type": "function_call", "call_id": "c1", "namespace": "multi_agent_v1", "name": "spawn_agent",
             "arguments": "{\"message\":\"hi\"}"},
            {"type": "function_call", "call_id": "c2", "name": "exec_command", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "agent-7"},
            {"type": "function_call_output", "call_id": "c2", "output": "done"},
        ],
        "tool_choice": {"type": "function", "namespace": "multi_agent_v1", "name": "close_agent"},
    }));
    assert_eq!(r.tool_name_for("c1"), Some("multi_agent_v1__spawn_agent"));
    assert_eq!(r.tool_name_for("c2"), Some("exec_command"));
    assert_eq!(
        r.tool_choice,
        Some(ToolChoice::Named("multi_agent_v1__close_agent".into()))
    );
    // The upstream sees a call to the name it was given.
    let encoded = protocol::encode_request(
        Protocol::Messages,
        &r,
        &EncodeOptions::for_model("claude-sonnet-4-5"),
    )
    .unwrap();
    let body: Value = serde_json::from_slice(&encoded.body).unwrap();
    let uses: Vec<Value> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|m| m["content"].as_array().cloned().unwrap_or_default())
        .filter(|b| b["type"] == "tool_use")
        .collect();
    assert_eq!(uses[0]["name"], "multi_agent_v1__spawn_agent");
    assert_eq!(body["tool_choice"]["name"], "multi_agent_v1__close_agent");
    // A history call to a namespace the request no longer declares still gets the same flat
    // name as when it was declared.
    let r = decode(json!({"model": "m", "input": [
        {"type": "function_call", "call_id": "c1", "namespace": "mcp__gone__", "name": "status", "arguments": "{}"},
    ]}));
    assert_eq!(r.tool_name_for("c1"), Some("mcp__gone__status"));
}

// ---------------------------------------------------------------------------------------------
// Response side

#[test]
fn whole_body_names_a_namespaced_call_by_namespace_and_short_name() {
    let r = agents_request();
    let (output, raw) = encode_body(
        &r,
        vec![call(
            "call_1",
            "multi_agent_v1__spawn_agent",
            "{\"message\":\"hi\"}",
        )],
    );
    assert!(
        raw.contains(r#""namespace":"multi_agent_v1","name":"spawn_agent""#),
        "{raw}"
    );
    assert_eq!(output[0]["type"], "function_call");
    assert_eq!(output[0]["call_id"], "call_1");
    assert_eq!(output[0]["arguments"], "{\"message\":\"hi\"}");
}

#[test]
fn stream_names_a_namespaced_call_by_namespace_and_short_name() {
    let r = agents_request();
    let deltas = ["{\"message\"", ":\"hi\"}"];
    let events = encode_stream(&r, "multi_agent_v1__spawn_agent", &deltas);
    for kind in ["response.output_item.added", "response.output_item.done"] {
        let item = &events_of(&events, kind)[0]["item"];
        assert_eq!(item["type"], "function_call", "{kind}");
        assert_eq!(item["namespace"], "multi_agent_v1", "{kind}");
        assert_eq!(item["name"], "spawn_agent", "{kind}");
        assert_eq!(item["call_id"], "call_1", "{kind}");
    }
    let args: Vec<&Value> = events_of(&events, "response.function_call_arguments.delta");
    assert_eq!(
        args.iter()
            .map(|a| a["delta"].as_str().unwrap())
            .collect::<Vec<_>>(),
        deltas
    );
    assert!(args
        .iter()
        .all(|a| a.get("namespace").is_none() && a.get("name").is_none()));
    let done = events_of(&events, "response.function_call_arguments.done")[0];
    assert_eq!(done["arguments"], "{\"message\":\"hi\"}");
    assert_eq!(done["name"], "spawn_agent");
    let completed = events_of(&events, "response.completed")[0];
    assert_eq!(
        completed["response"]["output"][0]["namespace"],
        "multi_agent_v1"
    );
    assert_eq!(completed["response"]["output"][0]["name"], "spawn_agent");
}

#[test]
fn a_bare_short_name_is_mapped_to_its_namespace_when_unambiguous() {
    let r = agents_request();
    let (output, _) = encode_body(&r, vec![call("c1", "spawn_agent", "{}")]);
    assert_eq!(output[0]["namespace"], "multi_agent_v1");
    assert_eq!(output[0]["name"], "spawn_agent");
    let events = encode_stream(&r, "close_agent", &["{}"]);
    let item = &events_of(&events, "response.output_item.done")[0]["item"];
    assert_eq!(item["namespace"], "multi_agent_v1");
    assert_eq!(item["name"], "close_agent");

    // Two namespaces with a `status` member, and a top-level tool with a member's name: the
    // bare name is left as it is.
    let r = request_with(vec![
        function("close_agent"),
        namespace("multi_agent_v1", &["close_agent", "spawn_agent"]),
        namespace("mcp__a__", &["status"]),
        namespace("mcp__b__", &["status"]),
    ]);
    let (output, _) = encode_body(
        &r,
        vec![call("c1", "status", "{}"), call("c2", "close_agent", "{}")],
    );
    for item in &output {
        assert!(item.get("namespace").is_none(), "{item}");
    }
    assert_eq!(output[0]["name"], "status");
    assert_eq!(output[1]["name"], "close_agent");
    // The flat names still resolve exactly.
    let (output, _) = encode_body(&r, vec![call("c3", "mcp__b__status", "{}")]);
    assert_eq!(output[0]["namespace"], "mcp__b__");
    assert_eq!(output[0]["name"], "status");
}

#[test]
fn calls_to_top_level_tools_carry_no_namespace_key() {
    let r = agents_request();
    let (output, raw) = encode_body(&r, vec![call("c1", "exec_command", "{}")]);
    assert_eq!(output[0]["name"], "exec_command");
    assert!(output[0].get("namespace").is_none(), "{raw}");
    assert!(!raw.contains("namespace"), "{raw}");
    let events = encode_stream(&r, "exec_command", &["{}"]);
    for (kind, data) in &events {
        assert!(!data.to_string().contains("namespace"), "{kind}: {data}");
    }
}

#[test]
fn other_client_protocols_keep_the_flat_name() {
    let r = agents_request();
    let ctx = ResponseContext::for_request("client-model", &r);
    let resp = response(vec![call("c1", "multi_agent_v1__spawn_agent", "{}")]);
    for client in [
        Protocol::ChatCompletions,
        Protocol::Messages,
        Protocol::GenerateContent,
    ] {
        let body = String::from_utf8(protocol::encode_response(client, &resp, &ctx)).unwrap();
        assert!(
            body.contains("multi_agent_v1__spawn_agent"),
            "{client}: {body}"
        );
        assert!(!body.contains("namespace"), "{client}: {body}");
    }
}

#[test]
fn a_responses_upstreams_namespaced_call_is_flattened_like_the_request() {
    // A Responses upstream that was given the namespace tools as they were (a same-protocol
    // hop with a stream hook) answers with namespace + short name.
    let r = agents_request();
    let ctx = ResponseContext::for_request("client-model", &r);
    let body = json!({"id": "resp_1", "object": "response", "created_at": 1, "status": "completed",
        "model": "gpt-5", "output": [{"type": "function_call", "id": "fc_1", "call_id": "c1",
        "namespace": "multi_agent_v1", "name": "spawn_agent", "arguments": "{}", "status": "completed"}]});
    let resp = openai_responses::decode_response(body.to_string().as_bytes(), &ctx).unwrap();
    assert_eq!(
        resp.parts,
        [call("c1", "multi_agent_v1__spawn_agent", "{}")]
    );

    let item = json!({"type": "function_call", "id": "fc_1", "call_id": "c1",
        "namespace": "multi_agent_v1", "name": "spawn_agent", "arguments": "", "status": "in_progress"});
    let sse = format!(
        "event: response.output_item.added\ndata: {}\n\n",
        json!({"type": "response.output_item.added", "output_index": 0, "item": item, "sequence_number": 0})
    );
    let mut d = openai_responses::StreamDecoder::new(&ctx);
    let mut out = Vec::new();
    for ev in parse_sse(sse.as_bytes()) {
        d.decode(&ev, &mut out).unwrap();
    }
    assert!(
        out.iter().any(
            |e| matches!(e, StreamEvent::PartStart { kind: PartKind::ToolCall { name, .. }, .. }
            if name == "multi_agent_v1__spawn_agent")
        ),
        "{out:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Hosted tools

#[test]
fn hosted_tools_are_dropped_and_named() {
    let r = request_with(vec![
        function("exec_command"),
        json!({"type": "web_search", "external_web_access": false}),
        json!({"type": "file_search", "vector_store_ids": ["vs_1"]}),
        json!({"type": "code_interpreter", "container": {"type": "auto"}}),
        json!({"type": "image_generation"}),
        json!({"type": "local_shell"}),
    ]);
    assert_eq!(tool_names(&r), ["exec_command"]);
    for name in [
        "tools[1].web_search",
        "tools[2].file_search",
        "tools[3].code_interpreter",
        "tools[4].image_generation",
        "tools[5].local_shell",
    ] {
        assert!(
            r.dropped.iter().any(|d| d == name),
            "{name}: {:?}",
            r.dropped
        );
    }
    // Only hosted tools, model's choice: the request goes without tools.
    let r = decode(json!({"model": "m", "input": "hi", "tool_choice": "auto",
        "tools": [{"type": "web_search_preview"}]}));
    assert!(r.tools.is_empty());
    assert_eq!(r.dropped, ["tools[0].web_search_preview"]);
}

#[test]
fn a_forced_hosted_tool_is_still_refused() {
    for (tool, choice) in [
        ("web_search", "web_search"),
        ("web_search_preview", "web_search_preview_2025_03_11"),
        ("file_search", "file_search"),
    ] {
        let m = reject(json!({"model": "m", "input": "hi",
            "tools": [function("f"), {"type": tool}], "tool_choice": {"type": choice}}));
        assert!(
            m.contains("tools[1]") && m.contains(tool) && m.contains("forced by `tool_choice`"),
            "{m}"
        );
    }
    // `required` with nothing but hosted tools cannot be honoured either.
    let m = reject(json!({"model": "m", "input": "hi",
        "tools": [{"type": "web_search"}], "tool_choice": "required"}));
    assert!(
        m.contains("tools[0].web_search") && m.contains("required"),
        "{m}"
    );
    // A hosted tool other than the forced one is still just dropped... but the forced one
    // is missing, so the choice itself is refused as before.
    let m = reject(json!({"model": "m", "input": "hi",
        "tools": [{"type": "web_search"}], "tool_choice": {"type": "file_search"}}));
    assert!(m.contains("file_search"), "{m}");
}
