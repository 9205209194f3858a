"""De novo sequencing with a trained recursive model: calibration, the per-sample run
and its evaluation.

- :mod:`trm.denovo.settings`: the inference settings stored with a calibrated model.
- :mod:`trm.denovo.model_file`: the model file read once, its stored settings merged with
  the instrument's and the ones asked for (:func:`~trm.denovo.model_file.load_sequencer`).
- :mod:`trm.denovo.inference`: spectra (peak arrays) to decoded peptides with raw scores,
  the one code path shared by ``trm calibrate`` and ``trm denovo``.
- :mod:`trm.denovo.decode`: the exact precursor-mass search over the model's answer.
- :mod:`trm.denovo.rescore`: the search's candidates matched against the peaks.
- :mod:`trm.denovo.calibration`: the isotonic map from raw score to probability, q-values.
- :mod:`trm.denovo.calibrate`: fitting that map (and the rescorer) on a labelled split.
- :mod:`trm.denovo.run`: a spectrum file streamed through the model into the result files
  of the results contract (``denovo.tsv``, ``denovo.mztab``, ``unsequenced.tsv``), the
  timing file and, with labels, metrics.
- :mod:`trm.denovo.evaluation`: metrics of results against labels.
- :mod:`trm.denovo.commands`, :mod:`trm.denovo.evaluate_commands`: the ``trm calibrate``,
  ``trm denovo`` and ``trm evaluate`` subcommands.
"""
