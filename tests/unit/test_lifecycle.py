"""The state table: every legal move, every illegal one, and the public statuses."""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import pytest

from sora_actors import lifecycle
from sora_actors.lifecycle import (
    PUBLIC_STATUS,
    TERMINAL,
    TERMINAL_STATUSES,
    UNFINISHED_STATUSES,
    IllegalTransition,
    Phase,
    Status,
    transition,
)

A, S, P, F = Phase.ACCEPTED, Phase.SUBMITTING, Phase.POLLING, Phase.FETCHING
DONE, FAILED, CANCELLED = Phase.COMPLETED, Phase.FAILED, Phase.CANCELLED

# Written out independently of lifecycle.TRANSITIONS (the module doc's picture).
LEGAL = {
    (A, S), (A, FAILED), (A, CANCELLED),
    (S, P), (S, A), (S, FAILED), (S, CANCELLED),
    (P, P), (P, F), (P, FAILED), (P, CANCELLED),
    (F, F), (F, DONE), (F, FAILED), (F, CANCELLED),
}  # fmt: skip

ALL_MOVES = list(itertools.product(Phase, Phase))


@pytest.mark.parametrize(("here", "there"), [m for m in ALL_MOVES if m in LEGAL])
def test_a_legal_move_gives_phase_status_and_changes(here: Phase, there: Phase) -> None:
    changes = transition(here.value, there, progress=7)
    assert changes == {"phase": there.value, "status": PUBLIC_STATUS[there].value, "progress": 7}
    # Plain strings, as storage stores them.
    assert type(changes["phase"]) is str and type(changes["status"]) is str


@pytest.mark.parametrize(("here", "there"), [m for m in ALL_MOVES if m not in LEGAL])
def test_an_illegal_move_is_refused(here: Phase, there: Phase) -> None:
    with pytest.raises(IllegalTransition, match=f"{here} -> {there}"):
        transition(here.value, there)


def test_an_unknown_phase_is_refused() -> None:
    with pytest.raises(ValueError):
        transition("SLEEPING", Phase.POLLING)


def test_terminal_phases_and_statuses() -> None:
    assert {DONE, FAILED, CANCELLED} == TERMINAL
    assert {"COMPLETED", "FAILED", "CANCELLED"} == TERMINAL_STATUSES
    assert UNFINISHED_STATUSES == ("QUEUED", "PROCESSING")
    assert all(type(status) is str for status in TERMINAL_STATUSES | set(UNFINISHED_STATUSES))


def test_public_status_of_each_phase() -> None:
    assert {phase.value: status.value for phase, status in PUBLIC_STATUS.items()} == {
        "ACCEPTED": "QUEUED",
        "SUBMITTING": "QUEUED",
        "POLLING": "PROCESSING",
        "FETCHING": "PROCESSING",
        "COMPLETED": "COMPLETED",
        "FAILED": "FAILED",
        "CANCELLED": "CANCELLED",
    }
    assert set(PUBLIC_STATUS.values()) == set(Status)


def test_the_states_module_imports_nothing_of_sora_actors() -> None:
    """Storage, http and the command-line client all import it: it must not import them."""
    tree = ast.parse(Path(lifecycle.__file__).read_text())
    imported = [
        node.module or "" if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    ]
    levels = [node.level for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert not any(name.startswith("sora_actors") for name in imported)
    assert set(levels) <= {0}  # no relative imports either
