"""A publish run sends its batch with several workers, one account at a time each."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from cartcast import post_events, publishing
from cartcast.runtime import Runtime
from tests.helpers import make_brand

ACCOUNTS = [
    {"user_id": f"15000000000000001{index:02d}", "username": f"acct{index}"}
    for index in range(6)
]
SENT_ORDER = """
SELECT id, x_post_id, state FROM posts WHERE brand_id = :brand_id
ORDER BY scheduled_at, id
"""


def brands_on_x(runtime, sandbox, count: int, products: int) -> list[str]:
    made = []
    for account in ACCOUNTS[:count]:
        slug = account["username"]
        sandbox.register_account(**account, name=slug, token=f"token-{slug}")
        made.append(make_brand(runtime, slug, account, products=products))
    return made


def sent_order(runtime, brand_id: str) -> list[dict]:
    with runtime.database.transaction() as tx:
        return tx.rows(SENT_ORDER, brand_id=brand_id)


def test_each_account_gets_its_posts_once_and_in_their_order(
    x_runtime, clock, x_sandbox
) -> None:
    x_runtime.settings = dataclasses.replace(
        x_runtime.settings, publish_workers=4, publish_batch_size=50
    )
    brand_ids = brands_on_x(x_runtime, x_sandbox, count=6, products=4)
    clock.advance(dt.timedelta(days=14))

    outcome = publishing.publish_due(x_runtime, as_of=clock.now())

    on_x = [post["id"] for post in x_sandbox.snapshot()["posts"]]
    assert outcome["published"] == 24 and len(on_x) == 24 == len(set(on_x))
    for brand_id in brand_ids:
        rows = sent_order(x_runtime, brand_id)
        assert [row["state"] for row in rows] == ["published"] * 4
        positions = [on_x.index(row["x_post_id"]) for row in rows]
        assert positions == sorted(positions)


def test_posts_sent_by_workers_record_the_function_as_their_actor(
    x_runtime, clock, x_sandbox
) -> None:
    brand_ids = brands_on_x(x_runtime, x_sandbox, count=3, products=1)
    clock.advance(dt.timedelta(days=14))

    with post_events.acting_as("system:publish_due_posts"):
        publishing.publish_due(x_runtime, as_of=clock.now())

    actors = set()
    with x_runtime.database.transaction() as tx:
        for brand_id in brand_ids:
            (post,) = sent_order(x_runtime, brand_id)
            events = post_events.list_events(
                tx, brand_id=brand_id, post_id=str(post["id"])
            )
            actors |= {e["actor"] for e in events if e["to_state"] == "published"}
    assert actors == {"system:publish_due_posts"}


class BrokenClient:
    """An X client whose send fails as a bug would: not an answer from X, just an
    exception, raised after the post's intent was written."""

    def create_post(self, *args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug in the X client")


class BrokenFor(Runtime):
    """A runtime whose X client for one account has that bug."""

    def __init__(self, settings, clock, token: str) -> None:
        super().__init__(settings, clock=clock)
        self.broken_token = token

    def x_client(self, access_token: str):
        if access_token == self.broken_token:
            return BrokenClient()
        return super().x_client(access_token)


def test_an_error_in_one_worker_stops_the_run_and_no_post_goes_twice(
    x_runtime, clock, x_sandbox
) -> None:
    brand_ids = brands_on_x(x_runtime, x_sandbox, count=4, products=3)
    clock.advance(dt.timedelta(days=14))
    broken = BrokenFor(x_runtime.settings, clock, token="token-acct0")

    with pytest.raises(RuntimeError, match="a bug in the X client"):
        publishing.publish_due(broken, as_of=clock.now())
    broken.close()

    # The post that met the bug had its intent written: it is never sent again
    # blindly. Every other post is published, or goes back once its lease ends.
    clock.advance(dt.timedelta(seconds=x_runtime.settings.publish_lease_s + 1))
    publishing.publish_due(x_runtime, as_of=clock.now())

    on_x = [post["id"] for post in x_sandbox.snapshot()["posts"]]
    states = {
        brand_id: [row["state"] for row in sent_order(x_runtime, brand_id)]
        for brand_id in brand_ids
    }
    assert len(on_x) == len(set(on_x)) == 11
    assert states.pop(brand_ids[0]) == ["unconfirmed", "published", "published"]
    assert all(found == ["published"] * 3 for found in states.values())
