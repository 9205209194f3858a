"""Residue vocabulary, masses and fragment ions.

Every mass here is derived from pyteomics' elemental tables: residue masses from
``pyteomics.mass.std_aa_comp`` and modification deltas from their Unimod chemical
compositions. Nothing is typed in as a decimal number, so the whole project shares one
mass table.

Peptides travel through the project as ProForma strings (``PEPTC[Carbamidomethyl]IDEK/2``)
and, inside the model, as lists of *tokens*. A token is one residue with its modification
(``M[Oxidation]``) or one N-terminal modification (``[Acetyl]-``), the convention Casanovo
uses, so N-terminal modifications are predicted like residues.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache, cached_property

import numpy as np
from pyteomics import mass as _mass

from trm.errors import InputError

PROTON_MASS: float = _mass.nist_mass["H+"][0][0]
WATER_MASS: float = _mass.calculate_mass(formula="H2O")
#: Neutral losses and the b -> a ion difference.
NH3_MASS: float = _mass.calculate_mass(formula="NH3")
CO_MASS: float = _mass.calculate_mass(formula="CO")
#: Mass difference between the 13C and 12C isotopes, for isotope-error tolerant matching.
C13_SPACING: float = _mass.nist_mass["C"][13][0] - _mass.nist_mass["C"][12][0]

STANDARD_RESIDUES: tuple[str, ...] = tuple("GASPVTCLINDQKEMHFRYW")

#: Background frequency of each standard residue in proteins: its share of all residues of
#: the three training proteomes in ``resources/fasta`` (S. cerevisiae, C. thermophilum,
#: T. brucei; 11,219,807 residues; UniProt, CC BY 4.0), to four decimals
#: (``tests/unit/test_chem.py`` recomputes it). The prior of a peptide's residues: two
#: residues that weigh what one does (G+G = N, A+G = Q) are rarer than the one.
RESIDUE_FREQUENCY: dict[str, float] = {
    "G": 0.0626, "A": 0.0778, "S": 0.0826, "P": 0.0544, "V": 0.0653, "T": 0.0582,
    "C": 0.0159, "L": 0.0921, "I": 0.0485, "N": 0.0425, "D": 0.0542, "Q": 0.0399,
    "K": 0.0547, "E": 0.0677, "M": 0.0217, "H": 0.0234, "F": 0.0377, "R": 0.0616,
    "Y": 0.0276, "W": 0.0118,
}  # fmt: skip


def _formula_mass(formula: str) -> float:
    return _mass.calculate_mass(composition=_mass.Composition(formula=formula))


@dataclass(frozen=True)
class ModificationDef:
    """A modification the model vocabulary knows.

    Attributes
    ----------
    name : str
        Unimod PSI-MS name, as written in ProForma output.
    formula : str
        Unimod delta composition (pyteomics formula syntax; negative counts allowed).
    targets : tuple of str
        Residues it may sit on; ``"N-term"`` for a peptide N-terminal modification.
    """

    name: str
    formula: str
    targets: tuple[str, ...]

    @cached_property
    def mass(self) -> float:
        """Monoisotopic mass delta in Da."""
        return _formula_mass(self.formula)


#: Modifications of the default vocabulary (those of Casanovo's, after MassIVE-KB).
#: Gln->pyro-Glu has the composition of Ammonia-loss, so an N-terminal pyro-Glu on Q is
#: represented by the ``[Ammonia-loss]-`` token.
KNOWN_MODIFICATIONS: tuple[ModificationDef, ...] = (
    ModificationDef("Carbamidomethyl", "H3C2NO", ("C",)),
    ModificationDef("Oxidation", "O", ("M",)),
    ModificationDef("Deamidated", "H-1N-1O", ("N", "Q")),
    ModificationDef("Acetyl", "H2C2O", ("N-term",)),
    ModificationDef("Carbamyl", "HCNO", ("N-term",)),
    ModificationDef("Ammonia-loss", "H-3N-1", ("N-term",)),
    ModificationDef("Carbamyl+Ammonia-loss", "C1H-2O1", ("N-term",)),
)

_MOD_BY_NAME = {m.name: m for m in KNOWN_MODIFICATIONS}


def modification(name: str) -> ModificationDef:
    """The vocabulary's modification of this Unimod name (KeyError for another)."""
    return _MOD_BY_NAME[name]


