"""The one place that touches ms2pip's model table: offline models and official downloads.

ms2pip 4 knows its models from ``ms2pip.constants.MODELS`` and downloads their XGBoost
files on first use, checked by SHA-1. Without network (cluster compute nodes, this
project's tests) that download fails with a ``URLError`` deep inside a prediction. This
module makes that failure impossible or early:

- models shipped with the project (``resources/ms2pip/``) are described in a
  ``models.json`` next to their files and registered in ``MODELS`` at run time;
- an official model is used only when its files already sit in the model directory
  with the right hash (fetched beforehand by :func:`fetch_official_models`, e.g. on a
  login node); otherwise a clear error names the command that fetches them.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from trm.errors import InputError

log = logging.getLogger(__name__)

#: File in a model directory that describes the models shipped there.
DEFINITIONS_FILE = "models.json"

#: Features per ion position in ms2pip's feature vectors (``ms2pip.core.NUM_FEATURES``).
_NUM_FEATURES = 139

#: Keys of a definition that ms2pip reads; the rest (provenance, training) is ours.
_MS2PIP_KEYS = ("ion_types", "fragmentation", "xgboost_model_files", "model_hash")


#: Where the ms2pip model files and models.json lie, from the project root.
DEFAULT_MODEL_DIR = "resources/ms2pip"


class Ms2pipModelError(InputError):
    """An ms2pip model that is unknown, incomplete or whose files are missing or corrupt."""


def sha1_of_file(path: str | Path) -> str:
    """SHA-1 hex digest of a file (ms2pip's integrity check for model files)."""
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_model_definitions(model_dir: str | Path) -> dict[str, dict]:
    """Model name -> definition from ``<model_dir>/models.json`` (empty when absent)."""
    path = Path(model_dir) / DEFINITIONS_FILE
    if not path.is_file():
        return {}
    try:
        definitions = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise Ms2pipModelError(f"{path}: not valid JSON ({error})") from error
    for name, definition in definitions.items():
        missing = [key for key in _MS2PIP_KEYS if key not in definition]
        if missing:
            raise Ms2pipModelError(f"{path}: model {name!r} lacks {missing}")
    return definitions


def write_model_definition(model_dir: str | Path, name: str, definition: dict) -> Path:
    """Add or replace one model in ``<model_dir>/models.json``; returns the file path."""
    missing = [key for key in _MS2PIP_KEYS if key not in definition]
    if missing:
        raise Ms2pipModelError(f"definition of {name!r} lacks {missing}")
    definitions = read_model_definitions(model_dir)
    definitions[name] = definition
    path = Path(model_dir) / DEFINITIONS_FILE
    path.write_text(json.dumps(definitions, indent=2, sort_keys=True) + "\n")
    return path


def _check_files(name: str, definition: dict, model_dir: Path, hint: str) -> None:
    for file_name in definition["xgboost_model_files"].values():
        path = model_dir / file_name
        if not path.is_file():
            raise Ms2pipModelError(f"ms2pip model {name!r}: file {path} is missing. {hint}")
        expected = definition["model_hash"].get(file_name)
        if expected is not None and sha1_of_file(path) != expected:
            raise Ms2pipModelError(
                f"ms2pip model {name!r}: {path} does not have the expected SHA-1 "
                f"{expected} (corrupt or replaced). {hint}"
            )


def known_models(model_dir: str | Path) -> list[str]:
    """Names usable with this model directory: shipped ones and ms2pip's own."""
    from ms2pip.constants import MODELS

    return sorted(set(read_model_definitions(model_dir)) | set(MODELS))


def register_model(name: str, model_dir: str | Path) -> dict:
    """Make ``name`` predictable by ms2pip 4 without network; returns its definition.

    A model defined in ``<model_dir>/models.json`` is (re)registered in
    ``ms2pip.constants.MODELS``. An official ms2pip model must have its files in
    ``model_dir`` already, with the SHA-1 ms2pip expects.

    Parameters
    ----------
    name : str
        Model name, e.g. ``"HCD2019-distilled"`` (shipped) or ``"HCD2021"`` (official).
    model_dir : str or Path
        Directory of the XGBoost files (``resources/ms2pip`` in the workflow).

    Returns
    -------
    dict
        The ms2pip definition (ion types, fragmentation, files, hashes).

    Raises
    ------
    Ms2pipModelError
        For an unknown name, or missing or corrupt model files.
    """
    from ms2pip.constants import MODELS

    model_dir = Path(model_dir)
    shipped = read_model_definitions(model_dir)
    if name in shipped:
        definition = {key: copy.deepcopy(shipped[name][key]) for key in _MS2PIP_KEYS}
        _check_files(name, definition, model_dir, "Restore it from the repository.")
        MODELS[name] = definition
        return definition
    if name in MODELS:
        definition = MODELS[name]
        if "xgboost_model_files" not in definition:
            raise Ms2pipModelError(f"ms2pip model {name!r} has no XGBoost files to predict with")
        _check_files(
            name,
            definition,
            model_dir,
            f"Fetch it where there is network: `trm fetch-ms2pip-models --model {name} "
            f"--model-dir {model_dir}`.",
        )
        return definition
    raise Ms2pipModelError(
        f"unknown ms2pip model {name!r}; known: {', '.join(known_models(model_dir))}"
    )


def model_definition(name: str, model_dir: str | Path) -> dict:
    """The full definition of a model (shipped ones with provenance), for manifests."""
    from ms2pip.constants import MODELS

    shipped = read_model_definitions(model_dir)
    if name in shipped:
        return copy.deepcopy(shipped[name])
    if name in MODELS:
        return copy.deepcopy(MODELS[name])
    raise Ms2pipModelError(
        f"unknown ms2pip model {name!r}; known: {', '.join(known_models(model_dir))}"
    )


def predict_batch_offline(psms, model: str, model_dir: str | Path, processes: int | None = None):
    """``ms2pip.predict_batch`` after :func:`register_model`, so it never downloads.

    Parameters
    ----------
    psms : psm_utils.PSMList
        Peptidoforms with precursor charge.
    model : str
    model_dir : str or Path
    processes : int or None
        Threads for ms2pip's feature computation and XGBoost.

    Returns
    -------
    list of ms2pip.result.ProcessingResult
        ``predicted_intensity`` holds log2(TIC-normalised intensity + 0.001) per ion type,
        ions in b1.. / y1.. order; ``None`` for a peptidoform ms2pip rejected.
    """
    from ms2pip import predict_batch

    register_model(model, model_dir)
    return predict_batch(psms, model=model, model_dir=str(model_dir), processes=processes)


class Ms2pipPredictor:
    """ms2pip 4 intensity prediction for many batches, with the model loaded once.

    ``ms2pip.predict_batch`` also computes every fragment m/z with ``ms2rescore_rs``,
    which takes most of its time (0.3-0.7 ms per peptide here, against ~0.03 ms for the
    features) and which this project does not use: fragment m/z come from
    :mod:`trm.chem`. This class runs the rest of the same pipeline, with ms2pip's own
    functions: ``ms2rescore_rs.ms2pip_compute_features`` on the mass-shift ProForma
    that ``predict_batch`` builds, then ms2pip's ``predict_intensities`` (XGBoost, clip
    at log2(0.001), y ions reversed to y1.. order) with boosters loaded once. The
    intensities equal ``predict_batch``'s (a test checks it).

    Parameters
    ----------
    model : str
    model_dir : str or Path
    processes : int or None
        Threads for feature computation (Rayon) and XGBoost; None: all cores.
    """

    def __init__(self, model: str, model_dir: str | Path, processes: int | None = None) -> None:
        from ms2pip._utils.xgb_models import load_xgb_models

        self.model = model
        self.model_dir = Path(model_dir)
        self.definition = register_model(model, model_dir)
        self.processes = processes
        if processes is not None:
            # Rayon sizes its pool from this variable at its first use, as in ms2pip
            os.environ.setdefault("RAYON_NUM_THREADS", str(processes))
        self._boosters = load_xgb_models(self.definition, self.model_dir, processes)

    @property
    def ion_types(self) -> list[str]:
        """ms2pip ion types predicted, lower case (``b``, ``y``, maybe ``b2``, ``y2``)."""
        return [ion_type.lower() for ion_type in self.definition["ion_types"]]

    def predict(self, proformas: Sequence[str]) -> list[dict[str, np.ndarray]]:
        """Predicted intensities of peptidoforms.

        Parameters
        ----------
        proformas : sequence of str
            Mass-shift ProForma with charge, as ms2pip hands to ``ms2rescore_rs``
            (``PEPTC[+57.0215]IDEK/2``); 4-100 standard residues each.

        Returns
        -------
        list of dict
            Per peptidoform: ion type -> array of shape (n_residues - 1,) with
            log2(TIC-normalised intensity + 0.001), ions in b1.. / y1.. order.
        """
        from ms2pip._utils.xgb_models import predict_intensities
        from ms2rescore_rs import ms2pip_compute_features

        if not proformas:
            return []
        vectors = ms2pip_compute_features(list(proformas))
        n_ions = [len(vector) // _NUM_FEATURES for vector in vectors]
        features = np.concatenate(vectors).reshape(-1, _NUM_FEATURES)
        return predict_intensities(
            features,
            n_ions,
            self.definition,
            self.model_dir,
            processes=self.processes,
            xgb_models=self._boosters,
        )


def fetch_official_models(models: Iterable[str] | None, model_dir: str | Path) -> list[str]:
    """Download official ms2pip model files into ``model_dir`` (needs network).

    Uses ms2pip's own downloader (``ms2pip.download_models``), which fetches each file
    from the ms2pip servers and checks its SHA-1.

    Parameters
    ----------
    models : iterable of str or None
        Official model names (``HCD2021``, ``TTOF5600``, ...); None fetches all.
    model_dir : str or Path

    Returns
    -------
    list of str
        The models now present.
    """
    from ms2pip import download_models
    from ms2pip.constants import MODELS

    shipped = set(read_model_definitions(model_dir))
    names = sorted(n for n in MODELS if n not in shipped) if models is None else list(models)
    unknown = [n for n in names if n not in MODELS or n in shipped]
    if unknown:
        raise Ms2pipModelError(
            f"not official ms2pip models: {unknown}; official: {sorted(set(MODELS) - shipped)}"
        )
    Path(model_dir).mkdir(parents=True, exist_ok=True)
    download_models(names, model_dir=model_dir)
    log.info("ms2pip model files of %s are in %s", ", ".join(names), model_dir)
    return names
