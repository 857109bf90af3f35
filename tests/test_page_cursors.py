"""Every capped list of the API pages with the `after` token page_cursors writes.

Each list is seeded with more rows than a page, some sharing their sort time so
only the tie-breaking id tells them apart; walking every page must answer every
row once. A token another list wrote, or one edited by hand, is a 400 naming
`after`, never a 500 and never a page.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import uuid
from decimal import Decimal

import pytest
import yaml

from cartcast import page_cursors
from tests.conftest import OPERATOR_KEY, REPO, START, make_app
from tests.helpers import auth, brand_body, post_json

MINUTE = dt.timedelta(minutes=1)
ROWS = 7
# The lists this file seeds: each one's path and the field of its rows.
LISTS = {
    "caption_jobs": ("/v1/caption-jobs", "jobs"),
    "crises": ("/v1/crises", "crises"),
    "author_data_removals": ("/v1/author-data-removals", "removals"),
    "post_report": ("/v1/reports/posts", "posts"),
}
# A key each list reads as a good place, to write under another list's name.
GOOD_KEYS = {
    "posts": ["2026-03-02T09:00:00+00:00", "6f1c1f7e-8a4e-4c61-9a52-0b9d3d0f6a10"],
    "mentions": [
        2,
        1,
        "2026-03-02T10:00:00+00:00",
        "2026-03-02T09:00:00+00:00",
        "5b3f7c2e-8d1a-4c4e-9f43-0a1b2c3d4e5f",
    ],
    "audit": ["2026-03-02T09:00:00+00:00", "audit", 1],
    "caption_jobs": [
        "2026-03-02T09:00:00+00:00",
        "6f1c1f7e-8a4e-4c61-9a52-0b9d3d0f6a10",
    ],
    "crises": ["2026-03-02T09:00:00+00:00", 1],
    "author_data_removals": [1],
    "post_report": ["0", "2026-03-02T09:00:00+00:00", str(uuid.UUID(int=1))],
}
# Every list that pages with page_cursors.
PATHS = {
    "posts": "/v1/posts",
    "mentions": "/v1/mentions",
    "audit": "/v1/audit",
    **{kind: path for kind, (path, _) in LISTS.items()},
}


@pytest.fixture
def client(function_env):
    return make_app("api", "http").test_client()


@pytest.fixture
def brand(client, runtime) -> dict:
    """A brand (its first key is an admin's) with ROWS rows in every list."""
    response = post_json(client, "/v1/brands", brand_body(), OPERATOR_KEY)
    created = response.get_json()
    brand_id = created["brand"]["id"]
    with runtime.database.transaction() as tx:
        for number in range(ROWS):
            # Three rows share each time: only the id orders them.
            at = START - (number // 3) * MINUTE
            seed_rows(tx, brand_id, number, at)
    return {"id": brand_id, "key": created["api_key"]}


def seed_rows(tx, brand_id: str, number: int, at: dt.datetime) -> None:
    tx.execute(
        "INSERT INTO caption_jobs (id, brand_id, requested_by, when_quota_spent, "
        "state, products_total, created_at, updated_at, finished_at) "
        "VALUES (:id, :brand_id, 'test', 'wait', 'done', 1, :at, :at, :at)",
        id=str(uuid.uuid4()),
        brand_id=brand_id,
        at=at,
    )
    tx.execute(
        "INSERT INTO crises (brand_id, started_at, ended_at, last_seen_at, "
        "window_mentions, window_negative, baseline_share) "
        "VALUES (:brand_id, :at, :at, :at, :number + 10, :number, 0.1)",
        brand_id=brand_id,
        at=at,
        number=number,
    )
    tx.execute(
        "INSERT INTO author_data_removals (brand_id, requested_at, requested_by, "
        "matched_by, mentions, escalations) "
        "VALUES (:brand_id, :at, 'test', 'username', :number, 0)",
        brand_id=brand_id,
        at=at,
        number=number,
    )
    post_id = str(uuid.uuid4())
    tx.execute(
        "INSERT INTO posts (id, brand_id, text, state, engine, weighted_length, "
        "published_at, x_post_id, created_by, created_at, updated_at) "
        "VALUES (:id, :brand_id, :text, 'published', 'manual', 40, :at, :x_post_id, "
        "'test', :at, :at)",
        id=post_id,
        brand_id=brand_id,
        text=f"Post {number}",
        at=at,
        x_post_id=str(1800000000000000000 + number),
    )
    # Two revenues shared by several posts, and posts with none.
    if number % 3:
        tx.execute(
            "INSERT INTO orders (brand_id, external_id, ordered_at, currency, "
            "total_price, post_id, received_at) "
            "VALUES (:brand_id, :external_id, :at, 'USD', :total, :post_id, :at)",
            brand_id=brand_id,
            external_id=f"order-{number}",
            at=at,
            total=Decimal("10.50") * (number % 3),
            post_id=post_id,
        )


def get(client, path: str, key: str, **query):
    return client.get(path, query_string=query, headers=auth(key))


def walk(client, path: str, field: str, key: str, limit: int) -> list[list[dict]]:
    pages, after = [], None
    while True:
        query = {"limit": limit} if after is None else {"limit": limit, "after": after}
        response = get(client, path, key, **query)
        assert response.status_code == 200, response.get_json()
        pages.append(response.get_json()[field])
        after = response.get_json()["next"]
        if after is None:
            return pages


def token(key: list) -> str:
    raw = json.dumps(key).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decoded(value: str) -> list:
    return json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))


