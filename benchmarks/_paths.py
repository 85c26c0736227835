"""Where the benchmarks find things outside the repository: the shared data folder is ``$AGENTWATT_SHARED``
when set, else ``../shared`` beside the repository root. No absolute machine path is written anywhere."""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_ENV = "AGENTWATT_SHARED"


def shared_dir() -> Path:
    """The shared data folder (it may not exist: callers that need a file check with ``shared_file``)."""
    env = os.environ.get(SHARED_ENV)
    return Path(env) if env else REPO_ROOT.parent / "shared"


def shared_file(relative: str) -> Path:
    """``relative`` inside the shared folder, e.g. ``shared_file("traces/azure_llm_2023_conv.csv")``."""
    return shared_dir() / relative

