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

print("openai sdk ok")
