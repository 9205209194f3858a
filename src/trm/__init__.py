"""trm: de novo peptide sequencing with a tiny recursive model."""

__version__ = "0.1.0"
