"""The official SDKs with virtual keys: each presents the key its own way (openai: Bearer;
anthropic: x-api-key, or Bearer with auth_token; google-genai: x-goog-api-key), an unknown key is
each SDK's typed authentication error, and an exhausted budget is a 429 the SDKs do not retry
(x-should-retry: false) even with their default retries on."""
import os
import sys

import anthropic
import openai
from google import genai
from google.genai import errors, types

url = os.environ["BITROUTER_URL"]
tag = os.environ["TAG"]
key = os.environ["GOOD_KEY"]
broke = os.environ["BROKE_KEY"]
bad = "brvk_" + "A" * 43

oa = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=30)
r = oa.chat.completions.create(model="m-chat", messages=[{"role": "user", "content": f"{tag} openai"}])
assert tag in r.choices[0].message.content, r

for client in (
    anthropic.Anthropic(base_url=url, api_key=key, max_retries=0, timeout=30),
    anthropic.Anthropic(base_url=url, auth_token=key, max_retries=0, timeout=30),
):
    m = client.messages.create(model="m-msg", max_tokens=64,
                               messages=[{"role": "user", "content": f"{tag} anthropic"}])
    assert tag in m.content[0].text, m

opts = types.HttpOptions(base_url=url, api_version="v1beta",
                         retry_options=types.HttpRetryOptions(attempts=1), timeout=30_000)
g = genai.Client(api_key=key, http_options=opts)
assert tag in g.models.generate_content(model="m-gem", contents=f"{tag} genai").text

# Unknown key: each SDK's own authentication error.
try:
    openai.OpenAI(base_url=f"{url}/v1", api_key=bad, max_retries=0).models.list()
    sys.exit("expected a 401 (openai)")
except openai.AuthenticationError as e:
    assert e.status_code == 401
try:
    anthropic.Anthropic(base_url=url, api_key=bad, max_retries=0).messages.create(
        model="m-msg", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    sys.exit("expected a 401 (anthropic)")
except anthropic.AuthenticationError as e:
    assert e.body["error"]["type"] == "authentication_error", e.body
bad_g = genai.Client(api_key=bad, http_options=opts)  # kept: a temporary client is closed
try:
    bad_g.models.generate_content(model="m-gem", contents="x")
    sys.exit("expected a 401 (genai)")
except errors.ClientError as e:
    assert e.code == 401, e

# An exhausted budget with the SDKs' default retries (2): one request each, no retry.
try:
    openai.OpenAI(base_url=f"{url}/v1", api_key=broke).chat.completions.create(
        model="m-chat", messages=[{"role": "user", "content": f"{tag} broke-openai"}])
    sys.exit("expected a 429 (openai)")
except openai.RateLimitError as e:
    assert e.body["code"] == "budget_exceeded", e.body
try:
    anthropic.Anthropic(base_url=url, api_key=broke).messages.create(
        model="m-msg", max_tokens=64, messages=[{"role": "user", "content": f"{tag} broke-anthropic"}])
    sys.exit("expected a 429 (anthropic)")
except anthropic.RateLimitError as e:
    assert e.body["error"]["type"] == "rate_limit_error", e.body
print("ok")
