"""docs/configuration.md lists every option as it is declared, so it cannot drift from the code."""

from __future__ import annotations

from pathlib import Path

import pytest

from wspool.cli import COMMAND_OPTIONS
from wspool.reference import render

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_the_committed_reference_is_what_the_declarations_render() -> None:
    assert REFERENCE.read_text(encoding="utf-8") == render(), (
        "docs/configuration.md is out of date: python -m wspool.reference > docs/configuration.md"
    )


@pytest.mark.parametrize("command", list(COMMAND_OPTIONS))
def test_the_reference_names_every_flag_and_variable_of_every_command(command: str) -> None:
    section = render().split(f"## wspool {command}\n", 1)[1].split("\n## ", 1)[0]
    for option in COMMAND_OPTIONS[command][1]:
        assert f"| `{option.flag}" in section
        assert f"`{option.env}`" in section