@pytest.mark.parametrize("kind", LISTS)
def test_walking_every_page_answers_every_row_once_in_the_unpaged_order(
    client, brand, kind
) -> None:
    path, field = LISTS[kind]
    whole = get(client, path, brand["key"], limit=500).get_json()

    pages = walk(client, path, field, brand["key"], limit=2)

    assert whole["next"] is None
    assert len(whole[field]) == ROWS
    assert [len(page) for page in pages] == [2, 2, 2, 1]
    assert sum(pages, []) == whole[field]


def test_a_full_last_page_answers_a_next_only_while_rows_follow(client, brand) -> None:
    first = get(client, "/v1/crises", brand["key"], limit=ROWS).get_json()
    short = get(client, "/v1/crises", brand["key"], limit=ROWS - 1).get_json()

    assert first["next"] is None
    rest = get(client, "/v1/crises", brand["key"], after=short["next"]).get_json()
    assert len(short["crises"]) + len(rest["crises"]) == ROWS
    assert rest["next"] is None


def test_the_crises_pages_keep_their_row_ids_to_themselves(client, brand) -> None:
    found = get(client, "/v1/crises", brand["key"]).get_json()["crises"]

    assert all("id" not in crisis for crisis in found)


def test_the_csv_post_report_links_its_next_page_until_the_last(client, brand) -> None:
    whole = get(client, "/v1/reports/posts", brand["key"], format="csv", limit=500)
    pages, query = [], "format=csv&limit=3"

    while query is not None:
        response = client.get(f"/v1/reports/posts?{query}", headers=auth(brand["key"]))
        assert response.status_code == 200
        pages.append(response.get_data(as_text=True).splitlines()[1:])
        link = response.headers.get("Link")
        query = None if link is None else re.fullmatch(r'<\?(.+)>; rel="next"', link)[1]

    assert "Link" not in whole.headers
    assert [len(page) for page in pages] == [3, 3, 1]
    assert sum(pages, []) == whole.get_data(as_text=True).splitlines()[1:]


@pytest.mark.parametrize("kind", PATHS)
def test_a_key_a_list_reads_is_a_400_under_any_other_lists_name(
    client, brand, kind
) -> None:
    own = page_cursors.write(kind, GOOD_KEYS[kind])
    assert get(client, PATHS[kind], brand["key"], after=own).status_code == 200

    for other in PATHS:
        if other == kind:
            continue
        foreign = page_cursors.write(other, GOOD_KEYS[kind])
        response = get(client, PATHS[kind], brand["key"], after=foreign)
        assert response.status_code == 400, other
        assert response.get_json()["error"]["field"] == "after", other


