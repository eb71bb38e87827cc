"""Locust users for the web-load benchmark (`bench/web_load.py` starts locust with this file).

The plan (JSON, path in PORTAL_LOAD_PLAN) gives each audience its session cookie and its pages:
{"cookie_name": "sessionid", "audiences": {"manager": {"session": "...", "weight": 3,
 "pages": [{"name": "approvals inbox", "url": "/approvals/", "marker": "data-label=\\"Requester\\""}]}}}

Every request is signed in (the session cookie of a real login made by the benchmark), and counts
as a failure unless it answers 200 **and** its HTML holds at least one row marker: a page that
renders no row (or the sign-in page after a lost session) is an error, not a fast page.
"""

import json
import os
import random

from locust import HttpUser, between, task

PLAN = json.loads(open(os.environ["PORTAL_LOAD_PLAN"]).read())  # noqa: SIM115 - read once at import


def _user_class(audience: str, spec: dict) -> type[HttpUser]:
    cookie = f"{PLAN['cookie_name']}={spec['session']}"

    class AudienceUser(HttpUser):
        weight = spec.get("weight", 1)
        wait_time = between(0.2, 1.0)  # a person clicking through, not a tight loop

        @task
        def page(self):
            page = random.choice(spec["pages"])  # noqa: S311 - load shape, not security
            with self.client.get(
                page["url"], name=f"{audience}: {page['name']}", headers={"Cookie": cookie},
                allow_redirects=False, catch_response=True,
            ) as response:  # fmt: skip
                if response.status_code != 200:
                    response.failure(f"HTTP {response.status_code}")
                elif page["marker"] not in response.text:
                    response.failure("no row rendered")

    AudienceUser.__name__ = f"{audience.title()}User"
    return AudienceUser


for _audience, _spec in PLAN["audiences"].items():
    globals()[f"{_audience.title()}User"] = _user_class(_audience, _spec)
