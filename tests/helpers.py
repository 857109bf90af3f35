"""Small builders the tests share: a brand, a catalog slice, request helpers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CATALOG_PATH = REPO / "infra" / "data" / "catalog" / "dummyjson_products.json"


def catalog(count: int | None = None) -> list[dict[str, Any]]:
    products = json.loads(CATALOG_PATH.read_text())
    return products if count is None else products[:count]


def brand_body(**overrides: Any) -> dict[str, Any]:
    body = {
        "name": "Test Goods",
        "slug": "test-goods",
        "time_zone": "America/New_York",
        "store_base_url": "https://shop.example.com",
        "approvals_required": False,
        "x_user_id": "1500000000000000001",
        "x_username": "testgoods",
        "x_access_token": "token-test-goods",
    }
    body.update(overrides)
    return body


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def post_json(client: Any, path: str, body: Any, key: str | None = None) -> Any:
    headers = auth(key) if key else {}
    return client.post(
        path, data=json.dumps(body), headers=headers, content_type="application/json"
    )
