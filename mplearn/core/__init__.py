"""The system under study, and nothing else: an IQN actor/learner system in which every learning
issue is a switch. ``config`` and ``fixes`` hold every knob and every switch; ``networks`` and
``iqn`` the model and its pure loss functions; ``replay`` and ``weights`` what the processes
share (a replay in shared memory, shared models published and synced by version); ``actor`` and
``learner`` the two roles; ``channels``, ``workers`` and ``system`` how they run together
(inline, lockstep or async), ``watchdog`` which of them stopped making progress; ``metrics``
what a run records. Every FIX marker lives here, where the bug lives, and core imports nothing
from ``issues``, ``lab`` or ``diagnose``.
"""
