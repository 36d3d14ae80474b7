"""agent-drills: incident-response drills for autonomous on-chain agents."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
