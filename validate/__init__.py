"""Checks of the model against reality: ``check`` (``agentwatt calibrate check``: a real serving loop
on the device, ``serve``, beside its simulation) and ``powercompare`` (a measured power series
against a simulated one)."""
