"""A Shopify CSV's compare-at price becomes a discount rounded as amounts are."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cartcast import catalog_imports

CSV_COLUMNS = "Handle,Title,Variant Price,Variant Compare At Price"


@pytest.mark.parametrize(
    ("price", "compare_at", "discount"),
    [
        # (200.00 - 199.95) / 200.00 = 0.025 %: half to even would keep 0.02.
        ("199.95", "200.00", Decimal("0.03")),
        # 0.015 %: both rules give 0.02, so this pins nothing but the scale.
        ("199.97", "200.00", Decimal("0.02")),
        ("8.00", "10.00", Decimal("20.00")),
    ],
)
def test_a_compare_at_discount_rounds_half_up_like_every_amount(
    price, compare_at, discount
) -> None:
    lines = [CSV_COLUMNS, f"mug,Mug,{price},{compare_at}"]

    (item,) = catalog_imports.prepare_shopify_csv(
        "\r\n".join(lines) + "\r\n", field="file"
    ).items

    assert item["outcome"] != "refused", item
    assert Decimal(item["payload"]["product"]["discount_percent"]) == discount
