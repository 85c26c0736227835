"""Fuzzing helpers shared by tests/test_fuzz_short.py (the short CI profile) and benchmarks/fuzz.py (the long run):
``targets`` (mutated inputs that must run or fail with one clean error) and ``valid`` (generators of valid
scenarios, traces and profiles, and the checks their results must pass)."""