@cache
def unimod_accession(name: str) -> str | None:
    """Unimod accession (``UNIMOD:35``) of a modification of :data:`KNOWN_MODIFICATIONS`,
    from the Unimod table OpenMS ships; None for a combination (``Carbamyl+Ammonia-loss``),
    which has no entry of its own."""
    definition = _MOD_BY_NAME[name]
    if "+" in name:
        return None
    import pyopenms

    terminal = definition.targets == ("N-term",)
    entry = pyopenms.ModificationsDB().getModification(
        name,
        "" if terminal else definition.targets[0],
        pyopenms.ResidueModification.TermSpecificity.N_TERM
        if terminal
        else pyopenms.ResidueModification.TermSpecificity.ANYWHERE,
    )
    accession = entry.getUniModAccession()  # "UniMod:35"
    if not accession or abs(entry.getDiffMonoMass() - definition.mass) > 1e-4:
        raise ValueError(f"OpenMS's Unimod table disagrees on {name}: {accession}")
    return "UNIMOD:" + accession.split(":", 1)[1]


def modification_spec(spec: str) -> tuple[ModificationDef, tuple[str, ...]]:
    """Parse ``Name@Residues`` (``Carbamidomethyl@C``, ``Oxidation@M``,
    ``Acetyl@N-term``): the vocabulary's modification and the sites it sits on (all its
    targets without ``@``).

    Raises
    ------
    InputError
        For a modification outside :data:`KNOWN_MODIFICATIONS` or a site it cannot sit on.
    """
    name, _, targets = spec.partition("@")
    if name not in _MOD_BY_NAME:
        raise InputError(
            f"modification {name!r} is not in the model vocabulary; known: {sorted(_MOD_BY_NAME)}"
        )
    definition = _MOD_BY_NAME[name]
    if not targets:
        return definition, definition.targets
    sites = ("N-term",) if targets == "N-term" else tuple(targets)
    for site in sites:
        if site not in definition.targets:
            raise InputError(f"{name} cannot sit on {site!r} (allowed: {list(definition.targets)})")
    return definition, sites


def vocabulary_tokens(fixed_modifications: Sequence[str]) -> tuple[str, ...]:
    """The tokens of :data:`DEFAULT_TOKENS` for samples prepared with these fixed
    modifications (``Name@Residues``): a residue a fixed modification sits on appears only
    modified, and a modified residue token of :data:`DEFAULT_TOKENS` whose modification is
    not among them (``C[Carbamidomethyl]`` without alkylation) becomes the plain residue.
    Variable modifications stay as they are."""
    fixed: dict[str, str] = {}
    for spec in fixed_modifications:
        definition, sites = modification_spec(spec)
        for site in sites:
            if site != "N-term":
                fixed[site] = _residue_token(site, definition)
    default_fixed = {"C": "C[Carbamidomethyl]"}  # the default vocabulary's one fixed token
    out = []
    for token in DEFAULT_TOKENS:
        residue = token[0] if not token.endswith("-") else None
        if residue in fixed and token in (residue, default_fixed.get(residue)):
            token = fixed[residue]
        elif residue in default_fixed and token == default_fixed[residue]:
            token = residue
        if token not in out:
            out.append(token)
    return tuple(out)


#: Tolerance (Da) when a modification given by mass or by another name is matched to one
#: of the vocabulary by its mass.
MODIFICATION_MATCH_TOLERANCE_DA = 0.01


class UnsupportedPeptideError(InputError):
    """A peptide holds a residue or modification outside the model vocabulary."""


