"""The ``deadcheck`` command line: a thin layer over the library.

Each command parses its options, calls the library (``load_target``,
``scan``, ``render``, ``swap``), and maps failures to the documented exit
codes: 0 done, 1 findings at or above ``--fail-on``, 2 bad usage or input
(one line, no traceback), 3 the user's model failed (its own traceback).
torch is imported inside the commands so that ``--help`` answers at once.
"""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from deadcheck.core.errors import (
    EXIT_FINDINGS,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    DeadcheckError,
    InputError,
    ModelError,
    Stage,
)
from deadcheck.core.findings import SEVERITIES
from deadcheck.core.formats import FORMATS
from deadcheck.core.options import ACTIVATIONS
from deadcheck.core.progress import ProgressLine
from deadcheck.core.thresholds import Thresholds
from deadcheck.core.version import __version__

F = TypeVar("F", bound=Callable[..., Any])

_PACKAGE_DIR = str(Path(__file__).resolve().parent)


def _user_frames(error: BaseException) -> str:
    """The traceback of the user's error without deadcheck's and torch's module-call frames."""
    lines = traceback.format_exception(type(error), error, error.__traceback__)
    keep: list[str] = []
    for line in lines:
        if line.startswith('  File "') and (
            _PACKAGE_DIR in line
            or f"{os.sep}torch{os.sep}nn{os.sep}modules{os.sep}module.py" in line
        ):
            continue
        keep.append(line)
    return "".join(keep)


def _has_own_frames(frames: str) -> bool:
    """Whether a traceback passes through the user's files, not only installed packages."""
    files = [line for line in frames.splitlines() if line.startswith('  File "')]
    installed = ("site-packages", "dist-packages", f"{os.sep}lib{os.sep}python")
    return any(not any(part in line for part in installed) for line in files)


def _handle_errors(func: F) -> F:
    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ModelError as error:
            frames = _user_frames(error.original)
            whose = "your code" if _has_own_frames(frames) else "the model's library code"
            click.echo(
                f"deadcheck: {whose} raised an error while {error.where} "
                f"(traceback from {whose} follows)",
                err=True,
            )
            click.echo(frames.rstrip(), err=True)
            if error.hint:
                click.echo(f"deadcheck: hint: {error.hint}", err=True)
            sys.exit(error.exit_code)
        except DeadcheckError as error:  # unusable input, a refused recording or swap
            text = error.cli_message() if isinstance(error, InputError) else str(error)
            click.echo(f"deadcheck: error: {text}", err=True)
            sys.exit(error.exit_code)

    return wrapper  # type: ignore[return-value]


# Click 8.2+ shows the group's help as an error when no command is given.
_NO_ARGS_IS_HELP: Any = getattr(click.exceptions, "NoArgsIsHelpError", ())


