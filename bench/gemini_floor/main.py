"""The Gemini caption path's floor: bare functions plus google-genai and nothing else.

Each does on its first request what any caption function built on google-genai
must: import the SDK; then build a client; then make one call. None imports
cartcast or touches a database, so bench/gemini_floor.py can divide each cold
start by the bare function's (bench/bare/main.py) and show what the SDK alone
costs.
"""

import os

import functions_framework

_client = None
# One product, as the stand-in (infra/gemini_standin.py) reads a caption request.
PRODUCT = '{"products": [{"ref": "p1", "title": "Enamel mug", "price_text": "$12"}]}'


def _get_client():
    """Build the client once, as cartcast.gemini does: API key, one TLS context."""
    global _client
    if _client is None:
        import ssl

        from google import genai
        from google.genai import types

        tls = ssl.create_default_context()
        _client = genai.Client(
            api_key=os.environ["GEMINI_API_KEY"],
            vertexai=False,
            http_options=types.HttpOptions(
                base_url=os.environ["GEMINI_BASE_URL"],
                api_version="v1beta",
                timeout=30_000,
                client_args={"verify": tls},
                async_client_args={"verify": tls, "ssl": tls},
            ),
        )
    return _client


@functions_framework.http
def genai_import(request):
    """Import google-genai, then answer an empty JSON object."""
    import google.genai  # noqa: F401

    return {}


@functions_framework.http
def genai_client(request):
    """Import google-genai and build a client."""
    _get_client()
    return {}


@functions_framework.http
def genai_call(request):
    """Import google-genai, build a client and make one JSON-schema call."""
    from google.genai import types

    config = types.GenerateContentConfig(
        response_mime_type="application/json",
        response_schema={"type": "OBJECT", "properties": {"text": {"type": "STRING"}}},
        max_output_tokens=256,
        candidate_count=1,
    )
    response = _get_client().models.generate_content(
        model="gemini-2.5-flash", contents=PRODUCT, config=config
    )
    return {"text": response.text or ""}
