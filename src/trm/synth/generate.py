"""The synthetic data set of one instrument: FASTA -> peptides -> MS2PIP spectra -> shards.

:func:`synthesize` computes (a generator of spectrum tables, one per batch, so memory
is bounded by the batch size); :func:`write_synthetic_dataset` is the I/O edge that
writes them as parquet shards plus a manifest::

    <out>/train/shard-00000.parquet, shard-00001.parquet, ...
    <out>/validation/shard-00000.parquet
    <out>/test/shard-00000.parquet
    <out>/manifest.json

Determinism: every random draw (which peptides, in which order, modification sites,
charges) comes from generators seeded by ``seed`` and the split name and is made one
spectrum at a time in a fixed order, independent of batch size and threads; ms2pip's
features and XGBoost predictions are deterministic. The same inputs and seed therefore
give byte-identical shards.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from trm.synth.mix import PeptideMix, plan_spectra
from trm.synth.ms2pip_models import Ms2pipPredictor, model_definition, sha1_of_file
from trm.synth.peptides import (
    SPLITS,
    DigestionSettings,
    PeptidoformSampler,
    SyntheticInputError,
    digest_fasta,
    split_peptides,
)
from trm.synth.spectra import MS2PIP_MAX_PEPTIDE_LENGTH, Peptidoform, predict_spectra

log = logging.getLogger(__name__)

#: Version of the manifest layout, raised when its fields change meaning.
MANIFEST_VERSION = 2

MANIFEST_FILE = "manifest.json"


@dataclass(frozen=True)
class SyntheticSettings:
    """Everything that determines a synthetic data set.

    Attributes
    ----------
    model : str
        ms2pip model name (``HCD2019-distilled`` ships offline; official ones must have
        been fetched into ``model_dir``).
    model_dir : str
        Directory of the ms2pip model files and ``models.json``.
    digestion : DigestionSettings
    sampler : PeptidoformSampler
        Modifications and charge distribution.
    split_fractions : mapping of str to float
        Expected fraction of peptides per split (by peptide, never by spectrum).
    n_spectra : int or None
        Spectra over all splits, shared out by ``split_fractions``; a split with fewer
        peptides than its share repeats peptides (with fresh modifications and charge).
        None: one spectrum per peptide.
    seed : int
    batch_size : int
        Peptidoforms per ms2pip call; bounds memory.
    shard_size : int
        Spectra per parquet shard.
    threads : int or None
        Threads for ms2pip's features and XGBoost (None: all cores).
    run : str
        Value of the ``run`` column.
    mix : PeptideMix or None
        Length, charge and missed cleavages of the spectra, as identified spectra have
        them (:mod:`trm.synth.mix`; ``n_spectra`` must be given); None: every peptide of
        the pool equally often, the sampler's charges.
    mix_share : float
        Share of each split's spectra drawn from ``mix``; the others are drawn as without
        a mix (every peptide of the pool equally often, the sampler's charges), which keeps
        long peptides and high charges in a set whose mix has few of them.
    """

    model: str
    model_dir: str
    digestion: DigestionSettings = field(default_factory=DigestionSettings)
    sampler: PeptidoformSampler = field(default_factory=PeptidoformSampler)
    split_fractions: Mapping[str, float] = field(
        default_factory=lambda: {"train": 0.9, "validation": 0.05, "test": 0.05}
    )
    n_spectra: int | None = None
    seed: int = 0
    batch_size: int = 5000
    shard_size: int = 100_000
    threads: int | None = None
    run: str = "synthetic"
    mix: PeptideMix | None = None
    mix_share: float = 1.0

    def __post_init__(self) -> None:
        if self.digestion.max_length > MS2PIP_MAX_PEPTIDE_LENGTH:
            # such peptides could never be predicted: refuse before digesting
            raise SyntheticInputError(
                f"max_length {self.digestion.max_length} exceeds the {MS2PIP_MAX_PEPTIDE_LENGTH}"
                " residues ms2pip predicts"
            )
        unknown = set(self.split_fractions) - set(SPLITS)
        if unknown:
            raise SyntheticInputError(f"unknown split(s) {sorted(unknown)}; use {list(SPLITS)}")
        for name, value in (("batch_size", self.batch_size), ("shard_size", self.shard_size)):
            if value < 1:
                raise SyntheticInputError(f"{name} must be >= 1")
        if self.n_spectra is not None and self.n_spectra < 1:
            raise SyntheticInputError("n_spectra must be >= 1")
        if self.seed < 0:
            raise SyntheticInputError("seed must be >= 0")
        if self.mix is not None and self.n_spectra is None:
            raise SyntheticInputError("a peptide mix needs the number of spectra (n_spectra)")
        if self.mix is None and self.mix_share != 1.0:
            raise SyntheticInputError("mix_share needs a peptide mix")
        if not 0.0 < self.mix_share <= 1.0:
            raise SyntheticInputError(f"mix_share must be in (0, 1], not {self.mix_share}")


@dataclass
class SplitPlan:
    """Which peptide each spectrum of a split comes from, in output order."""

    name: str
    peptides: list[str]
    order: np.ndarray  # int64 indices into ``peptides``, one per spectrum
    # int64 precursor charge of each spectrum drawn from a mix; 0 (or None for all): the
    # sampler's charge
    charges: np.ndarray | None = None


@dataclass
class SynthesisReport:
    """What :func:`synthesize` did; filled while its generator runs."""

    n_proteins: int = 0
    n_unique_peptides: int = 0
    peptides: dict[str, int] = field(default_factory=dict)
    planned_spectra: dict[str, int] = field(default_factory=dict)
    spectra: dict[str, int] = field(default_factory=dict)
    charges: dict[str, dict[int, int]] = field(default_factory=dict)
    skipped_peptides: dict[str, int] = field(default_factory=dict)
    skipped_spectra: Counter = field(default_factory=Counter)


def _split_seed(seed: int, split: str) -> list[int]:
    # a separate stream per split: changing one split's size never changes another's
    return [seed, SPLITS.index(split)]


def plan_splits(peptides: list[str], settings: SyntheticSettings) -> dict[str, SplitPlan]:
    """Assign peptides to splits and choose the peptide of every spectrum.

    Parameters
    ----------
    peptides : list of str
        Unique peptides (I/L-aware), e.g. :attr:`DigestionResult.peptides`.
    settings : SyntheticSettings

    Returns
    -------
    dict
        Split name -> :class:`SplitPlan`, only for splits with a positive fraction.
    """
    fractions = {k: v for k, v in settings.split_fractions.items() if v > 0}
    by_split = split_peptides(peptides, fractions, settings.seed)
    total_fraction = sum(fractions.values())
    plans = {}
    for name in SPLITS:
        if name not in by_split:
            continue
        pool = by_split[name]
        if not pool:
            raise SyntheticInputError(
                f"split {name!r} received no peptide; give it a larger fraction or a "
                f"larger FASTA ({len(peptides)} peptides in all)"
            )
        if settings.n_spectra is None:
            wanted = len(pool)
        else:
            wanted = max(1, round(settings.n_spectra * fractions[name] / total_fraction))
        rng = np.random.default_rng(_split_seed(settings.seed, name))
        if settings.mix is None:
            plans[name] = SplitPlan(name, pool, _every_peptide(len(pool), wanted, rng))
            continue
        from_mix = round(wanted * settings.mix_share)
        order, charges = plan_spectra(pool, from_mix, settings.mix, rng)
        if from_mix < wanted:
            order = np.concatenate([order, _every_peptide(len(pool), wanted - from_mix, rng)])
            charges = np.concatenate([charges, np.zeros(wanted - from_mix, dtype=np.int64)])
            shuffle = rng.permutation(wanted)
            order, charges = order[shuffle], charges[shuffle]
        plans[name] = SplitPlan(name, pool, order, charges)
    return plans


def _every_peptide(pool_size: int, wanted: int, rng: np.random.Generator) -> np.ndarray:
    """``wanted`` indices into a pool: whole permutations first, then a partial one, so
    that each peptide appears floor(wanted / pool) or one more times, in shuffled order."""
    rounds = [rng.permutation(pool_size) for _ in range(wanted // pool_size)]
    rounds.append(rng.choice(pool_size, size=wanted % pool_size, replace=False))
    return np.concatenate(rounds).astype(np.int64)


def synthesize(
    fasta: str | Path | Sequence[str | Path],
    settings: SyntheticSettings,
    report: SynthesisReport | None = None,
    exclude_fasta: Sequence[str | Path] = (),
) -> Iterator[tuple[str, pl.DataFrame]]:
    """Synthetic spectra of a FASTA, one batch table at a time.

    Parameters
    ----------
    fasta : path or sequence of paths
        Protein FASTA file(s) (plain or gzip); several proteomes are pooled.
    settings : SyntheticSettings
    report : SynthesisReport, optional
        Filled with counts as batches are produced.
    exclude_fasta : sequence of paths
        Proteomes whose peptides are left out (a held-out set that shares no peptide
        with the training proteomes).

    Yields
    ------
    split : str
    table : polars.DataFrame
        :data:`trm.synth.spectra.SYNTHETIC_SCHEMA` rows of one batch, in output order.

    Raises
    ------
    Ms2pipModelError
        Unknown model or missing model files (checked before digesting).
    SyntheticInputError
        Empty FASTA, no usable peptide, a split without peptides.
    """
    report = report if report is not None else SynthesisReport()
    predictor = Ms2pipPredictor(settings.model, settings.model_dir, settings.threads)
    digestion = digest_fasta(fasta, settings.digestion, exclude=exclude_fasta)
    report.n_proteins = digestion.n_proteins
    report.n_unique_peptides = len(digestion.peptides)
    report.skipped_peptides = dict(sorted(digestion.skipped.items()))
    plans = plan_splits(digestion.peptides, settings)
    for name, plan in plans.items():
        report.peptides[name] = len(plan.peptides)
        report.planned_spectra[name] = len(plan.order)
    for name, plan in plans.items():
        rng = np.random.default_rng(_split_seed(settings.seed, name) + [1])
        charges: Counter = Counter()
        produced = 0
        for start in range(0, len(plan.order), settings.batch_size):
            indices = plan.order[start : start + settings.batch_size]
            peptidoforms = []
            for position, index in enumerate(indices, start=start):
                tokens, charge = settings.sampler.sample(plan.peptides[index], rng)
                if plan.charges is not None and plan.charges[position] > 0:
                    charge = int(plan.charges[position])
                peptidoforms.append(Peptidoform(tuple(tokens), charge))
            numbers = range(start, start + len(indices))
            table, skipped = predict_spectra(
                peptidoforms,
                spectrum_ids=[f"{name}-{number}" for number in numbers],
                scans=list(numbers),
                run=settings.run,
                predictor=predictor,
            )
            report.skipped_spectra.update(skipped)
            charges.update(table["charge"].to_list())
            produced += table.height
            yield name, table
        report.spectra[name] = produced
        report.charges[name] = {int(z): n for z, n in sorted(charges.items())}
        log.info("%s: %d spectra from %d peptides", name, produced, len(plan.peptides))


def _settings_record(settings: SyntheticSettings) -> dict:
    sampler = settings.sampler
    return {
        "model": settings.model,
        "digestion": asdict(settings.digestion),
        "fixed_modifications": list(sampler.fixed_modifications),
        "variable_modifications": list(sampler.variable_modifications),
        "variable_probability": sampler.variable_probability,
        "max_variable_mods": sampler.max_variable_mods,
        "charges": list(sampler.charges),
        "charge_weights": None if sampler.charge_weights is None else list(sampler.charge_weights),
        "split_fractions": dict(settings.split_fractions),
        "n_spectra": settings.n_spectra,
        "seed": settings.seed,
        "shard_size": settings.shard_size,
        "run": settings.run,
        "mix": None if settings.mix is None else settings.mix.to_dict(),
        "mix_share": None if settings.mix is None else settings.mix_share,
    }


def write_synthetic_dataset(
    fasta: str | Path | Sequence[str | Path],
    out_dir: str | Path,
    settings: SyntheticSettings,
    exclude_fasta: Sequence[str | Path] = (),
) -> dict:
    """Write the sharded data set and its manifest; returns the manifest.

    Shards hold ``shard_size`` spectra (the last one of a split fewer); at most one
    shard plus one batch is in memory. Old ``shard-*.parquet`` files of a split are
    removed first, so a rerun never leaves stale shards behind.
    """
    import ms2pip

    out_dir = Path(out_dir)
    report = SynthesisReport()
    shards: dict[str, list[str]] = {}
    pending: dict[str, list[pl.DataFrame]] = {}
    started = time.perf_counter()

    def flush(split: str, final: bool) -> None:
        tables = pending[split]
        rows = sum(t.height for t in tables)
        while rows >= settings.shard_size or (final and rows > 0):
            combined = pl.concat(tables, rechunk=True)
            shard, rest = combined.head(settings.shard_size), combined.slice(settings.shard_size)
            path = out_dir / split / f"shard-{len(shards[split]):05d}.parquet"
            shard.write_parquet(path, compression="zstd", statistics=True)
            shards[split].append(path.name)
            tables = [rest] if rest.height else []
            rows = rest.height
        pending[split] = tables

    for split, table in synthesize(fasta, settings, report, exclude_fasta):
        if split not in pending:
            (out_dir / split).mkdir(parents=True, exist_ok=True)
            for stale in (out_dir / split).glob("shard-*.parquet"):
                stale.unlink()
            pending[split], shards[split] = [], []
            for previous in [s for s in pending if s != split]:
                flush(previous, final=True)
        pending[split].append(table)
        flush(split, final=False)
    for split in pending:
        flush(split, final=True)
    elapsed = time.perf_counter() - started

    fastas = [Path(fasta)] if isinstance(fasta, str | Path) else [Path(p) for p in fasta]
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "fasta": [{"name": path.name, "sha1": sha1_of_file(path)} for path in fastas],
        "excluded_fasta": [
            {"name": Path(path).name, "sha1": sha1_of_file(path)} for path in exclude_fasta
        ],
        "proteins": report.n_proteins,
        "ms2pip_version": ms2pip.__version__,
        "ms2pip_model": model_definition(settings.model, settings.model_dir),
        "settings": _settings_record(settings),
        "unique_peptides": report.n_unique_peptides,
        "skipped_peptides": report.skipped_peptides,
        "skipped_spectra": dict(sorted(report.skipped_spectra.items())),
        "splits": {
            split: {
                "peptides": report.peptides[split],
                "planned_spectra": report.planned_spectra[split],
                "spectra": report.spectra.get(split, 0),
                "charges": {str(z): n for z, n in report.charges.get(split, {}).items()},
                "shards": shards.get(split, []),
            }
            for split in report.peptides
        },
    }
    (out_dir / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    total = sum(report.spectra.values())
    log.info(
        "wrote %d synthetic spectra to %s in %.1f s (%.0f spectra/s)",
        total,
        out_dir,
        elapsed,
        total / elapsed if elapsed > 0 else float("nan"),
    )
    return manifest