class _Group(click.Group):
    """Click's group, with usage errors as the documented one line and exit status 2.

    Click prints a three-line usage block for a bad option value; deadcheck
    prints one line that names the option and its valid choices.
    """

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        try:
            code = super().main(*args, **kwargs)
        except _NO_ARGS_IS_HELP as error:
            click.echo(error.format_message(), err=True)
            sys.exit(EXIT_USAGE)
        except click.UsageError as error:
            where = f" (see {error.ctx.command_path} --help)" if error.ctx else ""
            click.echo(f"deadcheck: error: {error.format_message()}{where}", err=True)
            sys.exit(EXIT_USAGE)
        except (click.Abort, KeyboardInterrupt):
            click.echo("deadcheck: interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except click.ClickException as error:
            click.echo(f"deadcheck: error: {error.format_message()}", err=True)
            sys.exit(error.exit_code)
        sys.exit(code if isinstance(code, int) else 0)


def _set_quiet(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        ctx.meta["deadcheck.quiet"] = True


#: ``--quiet``: no notes, progress or "wrote" lines on stderr; errors still print.
_QUIET = click.option(
    "--quiet",
    "-q",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_set_quiet,
    help="Print no notes or progress on stderr (errors still print).",
)


def _quiet() -> bool:
    ctx = click.get_current_context(silent=True)
    return bool(ctx is not None and ctx.meta.get("deadcheck.quiet"))


def _note(text: str) -> None:
    """A line on stderr for the user (a note, a file written), unless --quiet."""
    if not _quiet():
        click.echo(text, err=True)


def _input_options(func: F) -> F:
    """The options that say which model to load and what to feed it (scan and swap)."""
    options = [
        click.argument("target"),
        _QUIET,
        click.option(
            "--weights",
            multiple=True,
            help="Weights to load: a torch or safetensors file, a save_pretrained folder, or "
            "a torchvision weight name (DEFAULT); for scan, a glob or repeated: a series.",
        ),
        click.option(
            "--plan",
            type=click.Path(dir_okay=False),
            help="Swap or prune plan to apply before loading --weights.",
        ),
        click.option(
            "--unsafe-pickle",
            is_flag=True,
            help="Allow files that need pickled code (--weights, or a torch.save(model) "
            "TARGET): runs code from the file.",
        ),
        click.option(
            "--allow-download",
            is_flag=True,
            help="hf:NAME: let transformers download what the local cache lacks.",
        ),
        click.option(
            "--data",
            type=click.Path(exists=False),
            help="Real inputs: an image folder, a tensor file (.pt, .npy, .safetensors), or "
            "a text file for hf: targets.",
        ),
        click.option(
            "--batch-size",
            type=click.IntRange(min=1),
            default=8,
            show_default=True,
            help="--data: samples per batch.",
        ),
        click.option(
            "--image-size",
            type=click.IntRange(min=1),
            help="--data images: resize and crop to this [default: the model's own, else 224].",
        ),
        click.option(
            "--seq-len",
            type=click.IntRange(min=1),
            help="--data text: tokens per sample [default: 128, at most the model's positions].",
        ),
        click.option("--input-shape", help="Random inputs of this shape, e.g. 8,3,224,224."),
        click.option(
            "--input-dtype",
            type=click.Choice(["float", "long"]),
            help="Random inputs: float (normal) or long (token ids, below --vocab) "
            "[default: long for hf: targets].",
        ),
        click.option(
            "--vocab",
            type=click.IntRange(min=1),
            help="Random token ids are below this [default: from the config or first Embedding].",
        ),
        click.option(
            "--batches", type=int, help="Number of batches to feed [default: all, or 4 random]."
        ),
        click.option(
            "--seed",
            type=int,
            default=0,
            show_default=True,
            help="Seed for random inputs and random initial weights.",
        ),
        click.option("--device", help="cpu, cuda, cuda:1, ... [default: the model's own]."),
        click.option("--train", is_flag=True, help="Scan in training mode (default: eval mode)."),
        click.option(
            "--unit-axis",
            "unit_axis",
            multiple=True,
            metavar="SITE=AXIS",
            help="Override the unit axis of a site (repeatable).",
        ),
        click.option(
            "--batch-axis",
            type=int,
            help="Axis of the input that holds the samples [default: 0; 1 for (T, N, E)].",
        ),
        click.option(
            "--activations",
            type=click.Choice(ACTIVATIONS),
            default="relu",
            show_default=True,
            help="relu: the ReLU family; all: also GELU, SiLU, Tanh, ... (dormant statistics).",
        ),
        click.option(
            "--dormant",
            "dormant",
            type=float,
            metavar="TAU",
            help="A unit is dormant at score <= TAU [default: 0.1, as ReDo].",
        ),
        click.option(
            "--dormant-sums/--no-dormant-sums",
            default=True,
            show_default=True,
            help="Sum each unit's |output| for its dormant score (in the counting read).",
        ),
        click.option(
            "--gradients",
            is_flag=True,
            help="Also record the gradient reaching each unit (needs loss(output, batch) "
            "in the target file).",
        ),
        click.option(
            "--margins/--no-margins",
            default=True,
            show_default=True,
            help="Keep each unit's largest input: how far a dead unit is from firing.",
        ),
        click.option(
            "--dying",
            type=float,
            default=Thresholds.dying,
            show_default=True,
            help="Dead share at which a layer is dying.",
        ),
        click.option(
            "--near-linear",
            type=float,
            default=Thresholds.near_linear,
            show_default=True,
            help="Band around 1 in which a slope is near-linear.",
        ),
        click.option(
            "--tiny-slope",
            type=float,
            default=Thresholds.tiny_slope,
            show_default=True,
            help="Slopes below this are leaky in name only.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _scan_kwargs(
    *,
    plan: str | None,
    unsafe_pickle: bool,
    allow_download: bool,
    data: str | None,
    batch_size: int,
    image_size: int | None,
    seq_len: int | None,
    input_dtype: str | None,
    vocab: int | None,
    input_shape: str | None,
    batches: int | None,
    seed: int,
    device: str | None,
    train: bool,
    unit_axis: tuple[str, ...],
    batch_axis: int | None,
    activations: str,
    dormant: float | None,
    dormant_sums: bool,
    margins: bool,
    gradients: bool,
    dying: float,
    near_linear: float,
    tiny_slope: float,
) -> dict[str, Any]:
    """The arguments of :func:`~deadcheck.workflows.scanning.scan_target` the options stand for."""
    from deadcheck.workflows.loading import parse_unit_axes

    return {
        "plan": plan,
        "allow_pickle": unsafe_pickle,
        "allow_download": allow_download,
        "data": data,
        "batch_size": batch_size,
        "image_size": image_size,
        "seq_len": seq_len,
        "input_dtype": input_dtype,
        "vocab": vocab,
        "input_shape": input_shape,
        "batches": batches,
        "seed": seed,
        "device": device,
        "train": train,
        "unit_axis": parse_unit_axes(unit_axis),
        "batch_axis": batch_axis,
        "thresholds": Thresholds(
            dying=dying,
            near_linear=near_linear,
            tiny_slope=tiny_slope,
            dormant=Thresholds.dormant if dormant is None else dormant,
        ),
        "activations": activations,
        "dormant_sums": dormant_sums or dormant is not None,
        "margins": margins,
        "gradients": gradients,
    }


def _one(weights: tuple[str, ...]) -> str | None:
    """The one --weights a command takes (scan alone takes a series)."""
    if not weights:
        return None
    from deadcheck.workflows.series import expand_checkpoints

    found = expand_checkpoints(weights) if _is_series(weights) else list(weights)
    if len(found) > 1:
        raise InputError(
            f"--weights: this command takes one checkpoint, got {len(found)} (scan takes a series)"
        )
    return found[0]


def _is_series(weights: tuple[str, ...]) -> bool:
    import glob

    return len(weights) > 1 or any(glob.has_magic(w) for w in weights)


def _run_scan(
    target_spec: str,
    *,
    weights: tuple[str, ...],
    runner: Callable[..., Any] | None = None,
    extra: dict[str, Any] | None = None,
    **options: Any,
) -> Any:
    """:func:`~deadcheck.workflows.scanning.scan_target` with the terminal's progress and notes.

    ``runner`` is another workflow that scans first (``prune_target``), given
    ``extra`` keywords too; its result's ``scan`` is the scan.
    """
    from deadcheck.recording.distributed import init_from_env
    from deadcheck.workflows.scanning import scan_target

    runner = runner or scan_target

    kwargs = _scan_kwargs(**options)
    if init_from_env():  # under torchrun
        import torch.distributed as dist

        # Shut down cleanly on every rank, or gloo aborts the process at exit.
        click.get_current_context().call_on_close(dist.destroy_process_group)
    batches = kwargs["batches"]
    input_shape = kwargs["input_shape"]
    progress = ProgressLine(batches, enabled=sys.stderr.isatty() and not _quiet())
    try:
        with _user_prints_to_stderr():
            done = runner(
                target_spec, weights=_one(weights), progress=progress, **kwargs, **(extra or {})
            )
    except ModelError as error:
        if error.stage is Stage.FORWARD:
            error.hint = "; ".join(filter(None, (error.hint, _origin(target_spec, input_shape))))
        raise
    finally:
        progress.close()
    scanned = getattr(done, "scan", done)
    if scanned.inputs:
        _note(f"deadcheck: fed {scanned.inputs}")
    for note in scanned.notes:
        _note(f"deadcheck: note: {note}")
    if scanned.asked is not None and 0 < scanned.fed < scanned.asked:
        _note(
            f"deadcheck: note: --batches {batches} asked for more than {scanned.target.name} "
            f"gives: fed {scanned.fed}"
        )
    return done


def _user_prints_to_stderr() -> contextlib.AbstractContextManager[Any]:
    """While the user's code runs, its prints go to stderr: stdout holds the report alone."""
    return contextlib.redirect_stdout(sys.stderr)


def _interrupted_gate() -> NoReturn:
    """An interrupted scan judged part of the data: it never passes ``--fail-on``."""
    click.echo(
        "deadcheck: error: the scan was interrupted; a partial scan cannot pass --fail-on",
        err=True,
    )
    sys.exit(EXIT_INTERRUPTED)


def _origin(target_spec: str, input_shape: str | None) -> str:
    """Where the inputs of a failed forward pass came from, for the hint."""
    if input_shape is not None:
        return (
            f"the inputs are random tensors of shape {input_shape} from --input-shape; "
            "pass the shape the model takes"
        )
    return f"the batches come from {target_spec}"


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="deadcheck")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Find dead and dying ReLU units in a PyTorch model, and repair them.

    Defaults for any option may be set in [tool.deadcheck] of the project's
    pyproject.toml (found from the working directory up); the command line wins.
    """
    from deadcheck.core.project import find_pyproject, project_settings

    path = find_pyproject()
    if path is None or ctx.invoked_subcommand is None:
        return
    try:
        settings = project_settings(path)
    except InputError as error:
        raise click.UsageError(str(error)) from None
    command = main.get_command(ctx, ctx.invoked_subcommand)
    if command is None:
        return
    names = {p.name for p in command.params if isinstance(p, click.Option)}
    known = {p.name for c in main.commands.values() for p in c.params}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise click.UsageError(
            f"{path}: [tool.deadcheck] has {unknown[0].replace('_', '-')!r}, "
            "which is no deadcheck option"
        )
    ctx.default_map = {ctx.invoked_subcommand: {k: v for k, v in settings.items() if k in names}}


@main.command("scan")
@_input_options
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="table",
    show_default=True,
    help="Report format.",
)
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False), help="Write the report here ('-': stdout)."
)
@click.option(
    "--tensorboard",
    "tensorboard_dir",
    type=click.Path(file_okay=False),
    help="Write TensorBoard event files into this folder.",
)
@click.option(
    "--step",
    type=click.IntRange(min=0),
    help="TensorBoard: the step this scan is (needed when the folder already holds a run).",
)
@click.option(
    "--plot",
    type=click.Path(dir_okay=False),
    help="Write a summary picture here (.png, .svg, .pdf or .jpg, by the suffix).",
)
@click.option("--force", is_flag=True, help="Overwrite existing output files.")
@click.option("--all", "all_sites", is_flag=True, help="Table: show every site in forward order.")
@click.option(
    "--fail-on",
    type=click.Choice([str(s) for s in SEVERITIES[1:]]),
    help="Exit 1 when a finding is at or above this severity.",
)
@_handle_errors
def scan_command(
    target: str,
    fmt: str,
    output: str | None,
    tensorboard_dir: str | None,
    plot: str | None,
    force: bool,
    all_sites: bool,
    fail_on: str | None,
    step: int | None,
    **options: Any,
) -> None:
    """Scan TARGET for dead units and dying layers.

    TARGET is path/model.py[:NAME], package.module:NAME or torchvision:NAME.
    """
    from deadcheck.core.files import check_writable, write_text_atomic
    from deadcheck.output.rendering import render

    if output == "-":  # the convention: "-" is stdout
        output = None
    for path in (output, plot):
        if path is not None:
            check_writable(path, force=force)
    if plot is not None:
        from deadcheck.output.figures import plot_format

        try:
            plot_format(plot)
        except ValueError as error:
            raise InputError(f"--plot {plot}: {error}") from None
    from deadcheck.recording.distributed import rank

    if tensorboard_dir is not None and step is None:
        from deadcheck.output.tensorboard import has_events

        if has_events(tensorboard_dir):
            raise InputError(
                f"--tensorboard {tensorboard_dir} already holds a run: give --step N to add "
                "this scan as step N, or write into a new folder"
            )
    if _is_series(options["weights"]):
        _scan_series_command(
            target, fmt, output, tensorboard_dir, plot, force, fail_on, options, step or 0
        )
        return
    report = _run_scan(target, **options).report
    if rank() != 0:  # under torchrun, rank 0 reports
        return
    if report.partial and fail_on is not None:
        _interrupted_gate()
    if tensorboard_dir is not None:
        from deadcheck.output.tensorboard import write_tensorboard

        write_tensorboard(report, tensorboard_dir, step=step or 0)
        _note(f"deadcheck: wrote TensorBoard events to {tensorboard_dir}")
    if plot is not None:
        from deadcheck.core.files import write_bytes_atomic
        from deadcheck.output.plotting import plot_format, plot_report

        write_bytes_atomic(plot, plot_report(report, format=plot_format(plot)), force=force)
        _note(f"deadcheck: wrote {plot}")
    text = render(report, fmt, all_sites=all_sites)  # type: ignore[arg-type]
    if output is not None:
        write_text_atomic(output, text, force=force)
        _note(f"deadcheck: wrote {output}")
    else:
        click.echo(text, nl=False)
    if fail_on is not None and report.fails(fail_on):
        sys.exit(EXIT_FINDINGS)


def _scan_series_command(
    target: str,
    fmt: str,
    output: str | None,
    tensorboard_dir: str | None,
    plot: str | None,
    force: bool,
    fail_on: str | None,
    options: dict[str, Any],
    first_step: int = 0,
) -> None:
    """scan with several checkpoints: one report each, the trend across them."""
    from deadcheck.core.files import write_bytes_atomic, write_text_atomic
    from deadcheck.output.figures import plot_format
    from deadcheck.workflows.series import plot_series, render_series, scan_series

    weights = options.pop("weights")

    def progress(done: int, path: str) -> None:
        _note(f"deadcheck: checkpoint {done}: {path}")

    with _user_prints_to_stderr():
        series = scan_series(target, weights, progress=progress, **_scan_kwargs(**options))
    if any(r.partial for r in series.reports) and fail_on is not None:
        _interrupted_gate()
    if tensorboard_dir is not None:
        from deadcheck.output.tensorboard import write_reports

        write_reports(series.reports, tensorboard_dir, first_step=first_step)
        _note(f"deadcheck: wrote TensorBoard events to {tensorboard_dir}")
    if plot is not None:
        write_bytes_atomic(plot, plot_series(series, format=plot_format(plot)), force=force)
        _note(f"deadcheck: wrote {plot}")
    text = render_series(series, fmt)
    if output is not None:
        write_text_atomic(output, text, force=force)
        _note(f"deadcheck: wrote {output}")
    else:
        click.echo(text, nl=False)
    if fail_on is not None and series.fails(fail_on):
        sys.exit(EXIT_FINDINGS)


@main.command("swap")
@_input_options
@click.option(
    "--to",
    "to",
    type=click.Choice(["leaky_relu", "prelu"]),
    required=True,
    help="What the chosen ReLU sites become.",
)
@click.option(
    "--sites",
    default="flagged",
    show_default=True,
    metavar="flagged|all|NAME,...",
    help="flagged: ReLU sites with a warning or error; all: every ReLU site; or site names.",
)
@click.option(
    "--negative-slope", type=float, default=0.01, show_default=True, help="LeakyReLU slope."
)
@click.option(
    "--init", "init", type=float, default=0.25, show_default=True, help="PReLU initial slope."
)
@click.option("--shared-slope", is_flag=True, help="PReLU: one slope per site, not per channel.")
@click.option(
    "--output",
    "-o",
    type=click.Path(file_okay=False),
    required=True,
    help="Folder for the state dict, the swap plan and how to use them.",
)
@click.option("--force", is_flag=True, help="Replace an existing output folder.")
@_handle_errors
def swap_command(
    target: str,
    to: str,
    sites: str,
    negative_slope: float,
    init: float,
    shared_slope: bool,
    output: str,
    force: bool,
    **options: Any,
) -> None:
    """Swap ReLU sites of TARGET for LeakyReLU or PReLU; write the new weights and a plan."""
    from deadcheck.core.files import check_folder_writable
    from deadcheck.repair.swapping import apply_plan, plan_swap, save_swap

    check_folder_writable(output, force=force)
    done = _run_scan(target, **options)
    loaded, report = done.target, done.report
    chosen: Any = sites if sites in ("all", "flagged") else sites.split(",")
    plan = plan_swap(
        loaded.model,
        to,
        chosen,
        negative_slope=negative_slope,
        init=init,
        per_channel=not shared_slope,
        report=report,
    )
    for note in plan.notes:
        _note(f"deadcheck: note: {note}")
    if not plan.sites:
        why = (
            "no ReLU site is flagged (has a warning or error finding)"
            if sites == "flagged"
            else ("the model has no ReLU site")
        )
        _note(f"deadcheck: nothing to swap: {why}")
        return
    model = apply_plan(loaded.model, plan)  # a SwapError is one line and exit 2 (DeadcheckError)
    howto = save_swap(model, plan, output, target=target, force=force)
    for site in plan.sites:
        detail = (
            f"{site.num_parameters} slope(s) from {site.slope:g}"
            if site.becomes == "PReLU"
            else f"slope {site.slope:g}"
        )
        renamed = f" (now {site.new_site})" if site.new_site != site.site else ""
        click.echo(f"  {site.site}: {site.kind} -> {site.becomes}, {detail}{renamed}")
    click.echo(howto.rstrip())


@main.command("prune")
@_input_options
@click.option(
    "--sites",
    default=None,
    metavar="NAME,...",
    help="Prune only these sites (default: every ReLU and ReLU6 site with dead units).",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(file_okay=False),
    required=True,
    help="Folder for the pruned state dict, the prune plan and how to use them.",
)
@click.option("--force", is_flag=True, help="Replace an existing output folder.")
@_handle_errors
def prune_command(target: str, sites: str | None, output: str, force: bool, **options: Any) -> None:
    """Remove the dead units of TARGET exactly; write the smaller weights and a plan.

    A dead unit outputs zero on every batch scanned, so removing it (the
    producer's row, the consumers' columns) leaves the outputs on those
    batches as they were, to float rounding: checked before anything is written.
    """
    from deadcheck.core.files import check_folder_writable
    from deadcheck.repair.pruning import save_prune
    from deadcheck.workflows.pruning import prune_target

    check_folder_writable(output, force=force)
    chosen = sites.split(",") if sites else None
    pruned = _run_scan(target, runner=prune_target, extra={"sites": chosen}, **options)
    result, check = pruned.result, pruned.check
    for site, why in result.skipped.items():
        _note(f"deadcheck: note: {site} not pruned: {why}")
    for site, why in result.kept.items():
        _note(f"deadcheck: note: {site}: {why}")
    if not result.pruned:
        why = "no site's dead units could be removed" if result.skipped else "no unit is dead"
        _note(f"deadcheck: nothing to prune: {why}")
        return
    howto = save_prune(result, output, target=target, force=force)
    for site, units in result.pruned.items():
        click.echo(f"  {site}: {len(units)} dead unit(s) removed")
    before, after = result.parameters_before, result.parameters_after
    click.echo(f"parameters: {before} -> {after} ({(after - before) / before:+.1%})")
    if check is not None:
        click.echo(
            f"outputs on the {check.batches} judged batch(es): largest difference "
            f"{check.max_difference:.3g} (outputs up to {check.max_output:.3g}; float rounding "
            f"allows {check.bound:.3g})"
        )
        click.echo(f"forward time: {check.time_ratio:.2f} of the original's (median of 5 pairs)")
    click.echo(howto.rstrip())


@main.command("recycle")
@_input_options
@click.option("--tau", type=float, hidden=True, help="The former name of --dormant.")
@click.option(
    "--output",
    "-o",
    type=click.Path(file_okay=False),
    required=True,
    help="Folder for the recycled state dict and a record of what was recycled.",
)
@click.option("--force", is_flag=True, help="Replace an existing output folder.")
@_handle_errors
def recycle_command(
    target: str, tau: float | None, output: str, force: bool, **options: Any
) -> None:
    """Recycle the dormant units of TARGET (a checkpoint via --weights); write the new weights.

    A unit is recycled when its dormant score is at most --dormant TAU
    (ReDo's 0.1 unless given), at every activation (--activations all unless
    given). Producers' rows are re-initialised and
    consumers' columns zeroed, so the architecture and every other weight
    stay as they were.
    """
    from deadcheck.core.files import check_folder_writable
    from deadcheck.repair.recycling import recycle, save_recycle

    if tau is not None and options.get("dormant") not in (None, tau):
        raise InputError("give the threshold once: --dormant TAU (--tau is its former name)")
    if options.get("dormant") is None:
        options["dormant"] = Thresholds.dormant if tau is None else tau
    tau = float(options["dormant"])
    source = click.get_current_context().get_parameter_source("activations")
    if source is click.core.ParameterSource.DEFAULT:
        options["activations"] = "all"  # dormant units in any activation, not only ReLU's
    check_folder_writable(output, force=force)
    done = _run_scan(target, **options)
    result = recycle(done.target.model, done.report, tau=tau)
    for site, why in result.skipped.items():
        _note(f"deadcheck: note: {site} not recycled: {why}")
    for site, how in result.notes.items():
        _note(f"deadcheck: note: {site}: {how}")
    save_recycle(done.target.model, result, output, tau=tau, target=done.target.name, force=force)
    for site, units in result.recycled.items():
        click.echo(f"  {site}: {len(units)} unit(s) recycled")
    if not result.recycled:
        judged = len(done.report.sites) - len(result.skipped)
        click.echo(
            f"no unit was dormant (score <= {tau:g}) at the {judged} site(s) judged: "
            "the weights are unchanged"
        )
    click.echo(
        f"deadcheck recycled {result.units} unit(s) at {len(result.recycled)} site(s); "
        f"wrote {Path(output).as_posix()}/state_dict.pt and recycled.json"
    )


@main.command("diff")
@click.argument("old", type=click.Path(dir_okay=False, allow_dash=True))
@click.argument("new", type=click.Path(dir_okay=False, allow_dash=True))
@click.option(
    "--fail-on-rise",
    type=float,
    metavar="SHARE",
    help="Exit 1 when a site's dead share rose by more than this (e.g. 0.05); off if not given.",
)
@click.option(
    "--fail-on",
    type=click.Choice([str(s) for s in SEVERITIES[1:]]),
    help="Exit 1 also when a new finding at or above this severity appeared.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="table",
    show_default=True,
    help="Output format; markdown is for a pull-request comment.",
)
@_handle_errors
def diff_command(
    old: str, new: str, fail_on_rise: float | None, fail_on: str | None, fmt: str
) -> None:
    """Compare two JSON reports (scan --format json): dead share per site, findings, sites.

    Exit 1 when a site's dead share rose by more than --fail-on-rise, or a
    new finding at or above --fail-on appeared: "this change killed units".
    Without either, it only shows what changed. '-' reads a report from stdin.
    """
    from deadcheck.analysis.diffing import diff_reports, load_report, parse_report, render_diff

    if old == new == "-":
        raise InputError("only one of OLD and NEW can be '-' (stdin)")

    def read(path: str) -> Any:
        return parse_report(sys.stdin.read(), "<stdin>") if path == "-" else load_report(path)

    result = diff_reports(
        read(old),
        read(new),
        fail_on_rise=fail_on_rise,
        fail_on=fail_on,
        names=(old, new),
    )
    click.echo(render_diff(result, fmt), nl=False)
    if result.fails:
        sys.exit(EXIT_FINDINGS)
