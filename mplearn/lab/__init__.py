"""How things are measured and shown: ``experiments`` (sweeps of paired runs, content-addressed
and resumable, and the manifests in ``data/``), ``stats`` (IQM, intervals, paired
differences), ``plots``, ``probes`` (training on environments with known answers) and
``notebook`` (the notebooks' support: short live runs, widgets, verdict display). The lab sits
above ``issues``: it runs their scenarios, it never defines one.
"""
