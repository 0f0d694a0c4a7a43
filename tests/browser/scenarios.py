"""What a person does with the console, as Playwright scenarios run by ``tests.browser.run``.

Each scenario gets a fresh page and the server's base URL, drives the page only through
what a user sees (forms, buttons), asserts with Playwright's waiting ``expect`` and returns
JSON-able observations for the test to check against the server.
"""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import Page, expect

# Records every change of a progress bar or status badge, in order, from the first paint on.
RECORD_CHANGES = """
window.__changes = [];
document.addEventListener("DOMContentLoaded", () => {
  new MutationObserver((records) => {
    for (const record of records) {
      const item = record.target.closest && record.target.closest(".task");
      if (!item) continue;
      const bar = item.querySelector(".progress");
      window.__changes.push([item.dataset.videoId, item.dataset.status,
                             Number(bar.getAttribute("aria-valuenow"))]);
    }
  }).observe(document.body, {subtree: true, attributes: true,
                             attributeFilter: ["aria-valuenow", "data-status"]});
});
"""


def log_in(page: Page, base_url: str, username: str, password: str) -> None:
    page.goto(base_url + "/")
    page.fill("#auth-form [name=username]", username)
    page.fill("#auth-form [name=password]", password)
    page.click("#auth-submit")
    expect(page.locator("#who")).to_have_text(username)


def bad_credentials(page: Page, base_url: str, taken: str) -> dict[str, Any]:
    """Wrong password and a duplicate username: the envelope's message, no session."""
    page.goto(base_url + "/")
    page.fill("#auth-form [name=username]", taken)
    page.fill("#auth-form [name=password]", "not-the-password")
    page.click("#auth-submit")
    expect(page.locator("#auth-error")).to_have_text("Invalid username or password.")
    expect(page.locator("#app-view")).to_be_hidden()

    page.get_by_role("tab", name="Register").click()
    page.fill("#auth-form [name=username]", taken.upper())
    page.fill("#auth-form [name=password]", "password-2")
    page.click("#auth-submit")
    expect(page.locator("#auth-error")).not_to_be_empty()
    expect(page.locator("#app-view")).to_be_hidden()
    return {"duplicate": page.locator("#auth-error").inner_text()}


