"""Command-line interface: a thin click layer over ``pipeline``, ``train`` and ``report``.

Exit codes: 0 success, 1 a failed run (bad file, unavailable backend, mismatching verification),
2 a usage error (missing file, bad option value), 130 Ctrl-C. User mistakes print one line; ``--debug``
shows the traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import click

from .backends.registry import BACKENDS
from .errors import SlipsnnError, exit_with_error
from .ir.activation import PRESETS
from .ir.formats import ExportFormat, NetxNeuron, NirVariant

BACKEND_CHOICES = tuple(BACKENDS)            # the registries name their entries without importing them
ACTIVATIONS = tuple(PRESETS)
_PATH_IN = click.Path(exists=True, dir_okay=False, path_type=Path)
EXIT_INTERRUPTED = 130   # 128 + SIGINT, what a shell reports for a Ctrl-C
_as_script = False       # set by the console-script entries (``_script``): Ctrl-C then ends the process at once


def _device_options(fn: Any) -> Any:
    """``--device`` and ``--batch-size`` of the simulators (the fast backend, the float SNN)."""
    fn = click.option("--batch-size", type=click.IntRange(min=1), default=None,
                      help="Samples per simulated batch [default: CPU a cache-sized working set, CUDA half its free memory].")(fn)
    return click.option("--device", default="auto", show_default=True,
                        help="Where the simulators run: cpu, cuda, cuda:N or auto (CUDA when available).")(fn)


class SlipsnnCommand(click.Command):
    """A command that turns slipsnn's errors into one-line messages (exit 1) unless ``--debug``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.append(click.Option(["--debug"], is_flag=True, help="Show the full traceback on errors."))

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (SlipsnnError, OSError) as err:
            if ctx.params.get("debug"):
                raise
            raise click.ClickException(_one_line(err)) from None
        except KeyboardInterrupt:
            if _as_script and not ctx.params.get("debug"):   # the stack has unwound: Lava stopped, temporaries removed
                exit_with_error(f"interrupted (Ctrl-C); exit status {EXIT_INTERRUPTED}", EXIT_INTERRUPTED)
            raise




def _one_line(err: BaseException) -> str:
    if isinstance(err, OSError) and err.filename:
        return f"{err.filename}: {err.strerror or err}"
    return str(err)


def _check_outputs(inputs: list[Path], **outputs: Path | None) -> None:
    """Refuse (exit 2) an output that would replace an input, a device node or a FIFO; one under a file: exit 1.

    ``outputs``: option name (``json``, ``plots``, …) → path; ``plots`` is a folder.
    """
    from .files import NotAFolderError, check_output
    for name, path in outputs.items():
        if path is None:
            continue
        try:
            check_output(path, inputs, folder=name == "plots")
        except NotAFolderError:
            raise   # an output that cannot be created: a failed run (exit 1), as for any unwritable folder
        except SlipsnnError as err:
            raise click.BadParameter(str(err), param_hint=f"--{name}" if len(name) > 1 else f"-{name}") from None


def _dataset_option(default: str | None = "digits") -> Any:
    from .data.registry import DATASETS
    return click.option("--dataset", type=click.Choice(sorted(DATASETS)), default=default, show_default=True,
                        help="Data set (its test split is used for evaluation).")


_data_root = click.option("--data-root", type=click.Path(file_okay=False, path_type=Path), default=None,
                          help="Folder holding the data set files (not needed for digits).")


@click.command(cls=SlipsnnCommand)
@_dataset_option()
@click.option("--activation", type=click.Choice(ACTIVATIONS), default="slip", show_default=True,
              help="slip = SlipReLU; qcfs = a=0, δ₂=½; clipfloor = a=0, δ₂=0; clip = a=1; relu = plain ReLU.")
