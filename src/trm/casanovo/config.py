"""Complete Casanovo config files built from the shipped template.

Casanovo 5.2.1 refuses a config file that lacks any key of its own default config (and
one with a key it does not know), so every file written here is the template shipped
beside this module -- the verbatim output of ``casanovo configure`` of the pinned version
-- with some keys overridden: from the instrument settings (precursor tolerance, isotope
errors, highest charge), from the architecture of a baseline to train, from a training
budget, and from whatever a caller passes explicitly.

How to set a small architecture
-------------------------------
The architecture lives in five config keys, read when a model is trained from scratch
and ignored at inference (the checkpoint's own values win): ``dim_model`` (width of the
peak and residue embeddings; must be divisible by ``n_head``), ``n_head`` (attention
heads), ``dim_feedforward`` (width of each transformer layer's feed-forward block),
``n_layers`` (layers of the spectrum encoder *and* of the peptide decoder each) and
``dropout``. Casanovo's default is 512 / 8 / 1024 / 9 / 0.0 (~47 M parameters);
``Architecture(dim_model=64, n_head=4, dim_feedforward=128, n_layers=2)`` trains on a CPU.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from trm.errors import InputError

#: The pinned Casanovo version; its ``casanovo configure`` output is the template.
CASANOVO_VERSION = "5.2.1"
TEMPLATE_PATH = Path(__file__).with_name(f"casanovo_{CASANOVO_VERSION}.yaml")

#: Keys whose template value is empty (``None``) and whose type is therefore not
#: checked against the template.
_NULLABLE_KEYS = frozenset({"devices", "dim_intensity", "lance_dir", "gradient_clip_val"})


def load_template() -> dict[str, Any]:
    """Casanovo's default config as a dict (every key Casanovo requires)."""
    with TEMPLATE_PATH.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


@dataclass(frozen=True)
class Architecture:
    """Casanovo's model size; ``None`` keeps the template's (Casanovo's default) value.

    Attributes
    ----------
    dim_model : int, optional
        Embedding width; divisible by ``n_head``.
    n_head : int, optional
        Attention heads per layer.
    dim_feedforward : int, optional
        Feed-forward width of each transformer layer.
    n_layers : int, optional
        Layers of the encoder and of the decoder (each).
    dropout : float, optional
    """

    dim_model: int | None = None
    n_head: int | None = None
    dim_feedforward: int | None = None
    n_layers: int | None = None
    dropout: float | None = None

    def overrides(self) -> dict[str, Any]:
        """Config keys of the fields that are set."""
        return {key: value for key, value in asdict(self).items() if value is not None}


def instrument_overrides(instrument: Mapping[str, Any]) -> dict[str, Any]:
    """Config keys that follow from one instrument file (config/instruments/*.yaml).

    Parameters
    ----------
    instrument : mapping
        The instrument settings: ``precursor_tolerance_ppm``, ``isotope_errors`` (optional)
        and ``charges``.

    Returns
    -------
    dict
        ``precursor_mass_tol`` (ppm), ``isotope_error_range`` and ``max_charge``. Casanovo
        5.2.1 uses the first two only in database-search mode; they are set anyway so the
        run records the tolerance it was compared under. ``max_charge`` decides which
        spectra it sequences.
    """
    overrides: dict[str, Any] = {
        "precursor_mass_tol": float(instrument["precursor_tolerance_ppm"]),
        "max_charge": int(max(instrument["charges"])),
    }
    if instrument.get("isotope_errors") is not None:
        low, high = instrument["isotope_errors"]
        overrides["isotope_error_range"] = [int(low), int(high)]
    return overrides


