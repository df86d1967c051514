"""Command line: ``python -m mplearn run [...]``.

A bad argument or config value exits 2 with a one-line message naming it, without a traceback.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from mplearn.core.config import MODES, STEPS_MAX, Config, shown
from mplearn.core.fixes import Fixes

DESCRIPTION = """\
mplearn: a teaching and diagnostics kit for multiprocess actor/learner deep RL (IQN in
PyTorch). Every learning issue of the actor/learner system is a switch: train with any of them
switched back on, run an issue's mechanism experiment, read the catalogue, benchmark, and
regenerate the measured results in data/."""

EPILOG = """\
examples:
  python -m mplearn run --steps 20000                  train on CartPole, every fix on
  python -m mplearn run --broken target_sync           the same with one issue switched on
  python -m mplearn issues                              the learning-issue catalogue
  python -m mplearn check step_counter                  an issue's mechanism, fix on and off
  python -m mplearn COMMAND --help                      a command's options"""

# The run flags and the Config fields they set: a config error names the flag the user typed.
FLAGS = {"env_id": "--env", "n_agents": "--agents", "mode": "--mode",
         "total_env_steps": "--steps", "seed": "--seed", "learning_starts": "--learning-starts",
         "device": "--device", "fixes": "--broken"}


class _DefaultsHelp(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default, unless it has none worth showing (no value, off, empty)."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or action.default == []:
            return action.help
        return super()._get_help_string(action)


class UsageError(Exception):
    """A user error: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line too (``error: ...``, exit status 2); its
    subparsers are of the same class."""

    def error(self, message: str):
        self.exit(2, f"error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="python -m mplearn", description=DESCRIPTION, epilog=EPILOG,
                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train the actor/learner system and print a summary",
                         description="Train the actor/learner system (every fix on unless "
                         "--broken names issues) and print a summary per agent.",
                         formatter_class=_DefaultsHelp)
    run.add_argument("--env", default=Config.env_id, help="gymnasium id (Box obs, Discrete act)")
    run.add_argument("--agents", type=int, default=Config.n_agents,
                     help="independent agents, each an actor and a learner with its own replay")
    run.add_argument("--mode", choices=MODES, default=Config.mode,
                     help="inline: one process; lockstep: actor and learner processes taking "
                          "turns; async: both processes running freely")
    run.add_argument("--steps", type=int, default=Config.total_env_steps,
                     help="env steps per agent")
    run.add_argument("--seed", type=int, default=Config.seed,
                     help="seeds the environments, the initial weights and the sampling; the "
                          "same seed with and without --broken gives a paired comparison")
    run.add_argument("--learning-starts", type=int, default=Config.learning_starts,
                     help="env steps per agent before the first update (< --steps)")
    run.add_argument("--device", default=Config.device, help="auto|cpu|cuda|mps (the learners)")
    run.add_argument("--broken", nargs="*", default=[], metavar="NAME",
                     help="learning issues to switch back on, by name (python -m mplearn "
                          "issues); default: none, every fix on")
    run.add_argument("--out", type=Path, metavar="DIR",
                     help="write DIR/result.json (checked before the run; a second run given "
                          "the same DIR fails at once)")
    run.add_argument("--force", action="store_true",
                     help="with --out: replace a result.json already there")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    check = sub.add_parser("check", help="an issue's mechanism experiment, fix on and off")
    check.add_argument("name", help="a learning issue (python -m mplearn issues)")
    issues = sub.add_parser("issues", help="the learning-issue catalogue")
    issues.add_argument("--json", action="store_true", help="machine-readable")
    issues.add_argument("--data", type=Path, default=Path("data"),
                        help="where the verdicts' runs are (default: data)")
    bench = sub.add_parser("bench", help="run a benchmark and print one JSON object")
    bench.add_argument("name", help="throughput|solve|publish|gpu|notebooks|profile|peers")
    bench.add_argument("options", nargs=argparse.REMAINDER,
                       help="the benchmark's own options (bench NAME --help)")
    rep = sub.add_parser("reproduce", help="regenerate the per-issue results in data/")
    rep.add_argument("names", nargs="*", metavar="NAME", help="issues (default: all)")
    rep.add_argument("--seeds", type=int, help="seeds per variant (default: the scenario's)")
    rep.add_argument("--steps", type=int, help="env steps per run (default: the scenario's)")
    rep.add_argument("--jobs", type=int,
                     help="cores to keep busy (default: all; with --scheduler: its workers)")
    rep.add_argument("--scheduler", metavar="ADDRESS",
                     help="run on this Dask cluster (default: a local one, a worker per core)")
    rep.add_argument("--out", type=Path, default=Path("data"), help="default: data")
    rep.add_argument("--budget-s", type=float, help="start no run that would end later")
    rep.add_argument("--quiet", action="store_true", help="no progress bar")
    rep.add_argument("--tables-only", action="store_true",
                     help="run nothing: regenerate the README's verdict table from --out")
    return ap


def _config(args: argparse.Namespace) -> Config:
    steps, starts = args.steps, args.learning_starts
    if steps > 0 and starts >= 0 and starts >= steps:  # else the field checks name the flag
        raise UsageError(f"--steps: must be > learning_starts (--learning-starts "
                         f"{shown(starts)}), got {shown(steps)}: the first env steps up to "
                         "--learning-starts only fill the replay, so no update could run")
    return Config(env_id=args.env, n_agents=args.agents, mode=args.mode,
                  total_env_steps=args.steps, seed=args.seed, device=args.device,
                  learning_starts=args.learning_starts, fixes=Fixes().without(*args.broken))


def _claim_out(args: argparse.Namespace):
    """--out checked and claimed now: a result that could not be written must not cost a run,
    and two runs given the same DIR must not both run (see lab/results.py)."""
    from mplearn.lab.results import ResultFile, ResultFileError

    if args.out is None:
        if args.force:
            raise UsageError("--force: replaces DIR/result.json, so it needs --out DIR")
        return None
    try:
        return ResultFile(args.out, args.force).claim()
    except ResultFileError as e:
        raise UsageError(f"--out: {e}") from None


def cmd_run(args: argparse.Namespace) -> int:
    from mplearn.core.system import System

    try:
        config = _config(args)
        # Checks the environment, the device and what the run costs before any process starts.
        system = System(config)
    except ValueError as e:  # ConfigError and the environment/device/resource checks
        raise UsageError(_flag_named(str(e))) from None
    out = _claim_out(args)
    try:
        return _run(args, config, system, out)
    finally:
        if out is not None:
            out.release()  # a failed or interrupted run: the folder is free for the next


def _run(args: argparse.Namespace, config: Config, system, out) -> int:
    from tqdm import tqdm

    from mplearn.core.system import System

    if config.fixes.broken():
        print(_broken_note(args, config.fixes.broken()), flush=True)
    # The bar counts the env steps of all agents together from the start of the workers, and
    # shows the average rate (smoothing 0): the summary's env steps/s, measured the same way.
    total = config.total_env_steps * config.n_agents
    system.start()  # run() stops it, however it ends
    with tqdm(total=total, unit="step", desc=f"{config.mode}, {config.n_agents} agent(s)",
              smoothing=0, disable=args.quiet, file=sys.stderr) as bar:

        def progress(s: System) -> None:
            bar.update(sum(ch.env_steps.value for ch in s.channels) - bar.n)
            eps = s.episodes(0)
            if eps:
                bar.set_postfix(ret=f"{sum(e['ret'] for e in eps[-20:]) / len(eps[-20:]):.0f}",
                                upd=sum(s.updates), refresh=False)

        result = system.run(progress)
    print(result.table())
    print(_publishes_note(config))
    if out is not None:
        print(f"wrote {out.write(result.to_dict())}")
    return 0


def _flag_named(message: str) -> str:
    """``field: ...`` -> ``--flag (field): ...`` for the fields a run flag sets."""
    field, sep, rest = message.partition(":")
    return f"{FLAGS[field]} ({field}){sep}{rest}" if sep and field in FLAGS else message


def _broken_note(args: argparse.Namespace, broken: tuple[str, ...]) -> str:
    """Which issues this run switches on, and the runs to compare it with."""
    from mplearn.issues import issue

    lines = [f"broken: {name} ({issue(name).title}): expect {issue(name).symptom}"
             for name in broken]
    same = [f"{FLAGS[field]} {value}" for field, value in (
        ("env_id", args.env), ("n_agents", args.agents), ("mode", args.mode),
        ("total_env_steps", args.steps), ("seed", args.seed),
        ("learning_starts", args.learning_starts), ("device", args.device))
        if value != getattr(Config, field)]
    lines.append("compare with: " + " ".join(["python -m mplearn run", *same])
                 + "  (the same run, every fix on; one seed each, so a difference may be noise)")
    lines += [f"the mechanism alone: python -m mplearn check {name}" for name in broken]
    return "\n".join(lines)


def _publishes_note(config: Config) -> str:
    """What the publishes column counts on this run's learner path."""
    from mplearn.core.learner import resolve_device, resolve_path

    if resolve_path(config.learner_path, resolve_device(config.device)) == "in_place":
        return ("publishes: the learner trains the shared weights in place (on the cpu), so "
                "every update is a publish (a new weights version for the actor); "
                f"publish_interval ({config.publish_interval}) applies to the copy path")
    return (f"publishes: the learner trains a copy on {config.device} and publishes it every "
            f"{config.publish_interval} updates (publish_interval)")


def cmd_issues(args: argparse.Namespace) -> int:
    import json
    import textwrap

    from mplearn.issues import all_issues
    from mplearn.lab.verdict import issue_verdicts

    ISSUES = all_issues()
    found = {i.name: issue_verdicts(i.name, args.data) for i in ISSUES}  # from data/, measured

    if args.json:
        print(json.dumps([{**i.to_dict(), "verdicts": [v.to_dict() for v in found[i.name]]}
                          for i in ISSUES], indent=1))
        return 0
    for i in ISSUES:
        print(f"{i.name}: {i.title}  [verdict: {found[i.name].summary}]")
        for v in found[i.name]:
            print(textwrap.fill(str(v), 96, initial_indent=f"  {'verdict':>10}: ",
                                subsequent_indent=" " * 14))
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


def _readme_tables(out: Path) -> str:
    """Regenerate the README's verdict table when ``out`` is this checkout's data/ (a sweep
    elsewhere is not what the README describes); returns what was done, in words."""
    from mplearn.lab.verdict import write_readme

    repo = Path(__file__).resolve().parent.parent
    readme = repo / "README.md"
    if out.resolve() != (repo / "data").resolve() or not readme.exists():
        return f"README table not touched ({out} is not {repo / 'data'})"
    return f"README verdict table {'rewritten' if write_readme(readme, out) else 'unchanged'}"


def cmd_reproduce(args: argparse.Namespace) -> int:
    from mplearn.lab.experiments import SchedulerError, reproduce, select

    # 0 starts nothing and rewrites the manifests; nan fails the test too
    if args.budget_s is not None and not (0 <= args.budget_s < math.inf):
        raise UsageError(f"--budget-s: must be a number of seconds >= 0, got {args.budget_s}")
    if args.steps is not None and args.steps > STEPS_MAX:  # scaling a scenario would overflow
        raise UsageError(f"--steps: must be <= {STEPS_MAX} (2**48), got {shown(args.steps)}")
    if args.tables_only:
        if not args.out.is_dir():
            raise UsageError(f"out: {str(args.out)!r} is not a directory")
        print(_readme_tables(args.out))
        return 0
    try:
        select(args.names, args.steps, args.seeds)  # every name and config, before any run
        if args.jobs is not None and args.jobs <= 0:
            raise ValueError(f"jobs: must be > 0, got {args.jobs}")
    except ValueError as e:  # ConfigError too
        raise UsageError(str(e)) from None
    try:
        report = reproduce(args.names, args.steps, args.seeds, args.jobs, args.out,
                           progress=not args.quiet, budget_s=args.budget_s,
                           scheduler=args.scheduler)
    except SchedulerError as e:  # no Dask, or a scheduler that cannot be reached or used
        raise UsageError(str(e)) from None
    print(f"ran {report.ran} runs ({report.crashed} crashed), skipped {report.skipped} "
          f"already there, {report.unfinished} left unfinished; {report.wall_s:.0f} s; "
          f"manifests in {args.out}/")
    if report.speed:
        print(f"single_thread speed study on this machine: {report.speed}")
    print(_readme_tables(args.out))  # after the manifests: the table reads them
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
