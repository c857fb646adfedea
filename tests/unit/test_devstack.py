"""``make run``'s pure parts: the create-project hint and the supervisor's pid file."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest

from analytics.dev import devstack
from analytics.settings import Settings


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres@127.0.0.1:5432/analytics",  # the default: still spelled out
        "postgresql://app:p%40ss w'rd@127.0.0.1:5433/analytics",
    ],
)
def test_cli_hint_always_names_the_stacks_database(url: str) -> None:
    hint = devstack._cli_hint(Settings(database_url=url))
    words = shlex.split(hint)
    assert words == [f"DATABASE_URL={url}", "uv", "run", "analytics", "create-project", "my-site"]


def test_pid_file_holds_the_supervisor_while_it_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    pid_file = tmp_path / ".run" / "stack.pid"
    with devstack._pid_file():
        assert pid_file.read_text().strip() == str(os.getpid())
        # Its own pid is no other supervisor: a second `make run` checks for one.
        assert devstack._running_supervisor() is None
    assert not pid_file.exists()


def test_a_stale_pid_file_does_not_block_a_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".run").mkdir()
    # pid 1 is alive but is no make run supervisor.
    (tmp_path / ".run" / "stack.pid").write_text("1\n")
    assert devstack._running_supervisor() is None
    (tmp_path / ".run" / "stack.pid").write_text("not a pid\n")
    assert devstack._running_supervisor() is None
