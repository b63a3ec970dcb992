"""The official google-genai SDK against bitrouter: the SDK's default API version and v1beta,
a `provider/model` name that the SDK puts unescaped in the path, streaming and not, and a typed
error. Retries are off so failures show."""
import os
import sys

from google import genai
from google.genai import errors, types

url = os.environ["BITROUTER_URL"]
tag = os.environ["TAG"]

for version in (None, "v1beta"):
    opts = types.HttpOptions(
        base_url=url,
        api_version=version,
        retry_options=types.HttpRetryOptions(attempts=1),
        timeout=30_000,
    )
    client = genai.Client(api_key="client-key", http_options=opts)

    r = client.models.generate_content(model="gemini-2.5-pro", contents=f"{tag} generate")
    assert tag in r.text, r

    text = "".join(
        c.text or ""
        for c in client.models.generate_content_stream(
            model="google/gemini-2.5-pro", contents=f"{tag} generate-stream"
        )
    )
    assert tag in text, text

    try:
        client.models.generate_content(model="no-such-model", contents="x")
        sys.exit("expected a 404")
    except errors.ClientError as e:
        assert e.code == 404, e
        assert e.status == "NOT_FOUND", e

# Cross-protocol: the genai SDK (upper-case schema types) against an OpenAI and a Claude model.
client = genai.Client(api_key="client-key", http_options=types.HttpOptions(
    base_url=url, api_version="v1beta", retry_options=types.HttpRetryOptions(attempts=1), timeout=30_000))
weather = types.Tool(function_declarations=[types.FunctionDeclaration(
    name="get_weather", description="Weather",
    parameters=types.Schema(type=types.Type.OBJECT, properties={"city": types.Schema(type=types.Type.STRING)}, required=["city"]))])
for model in ("openai/gpt-4o", "claude"):
    r = client.models.generate_content(model=model, contents=f"{tag} x-generate")
    assert tag in r.text, r
    text = "".join(c.text or "" for c in client.models.generate_content_stream(model=model, contents=f"{tag} x-stream"))
    assert tag in text, text
    r = client.models.generate_content(
        model=model, contents=f"{tag} x-tool [[tool:get_weather]]",
        config=types.GenerateContentConfig(tools=[weather], automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True)))
    calls = r.function_calls
    assert calls and calls[0].name == "get_weather" and "city" in calls[0].args, r

print("google-genai sdk ok")
