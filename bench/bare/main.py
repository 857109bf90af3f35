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