def journey(page: Page, base_url: str) -> dict[str, Any]:
    """Register, submit, watch the bar move, survive a dropped socket, play the video,
    see a failure's message, cancel one, remix the finished one."""
    page.add_init_script(RECORD_CHANGES)
    page.goto(base_url + "/")
    page.get_by_role("tab", name="Register").click()
    page.fill("#auth-form [name=username]", "alice")
    page.fill("#auth-form [name=email]", "alice@example.com")
    page.fill("#auth-form [name=password]", "correct horse")
    page.click("#auth-submit")
    expect(page.locator("#who")).to_have_text("alice")
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    expect(page.locator("#empty")).to_be_visible()

    # Submit; the task appears at once and moves live.
    page.fill("#create-form [name=prompt]", "A paper boat drifting down a rainy street")
    page.click("#create-submit")
    newest = page.locator(".task").first
    expect(newest.locator(".prompt")).to_have_text("A paper boat drifting down a rainy street")
    video_id = newest.get_attribute("data-video-id")
    assert video_id and video_id.startswith("video_"), video_id
    first = page.locator(f".task[data-video-id='{video_id}']")
    page.wait_for_function(
        "id => window.__changes.some(([v, s, p]) => v === id && s === 'PROCESSING' && p > 0)",
        arg=video_id,
    )

    # Drop the live connection mid-flight and keep it down (the page's reconnect attempts
    # are held back) until the task has finished on the server: the page must show the
    # stale state, then catch up by itself once it reconnects, re-authenticates and
    # resubscribes.
    page.evaluate("window.__connect = connect; connect = () => {}; state.socket.close()")
    expect(page.locator("#live")).to_have_attribute("data-state", "connecting")
    token = page.evaluate("localStorage.getItem('sora.console.token')")
    for _ in range(300):
        answer = page.request.get(
            f"{base_url}/api/video/tasks/{video_id}", headers={"Authorization": f"Bearer {token}"}
        )
        if answer.json()["data"]["status"] == "COMPLETED":
            break
        page.wait_for_timeout(100)
    else:
        raise AssertionError("the task did not complete on the server")
    stale = first.get_attribute("data-status")
    page.evaluate("connect = window.__connect; connect()")
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    expect(first).to_have_attribute("data-status", "COMPLETED", timeout=30_000)
    expect(first.locator(".progress")).to_have_attribute("aria-valuenow", "100")

    # Play it in the page: the signed URL needs no Authorization header.
    first.locator("[data-action=play]").click()
    page.wait_for_function(
        "id => { const v = document.querySelector(`.task[data-video-id='${id}'] video`);"
        " return v && v.readyState >= 2 && v.videoWidth > 0; }",
        arg=video_id,
    )
    playing = first.locator("video").evaluate(
        "v => ({src: v.currentSrc, duration: v.duration, width: v.videoWidth})"
    )

    # A failing prompt shows the failure's message.
    page.fill("#create-form [name=prompt]", "A storm over the sea #sim-fail")
    page.click("#create-submit")
    failed = page.locator(".task", has_text="#sim-fail")
    expect(failed).to_have_attribute("data-status", "FAILED", timeout=30_000)
    expect(failed.locator(".task-error")).not_to_be_empty()
    expect(failed.locator("[data-action=cancel]")).to_be_hidden()

    # Cancel one right after submitting it.
    page.fill("#create-form [name=prompt]", "A slow sunrise over the mountains")
    page.click("#create-submit")
    doomed = page.locator(".task", has_text="A slow sunrise")
    doomed.locator("[data-action=cancel]").click()
    expect(doomed).to_have_attribute("data-status", "CANCELLED")
    expect(doomed.locator(".badge")).to_have_text("CANCELLED")

    # Remix the finished one: a new task appears, marked as a remix.
    first.locator("[data-action=remix]").click()
    first.locator(".remix-form [name=prompt]").fill("Make it night time")
    first.locator(".remix-form button[type=submit]").click()
    remix = page.locator(".task", has_text="Make it night time")
    expect(remix.locator(".meta")).to_contain_text("remix")
    expect(page.locator("#stats")).to_contain_text("4 total")
    changes = page.evaluate("window.__changes")
    failure_text = failed.locator(".task-error").inner_text()

    # A reload keeps the session (the stored token is re-checked); logging out ends it.
    page.reload()
    expect(page.locator("#who")).to_have_text("alice")
    expect(page.locator(".task")).to_have_count(4)
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    page.click("#logout")
    expect(page.locator("#auth-view")).to_be_visible()
    assert page.evaluate("localStorage.getItem('sora.console.token')") is None
    page.reload()
    expect(page.locator("#auth-view")).to_be_visible()
    return {
        "video_id": video_id,
        "stale_while_offline": stale,
        "playing": playing,
        "changes": changes,
        "failure_text": failure_text,
    }


def reference_image(page: Page, base_url: str, image: str, username: str) -> dict[str, Any]:
    """Attach a reference image in the form; report what the page sent and got back."""
    log_in(page, base_url, username, "password-1")
    page.set_input_files("#create-form [name=input_reference]", image)
    expect(page.locator("#reference-preview")).to_be_visible()
    page.fill("#create-form [name=prompt]", "Animate this picture")

    def is_create(url: str, method: str) -> bool:
        return url.endswith("/api/video/tasks") and method == "POST"

    with (
        page.expect_request(lambda request: is_create(request.url, request.method)) as sent,
        page.expect_response(
            lambda response: is_create(response.url, response.request.method)
        ) as answered,
    ):
        page.click("#create-submit")
    item = page.locator(".task", has_text="Animate this picture")
    expect(item).to_be_visible()
    expect(page.locator("#reference")).to_be_hidden()
    return {
        "content_type": sent.value.headers["content-type"],
        "status": answered.value.status,
        "video_id": item.get_attribute("data-video-id"),
    }


