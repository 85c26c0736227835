"""Parts that run the simulator many times: sweeps (``sweep``), the result store (``store``), where runs
execute (``runners``: serial or Dask), confidence over seeds (``uncertainty``), capacity plans
(``plan``), plots of both (``plots``) and the daily-volume projection (``project``)."""
