"""Distil MS2PIP 3.13's compiled HCD2019 model into XGBoost files that ms2pip 4 loads offline.

ms2pip 4 downloads its XGBoost model files at first use, which fails without network.
ms2pip 3.13.0 carries the HCD2019 model compiled into its C extension, so it predicts
offline. This script transfers that model into ms2pip 4's format:

1. ``sample`` (main environment): draw peptidoforms as the synthetic stage will see them
   (tryptic peptides of a FASTA, length 7-30, charge 2-4, C+57 fixed, M+16 variable) plus
   random sequences for coverage, and split them by I/L-normalised sequence into a
   training and a held-out set.
2. ``teacher`` (ms2pip 3.13 environment, numpy < 2): the raw HCD2019 output for each
   peptidoform. The compiled model returns log2(TIC-normalised intensity + 0.001) per b
   and y ion, the same space ms2pip 4's XGBoost models predict in (ms2pip 4 clips at
   log2(0.001) and undoes the transform later), so the raw output is the target, not
   the TIC-renormalised linear intensities ``SinglePrediction.predict`` returns.
3. The student, one of two ways (``--method``):

   ``transcribe`` (default, shipped): ms2pip 3.13 installs the C source of its compiled
   model; its 150 trees per ion type split on exactly the 139 features ms2pip 4
   computes (``ms2rescore_rs``; checked identical), so they are rebuilt node by node as
   XGBoost models with base score 0.5. No fitting, no approximation: agreement is
   limited by float32 summation order only.

   ``fit``: regression on the teacher's outputs. XGBoost regressors for b and y on
   ms2pip 4's features. Feature row ``j`` describes the cleavage after residue
   ``j + 1``: it holds ion b(j+1) and y(n-1-j), so y targets are reversed relative to
   the feature order, as ms2pip 4 reverses y predictions back. Kept for teachers
   whose trees are not readable; it reached a median r of about 0.94-0.95 here.
4. ``install``: copy the two files into ``--out-dir`` and record them (SHA-1, provenance)
   in its ``models.json``, which :mod:`trm.synth.ms2pip_models` registers in ms2pip 4.
5. ``evaluate`` (main environment): predict the held-out peptidoforms with
   ``ms2pip.predict_batch`` and the installed model and report the per-peptide Pearson
   correlation with the teacher, in ms2pip's log2 space and on linear intensities.

``run`` does them all. Every random draw comes from ``--seed``; XGBoost uses a fixed
seed and ``hist`` trees, so a rerun with the same inputs gives the same model.

Usage (from the repository root; ``TEACHER`` is any throwaway directory)::

    python3.11 -m venv "$TEACHER"
    "$TEACHER"/bin/pip install ms2pip==3.13.0      # builds from source, ~4 min
    .venv/bin/python workflow/scripts/distill_ms2pip.py run \\
        --fasta resources/fasta/UP000002311-S.cerevisiae.fasta.gz \\
        --teacher-python "$TEACHER"/bin/python \\
        --work-dir "$TEACHER"/work --out-dir resources/ms2pip

The ``teacher`` step imports only numpy and ms2pip 3.13, so this file also runs under
that environment's interpreter.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

log = logging.getLogger("distill_ms2pip")

#: Name the distilled model is registered under in ms2pip 4's model table.
MODEL_NAME = "HCD2019-distilled"
#: The ms2pip 3.13 model that is distilled.
TEACHER_MODEL = "HCD2019"
#: Features per ion position in ms2pip's feature vectors.
NUM_FEATURES = 139
#: Floor of ms2pip 4 predictions (log2 of its pseudo-count), applied before comparing.
LOG2_FLOOR = float(np.log2(0.001))
#: Masses written into ms2pip 3's modification definitions (Unimod monoisotopic).
TEACHER_MODIFICATIONS = {
    "Carbamidomethyl": ("57.021464", "C"),
    "Oxidation": ("15.994915", "M"),
}
AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"


# ---------------------------------------------------------------------------------------
# 1. sample (main environment)
# ---------------------------------------------------------------------------------------
def _random_peptides(rng: np.random.Generator, count: int, min_len: int, max_len: int):
    """Random sequences; half end in K/R like tryptic peptides, the rest anywhere."""
    # residue frequencies of a typical proteome would over-fit the teacher's common
    # cases; uniform letters cover the feature space the FASTA peptides rarely reach
    letters = np.array(list(AMINO_ACIDS))
    lengths = rng.integers(min_len, max_len + 1, size=count)
    out = []
    for length in lengths:
        residues = letters[rng.integers(0, len(letters), size=length)]
        if rng.random() < 0.5:
            residues[-1] = "K" if rng.random() < 0.5 else "R"
        out.append("".join(residues))
    return out


def sample(args: argparse.Namespace) -> None:
    """Write ``peptides.tsv``: sequence, ms2pip 3 modification string, charge, split."""
    from trm.synth.peptides import (
        DigestionSettings,
        PeptidoformSampler,
        digest_fasta,
        split_peptides,
    )

    rng = np.random.default_rng(args.seed)
    digestion = digest_fasta(args.fasta, DigestionSettings(max_length=args.max_length))
    n_each = args.n_peptides // 2
    tryptic = [
        digestion.peptides[i]
        for i in np.sort(rng.choice(len(digestion.peptides), size=n_each, replace=False))
    ]
    random_seqs = _random_peptides(rng, args.n_peptides - n_each, 7, args.max_length)
    # one record per unique I/L-normalised sequence, then a hash split, so no held-out
    # sequence (nor its I/L twin) is ever trained on
    unique = sorted({s: None for s in tryptic + random_seqs})
    origin = {s: "random" for s in random_seqs} | {s: "tryptic" for s in tryptic}
    test_fraction = args.n_test / len(unique)
    splits = split_peptides(unique, {"train": 1 - test_fraction, "test": test_fraction}, args.seed)
    sampler = PeptidoformSampler(charges=(2, 3, 4))
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    with open(work / "peptides.tsv", "w") as handle:
        handle.write("sequence\tmodifications\tcharge\tsplit\torigin\tproforma\n")
        for split in ("train", "test"):
            for sequence in splits[split]:
                tokens, charge = sampler.sample(sequence, rng)
                mods = [f"{i + 1}|{tok[2:-1]}" for i, tok in enumerate(tokens) if "[" in tok]
                handle.write(
                    f"{sequence}\t{'|'.join(mods) or '-'}\t{charge}\t{split}\t"
                    f"{origin[sequence]}\t{''.join(tokens)}\n"
                )
    log.info(
        "sampled %d train and %d test peptidoforms (%d tryptic of %d, %d random)",
        len(splits["train"]),
        len(splits["test"]),
        len(tryptic),
        len(digestion.peptides),
        len(random_seqs),
    )


# ---------------------------------------------------------------------------------------
# 2. teacher (ms2pip 3.13 environment)
# ---------------------------------------------------------------------------------------
def teacher(args: argparse.Namespace) -> None:
    """Raw HCD2019 predictions of ms2pip 3.13 for every row of ``peptides.tsv``.

    Writes ``teacher.npz`` with ``b`` and ``y`` (concatenated, ions in b1.. and y1..
    order) and ``n_ions`` per peptidoform.
    """
    from ms2pip.cython_modules import ms2pip_pyx
    from ms2pip.ms2pipC import MODELS, apply_mods
    from ms2pip.peptides import AMINO_ACID_IDS
    from ms2pip.single_prediction import SinglePrediction

    # SinglePrediction initialises the C extension's residue and modification tables
    predictor = SinglePrediction(
        [f"{name},{mass},opt,{site}" for name, (mass, site) in TEACHER_MODIFICATIONS.items()]
    )
    ptm_ids = predictor.mod_info.ptm_ids
    model_id = MODELS[TEACHER_MODEL]["id"]
    work = Path(args.work_dir)
    rows = (work / "peptides.tsv").read_text().splitlines()[1:]
    b_parts, y_parts, n_ions = [], [], []
    started = time.time()
    for row in rows:
        sequence, modifications, charge = row.split("\t")[:3]
        # ms2pip 3 encodes I as L's twin the same way SinglePrediction does
        ids = [0] + [AMINO_ACID_IDS[a] for a in sequence.replace("L", "I")] + [0]
        peptide = np.array(ids, dtype=np.uint16)
        modpeptide = apply_mods(peptide, modifications, ptm_ids)
        raw = ms2pip_pyx.get_predictions(peptide, modpeptide, int(charge), model_id, "general", 30)
        b_parts.append(np.asarray(raw[0], dtype=np.float32))
        y_parts.append(np.asarray(raw[1], dtype=np.float32))
        n_ions.append(len(sequence) - 1)
    # self-test: TIC-normalising the raw output reproduces SinglePrediction's answer
    sequence, modifications, charge = rows[0].split("\t")[:3]
    _, intensity, _ = predictor.predict(sequence, modifications, int(charge), model=TEACHER_MODEL)
    raw = np.concatenate([b_parts[0], y_parts[0]]).astype(np.float64)
    linear = 2**raw - 0.001
    if not np.allclose(linear / linear.sum(), intensity, atol=1e-6):
        raise RuntimeError("raw teacher output does not match SinglePrediction.predict")
    np.savez(
        work / "teacher.npz",
        b=np.concatenate(b_parts),
        y=np.concatenate(y_parts),
        n_ions=np.asarray(n_ions, dtype=np.int32),
    )
    log.info("teacher predicted %d peptidoforms in %.0f s", len(rows), time.time() - started)


# ---------------------------------------------------------------------------------------
# 3. fit (main environment)
# ---------------------------------------------------------------------------------------
def _load_table(work: Path):
    import polars as pl

    table = pl.read_csv(work / "peptides.tsv", separator="\t")
    teacher_out = np.load(work / "teacher.npz")
    n_ions = teacher_out["n_ions"]
    if len(n_ions) != table.height:
        raise RuntimeError("teacher.npz does not match peptides.tsv; rerun `teacher`")
    return table, teacher_out, n_ions


def _mass_shift_proformas(proformas, charges):
    """ProForma strings with numeric mass shifts, as ms2pip 4 hands to ms2rescore_rs."""
    from trm.chem import KNOWN_MODIFICATIONS

    deltas = {m.name: f"[{m.mass:+.4f}]" for m in KNOWN_MODIFICATIONS}
    out = []
    for proforma, charge in zip(proformas, charges, strict=True):
        for name, delta in deltas.items():
            proforma = proforma.replace(f"[{name}]", delta)
        out.append(f"{proforma}/{charge}")
    return out


def _features(proformas, charges, chunk: int = 20_000) -> np.ndarray:
    from ms2rescore_rs import ms2pip_compute_features

    strings = _mass_shift_proformas(proformas, charges)
    parts = []
    for start in range(0, len(strings), chunk):
        vectors = ms2pip_compute_features(strings[start : start + chunk])
        parts.extend(v.reshape(-1, NUM_FEATURES) for v in vectors)
    return np.concatenate(parts)


def _reverse_per_peptide(values: np.ndarray, n_ions: np.ndarray) -> np.ndarray:
    """Reverse each peptide's slice of a concatenated per-ion array."""
    offsets = np.concatenate([[0], np.cumsum(n_ions)])
    position = np.arange(len(values)) - np.repeat(offsets[:-1], n_ions)
    index = np.repeat(offsets[1:], n_ions) - 1 - position
    return values[index]


