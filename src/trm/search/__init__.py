"""The database search: a lab's own identifications from its own runs.

- :mod:`trm.search.settings`: the ``search:`` settings (digestion, modifications, FDR).
- :mod:`trm.search.engine`: Sage (through sagepy) on a run's spectra and a FASTA.
- :mod:`trm.search.report`: the search's summary, and its PSMs against identifications a
  lab supplied.
- :mod:`trm.search.commands`: the ``trm search`` subcommand.
"""
