"""Command-line options made from settings dataclasses: one declaration per setting.

A setting is a field of a frozen settings dataclass (:class:`trm.train.config.TrainConfig`,
:class:`trm.train.finetune.FinetuneConfig`, ...), described in the class's numpydoc
``Attributes`` section. :func:`add_options` gives every such field an option
``--field-name`` (its type from the default, its help from the description, the default
shown), the fields of nested settings dataclasses (``TrainConfig.curriculum``) flattened
into options of their own; :func:`from_options` builds the dataclass back, changing only
the fields given on the command line. A field may carry metadata:

``option``
    The option's name when the field's own would be ambiguous (``spectrum_loss_weight``
    for ``LossWeights.spectrum``).
``choices``
    The values it accepts.
``allow_empty``
    A tuple setting that may be empty: its option takes zero or more values.

The workflow hands a config section's keys to the command as these options
(``setting_options`` in ``workflow/rules/common.smk``), so a new setting is one dataclass
field with its description plus its entry in the config schema.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from dataclasses import dataclass
from typing import Any

_ATTRIBUTE = re.compile(r"^    ([A-Za-z_][A-Za-z0-9_]*(?:, [A-Za-z_][A-Za-z0-9_]*)*)(?: : .*)?$")


def descriptions(cls: type) -> dict[str, str]:
    """Field name -> description, from the numpydoc ``Attributes`` section of ``cls``."""
    lines = (cls.__doc__ or "").splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "Attributes")
    except StopIteration:
        return {}
    out: dict[str, str] = {}
    names: list[str] = []
    for line in lines[start + 2 :]:
        if line.strip() and not line.startswith("    "):
            break
        match = _ATTRIBUTE.match(line)
        if match:
            names = match.group(1).split(", ")
            for name in names:
                out[name] = ""
        elif line.startswith("        ") and names:
            for name in names:
                out[name] = f"{out[name]} {line.strip()}".strip()
        elif line.strip() and not line.startswith("        "):
            break
    return out


@dataclass(frozen=True)
class Setting:
    """One command-line option of a settings dataclass.

    Attributes
    ----------
    name : str
        Option name with underscores (``clean_mix_fraction``), also the config key.
    path : tuple of str
        Field names from the outer dataclass down to the field.
    default : object
        The field's default.
    help : str
        The field's description.
    choices : tuple or None
    allow_empty : bool
        A tuple setting whose option may be given without values.
    """

    name: str
    path: tuple[str, ...]
    default: Any
    help: str
    choices: tuple | None = None
    allow_empty: bool = False

    @property
    def flag(self) -> str:
        """``--clean-mix-fraction``."""
        return "--" + self.name.replace("_", "-")


def settings_of(cls: type, exclude: tuple[str, ...] = ()) -> list[Setting]:
    """The options of a settings dataclass, nested settings dataclasses flattened.

    Fields whose default is None, a dict or a list are not options (they are set by the
    command itself), nor are the names in ``exclude``.

    Raises
    ------
    ValueError
        When two fields would make the same option.
    """
    found: list[Setting] = []

    def walk(owner: type, instance: Any, path: tuple[str, ...]) -> None:
        described = descriptions(owner)
        for field in dataclasses.fields(owner):
            value = getattr(instance, field.name)
            if dataclasses.is_dataclass(value):
                walk(type(value), value, (*path, field.name))
                continue
            if value is None or isinstance(value, dict | list):
                continue
            name = field.metadata.get("option", field.name)
            if name in exclude:
                continue
            choices = field.metadata.get("choices")
            found.append(
                Setting(
                    name=name,
                    path=(*path, field.name),
                    default=value,
                    help=described.get(field.name, ""),
                    choices=None if choices is None else tuple(choices),
                    allow_empty=bool(field.metadata.get("allow_empty", False)),
                )
            )

    walk(cls, cls(), ())
    names = [setting.name for setting in found]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"{cls.__name__}: fields {repeated} would make the same option")
    return found


def _boolean(text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "yes", "1", "on"):
        return True
    if value in ("false", "no", "0", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return " ".join(str(v) for v in value)
    return str(value)


def add_options(
    parser: argparse.ArgumentParser, cls: type, exclude: tuple[str, ...] = ()
) -> list[Setting]:
    """Add an option for every setting of ``cls`` (see :func:`settings_of`).

    Options not given are absent from the parsed arguments, so :func:`from_options` keeps
    the dataclass's defaults for them. A boolean option alone means true
    (``--freeze-encoder``); it also takes ``true``/``false``.

    Returns
    -------
    list of Setting
    """
    settings = settings_of(cls, exclude)
    for setting in settings:
        default = setting.default
        kwargs: dict[str, Any] = {"dest": setting.name, "default": argparse.SUPPRESS}
        if isinstance(default, bool):
            kwargs.update(type=_boolean, nargs="?", const=True, metavar="BOOL")
        elif isinstance(default, tuple):
            kwargs.update(
                type=type(default[0]) if default else float,
                nargs="*" if setting.allow_empty else "+",
            )
        else:
            kwargs["type"] = type(default)
        if setting.choices is not None:
            kwargs["choices"] = setting.choices
        help_text = setting.help.replace("%", "%%")
        kwargs["help"] = f"{help_text} (default: {_shown(default)})".strip()
        parser.add_argument(setting.flag, **kwargs)
    return settings


def from_options(cls: type, args: argparse.Namespace, base: Any = None) -> Any:
    """``base`` (default: ``cls()``) with the settings given in ``args`` changed."""
    base = cls() if base is None else base
    given = vars(args)
    changes: dict[tuple[str, ...], Any] = {}
    for setting in settings_of(cls):
        if setting.name in given:
            value = given[setting.name]
            changes[setting.path] = tuple(value) if isinstance(setting.default, tuple) else value

    def rebuild(instance: Any, prefix: tuple[str, ...]) -> Any:
        updates: dict[str, Any] = {}
        for field in dataclasses.fields(instance):
            path = (*prefix, field.name)
            value = getattr(instance, field.name)
            if dataclasses.is_dataclass(value):
                nested = rebuild(value, path)
                if nested is not value:
                    updates[field.name] = nested
            elif path in changes:
                updates[field.name] = changes[path]
        return dataclasses.replace(instance, **updates) if updates else instance

    return rebuild(base, ())