@click.option("--a", "a", type=click.FloatRange(0, 1), default=None, help="SlipReLU slope a ∈ [0, 1].")
@click.option("--L", "L", type=click.IntRange(min=1), default=None, help="Quantization steps L.")
@click.option("--delta1", type=float, default=None, help="Shift δ₁ of the threshold-ReLU part.")
@click.option("--delta2", type=click.FloatRange(-1, 1, min_open=True, max_open=True), default=None,
              help="Shift δ₂ of the step part (initial membrane, units of θ).")
@click.option("--a-learnable", is_flag=True, default=None, help="Train the slope a (kept in [0, 1]).")
@click.option("--theta0", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Initial threshold θ₀ of every SlipReLU [default per data set: 1 for digits/MNIST, 8 for "
                   "CIFAR/Tiny-ImageNet; measured in docs/byom.md].")
@click.option("--arch", default=None, help="Architecture (default per data set): digits_cnn, vgg16, resnet18/20/34.")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Epochs (default per data set).")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None, help="Initial learning rate.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Batch size.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--width", type=click.FloatRange(min=0, min_open=True), default=None, help="Channel multiplier.")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:N or auto.")
@_data_root
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for model.pt and metrics.json [default: runs/<dataset>].")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--val-fraction", type=click.FloatRange(0, 1, max_open=True), default=0.1, show_default=True,
              help="Share of the train split held out to select the epoch (0: keep the last one).")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="torch CPU threads [default: 1 on the CPU; the thread count changes the results].")
@click.option("--resume", is_flag=True, help="Continue from OUT/resume.pt, and keep it after every epoch (so does --stop-after).")
@click.option("--stop-after", type=click.IntRange(min=1), default=None,
              help="Train at most N epochs in this call (run again with --resume to continue).")
def train(dataset: str, activation: str, a: float | None, L: int | None, delta1: float | None,
          delta2: float | None, a_learnable: bool | None, theta0: float | None, arch: str | None, epochs: int | None, lr: float | None,
          batch_size: int | None, seed: int, width: float | None, device: str, data_root: Path | None,
          out: Path | None, quiet: bool, val_fraction: float, threads: int | None, resume: bool,
          stop_after: int | None, debug: bool) -> None:
    """Train a SlipReLU (or QCFS / clip / ReLU) ANN and evaluate its converted SNN at T = 1, 2, 4, 8."""
    from .pipeline import train_and_evaluate
    from .ann.training import TrainConfig, is_main_process
    out = out or Path("runs") / dataset
    cfg = TrainConfig.for_dataset(dataset, activation=activation, a=a, L=L, delta1=delta1, delta2=delta2,
                                  a_learnable=a_learnable, theta_init=theta0, arch=arch, epochs=epochs, lr=lr, batch_size=batch_size,
                                  seed=seed, width=width, device=device,
                                  data_root=str(data_root) if data_root else None, out_dir=str(out),
                                  val_fraction=val_fraction, threads=threads)
    metrics = train_and_evaluate(cfg, progress=not quiet, resume=resume, stop_after=stop_after)
    if not is_main_process():
        return
    if not metrics["finished"]:
        click.echo(f"stopped after epoch {metrics['epochs']} of {cfg.epochs}; continue with --resume")
        return
    click.echo(f"ANN accuracy: {100 * metrics['ann_accuracy']:.2f} % (test split; epoch {metrics['best_epoch']}"
               f" chosen by {metrics['selected_by'].replace('_', ' ')})")
    click.echo("SNN accuracy: " + ", ".join(f"T={t}: {100 * acc:.2f} %" for t, acc in metrics["snn_accuracy"].items()))
    click.echo(f"wrote {out / 'model.pt'} and {out / 'metrics.json'}")


@click.command(cls=SlipsnnCommand)
@click.argument("checkpoint", type=_PATH_IN, metavar="MODEL")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Output file [default: model.net beside the checkpoint].")
@click.option("--timesteps", type=click.IntRange(min=1), default=4, show_default=True,
              help="Default time-steps recorded in the file.")
@click.option("--max-timesteps", type=click.IntRange(min=1), default=None,
              help="Horizon proven free of 24-bit overflow [default: max(--timesteps, 8)]; a longer one costs "
                   "weight precision, --max-timesteps equal to --timesteps gives the finest integers.")
