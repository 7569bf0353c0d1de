"""`genreclass-train`: fit, evaluate and export genre models.

DATA is a folder (ROOT/<Genre>/files), gtzan:PATH, fma:AUDIO_DIR:TRACKS_CSV, or a manifest .csv.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from genre_model import FrontendConfig, ModelInfo
from genre_model.model_file import version_stamp
from training.data.tracks import Track, load_all
from training.engine.config import TrainConfig, parse_assignment
from training.errors import (
    ConfigError,
    DatasetError,
    NotEnoughData,
    ResumeMismatchError,
    SplitLeakError,
    TrainingError,
)
from training.evaluation.metrics import card_metrics
from training.models.registry import ARCHITECTURES
from training.pipelines.fit import fit_and_export


def _load_all(specs: tuple[str, ...], echo=click.echo) -> list[Track]:
    try:
        return load_all(specs, echo)
    except DatasetError as exc:
        raise click.UsageError(str(exc)) from None


# Errors that a command's data or settings caused: shown with its usage (exit status 2).
_USAGE_ERRORS = (ConfigError, DatasetError, NotEnoughData, SplitLeakError)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Train, evaluate and export genre models for beets-genreclass.

    DATA arguments: a folder laid out ROOT/<Genre>/<audio files>, gtzan:PATH (GTZAN, with its
    fault-filtered lists when present), fma:AUDIO_DIR:TRACKS_CSV (FMA), or a manifest .csv with
    columns path,label[,group][,split][,dataset].
    """


# TrainConfig's defaults, shown in the flags' help: the flags themselves default to "not given",
# so a recipe's value stands unless a flag is given.
_DEFAULTS = TrainConfig()
# Flags for the settings most often changed; --set reaches every other one.
_FLAGS = ("arch", "epochs", "device", "valid_fraction", "min_tracks", "seed", "class_balance", "name")


def _config(recipe: str | None, assignments: tuple[str, ...], flags: dict) -> TrainConfig:
    """The run's settings: TrainConfig's defaults, then the recipe, then --set, then the flags."""
    overrides = dict(parse_assignment(a) for a in assignments)
    overrides |= {key: value for key, value in flags.items() if value is not None}
    return (TrainConfig.read(recipe) if recipe else TrainConfig()).with_overrides(overrides)


@main.command()
@click.argument("data", nargs=-1, required=True)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Folder for the run's outputs.")
@click.option("--config", "recipe", type=click.Path(exists=True, dir_okay=False),
              help="Recipe file (e.g. recipes/fast.json, or a run's config.json): settings over the defaults.")  # fmt: skip
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE",
              help="Any setting of TrainConfig over the recipe, e.g. --set lr=0.001 --set augment.mixup_alpha=0.")  # fmt: skip
@click.option("--arch", type=click.Choice(list(ARCHITECTURES)),
              help=f"Network (training.models.registry) [{_DEFAULTS.arch}].")  # fmt: skip
@click.option("--epochs", type=int, help=f"Epochs [{_DEFAULTS.epochs}].")
@click.option("--device", help=f"auto, cpu, cuda or cuda:N [{_DEFAULTS.device}].")
@click.option("--valid-fraction", type=float,
              help=f"Share of groups held out for validation when the data has no split; 0 trains on everything for the epochs [{_DEFAULTS.valid_fraction}].")  # fmt: skip
@click.option("--min-tracks", type=int, help=f"Fewest tracks a label may have [{_DEFAULTS.min_tracks}].")
@click.option("--seed", type=int, help=f"Seeds Python, numpy and torch [{_DEFAULTS.seed}].")
@click.option("--class-balance", type=float,
              help=f"1: every label sampled equally often; 0: as often as in the data; between: counts^(1-x) [{_DEFAULTS.class_balance}].")  # fmt: skip
@click.option("--name", help=f"Model name stored in the exported file [{_DEFAULTS.name}].")
@click.option("--init", "init", type=click.Path(exists=True, dir_okay=False), help="Checkpoint (.pt) to start from.")
@click.option("--workers", type=click.IntRange(1), default=2, show_default=True, help="Processes computing features.")
@click.option("--cache", type=click.Path(file_okay=False), default=None,
              help="Feature cache folder (log-mels or backbone features, by file content) [OUT/../feature-cache].")  # fmt: skip
@click.option("--resume", is_flag=True, help="Continue an interrupted run in OUT (with the same settings).")
@click.option("--cv-report", type=click.Path(exists=True, dir_okay=False),
              help="cv_report.json of benchmarks/cross_validate.py: its figures for the recipe's name go on the model's card.")  # fmt: skip
