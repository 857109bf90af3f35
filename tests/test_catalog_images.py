"""A feed product's image URLs refuse what validation.UNPRINTABLE names, on every
way in, and the refusal reads as any other bad image's."""

from __future__ import annotations

import pytest

from cartcast import catalog, catalog_imports
from cartcast.errors import InvalidRequest

GOOD = "https://cdn.example.com/mug.jpg"
# A zero-width space, a right-to-left override and a C1 control, each inside a URL.
UNPRINTABLE_URLS = [
    "https://cdn.example.com/m\u200bug.jpg",
    "https://cdn.example.com/\u202emug.jpg",
    "https://cdn.example.com/mug\x9a.jpg",
]
CSV_COLUMNS = "Handle,Title,Variant Price,Image Src,Image Position"


@pytest.mark.parametrize("url", UNPRINTABLE_URLS)
def test_an_unprintable_thumbnail_or_image_is_refused_naming_it(url) -> None:
    row = {"sku": "MUG-1", "title": "Mug", "price": "9"}

    with pytest.raises(InvalidRequest) as thumbnail:
        catalog.parse_product({**row, "thumbnail": url})
    with pytest.raises(InvalidRequest) as image:
        catalog.parse_product({**row, "images": [GOOD, url]})

    assert thumbnail.value.field == "thumbnail"
    assert image.value.field == "images[1]"


@pytest.mark.parametrize("url", UNPRINTABLE_URLS)
def test_a_json_feed_reports_an_unprintable_image_as_a_bad_thumbnail(url) -> None:
    row = {"sku": "MUG-1", "title": "Mug", "price": "9"}
    feed = [
        {**row, "sku": "MUG-1", "thumbnail": "ftp://cdn.example.com/mug.jpg"},
        {**row, "sku": "MUG-2", "images": [url]},
        {**row, "sku": "MUG-3", "images": [GOOD]},
    ]

    items = catalog_imports.prepare_json_feed(feed, field="file").items

    thumbnail, image, good = items
    assert image.keys() == thumbnail.keys()
    assert (image["outcome"], image["payload"]) == ("refused", None)
    assert image["message"] == thumbnail["message"].replace("thumbnail", "images[0]")
    assert good["payload"]["product"]["image_url"] == GOOD


@pytest.mark.parametrize("url", UNPRINTABLE_URLS)
def test_a_csv_reports_an_unprintable_image_as_a_bad_image_src(url) -> None:
    lines = [
        CSV_COLUMNS,
        f"mug-1,Mug,9.00,{GOOD},1",
        "mug-1,,,ftp://cdn.example.com/back.jpg,2",
        f"mug-2,Mug,9.00,{GOOD},1",
        f"mug-2,,,{url},2",
        f"mug-3,Mug,9.00,{url},1",
    ]

    items = catalog_imports.prepare_shopify_csv(
        "\r\n".join(lines) + "\r\n", field="file"
    ).items

    bad_src, second, first = items
    assert (second["outcome"], first["outcome"]) == ("refused", "refused")
    assert second["message"] == bad_src["message"].replace("line 3", "line 5")
    assert first["message"] == bad_src["message"].replace("line 3", "line 6")