def fit(args: argparse.Namespace) -> None:
    """Fit the b and y XGBoost models on the training peptidoforms."""
    import xgboost as xgb

    work = Path(args.work_dir)
    table, teacher_out, n_ions = _load_table(work)
    offsets = np.concatenate([[0], np.cumsum(n_ions)])
    # training peptidoforms in random order (peptides.tsv is sorted by sequence), so a
    # pilot subset and the watch set are random samples
    rng = np.random.default_rng(args.seed)
    chosen = rng.permutation(np.flatnonzero(table["split"].to_numpy() == "train"))
    if args.max_train_peptides:
        chosen = chosen[: args.max_train_peptides]
    ion_rows = np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i in chosen])
    train_ions = n_ions[chosen]
    proformas, charges = table["proforma"].to_list(), table["charge"].to_list()
    features = _features([proformas[i] for i in chosen], [charges[i] for i in chosen])
    if len(features) != len(ion_rows):
        raise RuntimeError("feature rows do not match teacher ions")
    # ms2pip 4 clips predictions at log2(0.001), so below it the teacher's exact value
    # never reaches a spectrum: clipping the targets spends no trees on it
    targets = {
        "b": np.clip(teacher_out["b"][ion_rows], LOG2_FLOOR, None),
        "y": np.clip(
            _reverse_per_peptide(teacher_out["y"][ion_rows], train_ions), LOG2_FLOOR, None
        ),
    }
    # the last 2% of training peptides watch for over-fitting (reported, not used to stop)
    n_watch = max(1, int(len(train_ions) * 0.02))
    split_row = int(train_ions[:-n_watch].sum())
    params = {
        "objective": "reg:squarederror",
        "tree_method": "hist",
        "max_depth": args.max_depth,
        "eta": args.eta,
        "max_bin": 256,
        "min_child_weight": args.min_child_weight,
        "subsample": args.subsample,
        "nthread": args.threads,
        "seed": args.seed,
    }
    # one quantised matrix for both ion types (the features are shared); the float
    # copy is freed before training to keep the peak memory down
    dtrain = xgb.QuantileDMatrix(features[:split_row], max_bin=params["max_bin"])
    dwatch = xgb.DMatrix(features[split_row:])
    del features
    fitted = {}
    for ion_type in ("b", "y"):
        started = time.time()
        dtrain.set_label(targets[ion_type][:split_row])
        dwatch.set_label(targets[ion_type][split_row:])
        checkpoints = work / f"checkpoints_{ion_type}"
        checkpoints.mkdir(exist_ok=True)
        booster = xgb.train(
            params,
            dtrain,
            num_boost_round=args.rounds,
            evals=[(dwatch, "watch")],
            verbose_eval=10,
            # partial models survive an interrupted run (usable with fewer trees)
            callbacks=[xgb.callback.TrainingCheckPoint(checkpoints, name="model", interval=10)],
        )
        path = work / f"{MODEL_NAME}_{ion_type.upper()}.ubj"
        booster.save_model(path)
        fitted[ion_type] = str(path.name)
        log.info("fitted %s model in %.0f s -> %s", ion_type, time.time() - started, path)
    (work / "fit.json").write_text(
        json.dumps(
            {
                "method": "fitted by regression on ms2pip 3.13.0 HCD2019 output",
                "params": params,
                "rounds": args.rounds,
                "rows": int(split_row),
                "files": fitted,
            },
            indent=2,
        )
    )


