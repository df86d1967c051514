"""What a user runs on their own actor/learner code: ``checks`` (findings on plain modules,
optimizers and batches, and ``explain_error`` for a dead worker's traceback), ``monitor`` (the
invariants of a running ``System``, each violation named by the issue behind it) and
``buggy_learner`` (a small hand-written learner with the review's bugs, to practise on).
"""
