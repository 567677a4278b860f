"""margin-engine: a deterministic margin engine for crypto options and perpetuals."""

__version__ = "0.1.0"
