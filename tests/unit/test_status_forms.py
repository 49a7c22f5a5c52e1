"""The /status page's forms refuse what did not come from the page, whatever the token holds."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from destination.settings import Settings
from tests.conftest import memory_app

HEADERS = {"Authorization": "Bearer t0ken", "Content-Type": "application/x-www-form-urlencoded"}


@pytest.mark.parametrize("path", ["/status/replay", "/status/retry"])
@pytest.mark.parametrize("csrf", ["abc", "%C3%A9", "%E2%80%AE%00"])
def test_a_forged_form_token_is_refused_not_a_server_error(path: str, csrf: str) -> None:
    app = memory_app(Settings(admin_token="t0ken"))
    with TestClient(app, raise_server_exceptions=False, base_url="http://127.0.0.1") as client:
        response = client.post(path, content=f"csrf={csrf}&destination=x", headers=HEADERS)
    assert response.status_code == 403
