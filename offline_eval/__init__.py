"""offline-eval: offline evaluation and monitoring of recommendation models."""
from __future__ import annotations

__version__ = "0.1.0"
