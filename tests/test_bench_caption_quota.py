"""The quota bench runs small and reports the figures the issue asks for; the
Gemini stand-in it runs against enforces a quota as the free tier does."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from cartcast.captions import BrandVoice, DraftRequest, ProductBrief
from cartcast.clock import FixedClock
from cartcast.errors import RateLimited
from cartcast.gemini import GeminiCaptioner
from infra.gemini_standin import GeminiStandIn
from tests.helpers import bench_env

REPO = Path(__file__).resolve().parents[1]
RUN_TIMEOUT_S = 120


def test_a_small_quota_bench_uses_the_day_and_provokes_no_429(tmp_path: Path) -> None:
    env = bench_env()
    report_path = tmp_path / "caption_quota.json"
    # 30 products, 5 a request: 6 requests wanted, 4 allowed today, 2 a minute.
    command = [
        sys.executable,
        "-m",
        "bench.caption_quota",
        "--products",
        "30",
        "--per-request",
        "5",
        "--per-minute",
        "2",
        "--per-day",
        "4",
        "--json",
        str(report_path),
    ]

    finished = subprocess.run(
        command,
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )

    assert finished.returncode == 0, (finished.stdout + finished.stderr)[-4000:]
    assert "429 answers provoked" in finished.stdout
    report = json.loads(report_path.read_text())
    assert report["job_state"] == "done"
    assert report["gemini_requests"] == report["governed_calls"] == 4
    assert report["products_by_gemini"] == report["gemini_drafts"] == 20
    assert report["template_drafts"] == 10
    assert report["answers_429"] == 0
    # Simulated time: two requests, a minute, two more; nothing else waits.
    assert report["elapsed_s"] == report["minimum_s"] == 60


def test_the_standin_answers_429_past_its_quota_with_the_delay_until_a_call_frees() -> (
    None
):
    clock = FixedClock(dt.datetime(2026, 3, 2, 18, 0, tzinfo=dt.UTC))
    voice = BrandVoice(name="Quota Goods", voice="plain")
    product = ProductBrief(
        product_id="1",
        sku="SKU-1",
        title="Red Tongs",
        description="Tongs that grip.",
        price=Decimal("9.99"),
        currency="USD",
        category="kitchen",
        tags=(),
        brand=None,
        stock=5,
        discount_percent=None,
    )
    request = DraftRequest(product, "https://shop.example.com/products/red-tongs")

    with GeminiStandIn(requests_per_minute=1, clock=clock) as standin:
        captioner = GeminiCaptioner(
            api_key=standin.api_key, base_url=standin.base_url, clock=clock
        )
        captioner.write_copy([request], voice)
        clock.advance(dt.timedelta(seconds=20))
        with pytest.raises(RateLimited) as refused:
            captioner.write_copy([request], voice)
        clock.advance(dt.timedelta(seconds=40))
        captioner.write_copy([request], voice)

    assert refused.value.reset_at == clock.now()
    assert standin.quota_refusals == 1