def _residue_token(residue: str, modification: ModificationDef | None) -> str:
    return residue if modification is None else f"{residue}[{modification.name}]"


def _nterm_token(modification: ModificationDef) -> str:
    return f"[{modification.name}]-"


@cache
def token_mass(token: str) -> float:
    """Monoisotopic mass (Da) of a residue token (``M[Oxidation]``) or of an N-terminal
    modification token (``[Acetyl]-``): the project's one mass table.

    Raises
    ------
    KeyError
        For a token that is no residue or modification of :data:`KNOWN_MODIFICATIONS`.
    """
    nterm = re.fullmatch(r"\[(.+)\]-", token)
    if nterm:
        return _MOD_BY_NAME[nterm.group(1)].mass
    residue_mass = _mass.std_aa_mass[token[0]]
    modded = re.fullmatch(r"([A-Z])\[(.+)\]", token)
    if modded:
        return residue_mass + _MOD_BY_NAME[modded.group(2)].mass
    return residue_mass


DEFAULT_TOKENS: tuple[str, ...] = (
    "G", "A", "S", "P", "V", "T", "C[Carbamidomethyl]", "L", "I", "N", "D", "Q", "K",
    "E", "M", "H", "F", "R", "Y", "W", "M[Oxidation]", "N[Deamidated]", "Q[Deamidated]",
    "[Acetyl]-", "[Carbamyl]-", "[Ammonia-loss]-", "[Carbamyl+Ammonia-loss]-",
)  # fmt: skip


