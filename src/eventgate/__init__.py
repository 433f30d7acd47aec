"""eventgate: the acceptance suite that decides whether the FASE 0 transformation may go live."""

__version__ = "0.1.0"
