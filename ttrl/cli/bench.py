"""``ttrl bench``: compare estimators on the same rollout groups with the metrics of docs/formats.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ttrl.cli.common import (
    ProgressBar, check_paths, load_cli_plugins, on_interrupt, parse_option_pairs, stdout_console, warn_line_errors,
)
from ttrl.core.config import ComponentSpec, RunConfig, load_run_config
from ttrl.core.errors import UserError
from ttrl.core.estimation import resolve
from ttrl.core.registry import ANSWERS, Registry
from ttrl.core.rollout_files import write_json_file
from ttrl.harness.builtin import builtin_dataset
from ttrl.harness.journal import journal_path
from ttrl.harness.plan import BenchPlan
from ttrl.harness.runner import DEFAULT_SHARD_SIZE, run_bench
from ttrl.harness.simulate import parse_sweep, settings_from_pairs
from ttrl.harness.sources import file_dataset, simulated_dataset


def per_estimator_options(pairs: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """``--option NAME.KEY=VALUE`` pairs grouped by NAME (an estimator name, alias or config label)."""
    grouped: dict[str, dict[str, Any]] = {}
    for key, value in parse_option_pairs(pairs).items():
        name, dot, option = key.rpartition(".")
        if not dot or not name or not option:
            raise UserError(
                f"bench --option {key}=... needs the estimator it is for: --option ESTIMATOR.KEY=VALUE, "
                "e.g. --option dare.alpha=0.3 (ESTIMATOR is a name, alias or config label)."
            )
        grouped.setdefault(name, {})[option] = value
    return grouped


def select_specs(config: RunConfig, estimators: str | None, registry: Registry,
                 cli_options: dict[str, dict[str, Any]] | None = None) -> list[ComponentSpec]:
    """Which estimator specs to bench (the merge rule of docs/bench.md).

    The config's ``estimators:`` list (or its single ``estimator:``) supplies options and labels.
    Without ``--estimators`` every config spec runs, or, with no config specs, every registered
    estimator with default options. With ``--estimators A,B`` each item selects the config specs
    whose ``label`` is that item or whose estimator is that name (alias-aware, so one name can pick
    several labelled option sets); an item no config spec matches runs with default options.
    """
    from_config = list(config.estimators)
    path_of = {id(s): ("estimators", i) for i, s in enumerate(from_config)}
    if not from_config and config.estimator is not None:
        from_config = [config.estimator]
        path_of = {id(config.estimator): ("estimator",)}

    def canonical(name: str) -> str | None:
        return registry.estimators.get(name).name if name in registry.estimators else None

    if estimators is None:
        chosen = from_config or [ComponentSpec(name=n) for n in registry.estimators.names()]
    else:
        items = [x.strip() for x in estimators.split(",") if x.strip()]
        if not items:
            raise UserError("--estimators is empty. Example: --estimators majority_vote,dare")
        chosen = []
        for item in items:
            matches = [s for s in from_config if s.label == item] or [
                s for s in from_config if canonical(item) is not None and canonical(s.name) == canonical(item)
            ]
            if not matches:
                # unknown names fail here, with "did you mean"; aliases become the canonical name
                matches = [ComponentSpec(name=registry.estimators.get(item).name)]
            chosen.extend(m for m in matches if all(m != c for c in chosen))
    for target, options in (cli_options or {}).items():
        hits = [i for i, s in enumerate(chosen) if s.label == target or (
            canonical(target) is not None and canonical(s.name) == canonical(target))]
        if not hits:
            names = ", ".join(s.label or s.name for s in chosen)
            raise UserError(f"--option {target}.…: {target!r} is not one of the estimators being benched ({names}).")
        for i in hits:
            old = chosen[i]
            chosen[i] = old.model_copy(update={"options": {**old.options, **options}})
            path_of[id(chosen[i])] = path_of.get(id(old), ())  # a bad config value still points at its line
    specs, seen = [], {}
    for spec in chosen:
        # options are checked here, where the config's file:line is still known
        resolve(registry.estimators, spec, locate=config.locate, path=path_of.get(id(spec), ()))
        label = spec.label or spec.name
        if label in seen:
            raise UserError(
                f"Estimator label {label!r} appears twice. To compare one estimator under several option "
                "sets, give each spec a distinct `label:` in the config's `estimators:` list."
            )
        seen[label] = spec
        specs.append(spec.model_copy(update={"label": label}))
    if not specs:
        raise UserError("No estimators to bench. Pass --estimators A,B or list them under `estimators:` in --config.")
    return specs


def _executor(workers: int | None, ray_address: str | None):
    if workers is not None and ray_address is not None:
        raise UserError("Choose one of --workers N and --ray [ADDRESS].")
    if ray_address is not None:
        from ttrl.harness.scaleout import RayExecutor

        return RayExecutor(ray_address)
    if workers is not None and workers != 1:
        from ttrl.harness.scaleout import ProcessExecutor

        return ProcessExecutor(workers)
    return None


def register(cli: click.Group) -> None:
    @cli.command()
    @click.option("--data", "data_path", type=click.Path(path_type=Path), help="Rollout file (JSONL). Default: the built-in set.")
    @click.option("--estimators", help="Comma-separated estimator names or config labels. Default: all config specs, else all registered.")
    @click.option("--config", "config_path", type=click.Path(path_type=Path), help="Run config (YAML) with an `estimators:` list of specs.")
    @click.option("--option", "option_pairs", multiple=True, metavar="ESTIMATOR.KEY=VALUE",
                  help="Option of one benched estimator, e.g. dare.alpha=0.3; repeatable.")
    @click.option("--output", "output_path", type=click.Path(path_type=Path), help="Results JSON (docs/formats.md).")
    @click.option("--report", "report_dir", type=click.Path(path_type=Path), help="Directory for report.md and PNG plots.")
    @click.option("--simulate", is_flag=True, help="Bench on seeded synthetic groups (knobs: --sim).")
    @click.option("--sim", "sim_pairs", multiple=True, metavar="KNOB=VALUE", help="Simulation knob, e.g. correlation=0.5; repeatable.")
    @click.option("--sweep", "sweep_spec", metavar="KNOB=START:STOP:COUNT", help="Rerun the simulation over a knob's values and plot.")
    @click.option("--workers", type=int, help="Local worker processes.")
    @click.option("--ray", "ray_address", is_flag=False, flag_value="local", default=None, metavar="[ADDRESS]",
                  help="Run shards on Ray: a cluster ADDRESS, or a local instance when none is given.")
    @click.option("--resume", is_flag=True, help="Finish an interrupted run with the same --output.")
    @click.option("--shard-size", default=DEFAULT_SHARD_SIZE, show_default=True, help="Groups per unit of work (and of --resume).")
    @click.option("--plugin", "plugin_modules", multiple=True, metavar="MODULE",
                  help="Extra plugin module to load (importable in workers too); repeatable.")
    @click.option("--strict", is_flag=True, help="Stop at the first malformed data line instead of skipping it.")
    def bench(data_path, estimators, option_pairs, config_path, output_path, report_dir, simulate, sim_pairs, sweep_spec,
              workers, ray_address, resume, shard_size, plugin_modules, strict) -> None:
        """Run several estimators on the same groups and compare label and reward quality.

        Metrics and the results JSON are described in docs/formats.md; selection rules, simulation
        knobs, scale-out and --resume in docs/bench.md.
        """
        if sweep_spec and report_dir is None:
            report_dir = Path("ttrl-bench-sweep")
        check_paths(inputs=[("--data", data_path), ("--config", config_path)],
                    files=[("--output", output_path)], folders=[("--report", report_dir)])
        if not sweep_spec:  # a sweep keeps no journal
            check_journal(output_path, resume)
        config = load_run_config(config_path) if config_path else RunConfig()
        recipe, plugins = load_cli_plugins(plugin_modules)
        registry = plugins.registry
        specs = select_specs(config, estimators, registry, per_estimator_options(option_pairs))
        plan = BenchPlan(
            specs=tuple(specs), config=config.model_dump(mode="json"), recipe=recipe,
            keep_details=report_dir is not None and sweep_spec is None,
        )
        if data_path is not None and (simulate or sweep_spec or sim_pairs):
            raise UserError("--data and --simulate/--sim/--sweep exclude each other: bench either a file or a simulation.")
        if sweep_spec:
            return _sweep(plan, sweep_spec, sim_pairs, output_path, report_dir, workers, ray_address, shard_size, resume)
        if simulate or sim_pairs:
            settings = settings_from_pairs(parse_option_pairs(sim_pairs))
            data = simulated_dataset(settings, note=f"Simulated groups ({settings.groups} x {settings.rollouts}, seed {settings.seed}).")
        elif data_path is not None:
            data, line_errors = file_dataset(data_path, strict=strict)
            warn_line_errors(line_errors, getattr(data, "empty", ()))
        else:
            data, _ = builtin_dataset()
        if data.note:
            click.echo(f"Note: {data.note}", err=True)
        if not len(data):
            raise UserError(f"{data.path} has no groups to bench.")
        saved = (f"Nothing was saved yet; run the command again (add --resume if {journal_path(output_path)} exists)."
                 if output_path else "Nothing was saved (no --output); run the command again.")
        with on_interrupt(saved), ProgressBar(len(data), "groups", "bench") as bar:
            outcome = run_bench(plan, data, executor=_executor(workers, ray_address), shard_size=shard_size,
                                output=output_path, resume=resume, on_progress=bar.advance)
        return _finish(outcome, output_path, report_dir, needs_answers(specs, registry))


def needs_answers(specs, registry: Registry) -> set[str]:
    """Labels of the estimators that need answer extraction and clustering (what they cost in training)."""
    labels = set()
    for spec in specs:
        info = registry.estimators.get(spec.name)
        options = info.options.model_validate(spec.options) if info.options else None
        if ANSWERS in info.required_inputs(options):
            labels.add(spec.label or spec.name)
    return labels


def check_journal(output_path: Path | None, resume: bool) -> None:
    """Before any work: a rerun must not silently overwrite an unfinished run's journal, and a
    corrupt journal line under --resume is a user error, not a traceback."""
    if output_path is None:
        return
    journal = journal_path(output_path)
    if not journal.exists():
        return
    if not resume:
        raise UserError(
            f"{journal} holds the results of an unfinished run with --output {output_path}. "
            f"Add --resume to finish that run, or delete {journal} to start over."
        )
    with journal.open("rb") as handle:
        for lineno, raw in enumerate(handle, start=1):
            if not raw.endswith(b"\n"):
                break  # the line an interruption cut short: --resume drops it
            try:
                item = json.loads(raw)
            except (ValueError, RecursionError):
                item = None
            # line 1 is the header (its fingerprint is the runner's check); every other line one shard job
            shaped = isinstance(item, dict) and (lineno == 1 or (
                isinstance(item.get("shard"), int) and isinstance(item.get("estimators"), dict)))
            if not shaped:
                raise UserError(
                    f"{journal}:{lineno}: this line of the unfinished run's journal is corrupt (not a shard "
                    f"result). Delete that line to recompute its shard with --resume, or delete {journal} to start over."
                )


def _finish(outcome, output_path: Path | None, report_dir: Path | None, answers: set[str] = frozenset()) -> int:
    from ttrl.harness.report import rich_table, write_report

    results = outcome.results
    console = stdout_console()
    console.print(rich_table(results, needs_answers=answers, width=console.width))
    failures = 0
    for entry in results["estimators"]:
        label = entry.get("label") or entry["name"]
        if entry.get("skipped"):
            click.echo(f"{label}: {entry['skipped']}", err=True)
        for err in entry["errors"]:
            click.echo(f"Error: estimator {label!r} failed on group {err['group']!r}: {err['error']}", err=True)
        if entry["failed_groups"] > len(entry["errors"]):
            click.echo(f"Error: ... {label!r} failed on {entry['failed_groups']} group(s) in all.", err=True)
        failures += entry["failed_groups"]
    if output_path is not None:
        write_json_file(output_path, results)
        journal_path(output_path).unlink(missing_ok=True)
        click.echo(f"Wrote {output_path}", err=True)
    if report_dir is not None:
        done = f"The results were written to {output_path}; " if output_path else "The results were printed; "
        with on_interrupt(done + f"the report in {report_dir} is not complete: run the command again to make it."):
            click.echo(f"Wrote {write_report(results, outcome.details, report_dir, answers)}", err=True)
    # like `ttrl estimate`: results are complete, but a failing estimator is a bug worth a non-zero status
    return 1 if failures else 0


def _sweep(plan, sweep_spec, sim_pairs, output_path, report_dir, workers, ray_address, shard_size, resume) -> int:
    from ttrl.harness.report import sweep_tables, write_sweep_report

    if resume:
        raise UserError("--resume does not apply to --sweep: a sweep's runs are short; rerun it.")
    knob, values = parse_sweep(sweep_spec)
    base = settings_from_pairs(parse_option_pairs(sim_pairs))
    runs = []
    with on_interrupt("Nothing was saved: a sweep is written when all its runs are done; run it again."), \
            ProgressBar(base.groups * len(values), "groups", f"sweep {knob}") as bar:
        for value in values:
            settings = settings_from_pairs({knob: value}, base)
            outcome = run_bench(plan, simulated_dataset(settings), executor=_executor(workers, ray_address),
                                shard_size=shard_size, on_progress=bar.advance)
            runs.append({"value": value, "results": outcome.results})
    sweep = {"sweep": {"knob": knob, "values": values, "simulation": base.model_dump()}, "runs": runs}
    console = stdout_console()
    console.print(sweep_tables(sweep, f"ttrl bench sweep over {knob} (simulation, {base.groups} x {base.rollouts}, "
                               f"seed {base.seed})", width=console.width))
    click.echo(f"Wrote {write_sweep_report(sweep, report_dir)} and its plot", err=True)
    if output_path is not None:
        write_json_file(output_path, sweep)
        click.echo(f"Wrote {output_path}", err=True)
    return 0