@click.option("--neuron", type=click.Choice([n.value for n in NetxNeuron]), default="if_soft", show_default=True,
              help="if_soft: slipsnn's soft-reset neuron; cuba: a file stock lava-dl netx loads (exact at T=1).")
@click.option("--format", "fmt", type=click.Choice([f.value for f in ExportFormat]), default="netx", show_default=True,
              help="netx: lava-dl netx HDF5; nir: a NIR graph (docs/nir.md), from a checkpoint or a slipsnn .net.")
@click.option("--nir-variant", type=click.Choice([v.value for v in NirVariant]), default="exact", show_default=True,
              help="portable: IF neurons only (exact at T=1); exact: I + Threshold + reset edge (every T).")
def export(checkpoint: Path, output: Path | None, timesteps: int, max_timesteps: int | None, neuron: str,
           fmt: str, nir_variant: str, debug: bool) -> None:
    """Quantize MODEL (a model.pt checkpoint or a save_model file) to Loihi integers and write a netx HDF5 file
    (or a NIR graph)."""
    from .pipeline import export_checkpoint, export_nir
    from .show.quantization import format_quant_report
    default = checkpoint.with_name("model.nir" if fmt == ExportFormat.NIR.value else "model.net")
    _check_outputs([checkpoint], o=output if output is not None else default)
    if fmt == ExportFormat.NIR.value:
        net, path = export_nir(checkpoint, output, variant=nir_variant, timesteps=timesteps,
                               max_timesteps=max_timesteps)
        click.echo(net.summary())
        click.echo(f"\nwrote {path} (NIR, {nir_variant}; class = argmax of the output summed over T)")
        return
    net, path = export_checkpoint(checkpoint, output, timesteps=timesteps, max_timesteps=max_timesteps,
                                  neuron=neuron)
    click.echo(net.summary())
    click.echo("\nquantization (scale = integer units per threshold; margin = log2 headroom of the 24-bit bound):")
    click.echo(format_quant_report(net))
    from .backends.exactness import prove_exactness
    from .show.exactness import exactness_summary
    click.echo("\n" + exactness_summary(prove_exactness(net, net.max_timesteps), net.max_timesteps))
    if neuron == "cuba":
        click.echo("\nnote: stock CUBA neurons reset to zero; the file equals slipsnn's network only at T=1.")
    click.echo(f"\nwrote {path}")


@click.command(cls=SlipsnnCommand)
@click.argument("network", type=_PATH_IN)
@click.option("--backend", type=click.Choice(BACKEND_CHOICES), default="loihi_sim", show_default=True,
              help="loihi_sim: Lava CPU (bit-accurate); loihi: Loihi 2 via lava-loihi; fast: vectorized simulator.")
