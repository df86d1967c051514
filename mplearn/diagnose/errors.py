"""``explain_error``: a dead learner's exception (or its traceback text) read for what it means,
whatever the user's names are.

- an undefined name or attribute (``NameError``, ``UnboundLocalError``, ``AttributeError``) that
  the failing code uses in a modulo schedule (``x % n``): an uninitialised step counter;
- a dtype mismatch (matmul, a loss function, an optimizer) and a device mismatch: raised inside
  an optimizer's step (its frames are in ``torch/optim``) the optimizer's state is elsewhere;
  raised anywhere else, the batch is. Given the objects, the optimizer's state and the batch are
  looked at directly instead;
- anything else: "not one of the catalogue's issues", never a guess.
"""

from __future__ import annotations

import linecache
import re
import traceback

from mplearn.diagnose.rules import NOT_CATALOGUED, Finding
from mplearn.diagnose.tensors import batch_matches, optimizer_state_device

_UNDEFINED = [
    (re.compile(r"NameError: name '(\w+)' is not defined"), "name"),
    (re.compile(r"(?:UnboundLocalError|NameError): cannot access (?:local|free) variable '(\w+)'"),
     "name"),
    (re.compile(r"UnboundLocalError: local variable '(\w+)' referenced before assignment"), "name"),
    (re.compile(r"AttributeError: '[\w.]+' object has no attribute '(\w+)'"), "attribute"),
]
_DTYPE = re.compile(
    r"same dtype|expected scalar type|Found dtype \w+ but expected|expected m1 and m2 to have|"
    r"result type \w+ can't be cast|Expected object of scalar type|expected dtype|"
    r"dtype of \w+ \(\w+\) does not match")
_DEVICE = re.compile(r"same device|Expected object of device type|expected device|"
                     r"found at least two devices|Expected all tensors to be on")
_OPTIMIZER_FRAME = re.compile(r'File "[^"]*torch/optim/')
# Only a name that counts: without the source, the name alone has to say it.
_COUNTER_NAME = re.compile(r"(^|_)(t|n|it|iters?|iterations?|updates?|episodes?|frames?|ticks?)"
                           r"($|_)|step|count")


def _text(error: BaseException | str) -> str:
    if isinstance(error, str):
        return error
    return "".join(traceback.format_exception(type(error), error, error.__traceback__))


def _source_lines(error: BaseException | str, text: str) -> list[str]:
    """The code the error passed through: for an exception, the whole function of each frame
    (the counter is often initialised, or not, in another line); for a text, the lines shown."""
    if isinstance(error, BaseException):
        lines = []
        tb = error.__traceback__
        while tb is not None:
            code = tb.tb_frame.f_code
            first = code.co_firstlineno
            for n in range(first, tb.tb_lineno + 40):
                line = linecache.getline(code.co_filename, n)
                if n > tb.tb_lineno and line and not line.startswith((" ", "\t", "\n")):
                    break
                lines.append(line)
            tb = tb.tb_next
        return lines
    return [line for line in text.splitlines() if not line.lstrip().startswith("File ")]


_STRING = re.compile(r"\"[^\"]*\"|'[^']*'")


def _in_modulo(name: str, lines: list[str]) -> bool:
    """``name`` on a line that takes a modulo (``%`` outside string literals): ``if step %
    n == 0``, ``t = (t + 1) % n``."""
    word = re.compile(rf"\b{re.escape(name)}\b")
    for line in lines:
        code = _STRING.sub("", line.split("#")[0])
        if "%" in code and word.search(code):
            return True
    return False


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip()[:200] if lines else ""


def explain_error(error: BaseException | str, optimizer=None, model=None, batch=None) -> Finding:
    """The learning issue a learner's error points to, or ``NOT_CATALOGUED``. ``optimizer``,
    ``model`` and ``batch`` (optional) settle a device or dtype error from the objects."""
    text = _text(error)
    last = _last_line(text)
    failed = f"the run failed with {last}"

    for pattern, kind in _UNDEFINED:
        match = pattern.search(text)
        if match is None:
            continue
        name = match.group(1)
        lines = _source_lines(error, text)
        used = _in_modulo(name, lines)
        has_source = isinstance(error, BaseException) and any(line.strip() for line in lines)
        if used or (not has_source and _COUNTER_NAME.search(name)):
            return Finding("step_counter", False,
                           f"{failed}: '{name}' is undefined where a modulo schedule uses it"
                           if used else f"{failed}: '{name}' is undefined and named like a "
                           "step counter (no source shows how it is used)",
                           f"initialise the {kind} '{name}' before the loop (in __init__ for an "
                           "attribute) and increment it every update")
        return Finding(NOT_CATALOGUED, False, f"{failed}: '{name}' is not a schedule's counter")

    dtype, device = _DTYPE.search(text), _DEVICE.search(text)
    if dtype or device:
        what = "dtype" if dtype else "device"
        if optimizer is not None or (model is not None and batch is not None):
            found = []
            if optimizer is not None:
                found.append(optimizer_state_device(optimizer))
            if model is not None and batch is not None:
                found.append(batch_matches(batch, model))
            bad = [f for f in found if not f.ok]
            if bad:
                return Finding(bad[0].issue, False, f"{failed}; {bad[0].measured}", bad[0].hint)
        if _OPTIMIZER_FRAME.search(text):
            return Finding("optimizer_binding", False,
                           f"{failed} (raised inside the optimizer's step)",
                           f"the optimizer's state is on another {what} than its parameters: "
                           "move the model before creating the optimizer, or recreate it "
                           "after .to()")
        return Finding("batch_to_device", False, failed,
                       f"convert the batch to the model's {what}: torch.as_tensor(x, "
                       "device=model_device, dtype=model_dtype) (numpy's default is float64)")
    return Finding(NOT_CATALOGUED, False, f"{failed}: not one of the catalogue's issues")
