"""Command line: ``python -m mplearn run [...]``.

A bad argument or config value exits 2 with a one-line message naming it, without a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from mplearn.core.config import MODES, Config
from mplearn.core.fixes import Fixes


class UsageError(Exception):
    """A user error: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line too (``error: ...``, exit status 2); its
    subparsers are of the same class."""

    def error(self, message: str):
        self.exit(2, f"error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="python -m mplearn", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train the actor/learner system and print a summary")
    run.add_argument("--env", default=Config.env_id, help="gymnasium id (Box obs, Discrete act)")
    run.add_argument("--agents", type=int, default=Config.n_agents)
    run.add_argument("--mode", choices=MODES, default=Config.mode)
    run.add_argument("--steps", type=int, default=Config.total_env_steps, help="per agent")
    run.add_argument("--seed", type=int, default=Config.seed)
    run.add_argument("--learning-starts", type=int, default=Config.learning_starts,
                     help="env steps per agent before the first update (< --steps)")
    run.add_argument("--device", default=Config.device, help="auto|cpu|cuda|mps (the learners)")
    run.add_argument("--broken", nargs="*", default=[], metavar="NAME",
                     help="learning issues to switch on (see the Fixes dataclass)")
    run.add_argument("--out", type=Path, help="write DIR/result.json")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    check = sub.add_parser("check", help="an issue's mechanism experiment, fix on and off")
    check.add_argument("name", help="a learning issue (python -m mplearn issues)")
    issues = sub.add_parser("issues", help="the learning-issue catalogue")
    issues.add_argument("--json", action="store_true", help="machine-readable")
    bench = sub.add_parser("bench", help="run a benchmark and print one JSON object")
    bench.add_argument("name", help="throughput|solve|publish|gpu|notebooks")
    bench.add_argument("options", nargs=argparse.REMAINDER,
                       help="the benchmark's own options (bench NAME --help)")
    rep = sub.add_parser("reproduce", help="regenerate the per-issue results in data/")
    rep.add_argument("names", nargs="*", metavar="NAME", help="issues (default: all)")
    rep.add_argument("--seeds", type=int, help="seeds per variant (default: the scenario's)")
    rep.add_argument("--steps", type=int, help="env steps per run (default: the scenario's)")
    rep.add_argument("--jobs", type=int, help="cores to use (default: all)")
    rep.add_argument("--out", type=Path, default=Path("data"), help="default: data")
    rep.add_argument("--budget-s", type=float, help="start no run that would end later")
    rep.add_argument("--quiet", action="store_true", help="no progress bar")
    return ap


def _config(args: argparse.Namespace) -> Config:
    return Config(env_id=args.env, n_agents=args.agents, mode=args.mode,
                  total_env_steps=args.steps, seed=args.seed, device=args.device,
                  learning_starts=args.learning_starts, fixes=Fixes().without(*args.broken))


def _out_dir(out: Path) -> None:
    """Create --out now: a path that cannot hold result.json must fail before the run."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"out: {str(out)!r} exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"out: cannot create directory {str(out)!r}: {e.strerror}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise UsageError(f"out: directory {str(out)!r} is not writable")


def cmd_run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from mplearn.core.system import System

    try:
        config = _config(args)
        system = System(config)  # checks the environment and device before any process starts
    except ValueError as e:  # ConfigError and the environment/device checks
        raise UsageError(str(e)) from None
    if args.out is not None:
        _out_dir(args.out)
    total = config.total_env_steps
    with tqdm(total=total, unit="step", desc=f"{config.mode} x{config.n_agents}",
              disable=args.quiet, file=sys.stderr) as bar:

        def progress(s: System) -> None:
            bar.update(s.env_steps - bar.n)
            eps = s.episodes(0)
            if eps:
                bar.set_postfix(ret=f"{sum(e['ret'] for e in eps[-20:]) / len(eps[-20:]):.0f}",
                                upd=s.updates[0], refresh=False)

        result = system.run(progress)
    print(result.table())
    if args.out is not None:
        path = result.save(args.out / "result.json")
        print(f"wrote {path}")
    return 0


def cmd_issues(args: argparse.Namespace) -> int:
    import json
    import textwrap

    from mplearn.issues import all_issues

    ISSUES = all_issues()

    if args.json:
        print(json.dumps([i.to_dict() for i in ISSUES], indent=1))
        return 0
    for i in ISSUES:
        print(f"{i.name}: {i.title}  [verdict: {i.verdict or 'not yet measured'}]")
        for label, text in (("claim", i.claim or "(beyond the review)"),
                            ("mechanism", i.mechanism), ("bites", i.where),
                            ("symptom", i.symptom), ("diagnostic", i.diagnostic),
                            ("notebook", i.notebook)):
            print(textwrap.fill(text, 96, initial_indent=f"  {label:>10}: ",
                                subsequent_indent=" " * 14))
        print()
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from mplearn.issues import NAMES as CHECKS
    from mplearn.issues import run_check

    if args.name not in CHECKS:
        raise UsageError(f"name: no mechanism check for {args.name!r}; "
                         f"available: {', '.join(sorted(CHECKS))}")
    result = run_check(args.name)
    print(result)
    return 0 if result.passed else 1


def cmd_bench(args: argparse.Namespace) -> int:
    import json

    from mplearn.bench import build

    try:
        job = build(args.name, args.options)  # checks every option before anything runs
    except ValueError as e:  # an unknown name, a bad option value or config field
        raise UsageError(str(e)) from None
    print(json.dumps(job()))
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    from mplearn.lab.experiments import reproduce, select

    try:
        select(args.names, args.steps, args.seeds)  # every name and config, before any run
        if args.jobs is not None and args.jobs <= 0:
            raise ValueError(f"jobs: must be > 0, got {args.jobs}")
    except ValueError as e:  # ConfigError too
        raise UsageError(str(e)) from None
    report = reproduce(args.names, args.steps, args.seeds, args.jobs, args.out,
                       progress=not args.quiet, budget_s=args.budget_s)
    print(f"ran {report.ran} runs ({report.crashed} crashed), skipped {report.skipped} "
          f"already there, {report.unfinished} left unfinished; {report.wall_s:.0f} s; "
          f"manifests in {args.out}/")
    return 0 if report.unfinished == 0 else 1


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        commands = {"run": cmd_run, "issues": cmd_issues, "check": cmd_check,
                    "bench": cmd_bench, "reproduce": cmd_reproduce}
        return commands[args.command](args)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `python -m mplearn issues | head`: the reader left; fine
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