# An EventSource on the page's origin recording every taskUpdate and every (re)connection.
FOLLOW_WITH_EVENTSOURCE = """([token, videoId]) => {
  window.__sse = {events: [], opens: 0, errors: 0, done: false};
  const source = new EventSource("/api/sse/task-updates?token=" + encodeURIComponent(token));
  source.onopen = () => { window.__sse.opens += 1; };
  source.onerror = () => { window.__sse.errors += 1; };
  source.addEventListener("taskUpdate", (event) => {
    const data = JSON.parse(event.data);
    window.__sse.events.push({videoId: data.videoId, seq: data.seq, type: data.type,
                              status: data.status, progress: data.progress,
                              lastEventId: event.lastEventId, opens: window.__sse.opens});
    if (data.videoId === videoId &&
        ["taskCompleted", "taskFailed", "taskCancelled"].includes(data.type)) {
      window.__sse.done = true;
      source.close();
    }
  });
}"""


def sse_follow(page: Page, base_url: str, token: str, video_id: str) -> dict[str, Any]:
    """Follow a task with a real EventSource until it ends (the test cuts the stream once
    meanwhile; the browser reconnects by itself with Last-Event-ID)."""
    page.goto(base_url + "/health")
    page.evaluate(FOLLOW_WITH_EVENTSOURCE, [token, video_id])
    page.wait_for_function("window.__sse.done", timeout=90_000)
    result: dict[str, Any] = page.evaluate("window.__sse")
    return result


def admin_console(page: Page, base_url: str, admin: str, user: str) -> dict[str, Any]:
    """An ADMIN reads the statistics and the activity log and changes the run-time settings;
    then a USER sees no admin section, sees the announcement and is refused a new video."""
    log_in(page, base_url, admin, "password-1")
    expect(page.locator("#views")).to_be_visible()
    page.locator("#views [data-view=admin]").click()
    expect(page.locator("#admin-view")).to_be_visible()
    expect(page.locator("#app-view")).to_be_hidden()

    # Statistics: figures and small inline-SVG charts.
    expect(page.locator("[data-figure=users-total] .value")).to_have_text("2")
    figures = {
        name: page.locator(f"[data-figure={name}] .value").inner_text()
        for name in ("users-total", "tasks-total", "licenses-total")
    }
    new_users_bars = page.locator("[data-chart=new-users] svg g.bar").count()
    status_bars = page.locator("[data-chart=tasks-by-status] svg g.bar").count()

    # The activity log, filtered by action.
    page.get_by_role("tab", name="Activity log").click()
    expect(page.locator("#logs-table tbody tr").first).to_be_visible()
    page.fill("#logs-filter [name=action]", "login_failed")
    page.click("#logs-filter button[type=submit]")
    expect(page.locator("#logs-info")).to_contain_text("1 entries")
    logged = page.locator("#logs-table tbody tr").evaluate_all(
        "rows => rows.map(r => [r.dataset.action, r.children[2].textContent])"
    )

    # Settings: a bad plan name is refused with the server's message, then a good save.
    page.get_by_role("tab", name="Settings").click()
    form = page.locator("#config-form")
    expect(form.locator("[name=defaultPlan]")).to_have_value("FREE")
    registration_open = form.locator("[name=registrationOpen]").is_checked()
    form.locator("[name=defaultPlan]").fill("gold plan")
    page.click("#config-save")
    expect(page.locator("#config-error")).to_contain_text("defaultPlan")
    refused = page.locator("#config-error").inner_text()
    form.locator("[name=defaultPlan]").fill("PRO")
    form.locator("[name=maintenance]").check()
    form.locator("[name=maintenanceMessage]").fill("Down for a disk swap until 15:00 UTC.")
    form.locator("[name=announcement]").fill("New models arrive on Monday.")
    page.click("#config-save")
    expect(page.locator("#config-error")).to_have_text("Settings saved.")
    expect(page.locator("#announcement")).to_have_text("New models arrive on Monday.")
    expect(page.locator("#maintenance-banner")).to_have_text(
        "Down for a disk swap until 15:00 UTC."
    )
    page.click("#logout")

    # A USER: no admin section, the operator's notices, and new videos refused.
    log_in(page, base_url, user, "password-1")
    expect(page.locator("#app-view")).to_be_visible()
    expect(page.locator("#announcement")).to_have_text("New models arrive on Monday.")
    page.fill("#create-form [name=prompt]", "A lantern festival")
    page.click("#create-submit")
    expect(page.locator("#create-error")).not_to_be_empty()
    return {
        "figures": figures,
        "new_users_bars": new_users_bars,
        "status_bars": status_bars,
        "logged": logged,
        "registration_open": registration_open,
        "refused": refused,
        "user_sees_views": page.locator("#views").is_visible(),
        "user_sees_admin": page.locator("#admin-view").is_visible(),
        "create_error": page.locator("#create-error").inner_text(),
    }


