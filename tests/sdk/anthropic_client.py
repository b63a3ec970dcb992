"""The official anthropic SDK against bitrouter: x-api-key and Bearer (auth_token) auth,
messages streaming and not, and a typed error. Retries are off so failures show."""
import os
import sys

import anthropic

url = os.environ["BITROUTER_URL"]
tag = os.environ["TAG"]

for client in (
    anthropic.Anthropic(base_url=url, api_key="client-key", max_retries=0, timeout=30),
    anthropic.Anthropic(base_url=url, auth_token="client-token", max_retries=0, timeout=30),
):
    m = client.messages.create(
        model="claude",
        max_tokens=64,
        messages=[{"role": "user", "content": f"{tag} messages"}],
    )
    assert m.type == "message" and tag in m.content[0].text, m
    assert m.stop_reason == "end_turn", m

    with client.messages.stream(
        model="anthropic/claude-sonnet-4-5",
        max_tokens=64,
        messages=[{"role": "user", "content": f"{tag} messages-stream"}],
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert tag in text, text
    assert final.usage.output_tokens > 0, final

    try:
        client.messages.create(
            model="no-such-model", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
        sys.exit("expected a 404")
    except anthropic.NotFoundError as e:
        assert e.status_code == 404
        assert e.body["error"]["type"] == "not_found_error", e.body

# Cross-protocol: Claude Code's protocol against an OpenAI model and a Gemini model.
client = anthropic.Anthropic(base_url=url, api_key="client-key", max_retries=0, timeout=30)
tools = [{"name": "get_weather", "description": "Weather",
          "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
for model in ("openai/gpt-4o", "google/gemini-2.5-pro"):
    m = client.messages.create(model=model, max_tokens=64,
                               messages=[{"role": "user", "content": f"{tag} x-messages"}])
    assert tag in m.content[0].text and m.model == model and m.id.startswith("msg_"), m

    with client.messages.stream(model=model, max_tokens=64, tools=tools,
                                messages=[{"role": "user", "content": f"{tag} x-tool [[tool:get_weather]]"}]) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use", final
    use = [b for b in final.content if b.type == "tool_use"][0]
    assert use.name == "get_weather" and "city" in use.input, use

    m = client.messages.create(model=model, max_tokens=64, tools=tools, messages=[
        {"role": "user", "content": f"{tag} x-result"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": use.id, "name": use.name, "input": use.input}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": f"sunny {tag}"}]},
    ])
    assert "tool result" in m.content[0].text, m

print("anthropic sdk ok")
