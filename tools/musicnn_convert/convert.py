"""Convert musicnn 0.1.0's TensorFlow checkpoints (MSD_musicnn, MSD_vgg) to safetensors for training.models.musicnn.network.

Run once, in a separate venv with TensorFlow (see README.md beside this file); the project itself
never imports TensorFlow. Writes into --out (default training/pretrained/):

- msd_musicnn.safetensors, msd_vgg.safetensors: every variable the inference graph reads, renamed to
  the torch modules' state_dict keys; conv kernels transposed to torch's layout; batch norms kept as
  batch norms (moving mean/variance; their epsilon, read from the graph, goes into the metadata).
- msd_reference.npz: TensorFlow's outputs (is_training=False) on synthetic patches stored in the file,
  and on real patches of the shared data set stored only as (path, start frame): never its audio.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # musicnn uses tf.compat.v1.layers
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from musicnn import configuration, models  # noqa: E402
from safetensors.numpy import save_file  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference_features import load_audio, musicnn_log_mel, musicnn_patch  # noqa: E402
from synthetic_audio import synthetic_signals  # noqa: E402

from training.models.musicnn.constants import LOG1P_GAIN, N_MELS, PATCH_FRAMES  # noqa: E402

# TF variable scope -> (torch module path, kind). TF names layers by creation order, so these
# tables follow musicnn.models.build_musicnn / vgg line by line.
MUSICNN_LAYERS = {
    "batch_normalization": ("input_norm", "bn"),
    "conv2d": ("timbral.0.conv", "conv2d"),  # 7 x 38 bands (40 % of 96)
    "batch_normalization_1": ("timbral.0.norm", "bn"),
    "conv2d_1": ("timbral.1.conv", "conv2d"),  # 7 x 67 bands (70 %)
    "batch_normalization_2": ("timbral.1.norm", "bn"),
    "conv2d_2": ("temporal.0.conv", "conv2d"),  # 128 x 1
    "batch_normalization_3": ("temporal.0.norm", "bn"),
    "conv2d_3": ("temporal.1.conv", "conv2d"),  # 64 x 1
    "batch_normalization_4": ("temporal.1.norm", "bn"),
    "conv2d_4": ("temporal.2.conv", "conv2d"),  # 32 x 1
    "batch_normalization_5": ("temporal.2.norm", "bn"),
    "conv2d_5": ("midend.0.conv", "conv1d"),
    "batch_normalization_6": ("midend.0.norm", "bn"),
    "conv2d_6": ("midend.1.conv", "conv1d"),
    "batch_normalization_7": ("midend.1.norm", "bn"),
    "conv2d_7": ("midend.2.conv", "conv1d"),
    "batch_normalization_8": ("midend.2.norm", "bn"),
    "batch_normalization_9": ("pool_norm", "bn"),
    "dense": ("dense", "dense"),
    "batch_normalization_10": ("dense_norm", "bn"),
    "dense_1": ("classifier", "dense"),
}
VGG_LAYERS = {
    "batch_normalization": ("input_norm", "bn"),
    **{f"{i + 1}CNN": (f"blocks.{i}.conv", "conv2d") for i in range(5)},
    **{f"batch_normalization_{i + 1}": (f"blocks.{i}.norm", "bn") for i in range(5)},
    "dense": ("classifier", "dense"),
}
BN_NAMES = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"}
NETWORKS = {"msd_musicnn": ("MSD_musicnn", MUSICNN_LAYERS), "msd_vgg": ("MSD_vgg", VGG_LAYERS)}


def torch_tensor(kind: str, param: str, value: np.ndarray) -> tuple[str, np.ndarray]:
    """TF variable `param` of a layer of `kind` -> (torch parameter name, array in torch's layout)."""
    if kind == "bn":
        return BN_NAMES[param], value
    if param == "bias":
        return "bias", value
    if kind == "conv2d":  # TF (kh, kw, in, out) -> torch (out, in, kh, kw)
        return "weight", value.transpose(3, 2, 0, 1)
    if kind == "conv1d":  # TF (7, in, 1, out) over a (time, channel, 1) image -> torch (out, in, 7)
        return "weight", value[:, :, 0, :].transpose(2, 1, 0)
    if kind == "dense":  # TF (in, out) -> torch (out, in)
        return "weight", value.T
    raise ValueError(f"unknown layer kind {kind}")


def build_graph(model: str) -> dict[str, tf.Tensor]:
    """musicnn's inference graph for `model`, as musicnn.extractor builds it; returns its named outputs."""
    tf.compat.v1.reset_default_graph()
    with tf.name_scope("model"):
        x = tf.compat.v1.placeholder(tf.float32, [None, PATCH_FRAMES, configuration.N_MELS], name="x")
        is_training = tf.compat.v1.placeholder(tf.bool, name="is_training")
        outputs = models.define_model(x, is_training, model, len(configuration.MSD_LABELS))
    named = {"x": x, "is_training": is_training, "logits": outputs[0], "probabilities": tf.nn.sigmoid(outputs[0])}
    if "vgg" in model:
        # The output layer reads flatten(pool5) in TF's (time, band, channel) order: vgg's embedding.
        named["embedding"] = tf.compat.v1.layers.flatten(outputs[5])
    else:
        named.update(max_pool=outputs[7], mean_pool=outputs[6], embedding=outputs[8])
    return named


def batch_norm_epsilons(graph: tf.Graph) -> list[float]:
    """The epsilon of every batch norm in `graph` (tf.compat.v1.layers default 0.001).

    Fused batch norms of 4-D inputs sit inside the training/inference `cond` branches, i.e. in
    the graph's function library; those of 2-D inputs are plain `batchnorm/add` ops.
    """
    graph_def = graph.as_graph_def()
    nodes = list(graph_def.node) + [n for f in graph_def.library.function for n in f.node_def]
    consts = {n.name: n for n in graph_def.node if n.op == "Const"}
    eps = []
    for node in nodes:
        if node.op.startswith("FusedBatchNorm"):
            eps.append(round(node.attr["epsilon"].f, 9))
        elif node.op == "AddV2" and node.name.endswith("batchnorm/add") and node.input[1] in consts:
            eps.append(round(float(tf.make_ndarray(consts[node.input[1]].attr["value"].tensor)), 9))
    return eps


def convert(name: str, checkpoint_dir: Path, out_dir: Path, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Write `<out_dir>/<name>.safetensors`; return TF's outputs on each input batch (n, 187, 96)."""
    model, layers = NETWORKS[name]
    tensors = build_graph(model)
    graph = tf.compat.v1.get_default_graph()
    with tf.compat.v1.Session() as sess:
        # musicnn restores from "<dir>/" (its checkpoint files are named ".index", ".data-*").
        tf.compat.v1.train.Saver().restore(sess, str(checkpoint_dir / model) + "/")
        state = {}
        for var in tf.compat.v1.global_variables():
            scope, param = var.op.name.rsplit("/", 1)
            if scope not in layers:
                raise KeyError(f"{model}: variable {var.op.name} has no torch counterpart")
            module, kind = layers[scope]
            key, value = torch_tensor(kind, param, sess.run(var))
            state[f"{module}.{key}"] = np.ascontiguousarray(value, dtype=np.float32)
        if len({layers[v.op.name.rsplit("/", 1)[0]] for v in tf.compat.v1.global_variables()}) != len(layers):
            raise KeyError(f"{model}: some mapped layers have no variables in the graph")
        eps = set(batch_norm_epsilons(graph))
        if len(eps) != 1:
            raise ValueError(f"{model}: expected one batch-norm epsilon, found {eps}")
        # One metadata entry holding sorted JSON: safetensors writes several entries in hash-map
        # order, which would change the file's bytes (and sha256) from run to run.
        info = {
            "source": f"musicnn 0.1.0 wheel, musicnn/{model}/ checkpoint",
            "labels": configuration.MSD_LABELS,
            "batch_norm_eps": eps.pop(),
            "input": f"log10(1 + {LOG1P_GAIN:g} * mel); TF takes (batch, {PATCH_FRAMES} frames, {N_MELS} bands), "
            f"the torch port (batch, {N_MELS}, {PATCH_FRAMES})",
        }
        metadata = {"musicnn": json.dumps(info, sort_keys=True)}
        save_file(state, str(out_dir / f"{name}.safetensors"), metadata=metadata)
        fetch = {k: v for k, v in tensors.items() if k not in ("x", "is_training")}
        results = {}
        for set_name, batch in inputs.items():
            out = sess.run(fetch, feed_dict={tensors["x"]: batch, tensors["is_training"]: False})
            results.update({f"{name}_{set_name}_{k}": v.astype(np.float32) for k, v in out.items()})
    return results


def synthetic_patches() -> tuple[list[str], np.ndarray]:
    """Names and (8, 187, 96) float32 patches (musicnn's layout) of the synthetic signals."""
    names, patches = [], []
    for sig_name, audio in synthetic_signals().items():
        names.append(sig_name)
        # Start 8 frames in, past the reflection padding of the centred STFT.
        patches.append(musicnn_patch(musicnn_log_mel(audio), 8).T)
    return names, np.stack(patches).astype(np.float32)


def real_patches(data_dir: Path) -> tuple[list[str], list[int], np.ndarray]:
    """One clip per genre label of the shared data (first path in sorted order) and one patch each.

    returns: relative paths, start frames, patches (n, 187, 96) -- the patches are for running
    TF only; they are never written out.
    """
    with open(data_dir / "manifest.csv", newline="") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: r["path"])
    first = {}
    for row in rows:
        first.setdefault(row["label"], row["path"])
    paths, starts, patches = [], [], []
    for i, (_, rel) in enumerate(sorted(first.items())):
        start = 150 + 40 * i  # 2.4 s .. 8.4 s in: past intros, within every 30-s clip
        paths.append(rel)
        starts.append(start)
        patches.append(musicnn_patch(musicnn_log_mel(load_audio(str(data_dir / rel))), start).T)
    return paths, starts, np.stack(patches).astype(np.float32)


def main(argv: list[str] | None = None) -> None:
    import musicnn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", type=Path, default=Path(musicnn.__file__).parent, help="musicnn package dir")
    parser.add_argument("--out", type=Path, default=REPO / "training" / "pretrained")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data", help="shared data set")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    tf.compat.v1.disable_eager_execution()  # graph mode, as musicnn.extractor runs it

    synth_names, synth = synthetic_patches()
    real_paths, real_starts, real = real_patches(args.data)
    reference = {
        "labels": np.array(configuration.MSD_LABELS),
        "synthetic_names": np.array(synth_names),
        "synthetic_patches": synth,
        "real_paths": np.array(real_paths),
        "real_start_frames": np.array(real_starts, dtype=np.int64),
        # Summaries only, so a failing test can tell decoding drift from a network mismatch.
        "real_patch_mean": real.mean(axis=(1, 2)),
        "real_patch_std": real.std(axis=(1, 2)),
    }
    for name in NETWORKS:
        out = convert(name, args.checkpoints, args.out, {"synthetic": synth, "real": real})
        # Pools of real patches are not needed to localise a mismatch; keep the file small.
        reference.update({k: v for k, v in out.items() if not (k.endswith("_pool") and "_real_" in k)})
    np.savez_compressed(args.out / "msd_reference.npz", **reference)
    for k, v in sorted(reference.items()):
        print(f"{k:40s} {v.dtype} {v.shape}")


if __name__ == "__main__":
    main()
