"""Spectra and identifications in, results out."""
