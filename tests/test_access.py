"""Key roles on every route, key management and the audit trail, through the api."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
import yaml

from cartcast import api, keys
from cartcast import runtime as runtime_module
from tests.conftest import OPERATOR_KEY, make_app
from tests.helpers import auth, brand_body, catalog, post_json

SPEC = Path(__file__).resolve().parents[1] / "docs" / "openapi.yaml"
METHODS = ("get", "post", "put", "patch", "delete")
CALLERS = (*keys.ROLES, keys.OPERATOR)


def described_operations() -> list[tuple[str, str, str]]:
    """Return (method, path, x-role) for every operation docs/openapi.yaml lists."""
    spec = yaml.safe_load(SPEC.read_text())
    return [
        (method.upper(), path, operation.get("x-role"))
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def may_call(caller: str, needed: str) -> bool:
    """What the role ladder in keys.py promises, written out independently."""
    if needed == api.SIGNED:
        return True
    if needed == keys.OPERATOR or caller == keys.OPERATOR:
        return caller == needed
    return keys.ROLES.index(caller) >= keys.ROLES.index(needed)


def endpoint_of(method: str, path: str) -> str:
    rule = re.sub(r"{(\w+)}", r"<\1>", path)
    for served in api.routes().iter_rules():
        if served.rule == rule and method in served.methods:
            return served.endpoint
    raise AssertionError(f"{method} {path} is described but not served")


def concrete(path: str) -> str:
    """Fill each path parameter with an id no row has."""
    return re.sub(r"{(\w+)}", lambda _: str(uuid.uuid4()), path)


API_OPERATIONS = [op for op in described_operations() if op[1] != "/"]


@pytest.fixture
def client(function_env):
    return make_app("api", "http").test_client()


@pytest.fixture
def admin_key(client) -> str:
    body = brand_body(approvals_required=True)
    response = post_json(client, "/v1/brands", body, OPERATOR_KEY)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["api_key"]


@pytest.fixture
def role_keys(client, admin_key) -> dict[str, str]:
    made = {"admin": admin_key, keys.OPERATOR: OPERATOR_KEY}
    for role in ("viewer", "editor", "approver"):
        response = post_json(
            client, "/v1/keys", {"name": f"{role}-key", "role": role}, admin_key
        )
        assert response.status_code == 201, response.get_json()
        made[role] = response.get_json()["api_key"]
    return made


def audit_trail(client, key: str, query: str = "") -> dict:
    response = client.get(f"/v1/audit{query}", headers=auth(key))
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def a_draft(client, key: str) -> str:
    post_json(client, "/v1/products", catalog(1), key)
    created = post_json(
        client, "/v1/captions", {"products": [catalog(1)[0]["sku"]]}, key
    )
    assert created.status_code == 201, created.get_json()
    return created.get_json()["posts"][0]["id"]


# The role matrix.


def test_every_described_operation_names_the_role_the_code_enforces() -> None:
    for method, path, role in described_operations():
        if path == "/":
            assert role == api.CAPTION_FUNCTION_ROLE
            continue
        assert role == api.ROUTE_ROLES[endpoint_of(method, path)], (method, path)


@pytest.mark.parametrize(
    ("method", "path", "needed"),
    API_OPERATIONS,
    ids=[f"{method} {path}" for method, path, _ in API_OPERATIONS],
)
def test_each_role_gets_what_the_route_table_allows_it(
    client, role_keys, method, path, needed
) -> None:
    url = concrete(path)

    for caller in CALLERS:
        response = client.open(url, method=method, headers=auth(role_keys[caller]))

        status = response.status_code
        answer = (caller, status, response.get_json())
        assert status < 500, answer
        if not may_call(caller, needed):
            assert status == 403, answer
            assert needed in answer[2]["error"]["message"], answer
        elif needed == api.SIGNED:
            # No key is read: a signature or an OAuth state decides, and none came.
            assert status in (400, 401), answer
        else:
            assert status not in (401, 403), answer


@pytest.mark.parametrize("role", CALLERS)
def test_the_caption_function_needs_what_post_v1_captions_needs(
    client, role_keys, role
) -> None:
    captions = make_app("generate_caption", "http").test_client()

    response = post_json(captions, "/", {}, role_keys[role])

    expected_refused = not may_call(role, api.CAPTION_FUNCTION_ROLE)
    assert (response.status_code == 403) == expected_refused, response.get_json()


def test_a_viewer_trying_to_approve_is_refused_and_recorded(client, role_keys) -> None:
    post_id = a_draft(client, role_keys["editor"])

    response = client.post(
        f"/v1/posts/{post_id}/approve", headers=auth(role_keys["viewer"])
    )

    error = response.get_json()["error"]
    assert response.status_code == 403
    assert error["message"].startswith("this needs a key of role admin or approver")
    assert error["field"] == "role"
    post = client.get(f"/v1/posts/{post_id}", headers=auth(role_keys["viewer"]))
    assert post.get_json()["post"]["state"] == "needs_approval"
    refusal = audit_trail(client, role_keys["admin"], "?action=access.refused")
    [event] = refusal["events"]
    assert event["actor"] == "viewer-key"
    assert event["subject"] == "route:POST /v1/posts/{post_id}/approve"
    assert event["after"]["role"] == "viewer"


def test_the_operator_key_is_no_brands_key_and_its_refusal_is_nobodys(
    client, role_keys
) -> None:
    response = client.get("/v1/posts", headers=auth(OPERATOR_KEY))

    assert response.status_code == 403
    assert audit_trail(client, role_keys["admin"], "?action=access.refused") == {
        "events": [],
        "next": None,
    }


# Keys.


@pytest.mark.parametrize("name", [" ops", "ops ", "ops\n", "\u3000ops"])
def test_a_key_name_with_blanks_around_it_is_a_400_as_the_spec_says(
    client, admin_key, name
) -> None:
    response = post_json(
        client, "/v1/keys", {"name": name, "role": "editor"}, admin_key
    )

    assert response.status_code == 400, response.get_json()
    assert response.get_json()["error"]["field"] == "name"
    listed = client.get("/v1/keys", headers=auth(admin_key)).get_json()["keys"]
    assert [k["name"] for k in listed] == ["admin"]


@pytest.mark.parametrize("name", ["Mária", "José", "Ørsted"])
def test_a_key_name_with_a_letter_outside_ascii_is_refused_saying_so(
    client, admin_key, name
) -> None:
    # The spec's pattern takes A-Z and a-z only; the message said "letters".
    response = post_json(
        client, "/v1/keys", {"name": name, "role": "editor"}, admin_key
    )

    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == "name"
    assert "ASCII letters (A-Z, a-z)" in response.get_json()["error"]["message"]


def test_an_admin_makes_a_key_shown_once_and_listed_without_it(
    client, admin_key
) -> None:
    response = post_json(
        client, "/v1/keys", {"name": "ops bot", "role": "editor"}, admin_key
    )

    created = response.get_json()
    assert response.status_code == 201
    assert created["api_key"].startswith("cc_")
    assert created["key"]["prefix"] == created["api_key"][:10]
    listed = client.get("/v1/keys", headers=auth(admin_key)).get_json()["keys"]
    assert [(k["name"], k["role"], k["revoked"]) for k in listed] == [
        ("admin", "admin", False),
        ("ops bot", "editor", False),
    ]
    assert created["api_key"] not in str(listed)
    assert all(set(k) >= {"prefix", "created_at", "last_used_at"} for k in listed)


def test_a_key_notes_when_it_was_last_used(client, admin_key) -> None:
    made = post_json(
        client, "/v1/keys", {"name": "reader", "role": "viewer"}, admin_key
    )
    assert made.get_json()["key"]["last_used_at"] is None

    client.get("/v1/posts", headers=auth(made.get_json()["api_key"]))

    listed = client.get("/v1/keys", headers=auth(admin_key)).get_json()["keys"]
    reader = next(k for k in listed if k["name"] == "reader")
    assert reader["last_used_at"] is not None


@pytest.mark.parametrize(
    ("body", "field", "status"),
    [
        ({"name": "x", "role": "owner"}, "role", 400),
        ({"name": "x"}, "role", 400),
        ({"role": "viewer"}, "name", 400),
        ({"name": "system:publish", "role": "viewer"}, "name", 400),
        ({"name": "Operator", "role": "viewer"}, "name", 400),
        ({"name": "x", "role": "viewer", "scope": "all"}, "scope", 400),
        ({"name": "admin", "role": "viewer"}, "name", 409),
    ],
)
def test_a_bad_key_request_names_its_field(
    client, admin_key, body, field, status
) -> None:
    response = post_json(client, "/v1/keys", body, admin_key)

    assert response.status_code == status
    assert response.get_json()["error"]["field"] == field
    assert len(client.get("/v1/keys", headers=auth(admin_key)).get_json()["keys"]) == 1


def test_a_revoked_key_stops_at_once_and_its_use_is_recorded(client, admin_key) -> None:
    made = post_json(client, "/v1/keys", {"name": "temp", "role": "editor"}, admin_key)
    key, key_id = made.get_json()["api_key"], made.get_json()["key"]["id"]
    assert client.get("/v1/posts", headers=auth(key)).status_code == 200

    revoked = client.post(f"/v1/keys/{key_id}/revoke", headers=auth(admin_key))
    refused = client.get("/v1/posts", headers=auth(key))

    assert revoked.status_code == 200
    assert revoked.get_json()["key"]["revoked"] is True
    assert refused.status_code == 401
    trail = audit_trail(client, admin_key)["events"]
    assert [(e["action"], e["actor"], e["subject"]) for e in trail[:3]] == [
        ("access.revoked_key_used", "temp", "route:GET /v1/posts"),
        ("key.revoked", "admin", "key:temp"),
        ("key.created", "admin", "key:temp"),
    ]
    again = client.post(f"/v1/keys/{key_id}/revoke", headers=auth(admin_key))
    assert again.status_code == 200
    assert len(audit_trail(client, admin_key, "?action=key.revoked")["events"]) == 1


def test_the_last_admin_key_cannot_be_revoked(client, admin_key) -> None:
    listed = client.get("/v1/keys", headers=auth(admin_key)).get_json()["keys"]
    first_admin = listed[0]["id"]

    refused = client.post(f"/v1/keys/{first_admin}/revoke", headers=auth(admin_key))
    second = post_json(client, "/v1/keys", {"name": "boss", "role": "admin"}, admin_key)
    allowed = client.post(
        f"/v1/keys/{first_admin}/revoke", headers=auth(second.get_json()["api_key"])
    )

    assert refused.status_code == 409
    assert "last admin key" in refused.get_json()["error"]["message"]
    assert allowed.status_code == 200
    assert client.get("/v1/keys", headers=auth(admin_key)).status_code == 401


def test_another_brands_key_is_not_found(client, admin_key) -> None:
    other = post_json(
        client, "/v1/brands", brand_body(name="Other", slug="other"), OPERATOR_KEY
    ).get_json()["api_key"]
    other_key_id = client.get("/v1/keys", headers=auth(other)).get_json()["keys"][0]

    response = client.post(
        f"/v1/keys/{other_key_id['id']}/revoke", headers=auth(admin_key)
    )

    assert response.status_code == 404
    assert client.get("/v1/brand", headers=auth(other)).status_code == 200


def test_a_key_name_taken_after_the_check_is_a_409_not_a_database_error(
    runtime,
) -> None:
    """Two requests for the same name both pass the name check before either
    stores its key; the second to insert is the one the unique name refuses."""
    from cartcast import brands

    now = runtime.clock.now()
    with runtime.database.transaction() as tx:
        made = brands.create_brand(tx, brand_body(slug="same-name"), now=now)
        brand_id = str(made["brand"]["id"])
        keys.create_key(tx, brand_id=brand_id, name="dup", role="viewer", now=now)

    with pytest.raises(keys.Conflict) as refused:
        with runtime.database.transaction() as tx:
            keys.create_key(tx, brand_id=brand_id, name="dup", role="admin", now=now)

    assert refused.value.field == "name"
    with runtime.database.transaction() as tx:
        named = [k for k in keys.list_keys(tx, brand_id=brand_id) if k["name"] == "dup"]
    assert [k["role"] for k in named] == ["viewer"]


# The audit trail.


def test_post_changes_show_in_the_trail_with_before_and_after(
    client, role_keys
) -> None:
    post_id = a_draft(client, role_keys["editor"])
    drafted = client.get(f"/v1/posts/{post_id}", headers=auth(role_keys["editor"]))
    edit = {"text": "New: " + drafted.get_json()["post"]["text"]}
    edited = client.patch(
        f"/v1/posts/{post_id}", json=edit, headers=auth(role_keys["editor"])
    )
    assert edited.status_code == 200, edited.get_json()
    approved = client.post(
        f"/v1/posts/{post_id}/approve", headers=auth(role_keys["approver"])
    )
    assert approved.status_code == 200, approved.get_json()

    trail = audit_trail(client, role_keys["admin"], f"?subject=post:{post_id}")

    newest, edit_event, created = trail["events"]
    assert (newest["action"], newest["actor"]) == ("post.approved", "approver-key")
    assert newest["before"] == {"state": "needs_approval"}
    assert newest["after"]["state"] == "approved"
    assert edit_event["actor"] == "editor-key"
    assert edit_event["after"]["text"] == edit["text"]
    assert edit_event["before"]["text"] == created["after"]["text"]
    assert created["action"] == "post.created"


def test_the_trail_pages_newest_first_and_filters_by_action(client, role_keys) -> None:
    admin = role_keys["admin"]
    for number in range(3):
        post_json(client, "/v1/keys", {"name": f"k{number}", "role": "viewer"}, admin)

    first = audit_trail(client, admin, "?action=key.created&limit=2")
    second = audit_trail(
        client, admin, f"?action=key.created&limit=2&after={first['next']}"
    )

    names = [e["subject"] for e in first["events"] + second["events"]]
    # role_keys made viewer-key, editor-key and approver-key before these three.
    assert names == [
        "key:k2",
        "key:k1",
        "key:k0",
        "key:approver-key",
    ]
    assert second["next"] is not None


@pytest.mark.parametrize(
    "query",
    [
        "?after=nonsense",
        "?after=WzEsMiwzXQ",
        "?action=",
        "?limit=0",
        # ["audit", "0001-01-01T00:00:00+14:00", "audit", 1]: a moment before
        # year 1 in UTC
        "?after=WyJhdWRpdCIsICIwMDAxLTAxLTAxVDAwOjAwOjAwKzE0OjAwIiwgImF1ZGl0IiwgMV0",
        # ["audit", "9999-12-31T23:59:59-14:00", "post", 1]: one after year 9999
        # in UTC
        "?after=WyJhdWRpdCIsICI5OTk5LTEyLTMxVDIzOjU5OjU5LTE0OjAwIiwgInBvc3QiLCAxXQ",
        # 3,000 nested lists: deeper than the JSON reader's recursion
        "?after=" + "W1tb" * 1000,
    ],
)
def test_a_bad_trail_query_is_a_400(client, admin_key, query) -> None:
    response = client.get(f"/v1/audit{query}", headers=auth(admin_key))

    assert response.status_code == 400
    assert response.get_json()["error"]["field"] in ("after", "action", "limit")


def test_a_pause_and_resume_are_recorded(client, role_keys) -> None:
    approver = role_keys["approver"]

    post_json(client, "/v1/brand/pause", {"reason": "storm"}, approver)
    client.post("/v1/brand/resume", headers=auth(approver))

    trail = audit_trail(client, role_keys["admin"], "?subject=brand:publishing")
    resumed, paused = trail["events"]
    assert (resumed["action"], resumed["actor"]) == ("brand.resumed", "approver-key")
    assert resumed["before"]["reason"] == "storm"
    assert (paused["action"], paused["after"]["reason"]) == ("brand.paused", "storm")


def test_a_refused_change_leaves_no_record_of_itself(client, admin_key) -> None:
    first_admin = client.get("/v1/keys", headers=auth(admin_key)).get_json()["keys"][0]

    client.post(f"/v1/keys/{first_admin['id']}/revoke", headers=auth(admin_key))

    assert audit_trail(client, admin_key, "?action=key.revoked")["events"] == []


def test_refusals_past_the_hourly_cap_are_answered_and_only_counted_once(
    monkeypatch, client, role_keys
) -> None:
    monkeypatch.setenv("CARTCAST_AUDIT_REFUSALS_PER_HOUR", "2")
    runtime_module.reset()
    capped = make_app("api", "http").test_client()

    answers = [
        capped.get("/v1/keys", headers=auth(role_keys["viewer"])).status_code
        for _ in range(5)
    ]

    assert answers == [403] * 5
    trail = audit_trail(capped, role_keys["admin"])["events"]
    access = [e for e in trail if e["action"].startswith("access.")]
    # Two refusals, then one row saying the rest of the hour is only logged.
    assert [e["action"] for e in access] == [
        "access.refusals_capped",
        "access.refused",
        "access.refused",
    ]
    assert access[0]["after"]["cap_per_hour"] == 2
    assert access[0]["after"]["first_unrecorded"]["action"] == "access.refused"
    assert access[0]["after"]["first_unrecorded"]["route"] == "GET /v1/keys"


def test_refusals_at_once_never_pass_the_cap(monkeypatch, client, role_keys) -> None:
    import threading

    monkeypatch.setenv("CARTCAST_AUDIT_REFUSALS_PER_HOUR", "3")
    runtime_module.reset()
    capped = make_app("api", "http").test_client()
    start = threading.Barrier(8, timeout=30)
    answers: list[int] = []

    def refused() -> None:
        with capped.application.test_client() as own:
            start.wait()
            answers.append(
                own.get("/v1/keys", headers=auth(role_keys["viewer"])).status_code
            )

    threads = [threading.Thread(target=refused, daemon=True) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert [t for t in threads if t.is_alive()] == []
    assert answers == [403] * 8
    trail = audit_trail(capped, role_keys["admin"])["events"]
    actions = sorted(e["action"] for e in trail if e["action"].startswith("access."))
    assert actions == ["access.refusals_capped"] + ["access.refused"] * 3


def test_a_revoked_key_trying_to_approve_changes_nothing_and_is_recorded(
    client, role_keys
) -> None:
    post_id = a_draft(client, role_keys["editor"])
    made = post_json(
        client, "/v1/keys", {"name": "gone", "role": "approver"}, role_keys["admin"]
    ).get_json()
    client.post(
        f"/v1/keys/{made['key']['id']}/revoke", headers=auth(role_keys["admin"])
    )

    response = client.post(
        f"/v1/posts/{post_id}/approve", headers=auth(made["api_key"])
    )

    assert response.status_code == 401
    assert "revoked" in response.get_json()["error"]["message"]
    post = client.get(f"/v1/posts/{post_id}", headers=auth(role_keys["viewer"]))
    assert post.get_json()["post"]["state"] == "needs_approval"
    [event] = audit_trail(
        client, role_keys["admin"], "?action=access.revoked_key_used"
    )["events"]
    assert (event["actor"], event["subject"]) == (
        "gone",
        "route:POST /v1/posts/{post_id}/approve",
    )


def test_a_brand_update_is_recorded_with_secrets_named_only(client, admin_key) -> None:
    secret = "a-webhook-secret-of-32-characters!"
    change = {"question_due_min": 45, "webhook_secret": secret}

    response = client.patch("/v1/brand", json=change, headers=auth(admin_key))

    assert response.status_code == 200, response.get_json()
    [event] = audit_trail(client, admin_key, "?action=brand.updated")["events"]
    assert event["after"]["question_due_min"] == 45
    assert event["before"]["question_due_min"] != 45
    assert event["after"]["secrets_set"] == ["webhook_secret"]
    assert secret not in str(event)


@pytest.mark.parametrize("admins", [2, 3])
def test_two_admins_revoking_each_other_at_once_get_answers_not_a_deadlock(
    runtime, admins
) -> None:
    """Each request notes its key's first use, then locks the brand's admin keys:
    a note held in the request's own transaction crossed the other's lock. With
    two admins, one revocation is the last admin's and is refused."""
    import threading
    import types

    from cartcast import brands

    now = runtime.clock.now()
    with runtime.database.transaction() as tx:
        made = brands.create_brand(tx, brand_body(slug="two-admins"), now=now)
        brand_id = str(made["brand"]["id"])
        second = keys.create_key(
            tx, brand_id=brand_id, name="second", role="admin", now=now
        )
        if admins == 3:
            keys.create_key(tx, brand_id=brand_id, name="third", role="admin", now=now)
        ids = {k["name"]: k["id"] for k in keys.list_keys(tx, brand_id=brand_id)}
    first_name = next(name for name in ids if name not in ("second", "third"))
    both_in = threading.Barrier(2, timeout=30)
    answers: dict[str, object] = {}

    def revoke(key: str, other: str) -> None:
        request = types.SimpleNamespace(headers={"Authorization": f"Bearer {key}"})
        try:
            with runtime.database.transaction() as tx:
                caller = api._authorize(tx, request, runtime, api.ADMIN)
                both_in.wait()
                answers[caller.key_name] = keys.revoke_key(
                    tx,
                    brand_id=brand_id,
                    key_id=ids[other],
                    actor=caller.key_name,
                    now=now,
                )
        except Exception as error:  # noqa: BLE001 - the answer under test
            answers[key] = error

    threads = [
        threading.Thread(target=revoke, args=(made["api_key"], "second")),
        threading.Thread(target=revoke, args=(second, first_name)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    refused = [a for a in answers.values() if isinstance(a, Exception)]
    if admins == 3:
        assert refused == [], answers
    else:
        assert [type(a) for a in refused] == [keys.Conflict], answers
    with runtime.database.transaction() as tx:
        live = [k for k in keys.list_keys(tx, brand_id=brand_id) if not k["revoked"]]
    assert len(live) == 1  # two of three revoked, or one of two


def test_the_console_lets_each_role_do_what_its_api_routes_let_it() -> None:
    from cartcast import console_session

    for permission, endpoints in console_session.PERMISSION_ROUTES.items():
        for role in keys.ROLES:
            allowed = all(
                may_call(role, api.ROUTE_ROLES[endpoint]) for endpoint in endpoints
            )
            may = permission in console_session.ROLE_PERMISSIONS[role]
            assert may == allowed, (role, permission)


def test_pointing_the_alerts_at_another_webhook_is_recorded_by_name(
    client, admin_key
) -> None:
    """Slack's webhook URLs carry their own secret, so the brand shows only that one
    is set: a change from one URL to another changed no field the brand shows."""
    first = "http://127.0.0.1:9/hooks/first-secret-path"
    second = "http://127.0.0.1:9/hooks/second-secret-path"
    for url in (first, second):
        response = client.patch(
            "/v1/brand", json={"alert_webhook_url": url}, headers=auth(admin_key)
        )
        assert response.status_code == 200, response.get_json()

    events = audit_trail(client, admin_key, "?action=brand.updated")["events"]
    assert len(events) == 2
    assert events[0]["after"]["secrets_set"] == ["alert_webhook_url"]
    assert "secret-path" not in str(events)


def test_a_new_brands_first_admin_key_is_in_its_trail(client, admin_key) -> None:
    [event] = audit_trail(client, admin_key, "?subject=key:admin")["events"]

    assert (event["action"], event["actor"]) == ("key.created", "operator")
    assert event["after"]["role"] == "admin"
    assert event["after"]["prefix"] == admin_key[:10]


def test_a_refusal_past_the_cap_is_logged_with_what_its_row_would_have_said(
    monkeypatch, client, role_keys
) -> None:
    # Arrange: a cap of one, and the api's log lines collected as they are written.
    import logging

    monkeypatch.setenv("CARTCAST_AUDIT_REFUSALS_PER_HOUR", "1")
    runtime_module.reset()
    capped = make_app("api", "http").test_client()
    logged: list[logging.LogRecord] = []
    collector = logging.Handler(logging.WARNING)
    collector.emit = logged.append
    logging.getLogger("cartcast").addHandler(collector)

    # Act: the first refusal is a row, the second the capped marker, the third is
    # past the cap.
    try:
        for _ in range(3):
            capped.get("/v1/keys", headers=auth(role_keys["viewer"]))
    finally:
        logging.getLogger("cartcast").removeHandler(collector)

    # Assert: the log line is all that is left of the third, so it says which route
    # was refused, to which role, and why, as the row would have.
    (line,) = [
        r.fields for r in logged if r.getMessage().startswith("refusal not recorded")
    ]
    assert line["action"] == "access.refused"
    assert line["actor"] == "viewer-key"
    assert line["after"]["route"] == "GET /v1/keys"
    assert line["after"]["role"] == "viewer"
    assert "admin" in line["after"]["message"]


@pytest.mark.parametrize("target", ["api", "generate_caption"])
def test_a_deployment_missing_its_settings_answers_the_json_error_of_every_route(
    monkeypatch: pytest.MonkeyPatch, target: str
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("CLOUD_SQL_INSTANCE", raising=False)
    runtime_module.reset()
    client = make_app(target, "http").test_client()

    try:
        answer = client.post("/v1/captions", json={"products": ["SKU-1"]})
    finally:
        runtime_module.reset()

    assert answer.status_code == 500
    assert answer.get_json() == {
        "error": {"code": "internal", "message": "internal error"}
    }


# Each way a request is refused as unauthenticated, and the challenge it names:
# RFC 9110 section 11.6.1 requires one on every 401, and RFC 6750 section 3 spells
# a bearer token's, with error="invalid_token" for a token that was sent.
UNAUTHENTICATED = {
    "no key": (None, 'Bearer realm="cartcast"'),
    "not a bearer key": ("Basic Zm9vOmJhcg==", 'Bearer realm="cartcast"'),
    "an unknown key": (
        "Bearer cc_unknown",
        'Bearer realm="cartcast", error="invalid_token"',
    ),
}


@pytest.mark.parametrize("case", sorted(UNAUTHENTICATED))
@pytest.mark.parametrize("function", ["api", "generate_caption"])
def test_a_401_names_the_bearer_challenge(function_env, function, case) -> None:
    authorization, challenge = UNAUTHENTICATED[case]
    client = make_app(function, "http").test_client()
    headers = {"Authorization": authorization} if authorization else {}
    path = "/v1/posts" if function == "api" else "/"
    method = "GET" if function == "api" else "POST"

    answer = client.open(path, method=method, headers=headers, json={})

    assert answer.status_code == 401, answer.get_data(as_text=True)
    assert answer.headers.get("WWW-Authenticate") == challenge


def test_a_revoked_key_is_a_401_with_the_invalid_token_challenge(
    client, role_keys
) -> None:
    made = post_json(
        client, "/v1/keys", {"name": "gone", "role": "viewer"}, role_keys["admin"]
    ).get_json()
    client.post(
        f"/v1/keys/{made['key']['id']}/revoke", headers=auth(role_keys["admin"])
    )

    answer = client.get("/v1/posts", headers=auth(made["api_key"]))

    assert answer.status_code == 401
    assert answer.headers.get("WWW-Authenticate") == (
        'Bearer realm="cartcast", error="invalid_token"'
    )


# The header sent twice reaches the function as one value joined by a comma
# (gunicorn joins with ",", Werkzeug's test client with ", ").
@pytest.mark.parametrize(
    "second", ["Bearer cc_other", "Basic Zm9vOmJhcg==", "<same>"], ids=str
)
@pytest.mark.parametrize("joiner", [",", ", "])
def test_authorization_sent_twice_is_a_400_naming_it(
    client, brand_key, second, joiner
) -> None:
    first = f"Bearer {brand_key}"
    joined = first + joiner + (first if second == "<same>" else second)

    answer = client.get("/v1/posts", environ_overrides={"HTTP_AUTHORIZATION": joined})

    assert answer.status_code == 400, answer.get_json()
    error = answer.get_json()["error"]
    assert error["field"] == "Authorization"
    assert "more than once" in error["message"]


@pytest.mark.parametrize("joiner", [",", ", "])
def test_authorization_sent_twice_is_a_400_when_the_first_is_not_bearer(
    client, brand_key, joiner
) -> None:
    """README: sent twice is a 400 naming it "whatever the two say", so a Basic
    credential before the key is not a 401 asking for a bearer key."""
    joined = "Basic Zm9vOmJhcg==" + joiner + f"Bearer {brand_key}"

    answer = client.get("/v1/posts", environ_overrides={"HTTP_AUTHORIZATION": joined})

    assert answer.status_code == 400, answer.get_json()
    assert answer.get_json()["error"]["field"] == "Authorization"