def api_keys(page: Page, base_url: str, username: str) -> dict[str, Any]:
    """Create two keys (each shown once), revoke the first; report what the page showed."""
    log_in(page, base_url, username, "password-1")
    keys = page.locator("#keys .key")
    expect(page.locator("#keys-empty")).to_be_visible()
    shown = []
    for name in ("laptop", "ci"):
        page.fill("#key-form [name=name]", name)
        page.click("#key-submit")
        expect(keys.filter(has_text=name)).to_have_count(1)
        expect(page.locator("#new-key")).to_be_visible()
        shown.append(page.locator("#new-key-value").inner_text())
    listed = keys.all_inner_texts()
    laptop = keys.filter(has_text="laptop")
    laptop.get_by_role("button", name="Revoke").click()
    expect(laptop).to_have_attribute("data-revoked", "true")
    expect(laptop.get_by_role("button", name="Revoke")).to_have_count(0)
    after_revoke = keys.all_inner_texts()
    # A reload lists the keys again, and never shows a whole key.
    page.reload()
    expect(keys).to_have_count(2)
    expect(page.locator("#new-key")).to_be_hidden()
    return {
        "shown": shown,
        "listed": listed,
        "after_revoke": after_revoke,
        "page_text": page.locator("body").inner_text(),
        "base_url_hint": page.locator("#relay-base").inner_text(),
    }


def open_admin_section(page: Page, base_url: str, admin: str, tab: str) -> None:
    """Log in as ``admin`` and open one tab of the admin section."""
    log_in(page, base_url, admin, "password-1")
    page.locator("#views [data-view=admin]").click()
    expect(page.locator("#admin-view")).to_be_visible()
    page.get_by_role("tab", name=tab).click()


def _user_rows(page: Page) -> list[str]:
    rows = page.locator("#users-table tbody tr")
    names: list[str] = rows.locator("strong").all_inner_texts()
    return names


def _search_users(page: Page, q: str = "", role: str = "", active: str = "") -> None:
    """Submit the users search and wait for the list it asked for to arrive."""
    form = page.locator("#users-search")
    form.locator("[name=q]").fill(q)
    form.locator("[name=role]").select_option(role)
    form.locator("[name=isActive]").select_option(active)
    with page.expect_response(lambda r: "/api/admin/users?" in r.url):
        form.get_by_role("button", name="Search").click()


def _user_row(page: Page, username: str) -> Any:
    return page.locator("#users-table tbody tr").filter(
        has=page.locator("strong", has_text=username)
    )


def admin_ban_user(page: Page, base_url: str, admin: str, user: str) -> dict[str, Any]:
    """Search users by part of a name, ban the one found; report what the page showed."""
    open_admin_section(page, base_url, admin, "Users")
    expect(page.locator("#users-table tbody tr")).not_to_have_count(0)
    everyone = _user_rows(page)
    _search_users(page, q=user[:3])
    expect(page.locator("#users-table tbody tr")).to_have_count(1)
    found = _user_rows(page)
    row = _user_row(page, user)
    row.get_by_role("button", name="Ban").click()
    expect(row.locator("td").nth(2)).to_have_text("banned")
    expect(row.get_by_role("button", name="Unban")).to_be_visible()
    return {"everyone": everyone, "found": found}


