"""Durable forwarding, end to end: the real `serve` process delivering into the simulator process.

Every test talks HTTP to both processes, as a CDP and an operator would. One simulator and one
service (three destinations with inbound auth) serve the module; the simulator is reset before
each test, and each test waits until the service's queue is idle before the next one starts.
Tests that need other settings (dead letters and a restart, the rate budget, SIGTERM) start
their own service.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import hmac
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import orjson
import pytest

from tests.e2e.servers import (
    Server,
    get_json,
    metric,
    queue_idle,
    sandbox_config,
    start_service,
    start_simulator,
    wait_for,
)

ADMIN_TOKEN = "admin-token-for-e2e"
WRITE_KEY_A = "wk_acme_live"
WRITE_KEY_B = "wk_beta_live"
JWT_SECRET = "acme-jwt-secret-that-is-long-enough-for-hs256"
JWT_AUDIENCE = "gsd"
WEBHOOK_SECRET = "acme-webhook-secret"
MAX_BODY = 65_536

# Short rate windows on both sides, so a throttled call is retried within seconds, not a minute.
RATE_ENV = {"GSD_RATE_MINUTE_SECONDS": "2", "GSD_RATE_LIMIT_PER_MINUTE": "200"}
SIM_RATE_FLAGS = ("--minute-seconds", "2", "--rate-limit-per-minute", "200")
# Low, so an injected hang (the simulator's hang_seconds) becomes a client-side timeout quickly.
TIMEOUT_ENV = {"GSD_GAINSIGHT_TIMEOUT_SECONDS": "2"}


# ---------------------------------------------------------------- helpers


def uid() -> str:
    return uuid.uuid4().hex[:12]


def identify(email: str, **traits: Any) -> dict[str, Any]:
    return {
        "type": "identify",
        "messageId": f"id-{uid()}",
        "userId": email,
        "traits": {"email": email, **traits},
    }


def group(email: str, company: str, **traits: Any) -> dict[str, Any]:
    return {
        "type": "group",
        "messageId": f"grp-{uid()}",
        "userId": email,
        "traits": {"name": company, **traits},
        "context": {"traits": {"email": email}},
    }


def track(email: str, event: str = "Ticket Closed", **properties: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "messageId": f"trk-{uid()}",
        "userId": email,
        "event": event,
        "properties": properties,
        "context": {"traits": {"email": email}},
    }


def basic(write_key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def hs256(secret: str = JWT_SECRET, **claims: Any) -> str:
    payload = {"sub": "cdp", "aud": JWT_AUDIENCE, "exp": int(time.time()) + 300, **claims}
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, secret, algorithm="HS256")


ADMIN = bearer(ADMIN_TOKEN)
AUTH_A = basic(WRITE_KEY_A)


def people(sim: Server) -> dict[str, dict[str, Any]]:
    return {p["Email"]: p for p in get_json(sim, "/__sim/people")}


def companies(sim: Server) -> dict[str, dict[str, Any]]:
    return {c["Name"]: c for c in get_json(sim, "/__sim/companies")}


def event_jtis(sim: Server) -> Counter[str]:
    return Counter(e["jti"] for e in get_json(sim, "/__sim/events"))


def counters(sim: Server) -> dict[str, Any]:
    counts: dict[str, Any] = get_json(sim, "/__sim/counters")
    return counts


def set_faults(sim: Server, **faults: Any) -> None:
    httpx.post(sim.base_url + "/__sim/faults", json=faults, timeout=5.0).raise_for_status()


def dead_letters(service: Server) -> dict[str, dict[str, Any]]:
    """Dead letters by messageId, through the admin route."""
    body = get_json(service, "/admin/dead-letters?limit=1000", headers=ADMIN)
    return {d["messageId"]: d for d in body["deadLetters"]}


def post(service: Server, path: str, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    sent = AUTH_A if headers is None else headers
    return httpx.post(service.base_url + path, json=body, headers=sent, timeout=10.0)


def accepted(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def delivered_person(sim: Server, email: str, **fields: Any) -> Any:
    """Poll-friendly: the person once it holds every given field value, else None."""
    person = people(sim).get(email)
    if person is None or any(person.get(k) != v for k, v in fields.items()):
        return None
    return person


def cli(store_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "destination", "dead-letters", *args],
        env={
            **os.environ,
            "GSD_STORE_URL": store_url,
            "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("forwarding")


@pytest.fixture(scope="module")
def sim(workdir: Path) -> Iterator[Server]:
    with start_simulator(workdir, *SIM_RATE_FLAGS) as server:
        yield server


@pytest.fixture(scope="module")
def rsa_keys() -> tuple[str, str] | None:
    """(private PEM, public PEM), or None when `cryptography` (RS256 support) is missing."""
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
    except ImportError:
        return None
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


@pytest.fixture(scope="module")
def service(workdir: Path, sim: Server, rsa_keys: tuple[str, str] | None) -> Iterator[Server]:
    destinations: list[dict[str, Any]] = [
        {
            "id": "acme",
            "writeKeys": [WRITE_KEY_A],
            "jwt": {"secret": JWT_SECRET, "audience": JWT_AUDIENCE},
            "webhookSecret": WEBHOOK_SECRET,
            "config": sandbox_config(),
        },
        {"id": "beta", "writeKeys": [WRITE_KEY_B], "config": sandbox_config()},
    ]
    if rsa_keys is not None:
        destinations.append({"id": "gamma", "jwt": {"publicKey": rsa_keys[1]}, "config": sandbox_config()})
    with start_service(
        workdir,
        destinations,
        sim.base_url,
        GSD_ADMIN_TOKEN=ADMIN_TOKEN,
        GSD_MAX_BODY_BYTES=str(MAX_BODY),
        **RATE_ENV,
        **TIMEOUT_ENV,
    ) as server:
        yield server


@pytest.fixture(autouse=True)
def fresh_simulator(sim: Server, service: Server) -> Iterator[None]:
    httpx.post(sim.base_url + "/__sim/reset", timeout=5.0).raise_for_status()
    yield
    # Nothing of this test may still be on its way when the next one starts.
    wait_for(lambda: queue_idle(service), timeout=30)


# ---------------------------------------------------------------- every ingest route delivers


def test_identify_route_upserts_the_person(sim: Server, service: Server) -> None:
    email = f"ada-{uid()}@example.com"
    body = accepted(
        post(
            service, "/v1/identify", {"userId": "ada", "traits": {"email": email, "name": "Ada", "seats": 7}}
        )
    )
    assert body["stored"] == 1

    person = wait_for(lambda: delivered_person(sim, email, Name="Ada", Seats__gc=7))
    assert person["companies"] == []


def test_group_route_creates_the_company_and_associates_the_person(sim: Server, service: Server) -> None:
    email, name = f"grace-{uid()}@example.com", f"Initech {uid()}"
    accepted(post(service, "/v1/identify", identify(email, name="Grace")))
    accepted(post(service, "/v1/group", group(email, name, region="EMEA")))

    company = wait_for(lambda: companies(sim).get(name))
    assert company["Region__gc"] == "EMEA"
    wait_for(lambda: delivered_person(sim, email, Name="Grace"))
    wait_for(lambda: [c["Company_ID"] for c in people(sim)[email]["companies"]] == [company["Gsid"]])


def test_track_route_publishes_a_signed_event_carrying_the_message_id(sim: Server, service: Server) -> None:
    event = track(f"t-{uid()}@example.com", "Feature Used", feature="export", count=3)
    body = accepted(post(service, "/v1/track", event))
    assert body["messageIds"] == [event["messageId"]]

    wait_for(lambda: event_jtis(sim)[event["messageId"]] == 1)
    (received,) = get_json(sim, "/__sim/events")
    assert received["eventName"] == "feature_used"
    assert received["body"] == {"feature": "export", "count": 3}
    assert received["signed"] is True


def test_batch_route_delivers_every_event_of_the_batch(sim: Server, service: Server) -> None:
    email, name = f"b-{uid()}@example.com", f"Batch Co {uid()}"
    events = [identify(email, name="Bea", plan="pro"), group(email, name), track(email), track(email)]
    body = accepted(post(service, "/v1/batch", {"batch": events}))
    assert body["stored"] == 4

    wait_for(lambda: delivered_person(sim, email, Name="Bea", Plan__gc="pro"))
    wait_for(lambda: companies(sim).get(name))
    wait_for(lambda: len(people(sim)[email]["companies"]) == 1)
    wait_for(lambda: event_jtis(sim) == Counter({events[2]["messageId"]: 1, events[3]["messageId"]: 1}))


def test_webhook_route_accepts_one_event_and_an_array(sim: Server, service: Server) -> None:
    one, two, three = (f"w{i}-{uid()}@example.com" for i in range(3))
    accepted(post(service, "/webhook", identify(one, name="One")))
    body = accepted(post(service, "/webhook", [identify(two, name="Two"), identify(three, name="Three")]))
    assert body["stored"] == 2

    for email, name in ((one, "One"), (two, "Two"), (three, "Three")):
        wait_for(lambda email=email, name=name: delivered_person(sim, email, Name=name))


def test_named_destination_routes_deliver(sim: Server, service: Server) -> None:
    email, name = f"n-{uid()}@example.com", f"Named Co {uid()}"
    ev = track(email)
    auth_b = basic(WRITE_KEY_B)
    accepted(post(service, "/v1/d/beta/identify", identify(email, name="Nia"), auth_b))
    accepted(post(service, "/v1/d/beta/group", group(email, name), auth_b))
    accepted(post(service, "/v1/d/beta/track", ev, auth_b))
    accepted(post(service, "/v1/d/acme/batch", {"batch": [identify(email, seats=2)]}))
    accepted(post(service, "/v1/d/acme/webhook", [track(email, "Feature Used")]))

    wait_for(lambda: delivered_person(sim, email, Name="Nia", Seats__gc=2))
    wait_for(lambda: companies(sim).get(name))
    wait_for(lambda: len(event_jtis(sim)) == 2)
    assert event_jtis(sim)[ev["messageId"]] == 1


# ---------------------------------------------------------------- inbound authentication


def test_each_kind_of_good_credential_is_accepted(service: Server) -> None:
    raw = orjson.dumps(identify(f"sig-{uid()}@example.com"))
    signature = hmac.new(WEBHOOK_SECRET.encode(), raw, hashlib.sha1).hexdigest()
    good: dict[str, dict[str, str]] = {
        "write key": AUTH_A,
        "HS256 JWT": bearer(hs256()),
        "X-Signature": {"X-Signature": signature, "Content-Type": "application/json"},
    }
    for kind, headers in good.items():
        if kind == "X-Signature":
            response = httpx.post(service.base_url + "/v1/identify", content=raw, headers=headers)
        else:
            response = post(service, "/v1/identify", identify(f"ok-{uid()}@example.com"), headers)
        assert response.status_code == 200, (kind, response.text)


def test_an_rs256_jwt_is_accepted_for_a_public_key_destination(
    sim: Server, service: Server, rsa_keys: tuple[str, str] | None
) -> None:
    if rsa_keys is None:
        pytest.skip("cryptography is not installed: RS256 JWTs cannot be made")
    email = f"rs-{uid()}@example.com"
    token = jwt.encode({"exp": int(time.time()) + 300}, rsa_keys[0], algorithm="RS256")
    accepted(post(service, "/v1/d/gamma/identify", identify(email, name="Rsa"), bearer(token)))
    wait_for(lambda: delivered_person(sim, email, Name="Rsa"))
    # The public key verifies RS256 only: an HS256 token signed with the PEM text is refused.
    forged = jwt.encode({"exp": int(time.time()) + 300}, "x" * 64, algorithm="HS256")
    assert post(service, "/v1/d/gamma/identify", identify(email), bearer(forged)).status_code == 401


# Made when the test runs (tokens carry times): kind of bad credential → (headers, the error says).
BAD_CREDENTIALS: dict[str, Callable[[], tuple[dict[str, str], str]]] = {
    "none": lambda: ({}, "credentials required"),
    "unknown-write-key": lambda: (basic("wk_nobody"), "unknown write key"),
    "malformed-basic": lambda: ({"Authorization": "Basic %%%not-base64"}, "malformed Basic"),
    "jwt-wrong-secret": lambda: (bearer(hs256("another-secret-that-is-long-enough-too")), "signature"),
    "jwt-expired": lambda: (bearer(hs256(exp=int(time.time()) - 60)), "expired"),
    "jwt-without-exp": lambda: (bearer(hs256(exp=None)), "'exp'"),
    "jwt-wrong-audience": lambda: (bearer(hs256(aud="someone-else")), "audience"),
    "wrong-x-signature": lambda: ({"X-Signature": "0" * 40}, "X-Signature does not match"),
}


@pytest.mark.parametrize("kind", BAD_CREDENTIALS)
def test_bad_credentials_get_401_saying_what_is_wrong(service: Server, kind: str) -> None:
    headers, says = BAD_CREDENTIALS[kind]()
    response = post(service, "/v1/identify", identify(f"x-{uid()}@example.com"), headers)
    assert response.status_code == 401
    assert says in response.json()["error"]


def test_credentials_of_one_destination_do_not_open_another(service: Server) -> None:
    event = identify(f"cross-{uid()}@example.com")
    for headers in (AUTH_A, bearer(hs256())):
        response = post(service, "/v1/d/beta/identify", event, headers)
        assert response.status_code == 401, response.text
        assert response.json()["error"]
    assert post(service, "/v1/d/beta/identify", event, basic(WRITE_KEY_B)).status_code == 200


def test_admin_routes_take_the_admin_token_alone(service: Server) -> None:
    url = service.base_url + "/admin/dead-letters"
    refused = httpx.get(url)
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Basic")
    assert httpx.get(url, headers=bearer("not-the-token")).status_code == 401
    assert httpx.get(url, headers=ADMIN).status_code == 200
    assert httpx.get(url, auth=("anyone", ADMIN_TOKEN)).status_code == 200  # a browser's login
    assert httpx.get(url, auth=("anyone", "not-the-token")).status_code == 401
    # Write keys ship inside apps: they send events, never open admin routes.
    assert httpx.get(url + "?destination=acme", headers=AUTH_A).status_code == 401


# ---------------------------------------------------------------- what ingest accepts


@pytest.mark.parametrize(
    ("path", "event"),
    [
        ("/v1/identify", {"traits": {"name": "No Email"}}),
        ("/v1/identify", {"traits": {"email": {"not": "a string"}}}),
        ("/v1/identify", {"traits": {"email": "not an address"}}),
        ("/v1/group", {"traits": {}, "context": {"traits": {"email": "g@x.com"}}}),
        ("/v1/track", {"properties": {}, "context": {"traits": {"email": "t@x.com"}}}),
        ("/v1/identify", {"traits": ["not", "an", "object"]}),
    ],
)
def test_an_event_gainsight_cannot_take_is_stored_and_finishes_rejected(
    service: Server, path: str, event: dict[str, Any]
) -> None:
    before = metric(service, "gsd_events_finished_total", destination="acme", outcome="rejected")
    body = accepted(post(service, path, {**event, "userId": f"u-{uid()}"}))
    assert (body["stored"], body["rejected"]) == (1, [])
    wait_for(
        lambda: (
            metric(service, "gsd_events_finished_total", destination="acme", outcome="rejected") == before + 1
        )
    )
    assert metric(service, "gsd_queue_events", state="rejected") >= 1


def test_a_batch_with_bad_items_delivers_the_good_events(sim: Server, service: Server) -> None:
    email = f"mixed-{uid()}@example.com"
    good = [identify(email, name="Kept In"), track(email)]
    no_email = {"type": "identify", "userId": "u", "messageId": f"bad-{uid()}", "traits": {"name": "x"}}
    not_an_event = {"type": "identify", "traits": {"email": email}}  # neither userId nor anonymousId
    rejected_before = metric(service, "gsd_events_rejected_total", destination="acme")

    body = accepted(post(service, "/v1/batch", {"batch": [good[0], no_email, not_an_event, good[1]]}))

    assert (body["stored"], body["rejectedCount"]) == (3, 1)
    assert body["rejected"] == [
        {"index": 2, "field": "userId", "reason": "neither userId nor anonymousId is present"}
    ]
    assert metric(service, "gsd_events_rejected_total", destination="acme") == rejected_before + 1
    wait_for(lambda: delivered_person(sim, email, Name="Kept In"))
    wait_for(lambda: event_jtis(sim)[good[1]["messageId"]] == 1)


def test_a_duplicate_message_id_is_acknowledged_but_delivered_once(sim: Server, service: Server) -> None:
    email = f"dup-{uid()}@example.com"
    event, ev = identify(email, name="Once"), track(email)
    first = accepted(post(service, "/v1/batch", {"batch": [event, ev, event]}))
    assert (first["stored"], first["duplicates"]) == (2, 1)
    second = accepted(post(service, "/v1/identify", event))
    assert (second["stored"], second["duplicates"], second["messageIds"]) == (0, 1, [event["messageId"]])
    accepted(post(service, "/v1/track", ev))

    wait_for(lambda: delivered_person(sim, email, Name="Once") and event_jtis(sim)[ev["messageId"]])
    wait_for(lambda: queue_idle(service))
    endpoints = counters(sim)["endpoints"]
    assert endpoints["people.upsert"]["calls"] == 1
    assert endpoints["events.publish"]["calls"] == 1


def test_a_gzip_body_is_accepted(sim: Server, service: Server) -> None:
    email = f"gz-{uid()}@example.com"
    raw = gzip.compress(orjson.dumps({"batch": [identify(email, name="Zipped")]}))
    headers = {**AUTH_A, "Content-Encoding": "gzip", "Content-Type": "application/json"}
    response = httpx.post(service.base_url + "/v1/batch", content=raw, headers=headers)
    assert accepted(response)["stored"] == 1
    wait_for(lambda: delivered_person(sim, email, Name="Zipped"))


def test_a_body_over_the_limit_gets_413(service: Server) -> None:
    big = {"batch": [identify(f"big-{i}@example.com", plan="x" * 200) for i in range(400)]}
    raw = orjson.dumps(big)
    assert len(raw) > MAX_BODY
    response = httpx.post(
        service.base_url + "/v1/batch", content=raw, headers={**AUTH_A, "Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert str(MAX_BODY) in response.json()["message"]
    # Small on the wire, too large once decompressed.
    bomb = gzip.compress(raw)
    assert len(bomb) < MAX_BODY
    headers = {**AUTH_A, "Content-Encoding": "gzip", "Content-Type": "application/json"}
    assert httpx.post(service.base_url + "/v1/batch", content=bomb, headers=headers).status_code == 413


# ---------------------------------------------------------------- Gainsight failing


def _mixed_load(tag: str) -> tuple[list[dict[str, Any]], dict[str, str], set[str], set[str]]:
    """Events, and what Gainsight must hold after them: people (email → Name), company names, jtis."""
    emails = [f"{tag}{i}-{uid()}@example.com" for i in range(6)]
    names = {email: f"Person {i}" for i, email in enumerate(emails)}
    firms = {f"{tag} Firm {i} {uid()}" for i in range(2)}
    events: list[dict[str, Any]] = [identify(email, name=names[email]) for email in emails]
    events += [group(emails[i], firm) for i, firm in enumerate(sorted(firms))]
    tracks = [track(email) for email in emails]
    return events + tracks, names, firms, {t["messageId"] for t in tracks}


def _assert_exact_final_state(
    sim: Server,
    service: Server,
    events: list[dict[str, Any]],
    names: dict[str, str],
    firms: set[str],
    jtis: set[str],
) -> None:
    def arrived() -> bool:
        return (
            all(delivered_person(sim, e, Name=n) for e, n in names.items())
            and firms <= set(companies(sim))
            and set(event_jtis(sim)) == jtis
        )

    wait_for(arrived, timeout=40)
    wait_for(lambda: queue_idle(service), timeout=20)
    assert sorted(people(sim)) == sorted(names)
    assert sorted(companies(sim)) == sorted(firms)  # each created once
    assert event_jtis(sim) == Counter(dict.fromkeys(jtis, 1))
    associated = {e: p["companies"] for e, p in people(sim).items() if p["companies"]}
    assert len(associated) == len(firms)
    assert not set(dead_letters(service)) & {e["messageId"] for e in events}


def test_a_429_burst_and_5xx_answers_are_retried_until_everything_is_delivered(
    sim: Server, service: Server
) -> None:
    set_faults(sim, throttle_next=6, server_error_next=4, server_error_status=503)
    events, names, firms, jtis = _mixed_load("flaky")
    accepted(post(service, "/v1/batch", {"batch": events}))

    _assert_exact_final_state(sim, service, events, names, firms, jtis)
    faults = counters(sim)["total"]["faults"]
    assert (faults.get("throttle"), faults.get("server_error")) == (6, 4)


def test_dropped_connections_are_retried_until_everything_is_delivered(sim: Server, service: Server) -> None:
    set_faults(sim, drop_next=5)
    events, names, firms, jtis = _mixed_load("dropped")
    accepted(post(service, "/v1/batch", {"batch": events}))

    _assert_exact_final_state(sim, service, events, names, firms, jtis)
    assert counters(sim)["total"]["faults"].get("drop") == 5


def test_calls_that_time_out_unanswered_are_retried_until_everything_is_delivered(
    sim: Server, service: Server
) -> None:
    # The simulator hangs past the service's 2 s timeout, then fails without touching its state.
    set_faults(sim, timeout_next=4, hang_seconds=2.5, timeout_applies=False)
    events, names, firms, jtis = _mixed_load("slow")
    accepted(post(service, "/v1/batch", {"batch": events}))

    _assert_exact_final_state(sim, service, events, names, firms, jtis)
    assert counters(sim)["total"]["faults"].get("timeout") == 4


def test_a_track_event_that_landed_but_whose_answer_timed_out_is_delivered_not_dead_lettered(
    sim: Server, service: Server
) -> None:
    """Gainsight took the event but the answer came after the client gave up: at-least-once
    delivery retries it, and the retry must not turn an event Gainsight already holds into a
    dead letter."""
    set_faults(sim, timeout_next=1, timeout_scope="events", hang_seconds=2.5, timeout_applies=True)
    email = f"late-{uid()}@example.com"
    ev = track(email)
    accepted(post(service, "/v1/track", ev))

    wait_for(lambda: event_jtis(sim)[ev["messageId"]] == 1)
    wait_for(lambda: queue_idle(service), timeout=20)
    assert counters(sim)["total"]["faults"].get("timeout") == 1
    assert ev["messageId"] not in dead_letters(service)


# ---------------------------------------------------------------- dead letters and replay


def test_a_rejected_event_is_dead_lettered_then_replayed_after_the_cause_is_fixed(
    tmp_path: Path, sim: Server
) -> None:
    store_url = f"sqlite:///{tmp_path}/gsd.sqlite3"
    # "tier" is mapped to a custom field the tenant does not have: Gainsight answers 400.
    broken = sandbox_config(personMap=[{"from": "tier", "to": "Tier__gc"}])
    fixed = sandbox_config(personMap=[{"from": "tier", "to": "Plan__gc"}])
    env = {"GSD_ADMIN_TOKEN": ADMIN_TOKEN, **RATE_ENV}
    first, second = f"dl1-{uid()}@example.com", f"dl2-{uid()}@example.com"
    firm = f"Bad Date {uid()}"
    events = [
        identify(first, name="First", tier="gold"),
        identify(second, name="Second", tier="silver"),
        group(first, firm, renewalDate="210318"),
    ]
    ids = [e["messageId"] for e in events]
    destination = {"id": "acme", "writeKeys": [WRITE_KEY_A]}

    with start_service(tmp_path, [{**destination, "config": broken}], sim.base_url, **env) as service:
        accepted(post(service, "/v1/batch", {"batch": events}))
        letters = wait_for(lambda: (d := dead_letters(service)).keys() >= set(ids) and d)
        assert "Tier__gc" in letters[ids[0]]["reason"]
        assert "RenewalDate" in letters[ids[2]]["reason"]
        detail = get_json(service, f"/admin/dead-letters/{letters[ids[0]]['id']}", headers=ADMIN)
        assert detail["attempts"][-1]["status"] == 400
        assert detail["attempts"][-1]["response"]["errorCode"]  # Gainsight's answer is kept
        assert detail["event"]["traits"]["tier"] == "gold"

        listed = cli(store_url, "list")
        assert listed.returncode == 0, listed.stderr
        by_cli = {row["messageId"]: row for row in map(orjson.loads, listed.stdout.splitlines())}
        assert set(by_cli) == set(ids)
        assert {by_cli[i]["id"] for i in ids} == {letters[i]["id"] for i in ids}
        assert people(sim).get(first) is None and companies(sim).get(firm) is None

    # The fix: map the trait to a field the tenant has. Restart on the same store.
    with start_service(tmp_path, [{**destination, "config": fixed}], sim.base_url, **env) as service:
        replayed = cli(store_url, "replay", str(letters[ids[0]]["id"]))
        assert replayed.returncode == 0, replayed.stderr
        assert "replayed 1" in replayed.stdout
        wait_for(lambda: delivered_person(sim, first, Name="First", Plan__gc="gold"))

        response = httpx.post(
            service.base_url + "/admin/dead-letters/replay",
            json={"ids": [letters[ids[1]]["id"]]},
            headers=ADMIN,
        )
        assert response.json() == {"replayed": 1}
        wait_for(lambda: delivered_person(sim, second, Name="Second", Plan__gc="silver"))

        # The bad date is in the event itself: nothing to fix, so it is purged.
        assert set(dead_letters(service)) == {ids[2]}
        purged = cli(store_url, "purge", str(letters[ids[2]]["id"]))
        assert purged.returncode == 0 and "purged 1" in purged.stdout
        assert dead_letters(service) == {}
        assert companies(sim).get(firm) is None


# ---------------------------------------------------------------- rate budget


def test_a_load_far_above_the_budget_is_delivered_without_a_single_429(tmp_path: Path) -> None:
    limit, window, count = 40, 2, 240  # 20 calls/s allowed, 240 events sent at once: ~12 s of work
    flags = ("--minute-seconds", str(window), "--rate-limit-per-minute", str(limit))
    env = {"GSD_RATE_MINUTE_SECONDS": str(window), "GSD_RATE_LIMIT_PER_MINUTE": str(limit)}
    with (
        start_simulator(tmp_path, *flags) as sim,
        start_service(
            tmp_path,
            [{"id": "acme", "config": sandbox_config()}],
            sim.base_url,
            GSD_AUTH="off",
            GSD_WORKERS="8",
            **env,
        ) as service,
    ):
        events = [track(f"load{i % 40}@example.com", "Feature Used", n=i) for i in range(count)]
        for start in range(0, count, 100):
            accepted(post(service, "/v1/batch", {"batch": events[start : start + 100]}))

        wait_for(lambda: len(event_jtis(sim)) == count, timeout=50, interval=0.5)

        seen = counters(sim)
        assert seen["total"]["throttled"] == 0
        assert seen["over_budget_accepted"] == 0
        assert event_jtis(sim) == Counter({e["messageId"]: 1 for e in events})
        per_window = Counter(int(r["time"] // window) for r in get_json(sim, "/__sim/requests"))
        assert max(per_window.values()) == limit  # the budget was the bottleneck, and fully used


# ---------------------------------------------------------------- shutdown


def test_sigterm_drains_in_flight_calls_and_exits_cleanly(tmp_path: Path, sim: Server) -> None:
    from destination.delivery.stores import open_store

    set_faults(sim, latency_seconds=0.5, latency_scope="people")
    emails = [f"term{i}-{uid()}@example.com" for i in range(12)]
    destination = [{"id": "acme", "writeKeys": [WRITE_KEY_A], "config": sandbox_config()}]
    with start_service(tmp_path, destination, sim.base_url, **RATE_ENV) as service:
        accepted(post(service, "/v1/batch", {"batch": [identify(e, name="T") for e in emails]}))
        wait_for(lambda: metric(service, "gsd_queue_events", state="leased") > 0, interval=0.02)

        started = time.monotonic()
        service.process.send_signal(signal.SIGTERM)
        code = service.process.wait(timeout=15)
        took = time.monotonic() - started

    # uvicorn finishes its graceful shutdown, then re-raises the signal (exit status -SIGTERM).
    assert code in (0, -signal.SIGTERM), service.output()
    assert "Application shutdown complete" in service.output()
    assert took < 5, f"took {took:.1f}s to stop"

    async def states() -> dict[str, int]:
        store = open_store(f"sqlite:///{tmp_path}/gsd.sqlite3")
        try:
            return dict(await store.counts())
        finally:
            await store.close()

    counts = asyncio.run(states())
    assert counts["leased"] == 0  # every call in flight was finished, none abandoned
    assert counts["delivered"] == len(people(sim)) > 0
    assert counts["delivered"] + counts["queued"] == len(emails)

    # A restart on the same store delivers the rest.
    with start_service(tmp_path, destination, sim.base_url, **RATE_ENV) as service:
        wait_for(lambda: set(people(sim)) >= set(emails), timeout=30)
