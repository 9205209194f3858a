"""Synthetic training spectra: FASTA digestion, peptidoform sampling, MS2PIP prediction.

- :mod:`trm.synth.peptides`: digestion, I/L-aware deduplication, splits by peptide,
  modifications and charges.
- :mod:`trm.synth.ms2pip_models`: the shipped offline ms2pip model and official downloads.
- :mod:`trm.synth.spectra`: spectrum tables with fragment annotations.
- :mod:`trm.synth.generate`: one instrument's sharded data set and its manifest.
- :mod:`trm.synth.commands`: ``trm synthetic`` and ``trm fetch-ms2pip-models``.
"""
