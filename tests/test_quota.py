"""The Gemini quota governor: one budget for every instance, never a provoked 429."""

from __future__ import annotations

import datetime as dt

import pytest

from cartcast import quota
from cartcast import runtime as runtime_module
from cartcast.clock import UTC
from cartcast.errors import RateLimited
from infra.gemini_standin import GeminiStandIn
from tests.conftest import OPERATOR_KEY, START, make_app
from tests.helpers import auth, brand_body, catalog, post_json


def governor(runtime, per_minute: int = 2, per_day: int = 3) -> quota.QuotaGovernor:
    return quota.QuotaGovernor(
        runtime.database, runtime.clock, per_minute=per_minute, per_day=per_day
    )


def test_calls_beyond_the_minute_budget_wait_for_the_oldest_to_age_out(
    runtime, clock
) -> None:
    budget = governor(runtime, per_minute=2)
    budget.reserve()
    clock.advance(dt.timedelta(seconds=10))
    budget.reserve()

    with pytest.raises(RateLimited) as refused:
        budget.reserve()

    assert (
        refused.value.reset_at == clock.now() - dt.timedelta(seconds=10) + quota.MINUTE
    )
    clock.set(refused.value.reset_at + dt.timedelta(seconds=1))
    budget.reserve()


def test_the_daily_budget_starts_again_at_midnight_pacific(runtime, clock) -> None:
    # 07:30 UTC on 2026-03-08 is 23:30 in Los Angeles, on the night clocks go forward.
    clock.set(dt.datetime(2026, 3, 8, 7, 30, tzinfo=UTC))
    budget = governor(runtime, per_minute=10, per_day=2)
    budget.reserve()
    budget.reserve()

    with pytest.raises(RateLimited) as refused:
        budget.reserve()

    assert refused.value.reset_at == dt.datetime(2026, 3, 8, 8, 0, tzinfo=UTC)
    clock.set(refused.value.reset_at)
    budget.reserve()


def test_a_pause_after_a_429_stops_every_caller_until_it_ends(runtime, clock) -> None:
    budget, other_instance = governor(runtime), governor(runtime)
    budget.pause(
        until=clock.now() + dt.timedelta(seconds=17), reason="a 429 from Gemini"
    )

    with pytest.raises(RateLimited, match="paused"):
        other_instance.reserve()

    clock.advance(dt.timedelta(seconds=17))
    other_instance.reserve()


@pytest.fixture
def standin():
    with GeminiStandIn() as running:
        yield running


@pytest.fixture
def gemini_env(function_env, monkeypatch, standin):
    monkeypatch.setenv("GEMINI_API_KEY", standin.api_key)
    monkeypatch.setenv("GEMINI_BASE_URL", standin.base_url)
    monkeypatch.setenv("GEMINI_REQUESTS_PER_DAY", "1")
    runtime_module.reset()
    return function_env


def caption(key: str, skus: list[str]):
    client = make_app("generate_caption", "http").test_client()
    return post_json(client, "/", {"products": skus}, key)


def test_captions_switch_to_the_template_engine_when_the_day_is_spent(
    gemini_env, standin
) -> None:
    api = make_app("api", "http").test_client()
    key = post_json(api, "/v1/brands", brand_body(), OPERATOR_KEY).get_json()["api_key"]
    post_json(api, "/v1/products", catalog(4), key)
    skus = [p["sku"] for p in catalog(4)]

    first = caption(key, skus[:2]).get_json()["posts"]
    second = caption(key, skus[2:]).get_json()["posts"]
    state = api.get("/v1/gemini", headers=auth(key)).get_json()

    assert {p["engine"] for p in first} == {"gemini"}
    assert {p["engine"] for p in second} == {"template"}
    assert {p["fallback_reason"] for p in second} == {"gemini: quota exhausted"}
    assert len(standin.requests()) == 1  # the governor asked nothing it would refuse
    assert state["engine"] == "template" and state["calls_today"] == 1


def test_a_429_from_gemini_pauses_the_next_requests(
    gemini_env, standin, monkeypatch
) -> None:
    monkeypatch.setenv("GEMINI_REQUESTS_PER_DAY", "20")
    runtime_module.reset()
    api = make_app("api", "http").test_client()
    key = post_json(api, "/v1/brands", brand_body(), OPERATOR_KEY).get_json()["api_key"]
    post_json(api, "/v1/products", catalog(2), key)
    standin.set_fault("quota")

    caption(key, [catalog(2)[0]["sku"]])
    caption(key, [catalog(2)[1]["sku"]])

    state = api.get("/v1/gemini", headers=auth(key)).get_json()
    assert len(standin.requests()) == 1
    assert state["paused_until"] is not None and state["engine"] == "template"


def test_a_call_counts_from_its_answer_so_the_window_never_frees_early(
    runtime, clock
) -> None:
    # Gemini counts a call when it arrives, after the slot was taken: a window
    # counted from the slot would free while Gemini still counts the call.
    budget = governor(runtime, per_minute=1, per_day=10)
    slot = budget.reserve()
    clock.advance(dt.timedelta(seconds=2))
    budget.answered(slot)
    clock.set(START + quota.MINUTE)

    with pytest.raises(RateLimited) as refused:
        budget.reserve()

    assert refused.value.reset_at == START + dt.timedelta(seconds=62)
