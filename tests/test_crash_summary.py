"""The crash summary keeps the frames of the mplearn package, wherever the checkout lives.

A clone is a folder named ``mplearn``, and the README puts its virtual environment inside it:
torch's frames then have ``mplearn`` in their paths too, and must not push the package's own
frames out of the summary.
"""

from __future__ import annotations

from pathlib import Path

import mplearn
from mplearn.lab.experiments import summarize_traceback

PACKAGE = Path(mplearn.__file__).resolve().parent


def _traceback(checkout: str, venv: str) -> str:
    """A learner's crash as Python prints it: two frames of the kit, then many of torch."""
    frames = [
        (f"{checkout}/mplearn/core/workers.py", 88, "worker_main", "target(*args)"),
        (f"{checkout}/mplearn/core/learner.py", 160, "update",
         "loss, grad_norm, mean_q = self.train_step(batch)"),
    ]
    torch_dir = f"{venv}/lib/python3.11/site-packages/torch"
    for i in range(12):  # more than the summary keeps
        frames.append((f"{torch_dir}/nn/modules/module.py", 1700 + i, "_call_impl",
                       "return forward_call(*args, **kwargs)"))
    lines = ["Traceback (most recent call last):"]
    for path, line, func, source in frames:
        lines += [f'  File "{path}", line {line}, in {func}', f"    {source}"]
    lines.append("RuntimeError: mat1 and mat2 shapes cannot be multiplied (64x4 and 8x16)")
    return "\n".join(lines)


def test_a_venv_inside_a_folder_named_mplearn_keeps_the_learner_frame():
    error, summary = summarize_traceback(_traceback("/x/mplearn", "/x/mplearn/.venv"))
    assert error.startswith("RuntimeError: mat1 and mat2")
    assert 'File "/x/mplearn/mplearn/core/learner.py", line 160, in update' in summary
    assert "self.train_step(batch)" in summary
    assert "site-packages" not in summary  # torch's frames are not the kit's
    assert summary.splitlines()[-1] == error


def test_an_installed_kit_keeps_its_frames_and_drops_torch():
    site = "/opt/venv/lib/python3.11/site-packages"
    _, summary = summarize_traceback(_traceback(site, "/opt/venv"))
    assert f'File "{site}/mplearn/core/learner.py", line 160' in summary
    assert "torch" not in summary


def test_this_checkout_frames_are_kept():
    text = _traceback(str(PACKAGE.parent), str(PACKAGE.parent / ".venv"))
    _, summary = summarize_traceback(text)
    assert str(PACKAGE / "core" / "learner.py") in summary
    assert "_call_impl" not in summary


def test_a_traceback_without_kit_frames_keeps_its_last_lines():
    text = _traceback("/elsewhere", "/x/mplearn/.venv").replace("/elsewhere/mplearn/", "/e/")
    error, summary = summarize_traceback(text)
    assert "module.py" in summary and summary.splitlines()[-1] == error
