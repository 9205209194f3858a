"""The spectrum-graph decoder: the fragment ladder's best peptides, no learning.

:mod:`trm.graph.decoder` finds, for each spectrum, the K best paths of prefix masses that
fragment peaks support (see its description). De novo sequencing proposes its paths as
candidates and drafts (the ``graph`` and ``hybrid`` decoders of :mod:`trm.denovo`), and
training starts the recursion from them (``graph_draft_fraction``), so that the model
learns to correct the errors they carry.
"""

from trm.graph.decoder import (
    GraphCandidate,
    GraphDecoder,
    GraphResult,
    GraphSettings,
    IonProbabilities,
    PeptideScores,
    canonical_tokens,
    residue_log_prior,
)

__all__ = [
    "GraphCandidate",
    "GraphDecoder",
    "GraphResult",
    "GraphSettings",
    "IonProbabilities",
    "PeptideScores",
    "canonical_tokens",
    "residue_log_prior",
]
