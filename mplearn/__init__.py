"""mplearn: multiprocess actor/learner deep RL (IQN), every learning issue a switch.

Four rooms: ``mplearn.core`` (the system under study), ``mplearn.issues`` (one module per
learning issue), ``mplearn.lab`` (experiments, statistics, plots, notebook support) and
``mplearn.diagnose`` (checks a user runs on their own code).
"""

__version__ = "0.2.0"

from mplearn.core.config import Config, ConfigError  # noqa: E402
from mplearn.core.fixes import Fixes  # noqa: E402
from mplearn.core.metrics import Result  # noqa: E402
from mplearn.core.system import System, WorkerError, train  # noqa: E402
from mplearn.diagnose import checks  # noqa: E402

__all__ = ["Config", "ConfigError", "Fixes", "Result", "System", "WorkerError", "checks", "train",
           "__version__"]