def fit(data, out_dir, recipe, assignments, init, workers, cache, resume, cv_report, **flags) -> None:
    """Train a model on DATA and export OUT/model.onnx; OUT/config.json holds the settings used.

    Settings: TrainConfig's defaults, overridden by a --config recipe, then by --set and the
    flags. Every architecture trains here: "cnn" and "crnn" from scratch on log-mel windows (the
    fast model: recipes/fast.json), "musicnn-backend" (the default model: recipes/default.json)
    and "musicnn-midend", the pretrained MSD_musicnn's top fine-tuned on its cached features.
    Splits are made on tracks by group (artist, or the dataset's own split) before any window is
    cut; a split with a group or a file on both sides is refused.

    Under torchrun (torchrun --nproc-per-node N $(command -v genreclass-train) fit ...) the N
    processes train one model together (DDP: NCCL on CUDA, gloo on CPU); batch_size is then
    the global batch, and rank 0 writes the outputs.

    Distillation (e.g. the small CNN learning from the bundled musicnn model): --set
    distill_weight=0.5 --set teacher=MODEL.onnx makes each window's target half its label, half
    the teacher's probabilities for its track (the teacher hears every training track first).
    """
    try:
        config = _config(recipe, assignments, {key: flags[key] for key in _FLAGS})
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    from training.engine.distributed import process_group, world_from_env
    from training.engine.loop import resolve_device

    try:
        world = world_from_env()  # torchrun's processes, or this one alone
        device = resolve_device(config.device)  # an unusable device fails now, not after the features
        with process_group(world, device.type) as world:
            try:
                fit_and_export(config, data, Path(out_dir), init, workers, cache, resume, cv_report, world, click.echo)
            except ResumeMismatchError:
                raise  # the run in OUT, not the arguments: exit status 1 below
            except _USAGE_ERRORS as exc:
                raise click.UsageError(str(exc)) from None
    except TrainingError as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.argument("data", nargs=-1, required=True)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False))
@click.option("--max-windows", type=click.IntRange(0), default=8, show_default=True, help="Windows per track; 0 = all.")
@click.option("--workers", default="auto", show_default=True, help="Decoding processes ('auto' = the cores).")
def evaluate(model, data, out_dir, max_windows, workers) -> None:
    """Evaluate an exported MODEL (.onnx) on DATA exactly as the plugin runs it.

    Writes metrics.json (track/window/balanced accuracy, macro-F1, per class, per source,
    confusion) and confusion.png to OUT. Tracks whose label the model does not know are skipped.
    """
    from genre_model import Classifier, classify_files
    from training.evaluation.metrics import metrics_from_probs, write_metrics

    tracks = _load_all(data)
    clf = Classifier(model)
    labels = list(clf.info.labels)
    probs, failed = {}, 0
    for outcome in classify_files(
        clf, [t.path for t in tracks], max_windows or None, workers if workers == "auto" else int(workers)
    ):
        if outcome.error:
            click.echo(f"skipped {outcome.error}", err=True)
            failed += 1
        else:
            probs[outcome.index] = outcome.prediction.window_probs
    kept = sorted(probs)
    metrics = metrics_from_probs(
        [probs[i] for i in kept], [tracks[i].genres for i in kept], labels, [tracks[i].source for i in kept]
    )
    metrics["n_skipped"] += failed
    write_metrics(metrics, out_dir, title=f"{clf.info.model_id}")
    click.echo(
        json.dumps(
            {
                k: metrics[k]
                for k in ("track_accuracy", "window_accuracy", "balanced_accuracy", "macro_f1", "n_tracks", "n_skipped")
            },
            indent=1,
        )
    )


@main.command()
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out_file", required=True, type=click.Path(dir_okay=False), help="The .onnx file to write.")
@click.option("--name", help="Model name [the one in the checkpoint's settings].")
@click.option("--version", "version", default=None, help="Version string [checkpoint's date].")
def export(checkpoint, out_file, name, version) -> None:
    """Export a training CHECKPOINT (best.pt) of any architecture to a self-describing .onnx, checked against torch.

    The parity check uses the real windows saved beside the checkpoint (parity_windows.pt).
    """
    import torch

    from training.engine.checkpoint import load_checkpoint
    from training.export.onnx_export import export_onnx

    model, ck = load_checkpoint(checkpoint)
    parity_file = Path(checkpoint).with_name("parity_windows.pt")
    if not parity_file.exists():
        raise click.UsageError(f"{parity_file} not found: the parity check needs the windows saved by 'fit'")
    windows = torch.load(parity_file, weights_only=True)["windows"].numpy()
    metrics_file = Path(checkpoint).with_name("metrics.json")
    metrics = json.loads(metrics_file.read_text()) if metrics_file.exists() else {}
    try:
        info = ModelInfo(
            name=name or TrainConfig.from_dict(ck["train_config"], str(checkpoint)).name,
            version=version or version_stamp(Path(checkpoint).stat().st_mtime),
            labels=tuple(ck["labels"]),
            frontend=FrontendConfig.from_dict(ck["frontend"]),
            training={**ck.get("training_data", {}), "arch": ck["model_config"]["arch"], "config": ck["train_config"]},
            metrics=card_metrics(metrics),
        )
        result = export_onnx(model, info, out_file, windows)
    except TrainingError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"wrote {out_file}: {info.model_id}, parity max abs diff {result['max_abs_diff']:.1e}")


if __name__ == "__main__":
    main()
