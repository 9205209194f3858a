"""De novo sequencing with a trained recursive model: calibration and the per-sample run.

- :mod:`trm.denovo.settings`: the instrument file and the decoding settings stored with a
  calibrated model.
- :mod:`trm.denovo.inference`: spectra (peak arrays) to decoded peptides with raw scores,
  the one code path shared by ``trm calibrate`` and ``trm denovo``.
- :mod:`trm.denovo.calibrate`: isotonic calibration of the raw score on a labelled split,
  and its report.
- :mod:`trm.denovo.run`: a spectrum file streamed through the model into the result files
  of the results contract (``denovo.tsv``, ``denovo.mztab``, ``unsequenced.tsv``), the
  timing file and, with labels, metrics.
- :mod:`trm.denovo.commands`: the ``trm calibrate`` and ``trm denovo`` subcommands.
"""
