"""The instrument file (``config/instruments/<name>.yaml``): one validated settings object
that every stage receives — synthetic data, noise fitting, training, de novo sequencing,
evaluation and Casanovo.

What reads which setting:

``fragmentation``
    ``HCD`` or ``CID``: both produce b and y ions, the only ions the model reads. De novo
    lists spectra whose file states an electron-based activation (ETD, ECD, EThcD) as
    unsequenced with that reason, and warns when the file says CID for an HCD instrument
    or the reverse.
``ms2pip_model``, ``charges``, ``charge_weights``
    Synthetic spectra; ``charges`` also the charges tried for spectra without one.
``fragment_tolerance_da``
    The model's fragment-evidence lookup (training and de novo), spectrum-match
    rescoring, noise-model fitting and evaluation.
``precursor_tolerance_ppm``, ``isotope_errors``
    Which peptides fit a precursor (search, calibration, noise fitting, Casanovo).
``missing_charge``
    ``try`` or ``skip`` spectra without a precursor charge.
``noise_model``
    The noise model used for training when the samples sheet has no labelled run of the
    instrument to fit one from (a shipped one in ``resources/noise/``); optional.
``peptide_mix``
    Length, charge and missed cleavages of the synthetic spectra (``trm peptide-mix``)
    when the samples sheet has no labelled run of the instrument to fit them from (a
    shipped one in ``resources/peptide_mix/``); optional.
``decoder``, ``graph_edge_residues``, ``graph_window_peaks``
    De novo and calibration: the decoder, how many residues one edge of the spectrum
    graph may span (2, the default, bridges one cleavage without a b or y peak; 3 bridges
    two neighbouring ones, at several times the graph's cost), and how many of the most
    intense peaks of each 100 m/z window also make graph nodes (0, the default; 3 finds
    weak ladders of dense spectra at a few percent of de novo's speed).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from trm.chem import modification_spec
from trm.errors import InputError

#: Missing-charge policies of the instrument file.
MISSING_CHARGE_POLICIES: tuple[str, ...] = ("try", "skip")
#: Fragmentations the model can read: both give b and y ions.
FRAGMENTATIONS: tuple[str, ...] = ("HCD", "CID")
#: How de novo finds its candidates (see :mod:`trm.denovo.inference`): the spectrum
#: graph's best paths refined and ranked with the model, the graph alone, the model alone.
DECODERS: tuple[str, ...] = ("hybrid", "graph", "model")
#: The decoder of an instrument file that names none (and of ``trm denovo`` without one).
DEFAULT_DECODER = "hybrid"
#: Fixed modifications of the sample preparation the default vocabulary assumes.
DEFAULT_FIXED_MODIFICATIONS: tuple[str, ...] = ("Carbamidomethyl@C",)
#: Activation names (as the spectrum reader reports them) of electron-based
#: fragmentation, whose c and z ions the model does not read.
ELECTRON_ACTIVATIONS: frozenset[str] = frozenset({"ETD", "ECD", "EThcD", "ETciD"})

_KEYS = frozenset(
    {
        "description",
        "fragmentation",
        "ms2pip_model",
        "fragment_tolerance_da",
        "precursor_tolerance_ppm",
        "isotope_errors",
        "charges",
        "charge_weights",
        "missing_charge",
        "noise_model",
        "peptide_mix",
        "decoder",
        "graph_edge_residues",
        "graph_window_peaks",
        "fixed_modifications",
    }
)
_REQUIRED = ("fragmentation", "ms2pip_model", "fragment_tolerance_da", "precursor_tolerance_ppm")


#: Fragment tolerance (Da) of an Orbitrap MS2 spectrum: the instrument default, and the
#: tolerance a model is trained for unless an instrument file says otherwise.
DEFAULT_FRAGMENT_TOLERANCE_DA = 0.02
#: Precursor tolerance (ppm) of an Orbitrap MS1 measurement.
DEFAULT_PRECURSOR_TOLERANCE_PPM = 20.0


class InstrumentFileError(InputError):
    """The instrument YAML is missing, unreadable or holds an invalid setting."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        super().__init__(f"{self.path}: {reason}")


