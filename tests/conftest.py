import sys
import types
from pathlib import Path

# make tests/fuzz_targets.py importable as tests_support.fuzz_targets (benchmarks import it too)
_here = Path(__file__).parent
if "tests_support" not in sys.modules:
    pkg = types.ModuleType("tests_support")
    pkg.__path__ = [str(_here)]
    sys.modules["tests_support"] = pkg
