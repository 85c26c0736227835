"""The ``agentwatt`` command: one click group (``main``) and one module per command family. Commands
import their part of the package when they run, so ``agentwatt --help`` stays light (no torch)."""
from agentwatt.cli.main import main

__all__ = ["main"]
