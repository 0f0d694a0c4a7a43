"""The run-time settings' types: what a patch may say, and how stored rows are read back."""

from __future__ import annotations

from typing import Any

import pytest

from sora_actors.system_config import (
    MAINTENANCE_MESSAGE,
    ConfigInvalid,
    Maintenance,
    RuntimeConfig,
    from_stored,
    validate,
)


def problems(raw: Any, plans: set[str] | None = None) -> list[dict[str, str]]:
    with pytest.raises(ConfigInvalid) as refused:
        validate(raw, plans)
    return refused.value.problems


def test_a_valid_patch_becomes_the_stored_form() -> None:
    changes = validate(
        {
            "registrationOpen": False,
            "maintenance": {"enabled": True},
            "defaultPlan": "TRIAL",
            "announcement": "  ",
        },
        None,
    )
    assert changes == {
        "registrationOpen": False,
        "maintenance": {"enabled": True, "message": ""},
        "defaultPlan": "TRIAL",
        "announcement": None,  # blank: no announcement
    }
    assert from_stored(changes) == RuntimeConfig(
        registration_open=False,
        maintenance=Maintenance(enabled=True),
        default_plan="TRIAL",
        announcement=None,
    )
    assert Maintenance(enabled=True).notice == MAINTENANCE_MESSAGE
    assert Maintenance(enabled=True, message="soon").notice == "soon"


def test_every_bad_field_is_named() -> None:
    found = problems(
        {
            "registrationOpen": 1,
            "maintenance": {"message": 5},
            "announcement": "x" * 2001,
            "theme": "dark",
        }
    )
    assert sorted(problem["field"] for problem in found) == [
        "announcement",
        "maintenance.enabled",
        "maintenance.message",
        "registrationOpen",
        "theme",
    ]
    assert {"field": "theme", "message": "unknown setting"} in found


@pytest.mark.parametrize("raw", [None, [], "x", {}])
def test_the_body_must_be_an_object_with_something_to_set(raw: Any) -> None:
    assert problems(raw)[0]["field"] == "body"


def test_null_only_clears_the_announcement() -> None:
    assert validate({"announcement": None}, None) == {"announcement": None}
    assert problems({"defaultPlan": None}) == [
        {"field": "defaultPlan", "message": "must not be null"}
    ]


def test_plan_names_follow_the_settings_when_they_list_plans() -> None:
    assert validate({"defaultPlan": "FREE"}, None) == {"defaultPlan": "FREE"}
    assert problems({"defaultPlan": "free plan"})[0]["field"] == "defaultPlan"
    assert validate({"defaultPlan": "BASIC"}, {"BASIC", "PRO"}) == {"defaultPlan": "BASIC"}
    assert problems({"defaultPlan": "FREE"}, {"BASIC", "PRO"}) == [
        {"field": "defaultPlan", "message": "must be one of BASIC, PRO"}
    ]


def test_stored_rows_of_the_wrong_type_or_unknown_keys_read_as_defaults() -> None:
    stored = {
        "registrationOpen": "yes",
        "maintenance": {"enabled": "on"},
        "defaultPlan": 7,
        "announcement": "hello",
        "siteName": "old backend's row",
    }
    assert from_stored(stored) == RuntimeConfig(announcement="hello")
    assert from_stored({}) == RuntimeConfig()
