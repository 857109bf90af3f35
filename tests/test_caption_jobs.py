"""Caption jobs: queued through the api function, drained by drain_caption_jobs.

Both functions run in functions-framework's real apps; Gemini is the stand-in on
loopback, reached through google-genai; time is the shared file clock.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest

from cartcast import caption_drain, caption_jobs, events
from cartcast import runtime as runtime_module
from cartcast.clock import UTC
from infra.gemini_standin import GeminiStandIn
from tests.conftest import OPERATOR_KEY, REPO, START, make_app
from tests.helpers import (
    auth,
    brand_body,
    catalog,
    post_json,
    until_no_transaction_is_left_idle,
)

# START is midnight in Los Angeles: Gemini's day begins, and the next one begins
# 24 hours later.
NEXT_PACIFIC_DAY = dt.datetime(2026, 3, 3, 8, 0, tzinfo=UTC)
PRODUCTS = 6


@pytest.fixture
def env(function_env, monkeypatch):
    monkeypatch.setenv("CARTCAST_CAPTION_PRODUCTS_PER_REQUEST", "2")
    runtime_module.reset()
    return function_env


@pytest.fixture
def standin():
    with GeminiStandIn() as running:
        yield running


@pytest.fixture
def gemini_env(env, monkeypatch, standin):
    """Gemini at 2 calls a minute and 2 a day, unless a test says otherwise."""
    monkeypatch.setenv("GEMINI_API_KEY", standin.api_key)
    monkeypatch.setenv("GEMINI_BASE_URL", standin.base_url)
    monkeypatch.setenv("GEMINI_REQUESTS_PER_MINUTE", "2")
    monkeypatch.setenv("GEMINI_REQUESTS_PER_DAY", "2")
    runtime_module.reset()
    return env


def make_brand(products: int = PRODUCTS, **overrides) -> str:
    api = make_app("api", "http").test_client()
    created = post_json(api, "/v1/brands", brand_body(**overrides), OPERATOR_KEY)
    key = created.get_json()["api_key"]
    if products:
        post_json(api, "/v1/products", catalog(products), key)
    return key


def enqueue(key: str, body: dict):
    return post_json(
        make_app("api", "http").test_client(), "/v1/caption-jobs", body, key
    )


def get(key: str, path: str):
    client = make_app("api", "http").test_client()
    return client.get(path, headers=auth(key))


def job_of(key: str, job_id: str) -> dict:
    return get(key, f"/v1/caption-jobs/{job_id}").get_json()["job"]


def posts_of(key: str) -> list[dict]:
    return get(key, "/v1/posts?limit=500").get_json()["posts"]


def tick(at: dt.datetime, message_id: str = ""):
    headers, body = events.envelope(
        topic="cartcast-drain_caption_jobs",
        project="test",
        payload={},
        message_id=message_id or uuid.uuid4().hex,
        time=at,
    )
    client = make_app("drain_caption_jobs", "cloudevent").test_client()
    return client.post("/", headers=headers, data=json.dumps(body))


def test_a_job_for_the_whole_catalog_answers_202_with_every_product_remaining(
    env,
) -> None:
    key = make_brand()

    answer = enqueue(key, {"products": "all", "campaign": "spring"})

    assert answer.status_code == 202
    job = answer.get_json()["job"]
    assert answer.headers["Location"] == f"/v1/caption-jobs/{job['id']}"
    assert job["state"] == "queued" and job["when_quota_spent"] == "wait"
    assert job["options"] == {"campaign": "spring"}
    assert job["progress"] == {
        "products_total": PRODUCTS,
        "done": 0,
        "failed": 0,
        "skipped": 0,
        "remaining": PRODUCTS,
        "by_engine": {"gemini": 0, "template": 0, "mixed": 0},
        "drafts": 0,
    }
    assert job["next_chunk"] == {"engine": "template"}
    assert answer.get_json()["gemini"] == {"configured": False}


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({}, 400, "products"),
        ({"products": "some"}, 400, "products"),
        ({"products": []}, 400, "products"),
        ({"products": ["", "x"]}, 400, "products[0]"),
        ({"products": ["\u3000", "x"]}, 400, "products[0]"),
        # A control character alone is blank too (the spec's not-blank pattern).
        ({"products": ["\x1e"]}, 400, "products[0]"),
        ({"products": ["\x85 "]}, 400, "products[0]"),
        ({"products": [catalog(1)[0]["sku"], "no-such-sku"]}, 404, "products[1]"),
        (
            {"products": [catalog(2)[1]["sku"], catalog(2)[1]["sku"]]},
            400,
            "products[1]",
        ),
        ({"products": "all", "variants": 9}, 400, "variants"),
        ({"products": "all", "tone": 3}, 400, "tone"),
        ({"products": "all", "when_quota_spent": "never"}, 400, "when_quota_spent"),
        ({"products": "all", "language": "de"}, 400, "language"),
        ({"products": "all", "language": "xx"}, 400, "language"),
        ({"products": "all", "colour": "red"}, 400, "colour"),
    ],
)
def test_a_job_request_it_cannot_take_names_the_field_and_stores_nothing(
    env, body, status, field
) -> None:
    key = make_brand()

    answer = enqueue(key, body)

    assert answer.status_code == status, answer.get_json()
    assert answer.get_json()["error"]["field"] == field
    assert get(key, "/v1/caption-jobs").get_json()["jobs"] == []


def test_an_image_job_for_a_product_without_an_image_is_refused_at_once(env) -> None:
    key = make_brand()
    bare = {**catalog(1)[0], "sku": "NO-IMAGE-1", "thumbnail": None, "images": []}
    post_json(make_app("api", "http").test_client(), "/v1/products", [bare], key)

    answer = enqueue(key, {"products": ["NO-IMAGE-1"], "kind": "image"})

    assert answer.status_code == 400
    assert answer.get_json()["error"]["field"] == "kind"
    assert get(key, "/v1/caption-jobs").get_json()["jobs"] == []


def test_an_empty_catalog_cannot_be_captioned(env) -> None:
    key = make_brand(products=0)

    answer = enqueue(key, {"products": "all"})

    assert answer.status_code == 409
    assert answer.get_json()["error"]["field"] == "products"
    assert get(key, "/v1/caption-jobs").get_json()["jobs"] == []


def test_each_tick_writes_chunks_and_the_next_resumes_where_it_stopped(
    env, monkeypatch, clock_file
) -> None:
    # A budget this small lets a tick write one chunk (of 2 products), no more.
    monkeypatch.setenv("CARTCAST_CAPTION_DRAIN_BUDGET_S", "0.000001")
    runtime_module.reset()
    key = make_brand()
    job_id = enqueue(key, {"products": "all", "campaign": "spring"}).get_json()["job"][
        "id"
    ]

    seen = []
    for _ in range(3):
        assert tick(clock_file.now()).status_code == 200
        seen.append(job_of(key, job_id)["progress"]["done"])
    extra = tick(clock_file.now())

    assert extra.status_code == 200
    assert seen == [2, 4, 6]
    job = job_of(key, job_id)
    assert job["state"] == "done" and job["finished_at"] is not None
    assert job["progress"]["by_engine"]["template"] == PRODUCTS
    assert job["next_chunk"] is None
    drafts = posts_of(key)
    assert len(drafts) == PRODUCTS == len({post["product_id"] for post in drafts})
    assert {post["campaign"] for post in drafts} == {"spring"}
    assert {post["created_by"] for post in drafts} == {"admin"}


def test_a_redelivered_tick_writes_nothing_twice(env, clock_file) -> None:
    key = make_brand()
    job_id = enqueue(key, {"products": "all"}).get_json()["job"]["id"]

    first = tick(clock_file.now(), message_id="tick-1")
    again = tick(clock_file.now(), message_id="tick-1")

    assert first.status_code == again.status_code == 200
    assert job_of(key, job_id)["progress"]["drafts"] == PRODUCTS
    assert len(posts_of(key)) == PRODUCTS


def test_overlapping_drains_split_the_work_without_duplicates(
    gemini_env, monkeypatch, standin, clock_file
) -> None:
    monkeypatch.setenv("GEMINI_REQUESTS_PER_MINUTE", "100")
    monkeypatch.setenv("GEMINI_REQUESTS_PER_DAY", "100")
    runtime_module.reset()
    key = make_brand()
    job_id = enqueue(key, {"products": "all"}).get_json()["job"]["id"]
    # Each Gemini answer takes a while, so both drains are mid-chunk together.
    standin.set_fault("slow", count=PRODUCTS, delay_s=0.4)
    instances = [
        runtime_module.Runtime(runtime_module.current().settings) for _ in "ab"
    ]
    outcomes: list[dict] = []

    def run(instance) -> None:
        outcomes.append(caption_drain.drain(instance, budget_s=30))

    threads = [threading.Thread(target=run, args=(i,)) for i in instances]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for instance in instances:
        instance.close()

    assert sorted(outcome["products"] for outcome in outcomes)[0] > 0
    assert sum(outcome["products"] for outcome in outcomes) == PRODUCTS
    drafts = posts_of(key)
    assert len(drafts) == PRODUCTS == len({post["product_id"] for post in drafts})
    assert len(standin.requests()) == PRODUCTS // 2
    assert job_of(key, job_id)["state"] == "done"


# A drain run by an instance of its own, which the test can stop mid-chunk.
ANOTHER_DRAIN = """
from cartcast import caption_drain, runtime
caption_drain.drain(runtime.current(), budget_s=30)
"""


def test_a_chunk_claimed_by_a_drain_lost_mid_chunk_is_drained_by_the_next(
    gemini_env, monkeypatch, standin
) -> None:
    """A drain that stops answering (frozen, cut off) while Gemini writes its
    chunk keeps its connection open: decision 0106 has the database end its
    transaction once idle past CARTCAST_CAPTION_IDLE_MAX_S, so the items it
    claimed go back to the queue instead of staying locked."""
    monkeypatch.setenv("GEMINI_REQUESTS_PER_MINUTE", "100")
    monkeypatch.setenv("GEMINI_REQUESTS_PER_DAY", "100")
    monkeypatch.setenv("GEMINI_TIMEOUT_S", "2")
    monkeypatch.setenv("CARTCAST_CAPTION_IDLE_MAX_S", "6")
    runtime_module.reset()
    key = make_brand()
    job_id = enqueue(key, {"products": "all"}).get_json()["job"]["id"]
    release = standin.hold_answers()
    lost = subprocess.Popen(
        [sys.executable, "-c", ANOTHER_DRAIN],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": "functions"},
        stdout=subprocess.DEVNULL,
    )
    try:
        assert standin.wait_for_requests(1), "the other drain never reached Gemini"
        lost.send_signal(signal.SIGSTOP)
        release.set()

        database = runtime_module.current().database
        session_ended = until_no_transaction_is_left_idle(database)
        outcome = caption_drain.drain(runtime_module.current(), budget_s=30)
    finally:
        release.set()
        lost.kill()
        lost.wait()

    assert session_ended, "the lost drain's transaction was never ended"
    assert outcome["products"] == PRODUCTS
    assert job_of(key, job_id)["state"] == "done"
    assert len(posts_of(key)) == PRODUCTS


def test_progress_is_readable_while_a_chunk_is_being_written(
    gemini_env, standin, clock_file
) -> None:
    key = make_brand()
    job_id = enqueue(key, {"products": "all"}).get_json()["job"]["id"]
    standin.set_fault("slow", count=1, delay_s=2)
    drainer = threading.Thread(target=tick, args=(clock_file.now(),))

    drainer.start()
    while not standin.requests():
        time.sleep(0.01)
    during = get(key, f"/v1/caption-jobs/{job_id}")
    listed = get(key, "/v1/caption-jobs")
    drainer.join(timeout=30)

    assert during.status_code == listed.status_code == 200
    assert during.get_json()["job"]["progress"]["remaining"] == PRODUCTS
    assert listed.get_json()["jobs"][0]["id"] == job_id
    assert job_of(key, job_id)["progress"]["done"] == 4


def test_a_job_waits_while_the_days_quota_is_spent_and_resumes_the_next_day(
    gemini_env, standin, clock_file
) -> None:
    key = make_brand()
    job_id = enqueue(key, {"products": "all"}).get_json()["job"]["id"]

    tick(clock_file.now())
    clock_file.set(START + dt.timedelta(hours=5))
    tick(clock_file.now())
    waiting = get(key, f"/v1/caption-jobs/{job_id}").get_json()
    clock_file.set(NEXT_PACIFIC_DAY)
    tick(clock_file.now())

    job = waiting["job"]
    assert job["state"] == "running" and job["progress"]["remaining"] == 2
    assert job["progress"]["by_engine"]["gemini"] == 4
    assert job["next_chunk"]["engine"] is None
    assert job["next_chunk"]["waiting_until"] == NEXT_PACIFIC_DAY.isoformat()
    assert "2 calls today" in job["next_chunk"]["reason"]
    assert waiting["gemini"]["calls_today"] == 2
    assert waiting["gemini"]["available"] is False
    finished = job_of(key, job_id)
    assert finished["state"] == "done"
    assert finished["progress"]["by_engine"]["gemini"] == PRODUCTS
    assert len(standin.requests()) == 3


def test_a_job_that_allows_the_template_engine_finishes_when_the_day_is_spent(
    gemini_env, monkeypatch, standin, clock_file
) -> None:
    monkeypatch.setenv("GEMINI_REQUESTS_PER_MINUTE", "10")
    runtime_module.reset()
    key = make_brand()
    body = {"products": "all", "when_quota_spent": "template"}
    job_id = enqueue(key, body).get_json()["job"]["id"]

    tick(clock_file.now())

    job = job_of(key, job_id)
    assert job["state"] == "done"
    assert job["progress"]["by_engine"] == {"gemini": 4, "template": 2, "mixed": 0}
    template = [post for post in posts_of(key) if post["engine"] == "template"]
    assert {post["fallback_reason"] for post in template} == {None}
    assert len(standin.requests()) == 2


def test_every_job_waits_for_the_minute_window_rather_than_fall_back(
    gemini_env, monkeypatch, standin, clock_file
) -> None:
    monkeypatch.setenv("GEMINI_REQUESTS_PER_MINUTE", "1")
    monkeypatch.setenv("GEMINI_REQUESTS_PER_DAY", "20")
    runtime_module.reset()
    key = make_brand()
    body = {"products": "all", "when_quota_spent": "template"}
    job_id = enqueue(key, body).get_json()["job"]["id"]

    tick(clock_file.now())
    after_one = job_of(key, job_id)
    clock_file.set(START + dt.timedelta(seconds=60))
    tick(clock_file.now())

    assert after_one["progress"]["done"] == 2
    assert (
        after_one["next_chunk"]["waiting_until"]
        == (START + dt.timedelta(seconds=60)).isoformat()
    )
    assert job_of(key, job_id)["progress"]["by_engine"]["gemini"] == 4
    assert len(standin.requests()) == 2


def test_a_429_from_gemini_is_honoured_until_its_retry_delay(
    gemini_env, monkeypatch, standin, clock_file
) -> None:
    monkeypatch.setenv("GEMINI_REQUESTS_PER_MINUTE", "10")
    monkeypatch.setenv("GEMINI_REQUESTS_PER_DAY", "20")
    runtime_module.reset()
    key = make_brand()
    job_id = enqueue(key, {"products": "all"}).get_json()["job"]["id"]
    standin.set_fault("quota", retry_delay_s=17)

    tick(clock_file.now())
    paused = job_of(key, job_id)
    clock_file.set(START + dt.timedelta(seconds=17))
    tick(clock_file.now())

    assert paused["progress"]["done"] == 0 and paused["progress"]["drafts"] == 0
    assert (
        paused["next_chunk"]["waiting_until"]
        == (START + dt.timedelta(seconds=17)).isoformat()
    )
    assert "paused after a 429" in paused["next_chunk"]["reason"]
    finished = job_of(key, job_id)
    assert finished["progress"]["by_engine"]["gemini"] == PRODUCTS
    assert len(standin.requests()) == 1 + PRODUCTS // 2


def test_a_cancelled_job_is_drained_no_further_and_cannot_be_cancelled_twice(
    env, monkeypatch, clock_file
) -> None:
    monkeypatch.setenv("CARTCAST_CAPTION_DRAIN_BUDGET_S", "0.000001")
    runtime_module.reset()
    key = make_brand()
    job_id = enqueue(key, {"products": "all"}).get_json()["job"]["id"]
    api = make_app("api", "http").test_client()
    tick(clock_file.now())

    cancelled = api.post(f"/v1/caption-jobs/{job_id}/cancel", headers=auth(key))
    tick(clock_file.now())
    again = api.post(f"/v1/caption-jobs/{job_id}/cancel", headers=auth(key))

    assert cancelled.status_code == 200
    assert cancelled.get_json()["job"]["state"] == "cancelled"
    assert cancelled.get_json()["job"]["next_chunk"] is None
    job = job_of(key, job_id)
    assert job["progress"]["done"] == 2 and job["progress"]["remaining"] == 4
    assert len(posts_of(key)) == 2
    assert again.status_code == 409


def test_a_product_no_post_can_fit_fails_alone_and_the_others_are_written(
    env, clock_file
) -> None:
    # On a made-up top-level domain a link counts at its full length, so a product
    # with a 200-character handle leaves no room for any post. Such a base is now
    # refused when set; a brand stored before that still holds one.
    key = make_brand(products=0)
    with runtime_module.current().database.transaction() as tx:
        tx.execute(
            "UPDATE brands SET store_base_url = 'https://shop.example'"
            " WHERE slug = 'test-goods'"
        )
    products = catalog(3)
    products[1] = {**products[1], "handle": "long-" + "x" * 195}
    api = make_app("api", "http").test_client()
    post_json(api, "/v1/products", products, key)
    job_id = enqueue(key, {"products": "all"}).get_json()["job"]["id"]

    tick(clock_file.now())

    job = job_of(key, job_id)
    assert job["state"] == "done"
    assert (job["progress"]["done"], job["progress"]["failed"]) == (2, 1)
    assert [failure["sku"] for failure in job["failures"]] == [products[1]["sku"]]
    assert "280" in job["failures"][0]["error"]
    assert len(posts_of(key)) == 2


def test_another_brands_job_is_not_found(env) -> None:
    mine = make_brand()
    theirs = make_brand(slug="other-goods", name="Other Goods")
    job_id = enqueue(theirs, {"products": "all"}).get_json()["job"]["id"]

    assert get(mine, f"/v1/caption-jobs/{job_id}").status_code == 404
    assert get(mine, "/v1/caption-jobs/not-a-uuid").status_code == 404
    assert get(mine, "/v1/caption-jobs").get_json()["jobs"] == []


def test_the_command_queues_a_job_and_prints_progress_until_done(
    gemini_env, monkeypatch, standin, capsys
) -> None:
    monkeypatch.setenv("GEMINI_REQUESTS_PER_DAY", "20")
    runtime_module.reset()
    make_brand()

    status = caption_jobs.main(["--brand", "test-goods", "--campaign", "spring"])

    printed = capsys.readouterr().out.splitlines()
    assert status == 0
    assert printed[0].endswith("0/6 done, 6 remaining, 0 failed")
    assert printed[1] == "  +2 (gemini 2): 2/6 done, 4 remaining, 0 failed (gemini 2)"
    assert printed[-1].endswith("is done: 6/6 done, 0 remaining, 0 failed (gemini 6)")
    # 2 calls a minute: the third chunk waited a minute on the simulated clock.
    assert runtime_module.current().clock.now() == START + dt.timedelta(seconds=60)


def test_a_job_for_listed_products_takes_ids_and_skus_and_writes_only_those(
    env, clock_file
) -> None:
    key = make_brand()
    listed = get(key, "/v1/products").get_json()["products"]
    body = {"products": [listed[0]["id"].upper(), listed[2]["sku"]]}

    queued = enqueue(key, body).get_json()["job"]
    tick(clock_file.now())

    assert queued["progress"]["products_total"] == 2
    written = sorted(post["product_id"] for post in posts_of(key))
    assert written == sorted([listed[0]["id"], listed[2]["id"]])


def test_a_job_in_another_language_must_wait_for_gemini(gemini_env) -> None:
    key = make_brand()

    refused = enqueue(
        key, {"products": "all", "language": "de", "when_quota_spent": "template"}
    )
    queued = enqueue(key, {"products": "all", "language": "de"})

    assert refused.status_code == 400
    assert refused.get_json()["error"]["field"] == "when_quota_spent"
    assert queued.status_code == 202
    assert queued.get_json()["job"]["options"] == {"language": "de"}


def test_the_command_names_a_brand_it_does_not_know(env, capsys) -> None:
    status = caption_jobs.main(["--brand", "no-such-brand"])

    assert status == 2
    assert "no brand with the slug 'no-such-brand'" in capsys.readouterr().err


def test_the_command_without_settings_names_them_in_one_line(
    monkeypatch, capsys
) -> None:
    for name in ("DATABASE_URL", "CLOUD_SQL_INSTANCE"):
        monkeypatch.delenv(name, raising=False)
    runtime_module.reset()

    status = caption_jobs.main(["--brand", "test-goods"])

    assert status == 2
    assert "DATABASE_URL or CLOUD_SQL_INSTANCE is required" in capsys.readouterr().err


def ask_to_leave(key: str) -> None:
    api = make_app("api", "http").test_client()
    asked = post_json(api, "/v1/brand/offboarding", {}, key)
    assert asked.status_code == 202, asked.get_json()


def test_a_brand_that_asked_to_leave_queues_no_caption_job(env) -> None:
    key = make_brand()
    ask_to_leave(key)

    answer = enqueue(key, {"products": "all"})

    assert answer.status_code == 409
    message = answer.get_json()["error"]["message"]
    assert "offboarding" in message and "/v1/brand/offboarding/cancel" in message
    assert get(key, "/v1/caption-jobs").get_json()["jobs"] == []


def test_a_leaving_brands_queued_job_writes_nothing_and_resumes_if_it_stays(
    gemini_env, standin, clock_file
) -> None:
    # Its Gemini calls would record costs, and so mark KPI days, while the sweep
    # deletes the brand's rows; kept, the job goes on if the brand stays after all.
    key = make_brand()
    job_id = enqueue(key, {"products": "all"}).get_json()["job"]["id"]
    ask_to_leave(key)
    api = make_app("api", "http").test_client()

    tick(clock_file.now())
    skipped = job_of(key, job_id)
    calls_while_leaving = len(standin.requests())
    drafts_while_leaving = posts_of(key)
    stayed = api.post("/v1/brand/offboarding/cancel", headers=auth(key))
    tick(clock_file.now())

    assert calls_while_leaving == 0 and drafts_while_leaving == []
    assert skipped["state"] == "queued" and skipped["progress"]["remaining"] == 6
    assert skipped["next_chunk"]["engine"] is None
    reason = skipped["next_chunk"]["reason"]
    assert reason.startswith("offboarding: the brand asked to leave cartcast")
    assert "POST /v1/brand/offboarding/cancel" in reason
    assert stayed.status_code == 200
    assert job_of(key, job_id)["progress"]["by_engine"]["gemini"] == 4


def test_a_product_retired_while_its_chunk_is_written_is_counted_failed(
    gemini_env, monkeypatch, standin
) -> None:
    """Decision 0110: a product retired during Gemini's call for its chunk gets no
    draft; its item fails with the retired reason, and the others are written."""
    monkeypatch.setenv("GEMINI_REQUESTS_PER_MINUTE", "100")
    monkeypatch.setenv("GEMINI_REQUESTS_PER_DAY", "100")
    runtime_module.reset()
    key = make_brand(products=2)
    kept, retired = (product["sku"] for product in catalog(2))
    job_id = enqueue(key, {"products": [kept, retired]}).get_json()["job"]["id"]
    listed = get(key, "/v1/products?limit=10").get_json()["products"]
    (retired_id,) = [row["id"] for row in listed if row["sku"] == retired]
    release = standin.hold_answers()
    outcome: list = [None]

    def drain() -> None:
        outcome[0] = caption_drain.drain(runtime_module.current(), budget_s=30)

    drainer = threading.Thread(target=drain)
    drainer.start()
    try:
        assert standin.wait_for_requests(1), "the drain never reached Gemini"
        api = make_app("api", "http").test_client()
        api.delete(f"/v1/products/{retired_id}", headers=auth(key))
    finally:
        release.set()
        drainer.join()

    job = job_of(key, job_id)
    assert job["state"] == "done", job
    assert (job["progress"]["done"], job["progress"]["failed"]) == (1, 1)
    (failure,) = job["failures"]
    assert failure["sku"] == retired and "retired" in failure["error"]
    assert all(post["product_id"] != retired_id for post in posts_of(key))
