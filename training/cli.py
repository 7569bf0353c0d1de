"""`genreclass-train`: fit, evaluate and export genre models.

DATA is a folder (ROOT/<Genre>/files), gtzan:PATH, fma:AUDIO_DIR:TRACKS_CSV, or a manifest .csv.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import click

from genre_model import FrontendConfig, ModelError, ModelInfo
from genre_model.model_file import version_stamp
from training.data.genres import select_labels
from training.data.splits import check_disjoint, group_holdout
from training.data.tracks import Track, load_data
from training.engine.config import TrainConfig, parse_assignment
from training.errors import ConfigError, DatasetError, NotEnoughData, SplitLeakError, TrainingError
from training.features.cache import FeatureCache, file_digest
from training.features.windows import inference_windows, prepare


def _load_all(specs: tuple[str, ...], echo=click.echo) -> list[Track]:
    tracks = []
    for spec in specs:
        try:
            found = load_data(spec)
        except DatasetError as exc:
            raise click.UsageError(str(exc)) from None
        echo(f"{spec}: {len(found)} tracks")
        tracks += found
    if not tracks:
        raise click.UsageError("no labelled tracks in the given data")
    return tracks


# The evaluation figures a model file carries in its metadata (the full metrics stay in metrics.json).
_CARD_KEYS = ("protocol", "track_accuracy", "balanced_accuracy", "macro_f1", "n_tracks", "per_source")


def _card_metrics(metrics: dict) -> dict:
    return {k: metrics[k] for k in _CARD_KEYS if k in metrics}


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


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
@click.option("--arch", type=click.Choice(["cnn", "crnn"]), help=f"Network [{_DEFAULTS.arch}].")
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
@click.option(
    "--cache", type=click.Path(file_okay=False), default=None, help="Feature cache folder [OUT/../feature-cache]."
)
@click.option("--resume", is_flag=True, help="Continue an interrupted run in OUT (with the same settings).")
@click.option("--cv-report", type=click.Path(exists=True, dir_okay=False),
              help="cv_report.json of benchmarks/cross_validate.py: its figures for the arch become the model's metrics.")  # fmt: skip
def fit(data, out_dir, recipe, assignments, init, workers, cache, resume, cv_report, **flags) -> None:
    """Train a model on DATA and export OUT/model.onnx; OUT/config.json holds the settings used.

    Settings: TrainConfig's defaults, overridden by a --config recipe, then by --set and the
    flags. Splits are made on tracks by group (artist, or the dataset's own split) before any
    window is cut; a split with a group or a file on both sides is refused.

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
            _fit(config, data, Path(out_dir), init, workers, cache, resume, cv_report, world)
    except TrainingError as exc:
        raise click.ClickException(str(exc)) from None


def _quiet(*args, **kwargs) -> None:
    """click.echo for ranks other than 0."""


def _fit(config: TrainConfig, data, out: Path, init, workers: int, cache, resume: bool, cv_report, world) -> None:
    import torch

    from training.engine.checkpoint import load_checkpoint
    from training.engine.distributed import barrier
    from training.engine.loop import fit as run_fit
    from training.engine.loop import track_probabilities
    from training.evaluation.metrics import metrics_from_probs, plot_history, write_metrics
    from training.export.onnx_export import export_onnx

    started = time.time()
    echo = click.echo if world.is_main else _quiet  # rank 0 speaks for all
    echo(
        f"training on {world.size} processes (torchrun, backend {world.backend})"
        if world.distributed
        else "training on 1 process (start it with torchrun to train on several)"
    )
    tracks = _load_all(data, echo)
    counts = Counter(t.label for t in tracks)
    try:
        tracks, labels = select_labels(tracks, None, config.min_tracks, drop_rare=False)
    except NotEnoughData as exc:
        raise click.UsageError(str(exc)) from None
    if config.valid_fraction > 0:
        train_t, valid_t = group_holdout(tracks, config.valid_fraction, config.seed)
    else:
        train_t, valid_t = tracks, []
    digests: dict[str, str] = {}
    try:
        check_disjoint(
            train_t, valid_t, lambda p: digests[p] if p in digests else digests.setdefault(p, file_digest(p))
        )
    except SplitLeakError as exc:
        raise click.UsageError(f"refusing a leaky split: {exc}") from None
    echo(f"labels: {', '.join(f'{label} {counts[label]}' for label in labels)}")
    echo(f"split: {len(train_t)} train, {len(valid_t)} valid tracks")
    fcache = FeatureCache(cache or out.parent / "feature-cache", FrontendConfig())
    if world.distributed:  # each rank computes its share of the features, then all read them all
        prepare(world.shard(train_t), labels, fcache, digests, workers, echo)
        inference_windows(world.shard(valid_t), labels, fcache, digests, config.eval_windows, workers, echo)
        barrier(world)
    train_w, _ = prepare(train_t, labels, fcache, digests, workers, echo)
    valid_w = None
    if valid_t:
        valid_w = inference_windows(valid_t, labels, fcache, digests, config.eval_windows, workers, echo)[0]
    if config.distill_weight > 0:
        if not config.teacher:
            raise click.UsageError("distill_weight > 0 needs a teacher model: --set teacher=MODEL.onnx")
        from training.engine.distill import teacher_probabilities

        echo(f"distillation: weight {config.distill_weight}, teacher {config.teacher}")
        try:  # every process computes the same targets: the teacher's share of the time is small
            train_w.teacher_probs = teacher_probabilities(
                train_w.tracks, labels, config.teacher, workers=workers, log=echo
            )
        except (ConfigError, ModelError) as exc:
            raise click.UsageError(str(exc)) from None
    init_state = load_checkpoint(init)[1]["state_dict"] if init else None
    result = run_fit(train_w, valid_w, config, out, log=echo, init_state=init_state, resume=resume, world=world)
    if not world.is_main:
        return  # rank 0 writes the plots, metrics and the exported model
    plot_history(result.history, out / "learning_curves.png")
    device_t = next(result.model.parameters()).device
    metrics: dict = {}
    if valid_w is not None:
        probs = track_probabilities(result.model, valid_w.windows, device_t)
        metrics = metrics_from_probs(
            probs, [t.label for t in valid_w.tracks], labels, [t.source for t in valid_w.tracks]
        )
        write_metrics(metrics, out, title=f"{config.arch}, validation")
        click.echo(
            f"validation: track accuracy {metrics['track_accuracy']:.3f}, balanced {metrics['balanced_accuracy']:.3f}, macro-F1 {metrics['macro_f1']:.3f}"
        )
    if cv_report:
        report = json.loads(Path(cv_report).read_text())
        if config.arch not in report.get("methods", {}):
            raise click.UsageError(f"{cv_report} has no results for arch {config.arch}")
        cv = report["methods"][config.arch]
        metrics = {"protocol": f"{report['folds']}-fold group cross-validation, {report['epochs']} epochs"}
        metrics |= _card_metrics(cv)
    parity = train_w.parity_windows(16)
    with torch.no_grad():
        torch.save({"windows": torch.from_numpy(parity)}, out / "parity_windows.pt")
    info = ModelInfo(
        name=config.name,
        version=version_stamp(),
        labels=tuple(labels),
        frontend=fcache.frontend,
        training={
            "arch": config.arch,
            "epochs_run": len(result.history),
            "best_epoch": result.best_epoch,
            "n_train_tracks": len(train_w),
            "n_valid_tracks": len(valid_w) if valid_w is not None else 0,
            "label_counts": dict(counts),
            "sources": sorted({t.source for t in tracks}),
            "config": config.to_dict(),
        },
        metrics=_card_metrics(metrics),
    )
    parity_result = export_onnx(result.model, info, out / "model.onnx", parity)
    summary = {"seconds": time.time() - started, "peak_rss_mb": _peak_rss_mb(), "parity": parity_result}
    (out / "run.json").write_text(json.dumps(summary, indent=1))
    click.echo(
        f"wrote {out / 'model.onnx'} ({summary['seconds']:.0f} s, peak RSS {summary['peak_rss_mb']:.0f} MB, parity {parity_result['max_abs_diff']:.1e})"
    )


@main.command("head")
@click.argument("data", nargs=-1, required=True)
@click.option("--config", "recipe_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Recipe file, e.g. recipes/default.json.")  # fmt: skip
@click.option("--out", "out_file", required=True, type=click.Path(dir_okay=False), help="The .onnx file to write.")
@click.option("--cache", default="runs/feature-cache", show_default=True, type=click.Path(file_okay=False),
              help="Where the backbone's features are cached (by file content).")  # fmt: skip
@click.option("--cv-report", type=click.Path(exists=True, dir_okay=False),
              help="report.json of benchmarks/musicnn_cv.py: its --cv-row figures go on the model's card.")  # fmt: skip
@click.option("--cv-row", default="backend-ft/w8", show_default=True)
@click.option("--workers", type=click.IntRange(1), default=2, show_default=True, help="Processes decoding audio.")
def head(data, recipe_path, out_file, cache, cv_report, cv_row, workers) -> None:
    """Train a genre head on the pretrained MSD_musicnn, as a recipe says, on all of DATA.

    The backbone stays frozen; its back end is fine-tuned from the pretrained weights with a new
    output layer (settings in the recipe); the file holds backbone and head. A recipe whose
    backend sets "tune_midend": true also trains the mid-end (partial fine-tuning) on the front
    end's cached outputs (about 210 kB a window on disk under --cache).
    """
    from training.pipelines.musicnn_recipe import Recipe, build

    started = time.time()
    try:
        recipe = Recipe.read(recipe_path)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    tracks = _load_all(data)
    metrics: dict = {}
    if cv_report:
        report = json.loads(Path(cv_report).read_text())
        if cv_row not in report.get("rows", {}):
            raise click.UsageError(f"{cv_report} has no row {cv_row!r}; it has {sorted(report.get('rows', {}))}")
        metrics = {"protocol": f"{report['folds']}-fold group cross-validation ({cv_row})"}
        metrics |= _card_metrics(report["rows"][cv_row])
    try:
        parity = build(recipe, tracks, out_file, cache, metrics, workers, click.echo)
    except TrainingError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"wrote {out_file} ({time.time() - started:.0f} s, peak RSS {_peak_rss_mb():.0f} MB, "
        f"parity {parity['max_abs_diff']:.1e})"
    )


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
        [probs[i] for i in kept], [tracks[i].label for i in kept], labels, [tracks[i].source for i in kept]
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
    """Export a training CHECKPOINT (best.pt) to a self-describing .onnx, checked against torch.

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
            metrics=_card_metrics(metrics),
        )
        result = export_onnx(model, info, out_file, windows)
    except TrainingError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"wrote {out_file}: {info.model_id}, parity max abs diff {result['max_abs_diff']:.1e}")


if __name__ == "__main__":
    main()