@pytest.mark.parametrize("kind", LISTS)
def test_a_next_token_given_to_every_other_list_is_a_400_naming_after(
    client, brand, kind
) -> None:
    path, field = LISTS[kind]
    answered = get(client, path, brand["key"], limit=1).get_json()["next"]

    for other, other_path in PATHS.items():
        if other == kind:
            continue
        response = get(client, other_path, brand["key"], after=answered)
        assert response.status_code == 400, (kind, other)
        assert response.get_json()["error"]["field"] == "after", (kind, other)


def _edits(kind: str, key: list) -> list[list]:
    """Tokens a hand could make from a list's good key: each slot swapped for a
    value of another type, or one that would overflow its column, and the key
    cut short or made longer."""
    swaps = [1.5, True, None, "", [], {}, "x" * 40, 2**63, -1, "1" * 40]
    edited = [[kind, *key[:-1]], [kind, *key, key[-1]], [kind]]
    for place, value in enumerate(key):
        # A number where the list wrote text: an id as a number, say.
        also = [12345] if isinstance(value, str) else []
        for swap in [*swaps, *also]:
            edited.append([kind, *key[:place], swap, *key[place + 1 :]])
    return edited


@pytest.mark.parametrize("kind", LISTS)
def test_a_tampered_token_is_a_400_naming_after_never_a_500(
    client, brand, kind
) -> None:
    path, _ = LISTS[kind]
    answered = decoded(get(client, path, brand["key"], limit=1).get_json()["next"])
    assert answered[0] == kind

    for edited in _edits(kind, answered[1:]):
        response = get(client, path, brand["key"], after=token(edited))
        assert response.status_code == 400, edited
        assert response.get_json()["error"]["field"] == "after", edited


@pytest.mark.parametrize("kind", LISTS)
@pytest.mark.parametrize("after", ["zzz", "W10", "eyJhIjogMX0", "A" * 500, "%00"])
def test_a_token_no_list_wrote_is_a_400_naming_after(
    client, brand, kind, after
) -> None:
    response = get(client, PATHS[kind], brand["key"], after=after)

    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == "after"


def test_a_removal_id_written_as_a_string_or_a_bool_is_refused(client, brand) -> None:
    for row_id in ["1", True, 0, 2**63]:
        after = token(["author_data_removals", row_id])

        response = get(client, "/v1/author-data-removals", brand["key"], after=after)

        assert response.status_code == 400, row_id
        assert response.get_json()["error"]["field"] == "after"


def test_a_post_report_revenue_written_as_a_number_is_refused(client, brand) -> None:
    good = GOOD_KEYS["post_report"]
    for revenue in [0, 10.5, "1e999999", "-1", "10.505", "NaN"]:
        after = token(["post_report", revenue, *good[1:]])

        response = get(client, "/v1/reports/posts", brand["key"], after=after)

        assert response.status_code == 400, revenue
        assert response.get_json()["error"]["field"] == "after"


def test_next_page_splits_the_extra_row_off_as_the_next_token() -> None:
    rows = [{"n": 1}, {"n": 2}, {"n": 3}]

    page, following = page_cursors.next_page(rows, 2, "numbers", lambda r: [r["n"]])
    last, none = page_cursors.next_page(rows[2:], 2, "numbers", lambda r: [r["n"]])

    assert page == rows[:2]
    assert page_cursors.read(following, "numbers", lambda key: key) == [2]
    assert (last, none) == ([{"n": 3}], None)


def test_the_spec_takes_every_list_s_after_from_one_parameter() -> None:
    """One `after` in docs/openapi.yaml, as long as the longest token read."""
    spec = yaml.safe_load((REPO / "docs" / "openapi.yaml").read_text())
    shared = spec["components"]["parameters"]["after"]
    taking = {
        path
        for path, item in spec["paths"].items()
        for operation in item.values()
        if isinstance(operation, dict)
        for parameter in operation.get("parameters", [])
        if parameter.get("$ref") == "#/components/parameters/after"
    }

    assert shared["schema"]["maxLength"] == page_cursors.TOKEN_LENGTH_MAX
    assert taking == set(PATHS.values())
