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

print("anthropic sdk ok")
