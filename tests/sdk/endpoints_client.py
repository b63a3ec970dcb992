"""The official openai SDK against bitrouter's OpenAI endpoints besides chat (tests/endpoints.rs).

MODE=all: embeddings (OpenAI upstream, the SDK's default base64 and floats; a Gemini upstream,
single and batch, with dimensions), legacy completions (whole and streamed), images (b64_json),
audio speech (streamed bytes), moderations, a small transcription and translation. It prints one
JSON object with what came back; the Rust test compares it with the mock's deterministic answers.

MODE=upload: one transcription of the file at UPLOAD_FILE (the 20 MB test), printing the text.
"""
import base64
import io
import json
import os

import openai

url = os.environ["BITROUTER_URL"]
tag = os.environ["TAG"]
key = os.environ["KEY"]
mode = os.environ.get("MODE", "all")

oa = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=120)

if mode == "upload":
    with open(os.environ["UPLOAD_FILE"], "rb") as f:
        t = oa.audio.transcriptions.create(model=os.environ["UPLOAD_MODEL"], file=f,
                                           language="en", prompt=tag)
    print(json.dumps({"text": t.text}))
    raise SystemExit(0)

out = {}

# Embeddings, OpenAI-shaped upstream. The SDK asks for base64 unless told otherwise and decodes.
e = oa.embeddings.create(model="emb", input=f"{tag} hello world")
assert e.object == "list" and len(e.data) == 1, e
out["emb_default"] = e.data[0].embedding
out["emb_usage"] = e.usage.prompt_tokens
e = oa.embeddings.create(model="emb", input=[f"{tag} a", f"{tag} b"], encoding_format="float",
                         dimensions=4)
assert [d.index for d in e.data] == [0, 1], e
out["emb_batch"] = [d.embedding for d in e.data]

# Embeddings to a Gemini model: translated to batchEmbedContents and back.
g = oa.embeddings.create(model="gem-emb", input=f"{tag} gemini one")
assert g.object == "list" and g.model == "gem-emb", g
out["gem_single"] = g.data[0].embedding
g = oa.embeddings.create(model="gem-emb", input=[f"{tag} g1", f"{tag} g2", f"{tag} g3"],
                         dimensions=6, encoding_format="float")
out["gem_batch"] = [d.embedding for d in g.data]
out["gem_usage"] = g.usage.prompt_tokens

# Legacy completions, whole and streamed.
c = oa.completions.create(model="m-chat", prompt=f"{tag} once upon", max_tokens=16)
out["completion"] = c.choices[0].text
out["completion_usage"] = c.usage.completion_tokens
pieces, usage = [], None
for chunk in oa.completions.create(model="m-chat", prompt=f"{tag} streamed", max_tokens=16,
                                   stream=True, stream_options={"include_usage": True}):
    if chunk.choices:
        pieces.append(chunk.choices[0].text)
    if chunk.usage:
        usage = chunk.usage.total_tokens
out["completion_stream"] = "".join(pieces)
out["completion_stream_usage"] = usage

# Images (b64_json).
i = oa.images.generate(model="img", prompt=f"{tag} a cat", n=2, response_format="b64_json")
out["images"] = [base64.b64decode(d.b64_json).decode() for d in i.data]

# Speech: binary audio, read as it streams.
with oa.audio.speech.with_streaming_response.create(model="tts", voice="alloy",
                                                    input=f"{tag} say this") as r:
    audio = b"".join(r.iter_bytes(8192))
    out["speech_type"] = r.headers.get("content-type")
out["speech_len"] = len(audio)
out["speech_head"] = audio[:64].decode(errors="replace")

# Moderations.
m = oa.moderations.create(model="mod", input=[f"{tag} fine", f"{tag} [[flag]] bad"])
out["moderation"] = [r.flagged for r in m.results]

# Small uploads: transcription (json, and text) and translation.
wav = b"RIFF" + bytes(range(256)) * 40
t = oa.audio.transcriptions.create(model="whisper", file=("a.wav", io.BytesIO(wav)), prompt=tag)
out["transcript"] = t.text
t = oa.audio.transcriptions.create(model="whisper", file=("a.wav", io.BytesIO(wav)),
                                   response_format="text", prompt=tag)
out["transcript_text"] = t if isinstance(t, str) else str(t)
t = oa.audio.translations.create(model="whisper", file=("b.wav", io.BytesIO(wav)), prompt=tag)
out["translation"] = t.text

# A model whose only provider cannot serve embeddings: the SDK's typed 400.
try:
    oa.embeddings.create(model="claude-x", input="x")
    raise SystemExit("expected a 400 for a Messages-only model")
except openai.BadRequestError as err:
    out["unsupported"] = err.body.get("message") if isinstance(err.body, dict) else str(err.body)

print(json.dumps(out))
