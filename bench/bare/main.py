"""Bare functions: the floor each cartcast function's cold start is divided by.

They take the same triggers as cartcast's functions and do nothing else, so a
cold start of one of them is what functions-framework itself costs on this machine.
"""

import functions_framework


@functions_framework.http
def bare_http(request):
    """Answer any request with an empty JSON object."""
    return {}


@functions_framework.cloud_event
def bare_cloud_event(cloud_event):
    """Accept any CloudEvent and do nothing."""


_x_clients = {}


@functions_framework.cloud_event
def bare_publish(cloud_event):
    """Send the posts a tick carries straight to X, recording nothing.

    The floor of bench/publish_load.py: the same X client, the same texts and the
    same ticks as publish_due_posts, without the database or any check.
    """
    import base64
    import json
    import os

    from cartcast.x import XClient

    message = json.loads(base64.b64decode(cloud_event.data["message"]["data"]))
    for post in message["posts"]:
        client = _x_clients.get(post["token"])
        if client is None:
            client = XClient(
                access_token=post["token"],
                base_url=os.environ["X_API_BASE_URL"],
                timeout_s=10,
            )
            _x_clients[post["token"]] = client
        client.create_post(post["text"], has_link=post["has_link"])