# ---------------------------------------------------------------------------------------
# 3b. transcribe (main environment): the teacher's own trees, exactly
# ---------------------------------------------------------------------------------------
_C_TOKEN = re.compile(
    r"if \(v\[(?P<feature>\d+)\]<(?P<threshold>\d+)\)\{"
    r"|(?P<else>else\{)"
    r"|(?P<close>\})"
    r"|s = s (?P<leaf>[-+]?\s*[0-9.eE+-]+);"
)


def _parse_c_trees(source: str) -> list[dict]:
    """Trees of one compiled ms2pip 3 model (``float score_X(unsigned int* v)``).

    ms2pip 3 compiled each XGBoost model into nested ``if (v[f]<t){...} else{...}``
    blocks whose leaves add ``s = s <value>;``; trees follow one another in one
    function. Returns per tree the node arrays of XGBoost's JSON format.
    """
    body = source[source.index("float s = 0.;") : source.rindex("return s;")]
    tokens = [m for m in _C_TOKEN.finditer(body)]
    position = 0

    def allocate(tree: dict, parent: int) -> int:
        tree["parents"].append(parent)
        tree["left_children"].append(-1)
        tree["right_children"].append(-1)
        tree["split_indices"].append(0)
        tree["split_conditions"].append(0.0)
        return len(tree["parents"]) - 1

    def node(tree: dict, index: int) -> None:
        nonlocal position
        token = tokens[position]
        position += 1
        if token.group("leaf") is not None:
            tree["split_conditions"][index] = float(token.group("leaf").replace(" ", ""))
            return
        if token.group("feature") is None:
            raise ValueError(f"unexpected token {token.group(0)!r} in compiled model")
        tree["split_indices"][index] = int(token.group("feature"))
        # XGBoost sends x < split_condition left, like the compiled `if (v[f] < t)`
        tree["split_conditions"][index] = float(token.group("threshold"))
        # XGBoost's predictor finds the right child at left + 1: allocate them together
        left, right = allocate(tree, index), allocate(tree, index)
        tree["left_children"][index], tree["right_children"][index] = left, right
        node(tree, left)
        for expected in ("close", "else"):
            if tokens[position].group(expected) is None:
                raise ValueError(f"expected {expected} in compiled model, got {tokens[position]}")
            position += 1
        node(tree, right)
        if tokens[position].group("close") is None:
            raise ValueError("expected } closing an else branch in compiled model")
        position += 1

    trees = []
    while position < len(tokens):
        tree: dict = {
            "parents": [],
            "left_children": [],
            "right_children": [],
            "split_indices": [],
            "split_conditions": [],
        }
        node(tree, allocate(tree, 2147483647))
        trees.append(tree)
    return trees