@_dataset_option(default=None)
@click.option("--timesteps", type=click.IntRange(min=1), default=None, help="T [default: the file's].")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Use the first N test samples.")
@_data_root
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the results as JSON.")
@click.option("--verify", is_flag=True, help="Run loihi_sim and fast on the same samples and compare them.")
@_device_options
@click.option("-v", "--verbose", is_flag=True, help="Show which synapses the fast backend proves exact in float32.")
def run(network: Path, backend: str, dataset: str | None, timesteps: int | None, limit: int | None,
        data_root: Path | None, json_path: Path | None, verify: bool, device: str, batch_size: int | None,
        verbose: bool, debug: bool) -> None:
    """Run an exported network and print its accuracy and throughput."""
    from .files import atomic_write_json
    from .pipeline import run_exported, verify_file
    from .show.exactness import exactness_summary, format_exactness
    from .show.runs import mismatch_summary
    _check_outputs([network], json=json_path)
    opts = dict(dataset=dataset, timesteps=timesteps, limit=limit, data_root=data_root, progress=True,
                device=device if (backend == "fast" or verify) else None, batch_size=batch_size,
                prove=verbose and (backend == "fast" or verify))
    if verify:
        v = verify_file(network, **opts)
        proofs, results = v.proofs, [v.lava, v.fast]
        doc = {**v.lava.to_json(), "verify": {"fast": v.fast.to_json(), "mismatches": v.mismatch.total}}
    else:
        done = run_exported(network, backend=backend, **opts)
        proofs, results, doc = done.proofs, [done.run], done.to_json()
        if done.stock is not None and done.stock.twin is not None:
            click.echo(f"stock netx vs the if_soft network of the same checkpoint: same class on "
                       f"{100 * done.stock.agreement:.2f} % of {len(done.run.labels)} samples at "
                       f"T={done.run.timesteps} (if_soft accuracy {100 * done.stock.twin.accuracy:.2f} %)")
    if proofs is not None:
        t = results[-1].timesteps
        click.echo(format_exactness(list(proofs)) + "\n" + exactness_summary(list(proofs), t))
    for res in results:
        t = res.timing
        click.echo(f"{res.backend:>9}: accuracy {100 * res.accuracy:.2f} % on {len(res.labels)} samples at "
                   f"T={res.timesteps} | {t.get('samples_per_s', 0):.1f} samples/s"
                   + (f" (compile {t['compile_s']:.2f} s, run {t['run_s']:.2f} s)" if t.get("compile_s") else ""))
    if json_path:
        atomic_write_json(json_path, doc)
        click.echo(f"wrote {json_path}")
    if verify:
        click.echo(mismatch_summary(v.mismatch))
        if v.mismatch.total:
            raise SystemExit(1)


def _timesteps_list() -> Any:
    """``--timesteps 1 2 4``: the option takes the first value, the rest arrive as trailing arguments."""
    def deco(fn: Any) -> Any:
        fn = click.argument("more_timesteps", nargs=-1, type=click.IntRange(min=1))(fn)
        return click.option("--timesteps", type=click.IntRange(min=1), multiple=True, default=(1, 2, 4),
                            show_default=True, help="Time-steps to evaluate: --timesteps 1 2 4.")(fn)
    return deco


def _merge_timesteps(timesteps: tuple[int, ...], more: tuple[int, ...]) -> list[int]:
    return sorted(set(timesteps) | set(more))


@click.command(cls=SlipsnnCommand)
@click.argument("network", type=_PATH_IN)
@_dataset_option(default=None)
@_timesteps_list()
@click.option("--backend", type=click.Choice(BACKEND_CHOICES), default="fast", show_default=True)
@click.option("--profile", "profiles", multiple=True, default=("loihi2",), show_default=True,
              help="Chip profile name (hardware_configs/) or TOML file; repeatable.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Use the first N test samples.")
@_data_root
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--plots", "plots_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the PNG plots.")
@_device_options
def report(network: Path, dataset: str | None, timesteps: tuple[int, ...], more_timesteps: tuple[int, ...],
           backend: str, profiles: tuple[str, ...], limit: int | None, data_root: Path | None,
           json_path: Path | None, plots_dir: Path | None, device: str, batch_size: int | None, debug: bool) -> None:
    """Accuracy, activity, energy and latency per layer on chip profiles, against the ANN."""
    from .pipeline import is_stock_file
    from .pipeline import report as make_report
    from .show.report import format_report
    _check_outputs([network, *(Path(p) for p in profiles)], json=json_path, plots=plots_dir)
    if is_stock_file(network):
        if plots_dir is not None:
            raise click.BadParameter(f"{network} is a stock netx file: its report has tables and --json, no plots",
                                     param_hint="--plots")
        from .pipeline import report_stock_file
        from .show.stock import format_stock_report
        stock = report_stock_file(network, dataset, _merge_timesteps(timesteps, more_timesteps), list(profiles),
                                  data_root, limit)
        click.echo(format_stock_report(stock))
        if json_path:
            from .files import atomic_write_json
            atomic_write_json(json_path, stock.to_json())
            click.echo(f"wrote JSON to {json_path}")
        return
    rep = make_report(network, dataset, _merge_timesteps(timesteps, more_timesteps), backend=backend, profile=list(profiles),
                      json_path=json_path, plots_dir=plots_dir, data_root=data_root, limit=limit,
                      device=device if backend == "fast" else None, batch_size=batch_size)
    click.echo(format_report(rep))
    for what, where in (("JSON", json_path), ("plots", plots_dir)):
        if where:
            click.echo(f"wrote {what} to {where}")


