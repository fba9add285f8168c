"""vigil: a small team's production-operations safety net, on Prefect 3."""

__version__ = "0.1.0"
