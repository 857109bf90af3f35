"""docs/openapi.yaml describes exactly the routes the code serves."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from cartcast import api

SPEC = Path(__file__).resolve().parents[1] / "docs" / "openapi.yaml"
METHODS = {"get", "post", "put", "patch", "delete"}


def test_the_spec_and_the_api_routes_agree() -> None:
    spec = yaml.safe_load(SPEC.read_text())
    described = {
        (path, method.upper())
        for path, item in spec["paths"].items()
        if "servers" not in item
        for method in item
        if method in METHODS
    }

    served = {
        (re.sub(r"<(\w+)>", r"{\1}", rule.rule), method)
        for rule in api.routes().iter_rules()
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }

    assert described == served


def test_the_caption_function_is_described_on_its_own_server() -> None:
    spec = yaml.safe_load(SPEC.read_text())

    caption = spec["paths"]["/"]

    assert caption["servers"][0]["url"] == "{generate_caption_url}"
    assert set(caption) - {"servers"} == {"post"}


def test_every_path_parameter_is_declared() -> None:
    spec = yaml.safe_load(SPEC.read_text())
    parameters = spec["components"]["parameters"]

    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            declared = set()
            for parameter in operation.get("parameters", []):
                parameter = (
                    parameters[parameter["$ref"].split("/")[-1]]
                    if "$ref" in parameter
                    else parameter
                )
                declared.add(parameter["name"])
            assert set(re.findall(r"{(\w+)}", path)) <= declared, (path, method)


def test_every_route_a_key_opens_documents_the_wrong_key_and_no_key() -> None:
    """A key of the wrong kind (the operator key on a brand's route, a viewer's key
    where an admin's is needed) is a 403, a missing or unknown key a 401: each
    operation that takes a key says both, so a client generated from the spec, or
    schemathesis in `make faults`, meets no undocumented status."""
    spec = yaml.safe_load(SPEC.read_text())
    # A signature, not a key; and X's OAuth callback, whose state is the credential.
    signed = {"/v1/webhooks/orders/{brand_slug}", "/v1/x/callback"}

    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method not in METHODS or path in signed:
                continue
            responses = set(operation["responses"])
            assert {"401", "403"} <= responses, (path, method)