class Vocabulary:
    """Token <-> index mapping with masses.

    Index 0 is the end/pad class: every position after the last residue of a peptide
    carries it, so a fixed-length, non-autoregressive answer encodes any length.

    Parameters
    ----------
    tokens : sequence of str
        Residue and N-terminal tokens, e.g. :data:`DEFAULT_TOKENS`.
    """

    PAD = "<end>"
    pad_id = 0

    def __init__(self, tokens: Sequence[str] = DEFAULT_TOKENS) -> None:
        for token in tokens:
            try:
                token_mass(token)
            except KeyError as error:
                raise InputError(f"token {token!r} is not a known residue/modification") from error
        if len(set(tokens)) != len(tokens):
            raise InputError("vocabulary tokens must be unique")
        self.tokens: tuple[str, ...] = (self.PAD, *tokens)
        self.index: dict[str, int] = {t: i for i, t in enumerate(self.tokens)}
        #: Array of shape (n_tokens,): token masses in Da (0 for the end/pad class).
        self.masses: np.ndarray = np.array(
            [0.0] + [token_mass(t) for t in tokens], dtype=np.float64
        )
        self.is_nterm: np.ndarray = np.array(
            [False] + [t.endswith("-") for t in tokens], dtype=bool
        )

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, tokens: Sequence[str], max_length: int) -> np.ndarray:
        """Token ids padded with the end class: array of shape (max_length,)."""
        if len(tokens) > max_length:
            raise UnsupportedPeptideError(
                f"peptide of {len(tokens)} tokens exceeds the model's maximum of {max_length}"
            )
        ids = np.zeros(max_length, dtype=np.int64)
        for position, token in enumerate(tokens):
            if token not in self.index:
                raise UnsupportedPeptideError(f"token {token!r} is not in the vocabulary")
            ids[position] = self.index[token]
        return ids

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens up to the first end/pad class."""
        tokens = []
        for index in ids:
            if int(index) == self.pad_id:
                break
            tokens.append(self.tokens[int(index)])
        return tokens


def _match_modification(
    mod: object, residue: str | None, tolerance: float = MODIFICATION_MATCH_TOLERANCE_DA
) -> ModificationDef:
    target = residue if residue is not None else "N-term"
    try:
        delta = float(mod.mass)  # type: ignore[attr-defined]
    except Exception as error:  # noqa: BLE001 - pyteomics raises several kinds
        raise UnsupportedPeptideError(f"cannot resolve modification {mod!r}") from error
    for definition in KNOWN_MODIFICATIONS:
        if target in definition.targets and abs(definition.mass - delta) <= tolerance:
            return definition
    raise UnsupportedPeptideError(
        f"modification {mod!r} ({delta:+.4f} Da) on {target} is not in the vocabulary"
    )


def parse_peptidoform(proforma: str) -> tuple[list[str], int | None]:
    """Split a ProForma peptidoform into vocabulary tokens.

    Modifications are matched by target residue and mass, so ``M[Oxidation]``,
    ``M[UNIMOD:35]`` and ``M[+15.995]`` give the same token. A pyro-Glu written on the
    first residue becomes the ``[Ammonia-loss]-`` N-terminal token.

    Parameters
    ----------
    proforma : str
        A ProForma 2.0 string, optionally with ``/charge``.

    Returns
    -------
    tokens : list of str
    charge : int or None

    Raises
    ------
    UnsupportedPeptideError
        For a residue or modification outside :data:`KNOWN_MODIFICATIONS`, labile or
        unlocalised modifications, or a C-terminal modification.
    """
    fast = _PLAIN_PEPTIDOFORM().fullmatch(proforma)
    if fast is not None:
        # Written as trm writes peptides (tokens_to_proforma): no need for the full parser,
        # which costs about half a millisecond per peptide.
        spellings = _TOKEN_SPELLINGS()
        nterm, residues, charge_text = fast.groups()
        tokens = [spellings[nterm]] if nterm else []
        tokens += [spellings[t] for t in _RESIDUE_SPELLING().findall(residues)]
        return tokens, int(charge_text) if charge_text else None

    from psm_utils import Peptidoform  # imported here: psm_utils is slow to import

    try:
        peptidoform = Peptidoform(proforma)
    except Exception as error:  # noqa: BLE001 - psm_utils raises several kinds
        raise UnsupportedPeptideError(f"not a valid ProForma peptide: {proforma!r}") from error
    props = peptidoform.properties
    for key in ("c_term", "unlocalized_modifications", "labile_modifications", "intervals"):
        if props.get(key):
            raise UnsupportedPeptideError(f"{key} modifications are not supported: {proforma!r}")
    tokens: list[str] = []
    for mod in props.get("n_term") or []:
        tokens.append(_nterm_token(_match_modification(mod, None)))
    for position, (residue, mods) in enumerate(peptidoform.parsed_sequence):
        if residue not in STANDARD_RESIDUES:
            raise UnsupportedPeptideError(f"residue {residue!r} is not supported: {proforma!r}")
        if not mods:
            tokens.append(residue)
            continue
        if len(mods) > 1:
            raise UnsupportedPeptideError(f"several modifications on one residue: {proforma!r}")
        delta = float(mods[0].mass)
        ammonia_loss = _MOD_BY_NAME["Ammonia-loss"]
        if position == 0 and residue == "Q" and abs(delta - ammonia_loss.mass) < 0.01:
            tokens.extend([_nterm_token(ammonia_loss), residue])
            continue
        tokens.append(_residue_token(residue, _match_modification(mods[0], residue)))
    charge = props["charge_state"].charge if props.get("charge_state") else None
    return tokens, charge


@cache
def _TOKEN_SPELLINGS() -> dict[str, str]:  # noqa: N802 - a cached constant
    """Every token's ProForma spelling (as :func:`tokens_to_proforma` writes it) -> the
    token."""
    spellings = {residue: residue for residue in STANDARD_RESIDUES}
    for definition in KNOWN_MODIFICATIONS:
        for target in definition.targets:
            token = (
                _nterm_token(definition)
                if target == "N-term"
                else _residue_token(target, definition)
            )
            spellings[_proforma_token(token)] = token
    return spellings


def _alternatives(spellings: Iterable[str]) -> str:
    return "|".join(re.escape(s) for s in sorted(spellings, key=len, reverse=True))


@cache
def _RESIDUE_SPELLING() -> re.Pattern[str]:  # noqa: N802 - a cached constant
    """One residue token, as ProForma."""
    return re.compile(_alternatives(s for s in _TOKEN_SPELLINGS() if not s.endswith("-")))


@cache
def _PLAIN_PEPTIDOFORM() -> re.Pattern[str]:  # noqa: N802 - a cached constant
    """A peptidoform made of vocabulary tokens only: optional N-terminal token,
    residue tokens, optional ``/charge``."""
    nterm = _alternatives(s for s in _TOKEN_SPELLINGS() if s.endswith("-"))
    residue = _RESIDUE_SPELLING().pattern
    return re.compile(f"({nterm})?((?:{residue})+)(?:/([0-9]+))?")


def _proforma_token(token: str) -> str:
    """A token as ProForma: a modification whose name joins two Unimod names (not a
    valid ProForma name) is written as its mass delta, which parses back to the token."""
    nterm = re.fullmatch(r"\[(.+)\]-", token)
    if nterm and "+" in nterm.group(1):
        return f"[{_MOD_BY_NAME[nterm.group(1)].mass:+.6f}]-"
    return token


def tokens_to_proforma(tokens: Sequence[str], charge: int | None = None) -> str:
    """ProForma string of a token list, with ``/charge`` when a charge is given.

    Every result parses back to the same tokens with :func:`parse_peptidoform`.
    """
    text = "".join(_proforma_token(t) for t in tokens)
    return f"{text}/{charge}" if charge is not None else text


def peptide_mass(tokens: Sequence[str]) -> float:
    """Monoisotopic neutral mass (Da) of a tokenised peptide."""
    return float(sum(token_mass(t) for t in tokens) + WATER_MASS)


def mass_to_mz(neutral_mass: float | np.ndarray, charge: int | np.ndarray) -> np.ndarray:
    """m/z of an [M+zH]z+ ion."""
    return (np.asarray(neutral_mass) + np.asarray(charge) * PROTON_MASS) / np.asarray(charge)


def mz_to_mass(mz: float | np.ndarray, charge: int | np.ndarray) -> np.ndarray:
    """Neutral mass of an [M+zH]z+ ion of the given m/z."""
    return np.asarray(mz) * np.asarray(charge) - np.asarray(charge) * PROTON_MASS


def mass_fits_precursor(
    peptide_mass: float | np.ndarray,
    precursor_mass: float | np.ndarray,
    tolerance_ppm: float,
    isotope_errors: tuple[int, int],
) -> np.ndarray:
    """Whether a peptide mass fits a neutral precursor mass within ``tolerance_ppm`` after
    one of the isotope errors (13C spacings) in the inclusive range; broadcasts."""
    isotopes = np.arange(isotope_errors[0], isotope_errors[1] + 1)
    corrected = np.asarray(precursor_mass, dtype=np.float64)[..., None] - isotopes * C13_SPACING
    error = (np.asarray(peptide_mass, dtype=np.float64)[..., None] - corrected) / corrected
    return (np.abs(error) * 1e6 <= tolerance_ppm).any(axis=-1)


def precursor_mass_error_ppm(
    peptide_mass: np.ndarray, precursor_mass: np.ndarray, isotope_errors: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Smallest absolute ppm error over the isotope errors, and the isotope giving it;
    ``peptide_mass`` and ``precursor_mass`` broadcast. The error is the field's
    observed minus theoretical, over the observed (isotope-corrected) mass as in the
    tolerance checks (:func:`mass_fits_precursor`), so an accepted peptide's error never
    exceeds the tolerance."""
    isotopes = np.arange(isotope_errors[0], isotope_errors[1] + 1)
    corrected = np.asarray(precursor_mass)[..., None] - isotopes * C13_SPACING
    errors = (corrected - np.asarray(peptide_mass)[..., None]) / corrected * 1e6
    best = np.argmin(np.abs(errors), axis=-1)
    return np.take_along_axis(errors, best[..., None], axis=-1)[..., 0], isotopes[best]
