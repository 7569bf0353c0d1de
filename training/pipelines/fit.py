"""`genreclass-train fit`'s run: any architecture of the registry trained from a recipe and exported as one `.onnx`.

Steps, in order: load the tracks, choose the labels, split them by group (refusing a split with a
group or a file on both sides), compute or read the cached inputs of the architecture (log-mel
spectrograms, or a frozen backbone's features), optionally a teacher's soft targets, train
(`engine.loop.fit`, under torchrun on several processes), then on rank 0 the validation metrics,
plots and the export. Both bundled models are built by this one path from their recipes.
Errors are typed (`training.errors`); the command turns them into one line.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from genre_model import ModelError, ModelInfo
from genre_model.model_file import version_stamp
from training.data.genres import select_labels
from training.data.splits import check_disjoint, group_holdout
from training.data.tracks import load_all
from training.engine.config import TrainConfig
from training.errors import ConfigError, SplitLeakError
from training.evaluation.metrics import card_metrics
from training.features.cache import Digests
from training.features.inputs import inputs_for
from training.features.windows import inference_windows, parity_windows, prepare


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _quiet(*args, **kwargs) -> None:
    """echo for ranks other than 0."""


def fit_and_export(
    config: TrainConfig,
    data: Sequence[str],
    out: Path,
    init: str | None,
    workers: int,
    cache: str | None,
    resume: bool,
    cv_report: str | None,
    world,
    echo: Callable[[str], None],
) -> None:
    """Train a network on the tracks of `data` as `config` says and write, in `out`: model.onnx,
    the run's checkpoints and config.json, metrics and plots (with a validation split), run.json.

    cache: the feature caches' folder [OUT/../feature-cache]. cv_report: a cross-validation report
    (`benchmarks/cross_validate.py`) whose figures for the recipe's `name` go on the model's card
    instead of the validation split's. world: the torchrun processes (`engine.distributed`); only
    rank 0 speaks and writes.
    """
    import torch

    from training.engine.checkpoint import load_checkpoint
    from training.engine.distributed import barrier
    from training.engine.loop import fit as run_fit
    from training.engine.loop import track_probabilities
    from training.evaluation.metrics import metrics_from_probs, plot_history, write_metrics
    from training.export.onnx_export import export_onnx

    started = time.time()
    main_echo = echo
    echo = echo if world.is_main else _quiet  # rank 0 speaks for all
    echo(
        f"training on {world.size} processes (torchrun, backend {world.backend})"
        if world.distributed
        else "training on 1 process (start it with torchrun to train on several)"
    )
    tracks = load_all(data, echo)
    tracks, labels = select_labels(tracks, list(config.labels) or None, config.min_tracks, drop_rare=False)
    counts = Counter(t.genres[0] for t in tracks if len(t.genres) == 1)  # tracks of that label alone
    in_sets = Counter(g for t in tracks if len(t.genres) > 1 for g in t.genres)  # and those that may be it
    if config.valid_fraction > 0:
        train_t, valid_t = group_holdout(tracks, config.valid_fraction, config.seed)
    else:
        train_t, valid_t = tracks, []
    digests = Digests()
    inputs = inputs_for(config, cache or out.parent / "feature-cache", digests, workers)
    try:
        check_disjoint(train_t, valid_t, digests.of)
    except SplitLeakError as exc:
        raise SplitLeakError(f"refusing a leaky split: {exc}") from None
    echo(
        "labels (tracks of the label alone, + in a set of several): "
        + ", ".join(f"{label} {counts[label]}" + (f" +{in_sets[label]}" if in_sets[label] else "") for label in labels)
    )
    echo(f"split: {len(train_t)} train, {len(valid_t)} valid tracks")
    echo(f"{config.arch}: {config.architecture.description}")
    if world.distributed:  # each rank computes its share of the features, then all read them all
        prepare(world.shard(train_t), labels, inputs, echo)
        inference_windows(world.shard(valid_t), labels, inputs, config.eval_windows, echo)
        barrier(world)
    train_w, _ = prepare(train_t, labels, inputs, echo)
    valid_w = None
    if valid_t:
        valid_w = inference_windows(valid_t, labels, inputs, config.eval_windows, echo)[0]
    if config.distill_weight > 0:
        if not config.teacher:
            raise ConfigError("distill_weight > 0 needs a teacher model: --set teacher=MODEL.onnx")
        from training.engine.distill import teacher_probabilities

        echo(f"distillation: weight {config.distill_weight}, teacher {config.teacher}")
        try:  # every process computes the same targets: the teacher's share of the time is small
            train_w.teacher_probs = teacher_probabilities(
                train_w.tracks, labels, config.teacher, workers=workers, log=echo
            )
        except ModelError as exc:
            raise ConfigError(str(exc)) from None
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
            probs, [t.genres for t in valid_w.tracks], labels, [t.source for t in valid_w.tracks]
        )
        write_metrics(metrics, out, title=f"{config.arch}, validation")
        main_echo(
            f"validation: track accuracy {metrics['track_accuracy']:.3f}, balanced {metrics['balanced_accuracy']:.3f}, macro-F1 {metrics['macro_f1']:.3f}"
        )
    if cv_report:
        metrics = cv_card(cv_report, config.name)
    parity = parity_windows(train_w.tracks, inputs.frontend)
    with torch.no_grad():
        torch.save({"windows": torch.from_numpy(parity)}, out / "parity_windows.pt")
    info = ModelInfo(
        name=config.name,
        version=version_stamp(),
        labels=tuple(labels),
        frontend=inputs.frontend,
        training={
            "arch": config.arch,
            "architecture": config.architecture.description,
            "epochs_run": len(result.history),
            "best_epoch": result.best_epoch,
            "n_train_tracks": len(train_w),
            "n_valid_tracks": len(valid_w) if valid_w is not None else 0,
            "label_counts": dict(counts),
            "label_counts_in_sets": dict(in_sets),
            "sources": sorted({t.source for t in tracks}),
            "config": config.to_dict(),
        },
        metrics=card_metrics(metrics),
    )
    parity_result = export_onnx(result.model, info, out / "model.onnx", parity)
    summary = {"seconds": time.time() - started, "peak_rss_mb": peak_rss_mb(), "parity": parity_result}
    (out / "run.json").write_text(json.dumps(summary, indent=1))
    main_echo(
        f"wrote {out / 'model.onnx'} ({summary['seconds']:.0f} s, peak RSS {summary['peak_rss_mb']:.0f} MB, parity {parity_result['max_abs_diff']:.1e})"
    )


def cv_card(report_path: str | Path, name: str) -> dict:
    """The model card's figures from a cross-validation report (`benchmarks/cross_validate.py`)
    for the recipe called `name`; `ConfigError` when the report has none."""
    report = json.loads(Path(report_path).read_text())
    if name not in report.get("methods", {}):
        raise ConfigError(f"{report_path} has no results for {name!r}; it has {sorted(report.get('methods', {}))}")
    method = report["methods"][name]
    sources = report.get("sources", [])
    protocol = f"{report['folds']}-fold group cross-validation" + (f" over {', '.join(sources)}" if sources else "")
    return {"protocol": protocol, **card_metrics(method)}
