"""The OpenAPI document is generated, complete and truthful; /docs works offline.

Truthful is proven by schemathesis: it reads /openapi.json from a real server (SQLite,
in-process simulator) and sends what the document allows, and some of what it does not,
checking that no answer is a 5xx and that every answer (status, content type, headers,
body) is one the document declares. It runs as a subprocess (its pytest plugin and
pytest-trio do not share a loop) with a bounded number of examples.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.conftest import make_settings
from tests.harness import LiveServer, live_server

from .admin_helpers import admin_headers
from .journey import FAST, finished_task
from .licensing import generate

# Routes that need no token; every other /api route does.
PUBLIC = {
    ("post", "/api/auth/register"),
    ("post", "/api/auth/login"),
    ("post", "/api/upstream/webhooks/{channel}"),  # signed by the upstream instead
    ("post", "/api/license/validate"),
    ("get", "/api/config/public"),
}
LOGOUT = "/api/auth/logout"
API_PREFIXES = ("/api/", "/files/", "/health", "/metrics")
# The OpenAI-compatible door speaks OpenAI's Videos API (its shapes, its error object), whose
# reference is OpenAI's own; it is proven by the official SDK (test_relay_sdk.py), not here.
FOREIGN_PREFIXES = ("/api/relay/",)


# Upstream jobs finish in seconds, but actors poll at the real pace: schemathesis creates
# a few hundred tasks, and sped-up polling of all of them would saturate one SQLite file.
PACE = {
    **FAST,
    "polling_speedup": 2,
    "upstream_webhook_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
}


@pytest.fixture
async def server(tmp_path: Path, sqlite_url: str) -> Any:
    async with live_server(make_settings(tmp_path, sqlite_url, **PACE)) as live:
        yield live


def _api_operations(server: LiveServer) -> set[tuple[str, str]]:
    """(method, OpenAPI path) of every HTTP API route the app has."""
    app = server.running.app
    found = set()
    for rule in app.url_map.iter_rules():
        if rule.websocket or not rule.rule.startswith(API_PREFIXES):
            continue
        if rule.rule.startswith(FOREIGN_PREFIXES):
            continue
        path = re.sub(r"<(?:[^:<>]*:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in rule.methods or ():
            if method not in ("HEAD", "OPTIONS"):
                found.add((method.lower(), path))
    return found


async def test_every_api_route_is_documented_with_its_envelopes(server: LiveServer) -> None:
    response = await server.client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"] == "3.1.0"
    schemas = document["components"]["schemas"]
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "type": "http",
    }

    documented = {
        (method, path) for path, operations in document["paths"].items() for method in operations
    }
    expected = _api_operations(server)
    assert len(expected) >= 14
    assert documented == expected  # every API route, and nothing else (no console pages)

    for method, path in sorted(documented):
        operation = document["paths"][path][method]
        responses = operation["responses"]
        where = f"{method.upper()} {path}"
        assert operation.get("summary"), where
        successes = [status for status in responses if status.startswith("2")]
        errors = [status for status in responses if status[0] in "45"]
        assert successes and "500" in errors, where
        for status in errors:
            declared = responses[status]
            assert declared["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/ErrorEnvelope"
            }, (where, status)
            assert declared["x-error-codes"], (where, status)
            assert declared["headers"]["X-Request-Id"]["required"] is True
        protected = path.startswith("/api/") and (method, path) not in PUBLIC
        if protected:
            assert operation["security"] == [{"bearerAuth": []}], where
            assert {"AUTH_REQUIRED", "INVALID_TOKEN", "TOKEN_EXPIRED", "ACCOUNT_DISABLED"} <= set(
                responses["401"]["x-error-codes"]
            ), where
        else:
            assert "security" not in operation, where
        for status in successes:
            content = responses[status]["content"]
            if "application/json" in content:
                ref = content["application/json"]["schema"]["$ref"]
                envelope = schemas[ref.rsplit("/", 1)[1]]
                assert envelope["properties"]["success"]["const"] is True, where
                assert envelope["required"] == ["success", "data"], where

    error = schemas["ErrorEnvelope"]
    assert error["properties"]["success"]["const"] is False
    assert set(error["required"]) == {"success", "message", "error"}
    assert set(schemas["ErrorInfo"]["required"]) == {"code", "message"}

    # Task creation: the JSON body and the multipart form, each as the route reads it.
    create = document["paths"]["/api/video/tasks"]["post"]
    body = create["requestBody"]["content"]
    assert create["requestBody"]["required"] is True
    json_body = schemas[body["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]]
    form = schemas[body["multipart/form-data"]["schema"]["$ref"].rsplit("/", 1)[1]]
    assert {"prompt", "model", "size", "duration", "referenceImage"} <= set(json_body["properties"])
    assert json_body["properties"]["duration"]["enum"] == [4, 5, 8, 10, 12, 15]
    assert form["properties"]["input_reference"] == {
        "description": form["properties"]["input_reference"]["description"],
        "format": "binary",
        "type": "string",
    }
    assert {"prompt", "model", "size", "seconds", "duration"} <= set(form["properties"])
    assert "UNSUPPORTED_IMAGE_TYPE" in create["responses"]["415"]["x-error-codes"]
    assert "IDEMPOTENCY_KEY_REUSED" in create["responses"]["422"]["x-error-codes"]
    # Strict JSON, said where clients read it: the codes, the rules, the integer fields.
    for operation in (create, document["paths"]["/api/auth/login"]["post"]):
        assert {"JSON_TOO_DEEP", "DUPLICATE_KEY"} <= set(
            operation["responses"]["400"]["x-error-codes"]
        )
    description = document["info"]["description"]
    for rule in ("DUPLICATE_KEY", "JSON_TOO_DEEP", "SORA_MAX_JSON_DEPTH", "NFKC", "10.0"):
        assert rule in description, rule
    assert "integer" in json_body["properties"]["duration"]["description"]
    register = document["paths"]["/api/auth/register"]["post"]["requestBody"]["content"]
    username = schemas[register["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]]
    assert "ASCII" in username["properties"]["username"]["description"]
    # Limits: the API's rate limits on /api/video, the throttles and the hashing gate.
    paths = document["paths"]
    for path, method, codes in [
        ("/api/video/tasks", "post", ["QUOTA_EXCEEDED", "RATE_LIMITED"]),
        ("/api/video/tasks/{video_id}", "get", ["RATE_LIMITED"]),
    ]:
        limited = paths[path][method]["responses"]["429"]
        assert limited["x-error-codes"] == codes, path
        assert "Retry-After" in limited["headers"]
    register, login = paths["/api/auth/register"]["post"], paths["/api/auth/login"]["post"]
    assert register["responses"]["429"]["x-error-codes"] == ["TOO_MANY_REGISTRATIONS"]
    assert "SERVER_BUSY" in register["responses"]["503"]["x-error-codes"]
    assert "SERVER_BUSY" in login["responses"]["503"]["x-error-codes"]
    assert "429" not in paths["/api/auth/me"]["get"]["responses"]
    # Task representations are camelCase and closed (a new field must be documented).
    task = schemas["TaskOut"]
    assert task["additionalProperties"] is False
    assert {"videoId", "externalVideoId", "pollCount", "lastPollTime", "remixedFromVideoId"} <= set(
        task["properties"]
    )
    files = document["paths"]["/files/{video_id}/{variant}"]["get"]["responses"]
    assert set(files["206"]["content"]) == {"video/mp4", "image/webp"}


async def test_the_docs_page_renders_the_document_without_any_other_origin(
    server: LiveServer,
) -> None:
    page = await server.client.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert "/docs/docs.js" in assets and "/openapi.json" in assets
    assert all(asset.startswith("/") and not asset.startswith("//") for asset in assets)
    script = await server.client.get("/docs/docs.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert 'fetch("/openapi.json")' in script.text
    assert "x-error-codes" in script.text  # renders the error codes of each status
    assert not re.search(r"https?://", script.text)
    assert (await server.client.get("/docs/docs.css")).status_code == 200
    # quart-schema's own pages (CDN scripts) are not served; nor are other files.
    for path in ("/redocs", "/scalar", "/docs/../app.py", "/docs/app.py"):
        assert (await server.client.get(path)).status_code == 404, path


SSE_PATH = "/api/sse/task-updates"
CHECKS_NOT_APPLICABLE = (
    # Lenient by design: extra fields ignored (old frontends).
    "negative_data_rejection",
    # Schema-valid is not always acceptable: an unknown cursor, a PNG that is not one.
    "positive_data_acceptance",
    # DELETE /api/admin/users/{id} deactivates on purpose: the account, its tasks and files
    # stay visible to admins (issue 14), so the user is still "available" afterwards.
    "use_after_free",
)


@pytest.mark.slow
async def test_schemathesis_finds_no_server_error_and_no_undocumented_answer(
    server: LiveServer, tmp_path: Path
) -> None:
    # An ADMIN, so that the /api/admin routes are exercised beyond their 401/403.
    alice = await admin_headers(server, "alice")
    licence = await generate(server, alice)
    finished = await finished_task(server, alice, "a lighthouse in fog")
    bob = await server.register("bob")  # whom the admin routes act on
    # Real ids and a valid signed link, so that content, refresh-url, remix and /files are
    # exercised beyond their 404/403 answers.
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        "[parameters]\n"
        + "".join(
            f"{json.dumps(key)} = {json.dumps(value)}\n"
            for key, value in {
                "path.video_id": finished.video_id,
                "path.user_id": bob["id"],
                "path.variant": "video",
                "path.channel": "default",
                "path.licence_id": licence["id"],
                "query.exp": finished.query["exp"],
                "query.sig": finished.query["sig"],
                "path.name": "default",  # the one channel of the test server
            }.items()
        )
    )
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(config),
        "run",
        f"{server.base_url}/openapi.json",
        "--checks",
        "all",
        "--exclude-checks",
        ",".join(CHECKS_NOT_APPLICABLE),
        # Logging out would end the one token every other operation uses (logout has its
        # own tests in test_admin_users.py).
        "--exclude-path",
        LOGOUT,
        "--header",
        f"Authorization: {alice['Authorization']}",
        "--max-examples",
        "25",
        "--seed",
        "20240607",
        "--generation-database",
        "none",
        "--workers",
        "1",
        "--request-timeout",
        "20",
        "--no-color",
        # An event stream never ends, so each call would wait out the request timeout;
        # tests/acceptance/test_sse.py covers it with a streaming client.
        "--exclude-path",
        SSE_PATH,
    ]
    with trio.fail_after(240):
        result = await trio.run_process(
            command, cwd=tmp_path, capture_stdout=True, capture_stderr=True, check=False
        )
    output = result.stdout.decode(errors="replace") + result.stderr.decode(errors="replace")
    assert result.returncode == 0, output
    operations = sum(
        len(ops) for ops in (await server.client.get("/openapi.json")).json()["paths"].values()
    )
    assert f"{operations - 2} selected / {operations} total" in output, output
    generated = re.search(r"(\d+) generated, (\d+) passed", output)
    assert generated is not None, output
    assert int(generated.group(1)) >= 10 * (operations - 2), output
    assert "Server error" not in output
    # The real ids and link reached the routes' success paths, not only their 404/403s.
    assert "Missing test data" not in output, output
    assert "Authentication failed" not in output, output
    # The server is still fine afterwards.
    assert (await server.client.get("/health")).status_code == 200
