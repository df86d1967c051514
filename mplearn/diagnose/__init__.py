"""What a user runs on their own actor/learner code: ``checks`` (one-shot findings on plain
modules, optimizers and batches, judged by behaviour: a layer is mode-dependent when its output
changes with the mode, the target is the network the optimizer leaves alone), ``watch`` (the
same invariants over a training loop of one's own: call ``step()`` once per update),
``explain_error`` (a dead learner's exception read for its meaning), ``monitor`` (the invariants
of a running ``System``), ``rules`` (the one implementation of those invariants that ``watch``
and ``Monitor`` share) and ``buggy_learner`` (a small hand-written learner with the review's
bugs, to practise on).
"""

from mplearn.diagnose.errors import explain_error
from mplearn.diagnose.rules import NOT_CATALOGUED, Finding
from mplearn.diagnose.watcher import Watch, watch

__all__ = ["NOT_CATALOGUED", "Finding", "Watch", "explain_error", "watch"]