@click.command(cls=SlipsnnCommand)
@click.argument("checkpoint", type=_PATH_IN, metavar="MODEL")
@click.argument("network", type=_PATH_IN)
@_timesteps_list()
@click.option("--backend", type=click.Choice(BACKEND_CHOICES), default="loihi_sim", show_default=True)
@click.option("--limit", type=click.IntRange(min=1), default=None)
@_data_root
@_device_options
def chain(checkpoint: Path, network: Path, timesteps: tuple[int, ...], more_timesteps: tuple[int, ...],
          backend: str, limit: int | None, data_root: Path | None, device: str, batch_size: int | None,
          debug: bool) -> None:
    """Accuracy at every stage on the same samples: ANN, float SNN, integer SNN, and a backend."""
    from .pipeline import accuracy_chain
    from .show.runs import format_chain
    click.echo(format_chain(accuracy_chain(checkpoint, network, _merge_timesteps(timesteps, more_timesteps),
                                           backend=backend, limit=limit, data_root=data_root, device=device,
                                           batch_size=batch_size)))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="slipsnn")
def main() -> None:
    """slipsnn: SlipReLU ANNs → integer spiking networks → Lava / Loihi 2, with cost reports."""


for _cmd in (train, export, run, report, chain):
    main.add_command(_cmd)


@click.command(cls=SlipsnnCommand)
@click.argument("checkpoint", type=_PATH_IN, metavar="MODEL")
@_dataset_option(default=None)
@click.option("--timesteps", type=click.IntRange(min=1), default=4, show_default=True, help="T of the SNN.")
@click.option("--delta2", "delta2", type=click.FloatRange(-1, 1, min_open=True, max_open=True), multiple=True,
              default=(-0.5, -0.25, 0.0, 0.25, 0.5), show_default=True,
              help="Initial membranes (units of θ) to sweep; repeat the option: --delta2 -0.5 --delta2 0.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Use the first N test samples.")
@_data_root
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the analysis as JSON.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the plot (PNG).")
@_device_options
def analyze(checkpoint: Path, dataset: str | None, timesteps: int, delta2: tuple[float, ...], limit: int | None,
            data_root: Path | None, json_path: Path | None, plot_path: Path | None, device: str,
            batch_size: int | None, debug: bool) -> None:
    """Layer-wise conversion error (ANN activation/θ − spikes/T) and how it moves with the initial membrane δ₂."""
    from .pipeline import analyze_conversion
    from .show.analysis import format_analysis, plot_analysis
    from .files import atomic_write_json
    _check_outputs([checkpoint], json=json_path, plot=plot_path)
    res = analyze_conversion(checkpoint, timesteps, delta2, limit=limit, data_root=data_root, dataset=dataset,
                             device=device, batch_size=batch_size)
    click.echo(format_analysis(res))
    if json_path:
        atomic_write_json(json_path, res.to_json())
        click.echo(f"wrote {json_path}")
    if plot_path:
        plot_analysis(res, plot_path)
        click.echo(f"wrote {plot_path}")


main.add_command(analyze)


def _script(command: click.Command) -> Callable[[], Any]:
    """The console-script entry of ``command`` (``pyproject.toml``): the command, with Ctrl-C ending the process
    at once (``errors.exit_with_error``). Python callers and click's test runner call the commands themselves and
    get click's ``Aborted!``."""
    def entry() -> Any:
        global _as_script
        _as_script = True
        return command()
    entry.__doc__ = command.help
    return entry


console_main, train_main, export_main, run_main, report_main = map(_script, (main, train, export, run, report))
