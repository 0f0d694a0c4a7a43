"""Licence keys (format, reading back, hash, mask), plan settings and the plan decision."""

from __future__ import annotations

import math
import re

import pytest

from sora_actors import licence_keys
from sora_actors.plans import PlanForbids, Plans, Wish, forbid
from sora_actors.settings import Plan, SettingsError, load
from sora_actors.storage.licences import Licence
from sora_actors.storage.quota import Quota

DAY = 86_400_000


def test_keys_are_long_random_and_readable() -> None:
    keys = {licence_keys.generate() for _ in range(2000)}
    assert len(keys) == 2000
    for key in list(keys)[:50]:
        assert re.fullmatch(r"SORA(-[0-9A-HJKMNP-TV-Z]{5}){5}", key), key
    bits = licence_keys.LENGTH * math.log2(len(licence_keys.ALPHABET))
    assert bits == 125 and bits - licence_keys.VISIBLE * 5 >= 100  # unknown once masked
    used = {char for key in keys for char in key.replace("-", "")[4:]}
    assert used == set(licence_keys.ALPHABET)  # every character occurs, none other


def test_a_key_reads_back_however_it_is_typed() -> None:
    key = "SORA-0A1B2-C3D4E-F5G6H-J7K8M-N9PQR"
    plain = "0A1B2C3D4EF5G6HJ7K8MN9PQR"
    for typed in (
        key,
        key.lower(),
        f"  {key}\t",
        key.replace("-", " "),
        plain,
        key.replace("0", "O").replace("1", "I"),  # look-alikes Crockford reads as digits
        key.replace("1", "l"),
    ):
        assert licence_keys.normalise(typed) == plain, typed
        assert licence_keys.digest(typed) == licence_keys.digest(key)
    assert len(licence_keys.digest(key)) == 64 and plain not in licence_keys.digest(key)
    assert licence_keys.masked(licence_keys.last_four(key)) == "SORA-…-9PQR"
    for bad in ("", "SORA-", key[:-1], key + "X", key.replace("A", "U"), "SORA-" + "é" * 25):
        with pytest.raises(licence_keys.BadKey):
            licence_keys.normalise(bad)


def test_plans_come_from_the_settings_and_layer_field_by_field(tmp_path: object) -> None:
    from pathlib import Path

    shipped = load(environ={})
    assert shipped.default_plan == "FREE"
    assert {"FREE", "TRIAL", "PRO", "ENTERPRISE"} <= set(shipped.plans)
    assert shipped.plans["FREE"].image_to_video is False
    assert shipped.plans["ENTERPRISE"].models == "*"

    extra = Path(str(tmp_path)) / "plans.toml"
    extra.write_text("plans.PRO.max_running = 9\nplans.GOLD.models = ['sora-2']\n")
    layered = load(
        environ={
            "SORA_CONFIG_FILE": str(extra),
            "SORA_PLANS": '{"PRO": {"tasks_per_day": 7}}',
            "SORA_DEFAULT_PLAN": "GOLD",
        }
    )
    pro = layered.plans["PRO"]
    assert (pro.max_running, pro.tasks_per_day) == (9, 7)
    assert pro.tasks_per_30_days == shipped.plans["PRO"].tasks_per_30_days  # kept
    assert layered.plans["GOLD"] == Plan(models=("sora-2",))
    assert layered.default_plan == "GOLD"

    with pytest.raises(SettingsError, match=r"^invalid setting SORA_DEFAULT_PLAN='NONE'"):
        load(environ={"SORA_DEFAULT_PLAN": "NONE"})
    with pytest.raises(SettingsError, match="SORA_PLANS: not JSON"):
        load(environ={"SORA_PLANS": "{"})
    with pytest.raises(SettingsError, match="SORA_PLANS"):
        load(environ={"SORA_PLANS": '{"PRO": {"max_running": -1}}'})
    with pytest.raises(SettingsError, match="SORA_PLANS"):
        load(environ={"SORA_PLANS": '{"PRO": {"colour": "red"}}'})


def _licence(
    kind: str, *, user: str | None = "u", expires: int | None = None, active: bool = True
) -> Licence:
    return Licence(
        id=kind,
        key_last4="ABCD",
        type=kind,
        user_id=user,
        device_id=None,
        features=[],
        duration_days=None,
        is_active=active,
        revoked_at=None if active else 1,
        activated_at=1 if user else None,
        expires_at=expires,
        created_at=1,
    )


def test_the_plan_is_the_best_usable_licences_else_the_default_of_the_moment() -> None:
    now = 100 * DAY
    default = ["FREE"]
    plans = Plans(
        {
            name: Plan(max_running=n)
            for n, name in enumerate(("FREE", "TRIAL", "PRO", "ENTERPRISE", "GOLD"))
        },
        lambda: default[0],
    )
    assert plans.of([], now)[0] == "FREE"
    trial, pro = _licence("TRIAL"), _licence("PRO", expires=now + 1)
    assert plans.of([trial, pro], now)[:1] == ("PRO",)
    assert plans.of([trial, pro], now)[2] == pro
    expired = _licence("ENTERPRISE", expires=now)
    revoked = _licence("ENTERPRISE", active=False)
    unused = _licence("ENTERPRISE", user=None)
    assert plans.of([trial, expired, revoked, unused], now)[0] == "TRIAL"
    assert plans.of([expired, revoked], now)[0] == "FREE"
    default[0] = "GOLD"  # a run-time override applies to the next decision
    assert plans.of([expired], now)[0] == "GOLD"
    default[0] = "NOT_CONFIGURED"  # falls back to the default the process started with
    assert plans.of([], now)[0] == "FREE"

    gate = plans.gate(Wish("sora-2", "720x1280", 4, image=False))
    assert gate([pro], now) == Quota(running=2)


@pytest.mark.parametrize(
    ("wish", "field"),
    [
        (Wish("sora-2-pro", "720x1280", 4, False), "model"),
        (Wish("sora-2", "1792x1024", 4, False), "size"),
        (Wish("sora-2", "720x1280", 12, False), "duration"),
        (Wish("sora-2", "720x1280", 4, True), "image_to_video"),
    ],
)
def test_forbid_names_the_first_thing_left_out(wish: Wish, field: str) -> None:
    plan = Plan(
        models=("sora-2",), sizes=("720x1280",), max_duration_seconds=8, image_to_video=False
    )
    with pytest.raises(PlanForbids) as raised:
        forbid("FREE", plan, wish)
    assert (raised.value.plan, raised.value.field) == ("FREE", field)
    forbid("OPEN", Plan(), wish)  # "*" and 0: nothing is left out
