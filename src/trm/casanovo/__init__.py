"""Casanovo, the field's reference de novo sequencer, run beside the recursive model.

Casanovo 5.2.1 pins numpy < 2, which clashes with this package's dependencies, so it lives
in its own environment (``.venv-casanovo`` locally, ``envs/casanovo.yaml`` on clusters)
and this package never imports it: it writes Casanovo's inputs (a complete config file,
MGF spectra), calls the ``casanovo`` executable by path, and reads its mzTab back.

Modules
-------
config
    Complete Casanovo config files from the shipped ``casanovo configure`` template.
mgf
    Spectrum table -> MGF for Casanovo, with the list of spectra it is not given.
mztab
    Casanovo's mzTab -> one row per input spectrum, keyed by ``spectrum_id``.
runner
    ``casanovo sequence`` and ``casanovo train`` as subprocesses, timed.
commands
    The ``trm casanovo-sequence``, ``trm casanovo-train`` and ``trm compare`` subcommands.
"""
