"""The paper-reproduction report (``agentwatt paper``): the setups of Kim et al., "The Cost of
Dynamic Reasoning" (HPCA 2026), simulated with the bundled A100 profiles and laid beside the
paper's numbers. ``values`` holds the paper's numbers; each other module is one section."""
from agentwatt.paper.report import build_report

__all__ = ["build_report"]