def admin_change_users(
    page: Page, base_url: str, admin: str, banned: str, other: str
) -> dict[str, Any]:
    """Unban ``banned``; make ``other`` an ADMIN, then deactivate it; filter by role and state."""
    open_admin_section(page, base_url, admin, "Users")
    row = _user_row(page, banned)
    row.get_by_role("button", name="Unban").click()
    expect(row.locator("td").nth(2)).to_have_text("active")
    expect(row.get_by_role("button", name="Ban")).to_be_visible()

    # The role change is saved, then the list is read again from the server.
    target = _user_row(page, other)
    with page.expect_response(lambda r: "/api/admin/users?" in r.url):
        target.get_by_role("combobox").select_option("ADMIN")
    _search_users(page, role="ADMIN")
    expect(page.locator("#users-table tbody tr")).to_have_count(2)
    admins = _user_rows(page)

    target = _user_row(page, other)
    target.get_by_role("button", name="Deactivate").click()
    expect(target.locator("td").nth(2)).to_have_text("inactive")
    _search_users(page, active="false")
    expect(page.locator("#users-table tbody tr")).to_have_count(1)
    return {
        "admins": admins,
        "inactive": _user_rows(page),
        "role_shown": target.get_by_role("combobox").input_value(),
    }


def admin_licences(page: Page, base_url: str, admin: str) -> dict[str, Any]:
    """Generate a PRO licence (its key shown once), reload, revoke it; report what was shown."""
    open_admin_section(page, base_url, admin, "Licences")
    form = page.locator("#license-form")
    form.locator("[name=type]").select_option("PRO")
    form.locator("[name=durationDays]").fill("30")
    form.get_by_role("button", name="Generate").click()
    expect(page.locator("#new-keys")).to_be_visible()
    rows = page.locator("#licenses-table tbody tr")
    expect(rows).to_have_count(1)
    shown = page.locator("#new-keys-text").inner_text()
    listed = rows.first.inner_text()

    # After a reload the key is gone for good: only its masked form is listed.
    page.reload()
    page.locator("#views [data-view=admin]").click()
    page.get_by_role("tab", name="Licences").click()
    expect(rows).to_have_count(1)
    expect(page.locator("#new-keys")).to_be_hidden()
    after_reload = rows.first.inner_text()
    page_text = page.locator("body").inner_text()

    rows.first.get_by_role("button", name="Revoke").click()
    expect(rows.first).to_have_attribute("data-status", "REVOKED")
    expect(rows.first.get_by_role("button", name="Revoke")).to_have_count(0)
    return {
        "shown": shown,
        "listed": listed,
        "after_reload": after_reload,
        "page_text": page_text,
        "id": rows.first.get_attribute("data-license-id"),
        "state_shown": rows.first.locator("td").nth(4).inner_text(),
    }


def _plan_card(page: Page) -> dict[str, Any]:
    usage = page.locator("#plan-usage [data-usage]")
    return {
        "name": page.locator("#plan-name").inner_text(),
        "usage": dict(
            zip(
                usage.evaluate_all("rows => rows.map(r => r.dataset.usage)"),
                usage.locator("dd").all_inner_texts(),
                strict=True,
            )
        ),
        "licence": page.locator("#plan-licence").inner_text(),
    }


def plan_card(page: Page, base_url: str, username: str, prompt: str = "") -> dict[str, Any]:
    """What the plan card says on logging in, and (given a prompt) after creating a task."""
    log_in(page, base_url, username, "password-1")
    expect(page.locator("#plan")).to_be_visible()
    expect(page.locator("#plan-usage [data-usage]")).to_have_count(3)
    seen: dict[str, Any] = {"before": _plan_card(page)}
    if prompt:
        page.fill("#create-form [name=prompt]", prompt)
        page.click("#create-submit")
        expect(page.locator("#plan-usage [data-usage=day] dd")).to_have_text(
            re.compile(r"^1( of \d+)?$")
        )
        seen["after"] = _plan_card(page)
    return seen