def _booster_from_trees(trees: list[dict], base_score: float):
    """An XGBoost booster (JSON model format of xgboost 2.1) holding the given trees."""
    import xgboost as xgb

    json_trees = []
    for index, tree in enumerate(trees):
        n = len(tree["parents"])
        is_leaf = [left == -1 for left in tree["left_children"]]
        json_trees.append(
            {
                "base_weights": [
                    c if leaf else 0.0
                    for c, leaf in zip(tree["split_conditions"], is_leaf, strict=True)
                ],
                "categories": [],
                "categories_nodes": [],
                "categories_segments": [],
                "categories_sizes": [],
                "default_left": [0] * n,
                "id": index,
                "left_children": tree["left_children"],
                "loss_changes": [0.0] * n,
                "parents": tree["parents"],
                "right_children": tree["right_children"],
                "split_conditions": tree["split_conditions"],
                "split_indices": tree["split_indices"],
                "split_type": [0] * n,
                "sum_hessian": [1.0] * n,
                "tree_param": {
                    "num_deleted": "0",
                    "num_feature": str(NUM_FEATURES),
                    "num_nodes": str(n),
                    "size_leaf_vector": "1",
                },
            }
        )
    model = {
        "learner": {
            "attributes": {},
            "feature_names": [],
            "feature_types": [],
            "gradient_booster": {
                "model": {
                    "gbtree_model_param": {
                        "num_parallel_tree": "1",
                        "num_trees": str(len(json_trees)),
                    },
                    "iteration_indptr": list(range(len(json_trees) + 1)),
                    "tree_info": [0] * len(json_trees),
                    "trees": json_trees,
                },
                "name": "gbtree",
            },
            "learner_model_param": {
                "base_score": repr(base_score),
                "boost_from_average": "0",
                "num_class": "0",
                "num_feature": str(NUM_FEATURES),
                "num_target": "1",
            },
            "objective": {"name": "reg:squarederror", "reg_loss_param": {"scale_pos_weight": "1"}},
        },
        "version": [2, 1, 4],
    }
    booster = xgb.Booster()
    booster.load_model(bytearray(json.dumps(model).encode()))
    return booster


