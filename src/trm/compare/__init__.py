"""The recursive model against Casanovo, and against the database search of the same run.

- :mod:`trm.compare.comparison`: the per-spectrum comparison with Casanovo and its summary.
- :mod:`trm.compare.database`: the per-spectrum comparison with the database search.
- :mod:`trm.compare.commands`: the ``trm compare``, ``trm compare-samples`` and
  ``trm compare-database`` subcommands.
"""
