"""The contract layer at the bottom of agentwatt: what every other part agrees on, with no torch,
no SimPy and no pandas.

* ``errors``   one exception root for user-facing errors (one line naming the file/field);
* ``io``       atomic writes at the edges;
* ``profile``  the profile schema (latency and power models of one model on one device) and the
               bundled profiles in ``data/``;
* ``step``     the one step predictor: time, watts and cap stretch of an engine step, and the closed
               form for a run of unchanged decode steps;
* ``gpus``     the GPU catalog (datasheet numbers with sources).
"""

__version__ = "0.1.0"
