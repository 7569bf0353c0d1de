"""`retrain`'s torch method: fine-tune a CNN/CRNN base model from the weights in its `.onnx`, or
train one from scratch, on log-mel windows; export the new network with `training.export.onnx_export`.

Fine-tuning reads the base model's front end and conv blocks (`training.export.backbone`) and a new
head whose rows for the genres both vocabularies share start from the base model's.
"""

from __future__ import annotations

import tempfile

from genre_model import ModelInfo
from genre_model.model_file import version_stamp
from training.data.splits import check_disjoint
from training.errors import NotEnoughData
from training.features.cache import Digests
from training.features.inputs import LogMelInputs
from training.features.windows import inference_windows, parity_windows, prepare
from training.pipelines.retrain import RetrainJob, Trained


def train_network(job: RetrainJob) -> Trained:
    """Fine-tune the base CNN/CRNN (or train one from scratch) with torch and export `out_path`.

    Features (log-mel spectrograms of the base model's front end) are cached in `cache_dir`. Raises
    `BackboneError` when the base model cannot seed a network, `NotEnoughData` when held-out tracks
    were given and none decodes. Without held-out tracks it trains on everything, without validation.
    """
    import torch  # noqa: F401  (fail here, before any work, when the train extra is missing)

    train_tracks, valid_tracks, labels, options, base, log = (
        job.train_tracks, job.valid_tracks, list(job.labels), job.options, job.base, job.log
    )  # fmt: skip

    from training.engine.loop import fit
    from training.export.backbone import read_backbone, transplant_head
    from training.export.onnx_export import export_onnx

    base_info, model_cfg, pretrained = read_backbone(base.model_path)
    # Fine-tuning starts from everything the base model learnt that the new vocabulary can use:
    # front end, conv blocks, and the output rows of the genres both know.
    init_state = None if options.from_scratch else transplant_head(pretrained, base_info.labels, labels, options.seed)
    # The base model's front end, read from its file: its conv blocks were trained on exactly these features.
    config = options.train_config(
        arch=model_cfg.arch, channels=model_cfg.channels, dropout=model_cfg.dropout, gru_hidden=model_cfg.gru_hidden,
        frontend=base_info.frontend.to_dict(),
    )  # fmt: skip
    digests = Digests()
    inputs = LogMelInputs(job.cache_dir, config.frontend_config(), digests, options.workers)
    train_w, _ = prepare(train_tracks, labels, inputs, log)
    valid_w = None  # trained on everything (the estimate's folds are separate runs): no validation
    if valid_tracks:
        valid_w, _ = inference_windows(valid_tracks, labels, inputs, config.eval_windows, log)
        check_disjoint(train_w.tracks, valid_w.tracks, digests.of)
        if len(valid_w) == 0:
            raise NotEnoughData("none of the held-out tracks could be decoded; nothing to check the new model on")
    start = "from scratch" if options.from_scratch else f"fine-tuning {base_info.model_id}"
    log(f"training {start}: {len(train_w)} tracks, {len(labels)} genres, {config.epochs} epochs")
    with tempfile.TemporaryDirectory(prefix="genreclass-train-") as work:
        result = fit(train_w, valid_w, config, work, log=log, init_state=init_state)
    info = ModelInfo(
        name=options.name,
        version=options.version or version_stamp(),
        labels=tuple(labels),
        frontend=inputs.frontend,
        training={
            "arch": model_cfg.arch,
            "start": "scratch" if options.from_scratch else base_info.model_id,
            "sources": sorted({t.source for t in train_w.tracks}),
            "config": config.to_dict(),
        },
    )
    export_onnx(result.model, info, job.out_path, parity_windows(train_w.tracks, inputs.frontend))
    return Trained(train_w.tracks, valid_w.tracks if valid_w is not None else [], result.history, "last epoch")
