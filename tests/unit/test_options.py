"""trm.options: command-line options made from settings dataclasses."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

import pytest

from trm.options import add_options, descriptions, from_options, settings_of


@dataclass(frozen=True)
class Inner:
    """Inner settings.

    Attributes
    ----------
    rate, floor : float
        Shared description of two fields.
    weight : float
        A field whose own name would be ambiguous.
    """

    rate: float = 0.5
    floor: float = 0.1
    weight: float = field(default=1.0, metadata={"option": "inner_weight"})


@dataclass(frozen=True)
class Outer:
    """Outer settings.

    Attributes
    ----------
    steps : int
        Optimisation steps; 100% of them.
    kind : str
        One of two kinds.
    shares : tuple of float
        Several numbers.
    frozen : bool
        A switch.
    inner : Inner
    extra : dict or None
        Not an option.
    """

    steps: int = 10
    kind: str = field(default="a", metadata={"choices": ("a", "b")})
    shares: tuple[float, ...] = (0.2, 0.8)
    frozen: bool = False
    inner: Inner = Inner()
    extra: dict | None = None


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_options(parser, Outer)
    return parser.parse_args(list(argv))


def test_descriptions_come_from_the_docstring():
    assert descriptions(Outer)["steps"] == "Optimisation steps; 100% of them."
    assert descriptions(Inner)["rate"] == descriptions(Inner)["floor"]


def test_nested_fields_are_flattened_and_renamed():
    names = [s.name for s in settings_of(Outer)]
    assert names == ["steps", "kind", "shares", "frozen", "rate", "floor", "inner_weight"]


def test_only_given_options_change_the_defaults():
    assert from_options(Outer, parse()) == Outer()
    settings = from_options(
        Outer, parse("--steps", "3", "--shares", "0.5", "0.5", "--frozen", "--rate", "0.7")
    )
    assert settings.steps == 3 and settings.shares == (0.5, 0.5) and settings.frozen
    assert settings.inner == Inner(rate=0.7)
    assert from_options(Outer, parse("--frozen", "false", "--inner-weight", "2")).inner.weight == 2


def test_bad_values_are_refused():
    with pytest.raises(SystemExit):
        parse("--kind", "c")
    with pytest.raises(SystemExit):
        parse("--frozen", "maybe")


def test_help_shows_the_default(capsys):
    with pytest.raises(SystemExit):
        parse("--help")
    assert "(default: 0.2 0.8)" in capsys.readouterr().out


def test_two_fields_making_one_option_are_an_error():
    @dataclass(frozen=True)
    class Clash:
        """Attributes
        ----------
        inner : Inner
        rate : float
        """

        inner: Inner = Inner()
        rate: float = 0.0

    with pytest.raises(ValueError, match="same option"):
        settings_of(Clash)
