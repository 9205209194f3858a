"""The recursive model against Casanovo on the same spectra.

- :mod:`trm.compare.comparison`: the per-spectrum comparison table and its summary.
- :mod:`trm.compare.commands`: the ``trm compare`` and ``trm compare-samples`` subcommands.
"""
