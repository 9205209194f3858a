"""Settings of the de novo stage: what a calibrated model stores.

The instrument file (``config/instruments/*.yaml``, :mod:`trm.instrument`) fixes the
tolerances, the isotope errors, the charges to try for spectra without one and the
missing-charge policy. ``trm calibrate`` stores the decoding settings it calibrated under
in the model file (:class:`InferenceSettings`), so ``trm denovo`` decodes the same way by
default and warns when told otherwise.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from trm.denovo.decode import DecodingSettings
from trm.errors import InputError
from trm.graph import GraphSettings
from trm.instrument import DECODERS, DEFAULT_DECODER

#: Most refinement steps a run may ask for (results store the count as a 16-bit integer).
MAX_STEPS = 1024

#: Raw scores ``trm calibrate`` can calibrate (see :func:`trm.denovo.inference.raw_scores`).
RAW_SCORE_KINDS: tuple[str, ...] = ("peptide", "halt", "combined", "rescored")


def parse_halt_threshold(text: str) -> float | None:
    """``--halt-threshold``: a probability in (0, 1], or ``none`` to run every step."""
    if text.strip().lower() in ("none", "off", "no"):
        return None
    value = float(text)
    if not 0.0 < value <= 1.0:
        raise InputError(f"halt threshold must lie in (0, 1] or be 'none', got {text!r}")
    return value


@dataclass(frozen=True)
class InferenceSettings:
    """Everything that decides which peptide and raw score a spectrum gets.

    Attributes
    ----------
    decoding : DecodingSettings
        Beam size, precursor tolerance, isotope errors, shortest peptide.
    halt_threshold : float or None
        Early exit once the halting probability reaches it; None runs all steps.
    raw_score : str
        One of :data:`RAW_SCORE_KINDS`.
    refinement_steps : int or None
        Supervision steps run at inference (at most, with early exit); None: as many as
        the model was trained with. More steps than trained refine further (the steps past
        the trained ones reuse the last step's embedding), at proportional cost.
    fragment_tolerance_da : float or None
        Tolerance (Da) of the model's ion lookups and of rescoring: the instrument's;
        None: the one the model was trained with.
    decoder : str
        One of :data:`DECODERS`.
    graph : GraphSettings
        The spectrum-graph decoder's settings (``graph`` and ``hybrid``).
    teacher_forcing : bool
        ``hybrid``: also score candidates with the model by teacher forcing (each the
        draft of one refinement step; rescoring features ``forced_*``), and choose among
        them by graph score plus that score (:data:`trm.denovo.rescore.FORCED_CHOICE`).
        One refinement step per scored candidate.
    forced_candidates : int
        With ``teacher_forcing``: score this many candidates of each spectrum, those with
        the best graph scores (the others get the unscorable floor, so the choice ranks
        them last); 0 scores every candidate (up to the search's plus the graph's).
    """

    decoding: DecodingSettings = DecodingSettings()
    halt_threshold: float | None = 0.9
    raw_score: str = "peptide"
    refinement_steps: int | None = None
    fragment_tolerance_da: float | None = None
    decoder: str = DEFAULT_DECODER
    graph: GraphSettings = GraphSettings()
    teacher_forcing: bool = False
    forced_candidates: int = 8

    def __post_init__(self) -> None:
        if self.forced_candidates < 0:
            raise InputError(f"forced candidates must be >= 0, got {self.forced_candidates}")
        if self.decoder not in DECODERS:
            raise InputError(f"decoder must be one of {DECODERS}, not {self.decoder!r}")
        if self.decoder != "model" and self.decoding.beam_size == 0:
            raise InputError(f"the {self.decoder} decoder needs the exact search: beam size > 0")
        if self.raw_score not in RAW_SCORE_KINDS:
            raise InputError(f"raw score must be one of {RAW_SCORE_KINDS}, not {self.raw_score!r}")
        if self.refinement_steps is not None and not 1 <= self.refinement_steps <= MAX_STEPS:
            raise InputError(
                f"refinement steps must lie in [1, {MAX_STEPS}], got {self.refinement_steps}"
            )
        if self.fragment_tolerance_da is not None and not self.fragment_tolerance_da > 0:
            raise InputError(
                f"fragment tolerance must be positive, got {self.fragment_tolerance_da}"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain types, for the model file (``weights_only`` loadable) and JSON."""
        decoding = dataclasses.asdict(self.decoding)
        decoding["isotope_errors"] = list(self.decoding.isotope_errors)
        return {
            **decoding,
            "halt_threshold": self.halt_threshold,
            "raw_score": self.raw_score,
            "refinement_steps": self.refinement_steps,
            "fragment_tolerance_da": self.fragment_tolerance_da,
            "decoder": self.decoder,
            "graph": _plain(dataclasses.asdict(self.graph)),
            "teacher_forcing": self.teacher_forcing,
            "forced_candidates": self.forced_candidates,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InferenceSettings:
        """Inverse of :meth:`to_dict`."""
        low, high = data["isotope_errors"]
        defaults = DecodingSettings()
        decoding = DecodingSettings(
            precursor_tolerance_ppm=float(data["precursor_tolerance_ppm"]),
            isotope_errors=(int(low), int(high)),
            beam_size=int(data["beam_size"]),
            max_beam_size=int(data.get("max_beam_size", max(defaults.max_beam_size,
                                                            int(data["beam_size"])))),
            n_candidates=int(data.get("n_candidates", defaults.n_candidates)),
            tokens_per_position=int(
                data.get("tokens_per_position", defaults.tokens_per_position)
            ),
            retry_uncertified=bool(data.get("retry_uncertified", defaults.retry_uncertified)),
            min_residues=int(data["min_residues"]),
        )  # fmt: skip
        threshold = data.get("halt_threshold")
        steps = data.get("refinement_steps")
        tolerance = data.get("fragment_tolerance_da")
        graph = data.get("graph")
        return cls(
            decoding=decoding,
            halt_threshold=None if threshold is None else float(threshold),
            raw_score=str(data.get("raw_score", "peptide")),
            refinement_steps=None if steps is None else int(steps),
            fragment_tolerance_da=None if tolerance is None else float(tolerance),
            # files calibrated before the graph decoder existed used the model alone
            decoder=str(data.get("decoder", "model")),
            graph=GraphSettings() if graph is None else _graph_settings(graph),
            teacher_forcing=bool(data.get("teacher_forcing", False)),
            # files calibrated before the limit existed forced every candidate
            forced_candidates=int(data.get("forced_candidates", 0)),
        )

    def differences(self, other: InferenceSettings) -> list[str]:
        """Settings that differ from ``other``, as ``name: mine vs other`` (nested ones,
        the graph decoder's, as ``graph.name``)."""

        def walk(mine: dict, theirs: dict, prefix: str) -> list[str]:
            found = []
            for key, value in mine.items():
                theirs_value = theirs.get(key)
                if isinstance(value, dict) and isinstance(theirs_value, dict):
                    found += walk(value, theirs_value, f"{prefix}{key}.")
                elif value != theirs_value:
                    found.append(f"{prefix}{key}: {value} vs {theirs_value}")
            return found

        return walk(self.to_dict(), other.to_dict(), "")


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    """Tuples as lists, for the model file and JSON."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


def _graph_settings(values: dict[str, Any]) -> GraphSettings:
    """Graph settings from a model file; fields this version does not know are dropped. A
    file calibrated before the residue prior existed was calibrated without it (weight 0),
    and one calibrated before the start edges with its edge length from the start too,
    so sequencing with today's settings warns that its scores may be off."""
    known = {f.name for f in dataclasses.fields(GraphSettings)}
    values = {
        "residue_prior_weight": 0.0,
        "max_start_residues": values.get("max_edge_residues", GraphSettings.max_edge_residues),
        **values,
    }
    return GraphSettings(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in known}
    )