def transcribe(args: argparse.Namespace) -> None:
    """Rebuild the teacher's b and y trees as XGBoost models, without any fitting.

    ms2pip 3.13's source distribution ships the compiled models as C files
    (``ms2pip/models/HCD-2019/model_20190107_HCD_train_{B,Y}.c``, installed with the
    package). Their trees split on the same 139 features ms2pip 4 computes and add
    0.5 (``ms2pip_peaks_c.c``), so they become XGBoost models with base score 0.5 that
    reproduce the teacher up to float32 summation order.
    """
    work = Path(args.work_dir)
    if args.teacher_source:
        source_dir = Path(args.teacher_source)
    else:
        located = subprocess.run(
            [
                args.teacher_python,
                "-c",
                "import ms2pip, os; print(os.path.dirname(ms2pip.__file__))",
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        source_dir = Path(located.stdout.strip()) / "models" / "HCD-2019"
    fitted = {}
    n_trees = {}
    for ion_type in ("b", "y"):
        source = (source_dir / f"model_20190107_HCD_train_{ion_type.upper()}.c").read_text()
        trees = _parse_c_trees(source)
        booster = _booster_from_trees(trees, base_score=0.5)
        path = work / f"{MODEL_NAME}_{ion_type.upper()}.ubj"
        booster.save_model(path)
        fitted[ion_type] = path.name
        n_trees[ion_type] = len(trees)
        log.info(
            "transcribed %s: %d trees, %d nodes -> %s",
            ion_type,
            len(trees),
            sum(len(t["parents"]) for t in trees),
            path,
        )
    (work / "fit.json").write_text(
        json.dumps(
            {
                "method": "trees transcribed from ms2pip 3.13.0's compiled HCD2019 C model",
                "params": {"base_score": 0.5},
                "rounds": n_trees,
                "rows": 0,
                "files": fitted,
            },
            indent=2,
        )
    )


# ---------------------------------------------------------------------------------------
# 4. evaluate (main environment)
# ---------------------------------------------------------------------------------------
def _pearson_rows(a: list[np.ndarray], b: list[np.ndarray]) -> np.ndarray:
    out = np.empty(len(a))
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        out[i] = np.corrcoef(x, y)[0, 1]
    return out


def evaluate(args: argparse.Namespace) -> dict:
    """Agreement of ms2pip 4 with the distilled model and the teacher on held-out data."""
    from psm_utils import PSM, Peptidoform, PSMList

    from trm.synth.ms2pip_models import model_definition, predict_batch_offline

    work = Path(args.work_dir)
    model_dir = Path(args.model_dir)
    table, teacher_out, n_ions = _load_table(work)
    offsets = np.concatenate([[0], np.cumsum(n_ions)])
    test_index = np.flatnonzero(table["split"].to_numpy() == "test")
    proformas = table["proforma"].to_list()
    charges = table["charge"].to_list()
    psms = PSMList(
        psm_list=[
            PSM(peptidoform=Peptidoform(f"{proformas[i]}/{charges[i]}"), spectrum_id=str(i))
            for i in test_index
        ]
    )
    started = time.time()
    results = predict_batch_offline(psms, args.model, model_dir, processes=args.threads)
    elapsed = time.time() - started
    student_log, teacher_log = [], []
    for i, result in zip(test_index, results, strict=True):
        prediction = result.predicted_intensity
        student_log.append(np.concatenate([prediction["b"], prediction["y"]]))
        span = slice(offsets[i], offsets[i + 1])
        teacher_raw = np.concatenate([teacher_out["b"][span], teacher_out["y"][span]])
        # compare in ms2pip 4's output space, which clips at its pseudo-count
        teacher_log.append(np.clip(teacher_raw, LOG2_FLOOR, None))
    r_log = _pearson_rows(student_log, teacher_log)
    r_linear = _pearson_rows(
        [2**s - 0.001 for s in student_log], [2**t - 0.001 for t in teacher_log]
    )
    origin = table["origin"].to_numpy()[test_index]
    report = {
        "model": args.model,
        "definition": model_definition(args.model, model_dir),
        "n_test_peptidoforms": len(test_index),
        "median_pearson_log2": float(np.median(r_log)),
        "median_pearson_linear": float(np.median(r_linear)),
        "mean_pearson_log2": float(np.mean(r_log)),
        "fraction_r_log2_ge_0.9": float(np.mean(r_log >= 0.9)),
        "by_origin": {
            kind: {
                "n": int((origin == kind).sum()),
                "median_pearson_log2": float(np.median(r_log[origin == kind])),
                "median_pearson_linear": float(np.median(r_linear[origin == kind])),
            }
            for kind in ("tryptic", "random")
        },
        "by_charge": {
            int(z): float(np.median(r_log[np.asarray(charges)[test_index] == z]))
            for z in sorted(set(charges))
        },
        "predict_batch_seconds": round(elapsed, 2),
    }
    (work / "evaluation.json").write_text(json.dumps(report, indent=2))
    log.info("evaluation: %s", json.dumps(report, indent=2))
    return report


# ---------------------------------------------------------------------------------------
# install and run
# ---------------------------------------------------------------------------------------
def install(args: argparse.Namespace) -> None:
    """Copy the fitted files into ``--out-dir`` and write its ``models.json`` entry."""
    import shutil

    from trm.synth.ms2pip_models import sha1_of_file, write_model_definition

    work = Path(args.work_dir)
    fitted = json.loads((work / "fit.json").read_text())
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for ion_type, name in fitted["files"].items():
        shutil.copyfile(work / name, out / name)
        files[ion_type] = name
    write_model_definition(
        out,
        MODEL_NAME,
        {
            "ion_types": ["B", "Y"],
            "fragmentation": "cidhcd",
            "xgboost_model_files": files,
            "model_hash": {name: sha1_of_file(out / name) for name in files.values()},
            "provenance": (
                f"{fitted.get('method', 'fitted by regression on ms2pip 3.13.0 HCD2019 output')}"
                " by workflow/scripts/distill_ms2pip.py; see README.md"
            ),
            "training": {k: fitted[k] for k in ("params", "rounds", "rows")},
        },
    )
    log.info("installed %s into %s", MODEL_NAME, out)


def run(args: argparse.Namespace) -> None:
    """All steps; the teacher step in the ms2pip 3.13 interpreter."""
    sample(args)
    subprocess.run(
        [args.teacher_python, __file__, "teacher", "--work-dir", args.work_dir], check=True
    )
    if args.method == "transcribe":
        transcribe(args)
    else:
        fit(args)
    install(args)
    args.model_dir = args.out_dir
    args.model = MODEL_NAME
    evaluate(args)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    steps = parser.add_subparsers(dest="step", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--work-dir", required=True, help="intermediate files")
    common.add_argument("--seed", type=int, default=20190107)
    common.add_argument("--threads", type=int, default=2)
    sampling = argparse.ArgumentParser(add_help=False)
    sampling.add_argument("--fasta", default="resources/fasta/UP000002311-S.cerevisiae.fasta.gz")
    sampling.add_argument("--n-peptides", type=int, default=400_000)
    sampling.add_argument("--n-test", type=int, default=5_000)
    sampling.add_argument("--max-length", type=int, default=30)
    fitting = argparse.ArgumentParser(add_help=False)
    fitting.add_argument("--rounds", type=int, default=120)
    fitting.add_argument("--max-depth", type=int, default=12)
    fitting.add_argument("--eta", type=float, default=0.3)
    fitting.add_argument("--min-child-weight", type=float, default=1.0)
    fitting.add_argument("--subsample", type=float, default=0.6, help="rows per tree")
    fitting.add_argument(
        "--max-train-peptides", type=int, default=0, help="use only this many (pilot runs)"
    )
    evaluating = argparse.ArgumentParser(add_help=False)
    evaluating.add_argument("--model-dir", default="resources/ms2pip")
    evaluating.add_argument("--model", default=MODEL_NAME)
    steps.add_parser("sample", parents=[common, sampling]).set_defaults(func=sample)
    steps.add_parser("teacher", parents=[common]).set_defaults(func=teacher)
    steps.add_parser("fit", parents=[common, fitting]).set_defaults(func=fit)
    steps.add_parser("evaluate", parents=[common, evaluating]).set_defaults(func=evaluate)
    transcribing = steps.add_parser("transcribe", parents=[common])
    transcribing.add_argument("--teacher-python", help="python of an ms2pip 3.13 venv")
    transcribing.add_argument("--teacher-source", help="folder of the HCD-2019 C files")
    transcribing.set_defaults(func=transcribe)
    installing = steps.add_parser("install", parents=[common])
    installing.add_argument("--out-dir", default="resources/ms2pip")
    installing.set_defaults(func=install)
    running = steps.add_parser("run", parents=[common, sampling, fitting])
    running.add_argument("--teacher-python", required=True, help="python of an ms2pip 3.13 venv")
    running.add_argument("--out-dir", default="resources/ms2pip")
    running.add_argument(
        "--method",
        choices=["transcribe", "fit"],
        default="transcribe",
        help="transcribe the teacher's trees exactly (default, shipped) or fit new ones",
    )
    running.add_argument("--teacher-source", help="folder of the HCD-2019 C files")
    running.set_defaults(func=run)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    args.func(args)


if __name__ == "__main__":
    main(sys.argv[1:])
