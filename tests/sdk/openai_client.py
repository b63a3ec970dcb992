"""The official openai SDK against bitrouter: both base-URL forms, chat and responses,
streaming and not, the model list, and a typed error. Retries are off so failures show."""
import os
import sys

import openai
from openai import OpenAI

url = os.environ["BITROUTER_URL"]
tag = os.environ["TAG"]

for base in (url + "/v1", url):  # the SDK's form, and what users put in OPENAI_BASE_URL
    client = OpenAI(base_url=base, api_key="client-key", max_retries=0, timeout=30)

    r = client.chat.completions.create(
        model="smart", messages=[{"role": "user", "content": f"{tag} chat"}]
    )
    assert tag in r.choices[0].message.content, r

    stream = client.chat.completions.create(
        model="openai/gpt-4o",
        messages=[{"role": "user", "content": f"{tag} chat-stream"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage = "", None
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        if chunk.usage:
            usage = chunk.usage
    assert tag in text, text
    assert usage is not None and usage.total_tokens > 0, usage

    r = client.responses.create(model="openai/gpt-4o", input=f"{tag} responses")
    assert tag in r.output_text, r

    events = list(
        client.responses.create(
            model="gpt-4o", input=f"{tag} responses-stream", stream=True
        )
    )
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert tag in deltas, deltas
    assert events[-1].type == "response.completed", events[-1]

    ids = [m.id for m in client.models.list()]
    assert "smart" in ids and "openai/gpt-4o" in ids, ids

    try:
        client.chat.completions.create(
            model="no-such-model", messages=[{"role": "user", "content": "x"}]
        )
        sys.exit("expected a 404")
    except openai.NotFoundError as e:
        assert e.status_code == 404
        assert "no-such-model" in str(e), e

# Cross-protocol: the same SDK using a Claude model and a Gemini model.
client = OpenAI(base_url=url, api_key="client-key", max_retries=0, timeout=30)
tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
for model in ("claude", "google/gemini-2.5-pro"):
    r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": f"{tag} x-chat"}])
    assert tag in r.choices[0].message.content and r.model == model, r
    assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0, r.usage

    stream = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": f"{tag} x-stream"}],
        stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert tag in text, text
    assert chunks[-1].usage is not None, chunks[-1]

    r = client.chat.completions.create(
        model=model, tools=tools,
        messages=[{"role": "user", "content": f"{tag} x-tool [[tool:get_weather]]"}])
    call = r.choices[0].message.tool_calls[0]
    assert r.choices[0].finish_reason == "tool_calls", r
    assert call.function.name == "get_weather" and "city" in call.function.arguments, call

    stream = client.chat.completions.create(
        model=model, tools=tools, stream=True,
        messages=[{"role": "user", "content": f"{tag} x-tool-stream [[tool:get_weather]]"}])
    args, name, finish = "", "", None
    for c in stream:
        if c.choices:
            for tc in c.choices[0].delta.tool_calls or []:
                name += tc.function.name or ""
                args += tc.function.arguments or ""
            finish = c.choices[0].finish_reason or finish
    assert name == "get_weather" and '"city"' in args and finish == "tool_calls", (name, args, finish)

    r = client.chat.completions.create(
        model=model, tools=tools,
        messages=[{"role": "user", "content": f"{tag} x-result"},
                  {"role": "assistant", "content": None, "tool_calls": [
                      {"id": call.id, "type": "function", "function": {"name": "get_weather", "arguments": call.function.arguments}}]},
                  {"role": "tool", "tool_call_id": call.id, "content": f"sunny {tag}"}])
    assert "tool result" in r.choices[0].message.content, r

    r = client.responses.create(model=model, input=f"{tag} x-responses")
    assert tag in r.output_text, r

print("openai sdk ok")
