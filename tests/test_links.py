"""Links carry the post id out in UTM parameters, and orders bring it back."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from twitter_text import extract_urls

from cartcast.links import (
    post_id_from_landing_site,
    product_link,
    standalone_link_count,
    without_standalone_link,
)

POST_ID = "3f2b8c1e-9a4d-4e6f-8b7a-1c2d3e4f5a6b"


def test_a_link_points_at_the_product_page_with_the_utm_parameters() -> None:
    link = product_link(
        "https://shop.example.com", "lash-princess", post_id=POST_ID, campaign="spring"
    )

    assert link == (
        "https://shop.example.com/products/lash-princess?utm_source=x"
        f"&utm_medium=social&utm_campaign=spring&utm_content={POST_ID}"
    )


def test_a_link_without_a_campaign_leaves_utm_campaign_out() -> None:
    link = product_link(
        "https://shop.example.com/", "mug", post_id=POST_ID, campaign=None
    )

    assert "utm_campaign" not in link
    assert link.startswith("https://shop.example.com/products/mug?utm_source=x&")


def test_campaigns_and_handles_are_percent_encoded() -> None:
    link = product_link(
        "https://shop.example.com",
        "tasse/café",
        post_id=POST_ID,
        campaign="Summer sale & more",
    )

    parts = urlsplit(link)
    assert parts.path == "/products/tasse%2Fcaf%C3%A9"
    assert parse_qs(parts.query)["utm_campaign"] == ["Summer sale & more"]
    assert " " not in link


def test_query_parameters_of_the_base_are_kept_and_old_utm_ones_replaced() -> None:
    link = product_link(
        "https://shop.example.com/en?ref=abc&utm_source=newsletter",
        "mug",
        post_id=POST_ID,
        campaign="c1",
    )

    parts = urlsplit(link)
    assert parts.path == "/en/products/mug"
    assert parse_qs(parts.query) == {
        "ref": ["abc"],
        "utm_source": ["x"],
        "utm_medium": ["social"],
        "utm_campaign": ["c1"],
        "utm_content": [POST_ID],
    }


def test_the_post_id_is_written_in_canonical_lower_case() -> None:
    link = product_link(
        "https://s.example", "mug", post_id=POST_ID.upper(), campaign=None
    )

    assert link.endswith(f"utm_content={POST_ID}")


@pytest.mark.parametrize("bad", ["", "42", "1876543210987654321", f"{{{POST_ID}}}"])
def test_a_post_id_that_is_not_a_uuid_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="UUID"):
        product_link("https://s.example", "mug", post_id=bad, campaign=None)


@pytest.mark.parametrize("base", ["shop.example.com", "ftp://shop.example.com", ""])
def test_a_base_that_is_not_an_http_url_is_refused(base: str) -> None:
    with pytest.raises(ValueError, match="http"):
        product_link(base, "mug", post_id=POST_ID, campaign=None)


def test_an_empty_handle_is_refused() -> None:
    with pytest.raises(ValueError, match="handle"):
        product_link("https://s.example", " ", post_id=POST_ID, campaign=None)


def test_a_link_round_trips_to_its_post_id() -> None:
    link = product_link(
        "https://shop.example.com?ref=1", "mug", post_id=POST_ID, campaign="a b"
    )

    assert post_id_from_landing_site(link) == POST_ID


def test_a_relative_landing_path_is_read() -> None:
    landing = f"/products/mug?utm_source=x&utm_medium=social&utm_content={POST_ID}"

    assert post_id_from_landing_site(landing) == POST_ID


def test_an_unrelated_parameter_that_is_not_utf_8_does_not_hide_the_post() -> None:
    landing = (
        f"/products/mug?q=caf%E9&utm_source=x&utm_medium=social&utm_content={POST_ID}"
    )

    assert post_id_from_landing_site(landing) == POST_ID


def test_upper_case_values_from_the_store_are_accepted() -> None:
    landing = (
        f"/products/mug?UTM_SOURCE=X&utm_medium=Social&utm_content={POST_ID.upper()}"
    )

    assert post_id_from_landing_site(landing) == POST_ID


@pytest.mark.parametrize(
    "landing",
    [
        None,
        "",
        "/products/mug",
        f"/products/mug?utm_source=newsletter&utm_medium=social&utm_content={POST_ID}",
        f"/products/mug?utm_source=x&utm_medium=email&utm_content={POST_ID}",
        f"/products/mug?utm_medium=social&utm_content={POST_ID}",
        "/products/mug?utm_source=x&utm_medium=social",
        "/products/mug?utm_source=x&utm_medium=social&utm_content=1876543210987654321",
        "/products/mug?utm_source=x&utm_medium=social&utm_content=<script>",
        f"/products/mug?utm_source=x&utm_medium=social&utm_content=urn:uuid:{POST_ID}",
        "http://[::1/products?utm_source=x",
        f"/products/mug?utm_source=x%E9&utm_medium=social&utm_content={POST_ID}",
        f"/products/mug?utm_source=x&utm_medium=social&utm_content={POST_ID}%E9",
    ],
)
def test_a_landing_site_that_did_not_come_from_our_links_gives_none(
    landing: str | None,
) -> None:
    assert post_id_from_landing_site(landing) is None


LINK = product_link(
    "https://shop.example.com",
    "mug",
    post_id="0b3c7a4e-1a2b-4c3d-8e9f-0123456789ab",
    campaign="spring sale",
)


@pytest.mark.parametrize(
    "text",
    [
        "Get it {}",
        "{} now",
        "See {}.",
        "({})!",
        "“{}”",
        "Get it: {}...",
        "買う {}。",
    ],
)
def test_a_link_standing_alone_is_counted_as_x_would_link_it(text) -> None:
    written = text.format(LINK)

    assert standalone_link_count(written, LINK) == 1
    assert extract_urls(written) == [LINK]


@pytest.mark.parametrize(
    "text",
    ["{}zzz", "{}&x=1", "{}#frag", "{}.more", "{}!x", "{}'s", "x{}", "{}/"],
)
def test_a_link_glued_to_anything_x_would_take_into_the_url_is_not_counted(
    text,
) -> None:
    written = text.format(LINK)

    assert standalone_link_count(written, LINK) == 0
    assert LINK not in extract_urls(written)
    assert without_standalone_link(written, LINK) == written
