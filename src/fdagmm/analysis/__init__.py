"""Analysis of sweeps (Hydra multirun dirs): one reader (``sweeps``), one Markdown writer
(``markdown``), and the reports built on them: ``report`` (a study's tables and figures),
``selection`` (the configuration rule over validation sweeps), ``who_gains``,
``energy_by_kind``, ``figures`` (ROC curves and energies by attack family) and
``privacy_cost``. ``src/report.py`` and ``src/privacy_cost.py`` are their command lines.
"""
