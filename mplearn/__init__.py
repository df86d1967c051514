"""mplearn: multiprocess actor/learner deep RL (IQN), every learning issue a switch."""

__version__ = "0.1.0"

from mplearn.config import Config, ConfigError  # noqa: E402
from mplearn.fixes import Fixes  # noqa: E402
from mplearn.metrics import Result  # noqa: E402
from mplearn.system import System, WorkerError, train  # noqa: E402

__all__ = ["Config", "ConfigError", "Fixes", "Result", "System", "WorkerError", "train",
           "__version__"]