def training_overrides(
    n_train_spectra: int,
    max_spectra: int,
    batch_size: int,
    n_validations: int = 5,
    warmup_fraction: float = 0.1,
) -> dict[str, Any]:
    """Config keys giving a training run a budget of spectra seen.

    Casanovo's learning-rate schedule counts optimizer steps from its own defaults
    (100,000 warm-up steps, a 600,000-step cosine): a short run under them would never leave
    warm-up, so both are scaled to the budget.

    Parameters
    ----------
    n_train_spectra : int
        Spectra in the training files.
    max_spectra : int
        Spectra to train on, counting repeats: ``max_epochs`` is the number of passes
        over the training files this takes (at least one). Give the training files no
        more than ``max_spectra`` spectra to stop inside the first pass.
    batch_size : int
        Spectra per optimizer step.
    n_validations : int
        How many times validation runs (and a best checkpoint may be saved) over the run.
    warmup_fraction : float
        Share of the steps spent warming the learning rate up.

    Returns
    -------
    dict
        ``train_batch_size``, ``max_epochs``, ``warmup_iters``,
        ``cosine_schedule_period_iters`` and ``val_check_interval``.
    """
    if n_train_spectra < 1 or max_spectra < 1 or batch_size < 1 or n_validations < 1:
        raise InputError("training spectra, budget, batch size and validations must be >= 1")
    max_epochs = max(1, round(max_spectra / n_train_spectra))
    steps_per_epoch = math.ceil(n_train_spectra / batch_size)
    total_steps = max_epochs * steps_per_epoch
    return {
        "train_batch_size": int(batch_size),
        "max_epochs": int(max_epochs),
        "warmup_iters": max(1, int(total_steps * warmup_fraction)),
        # The cosine reaches zero at its period; one period over the run decays the
        # learning rate to zero at the end, as Casanovo's defaults do over 600k steps.
        "cosine_schedule_period_iters": max(2, total_steps),
        "val_check_interval": max(1, total_steps // n_validations),
    }


def build_config(*overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The template with the given overrides applied in order (later ones win).

    Parameters
    ----------
    *overrides : mapping
        Config keys to set, e.g. from :func:`instrument_overrides`,
        :meth:`Architecture.overrides`, :func:`training_overrides` and the workflow config.

    Returns
    -------
    dict
        A complete config: exactly the template's keys.

    Raises
    ------
    ValueError
        For a key Casanovo does not know, a value of the wrong type, or ``dim_model`` not
        divisible by ``n_head``.
    """
    config = load_template()
    for override in overrides:
        for key, value in override.items():
            if key not in config:
                raise InputError(f"{key!r} is not a Casanovo {CASANOVO_VERSION} config key")
            config[key] = _checked_value(key, value, config[key])
    if config["dim_model"] % config["n_head"]:
        raise InputError(
            f"Casanovo dim_model ({config['dim_model']}) must be divisible by n_head "
            f"({config['n_head']})"
        )
    return config


def _checked_value(key: str, value: Any, template_value: Any) -> Any:
    if value is None or template_value is None or key in _NULLABLE_KEYS:
        return value
    if isinstance(template_value, bool):
        ok = isinstance(value, bool)
    elif isinstance(template_value, int | float) and not isinstance(template_value, bool):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif isinstance(template_value, str):
        # The template writes some numbers as strings YAML 1.1 does not read as floats
        # ("5e-4"); Casanovo converts them itself.
        ok = isinstance(value, str | int | float) and not isinstance(value, bool)
    else:
        ok = isinstance(value, type(template_value))
    if not ok:
        raise InputError(
            f"Casanovo config key {key!r} takes a {type(template_value).__name__}, got {value!r}"
        )
    return value


def config_yaml(config: Mapping[str, Any]) -> str:
    """A complete config as YAML text, as Casanovo reads it.

    Raises
    ------
    ValueError
        When ``config`` lacks a key of the template or has one it does not know.
    """
    expected = set(load_template())
    missing, unknown = expected - set(config), set(config) - expected
    if missing or unknown:
        raise InputError(
            f"incomplete Casanovo config: missing {sorted(missing)}, unknown {sorted(unknown)}"
        )
    header = (
        f"# Casanovo {CASANOVO_VERSION} config written by trm from its shipped template\n"
        "# (every key present, as Casanovo requires).\n"
    )
    return header + yaml.safe_dump(dict(config), sort_keys=False, default_flow_style=None)


def write_config(config: Mapping[str, Any], path: str | Path) -> Path:
    """Write a complete config (see :func:`config_yaml`) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(config_yaml(config), encoding="utf-8")
    return path