@dataclass(frozen=True)
class InstrumentSettings:
    """One instrument, as every stage sees it (see the module description).

    Attributes
    ----------
    fragmentation : str
        ``HCD`` or ``CID``.
    ms2pip_model : str
        MS2PIP model of the synthetic spectra.
    fragment_tolerance_da : float
        Fragment m/z tolerance (Da).
    precursor_tolerance_ppm : float
        Largest accepted peptide-precursor mass difference (ppm).
    isotope_errors : tuple of int
        Lowest and highest isotope error of the precursor (13C spacings).
    charges : tuple of int
        Charges the instrument produces; tried for spectra without one (policy ``try``).
    charge_weights : tuple of float or None
        Relative frequency of each charge among synthetic spectra.
    missing_charge : str
        ``try`` or ``skip``.
    noise_model : str or None
        Path of the noise model to train with when none is fitted (relative paths are
        relative to the working directory, the project root in the workflow).
    peptide_mix : str or None
        Path of the peptide mix of the synthetic spectra when none is fitted (relative as
        ``noise_model``).
    decoder : str or None
        The de novo decoder for this instrument's spectra (one of :data:`DECODERS`);
        None: the de novo stage's default.
    graph_edge_residues : int
        Most residues one edge of the spectrum graph spans (1 to 3,
        :attr:`trm.graph.GraphSettings.max_edge_residues`): a true peptide is among the
        graph's candidates only where no more than this many minus one neighbouring
        cleavages lack a b or y peak (two from the peptide's start, whose edges span
        three residues: ``GraphSettings.max_start_residues``; or where no path of such
        edges fits at all and the fallback search with three-residue edges runs). De novo
        and calibration read it; the graph that drafts and ranks in training keeps two.
    graph_window_peaks : int
        Peaks of each 100 m/z window that also make graph nodes, besides the most
        intense of the spectrum (:attr:`trm.graph.GraphSettings.node_window_peaks`; 0,
        the default, none). De novo and calibration read it.
    fixed_modifications : tuple of str
        ``Name@Residues`` modifications every matching residue of the samples carries
        (:func:`trm.chem.vocabulary_tokens`); empty for samples without alkylation.
    description : str
    """

    fragmentation: str = "HCD"
    ms2pip_model: str = "HCD2019-distilled"
    fragment_tolerance_da: float = DEFAULT_FRAGMENT_TOLERANCE_DA
    precursor_tolerance_ppm: float = DEFAULT_PRECURSOR_TOLERANCE_PPM
    isotope_errors: tuple[int, int] = (0, 1)
    charges: tuple[int, ...] = (2, 3, 4)
    charge_weights: tuple[float, ...] | None = None
    missing_charge: str = "try"
    noise_model: str | None = None
    peptide_mix: str | None = None
    decoder: str | None = None
    graph_edge_residues: int = 2
    graph_window_peaks: int = 0
    fixed_modifications: tuple[str, ...] = DEFAULT_FIXED_MODIFICATIONS
    description: str = ""

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str | Path) -> InstrumentSettings:
        """Check every key of a parsed instrument file.

        Raises
        ------
        InstrumentFileError
            Naming ``source`` and the offending key.
        """
        if not isinstance(data, Mapping):
            raise InstrumentFileError(source, "expected a mapping of instrument settings")
        unknown = sorted(set(data) - _KEYS)
        if unknown:
            raise InstrumentFileError(
                source, f"unknown key(s) {unknown}; known keys: {sorted(_KEYS)}"
            )
        missing = [key for key in _REQUIRED if key not in data]
        if missing:
            raise InstrumentFileError(source, f"missing required key(s) {missing}")
        defaults = cls()

        def number(key: str) -> float:
            try:
                value = float(data[key])
            except (TypeError, ValueError):
                raise InstrumentFileError(
                    source, f"{key} must be a number, not {data[key]!r}"
                ) from None
            if not math.isfinite(value) or value <= 0:
                raise InstrumentFileError(source, f"{key} must be positive, not {data[key]!r}")
            return value

        def integers(key: str, default: tuple[int, ...]) -> tuple[int, ...]:
            values = data.get(key, default)
            if not isinstance(values, list | tuple) or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in values
            ):
                raise InstrumentFileError(
                    source, f"{key} must be a list of integers, not {values!r}"
                )
            return tuple(values)

        fragmentation = str(data["fragmentation"])
        if fragmentation not in FRAGMENTATIONS:
            raise InstrumentFileError(
                source,
                f"fragmentation must be one of {list(FRAGMENTATIONS)} (the model reads b and y "
                f"ions), not {fragmentation!r}",
            )
        isotopes = integers("isotope_errors", defaults.isotope_errors)
        if len(isotopes) != 2 or isotopes[0] > isotopes[1]:
            raise InstrumentFileError(
                source, f"isotope_errors must be [lowest, highest], not {list(isotopes)}"
            )
        charges = integers("charges", defaults.charges)
        if not charges or min(charges) < 1 or len(set(charges)) != len(charges):
            raise InstrumentFileError(
                source, f"charges must list distinct positive charges, not {list(charges)}"
            )
        weights = data.get("charge_weights")
        if weights is not None:
            try:
                weights = tuple(float(w) for w in weights)
            except (TypeError, ValueError):
                raise InstrumentFileError(
                    source, f"charge_weights must be a list of numbers, not {weights!r}"
                ) from None
            if len(weights) != len(charges) or min(weights) <= 0:
                raise InstrumentFileError(
                    source,
                    f"charge_weights needs one positive weight per charge ({len(charges)} "
                    f"charges, {len(weights)} weights)",
                )
        policy = str(data.get("missing_charge", defaults.missing_charge))
        if policy not in MISSING_CHARGE_POLICIES:
            raise InstrumentFileError(
                source, f"missing_charge must be one of {MISSING_CHARGE_POLICIES}, not {policy!r}"
            )
        noise_model = data.get("noise_model")
        peptide_mix = data.get("peptide_mix")
        decoder = data.get("decoder")
        if decoder is not None and decoder not in DECODERS:
            raise InstrumentFileError(
                source, f"decoder must be one of {list(DECODERS)}, not {decoder!r}"
            )
        edges = data.get("graph_edge_residues", defaults.graph_edge_residues)
        if not isinstance(edges, int) or isinstance(edges, bool) or not 1 <= edges <= 3:
            raise InstrumentFileError(
                source, f"graph_edge_residues must be 1, 2 or 3, not {edges!r}"
            )
        window_peaks = data.get("graph_window_peaks", defaults.graph_window_peaks)
        if not isinstance(window_peaks, int) or isinstance(window_peaks, bool) or window_peaks < 0:
            raise InstrumentFileError(
                source, f"graph_window_peaks must be a whole number >= 0, not {window_peaks!r}"
            )
        fixed = data.get("fixed_modifications", list(defaults.fixed_modifications))
        if not isinstance(fixed, list | tuple) or not all(isinstance(f, str) for f in fixed):
            raise InstrumentFileError(
                source, f"fixed_modifications must be a list of Name@Residues, not {fixed!r}"
            )
        for spec in fixed:
            try:
                modification_spec(spec)
            except InputError as error:
                raise InstrumentFileError(source, f"fixed_modifications: {error}") from None
        return cls(
            fragmentation=fragmentation,
            ms2pip_model=str(data["ms2pip_model"]),
            fragment_tolerance_da=number("fragment_tolerance_da"),
            precursor_tolerance_ppm=number("precursor_tolerance_ppm"),
            isotope_errors=(isotopes[0], isotopes[1]),
            charges=charges,
            charge_weights=weights,
            missing_charge=policy,
            noise_model=None if noise_model in (None, "") else str(noise_model),
            peptide_mix=None if peptide_mix in (None, "") else str(peptide_mix),
            decoder=decoder,
            graph_edge_residues=edges,
            graph_window_peaks=window_peaks,
            fixed_modifications=tuple(fixed),
            description=str(data.get("description", "")),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain types (lists, not tuples), for JSON, YAML and checkpoints."""
        return {
            "description": self.description,
            "fragmentation": self.fragmentation,
            "ms2pip_model": self.ms2pip_model,
            "fragment_tolerance_da": self.fragment_tolerance_da,
            "precursor_tolerance_ppm": self.precursor_tolerance_ppm,
            "isotope_errors": list(self.isotope_errors),
            "charges": list(self.charges),
            "charge_weights": None if self.charge_weights is None else list(self.charge_weights),
            "missing_charge": self.missing_charge,
            "noise_model": self.noise_model,
            "peptide_mix": self.peptide_mix,
            "decoder": self.decoder,
            "graph_edge_residues": self.graph_edge_residues,
            "graph_window_peaks": self.graph_window_peaks,
            "fixed_modifications": list(self.fixed_modifications),
        }


def load_instrument(path: str | Path) -> InstrumentSettings:
    """Read and check an instrument YAML file.

    Parameters
    ----------
    path : path
        ``config/instruments/<name>.yaml``.

    Returns
    -------
    InstrumentSettings

    Raises
    ------
    InstrumentFileError
        Naming the file and the offending key.
    """
    path = Path(path)
    try:
        with path.open(encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except OSError as error:
        raise InstrumentFileError(path, f"cannot read the instrument file ({error})") from error
    except yaml.YAMLError as error:
        raise InstrumentFileError(path, f"not valid YAML ({error})") from error
    return InstrumentSettings.from_mapping(data if data is not None else {}, path)
