"""Torch-free personal heads on a base model's ``embedding``, on the learning curve's folds and draws.

`benchmarks/learning_curve.py --methods head` scores the shipped head (`training.models.personal_head.fit_head`)
through `retrain`; this script scores that head and its candidate replacements on the same
artist folds (`group_kfold`, seed 0) and the same per-genre draws (`sample_per_genre`, seed =
fold), from the base model's cached window embeddings (8 windows per track, as `retrain` and
its held-out check place them), so every variant sees identical tracks and windows. Every
head could be appended to the base graph with plain ONNX ops: linear layers on the embedding or
its L2-normalised form, the base's own output layer and LogSoftmax, a weighted sum of
probabilities. With ``--draws R`` each fold also gets R-1 further random draws
(seed ``fold + 1000 * r``), to tell a difference from the luck of one draw.

    python benchmarks/head_variants.py runs/lc/base-musicnn-gtzan.onnx runs/lc/emotify.csv \\
        --out runs/lc/head-variants --sizes 10,25,50 --folds 3 --draws 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from learning_curve import sample_per_genre  # noqa: E402

from training.data.genres import shared_label_indices  # noqa: E402
from training.data.splits import group_kfold  # noqa: E402
from training.data.tracks import load_manifest  # noqa: E402
from training.models.personal_head import HEAD_C, fit_head, softmax, window_embeddings  # noqa: E402

C_GRID = (0.001, 0.003, 0.01, 0.03, 0.1)
PRIOR_GRID = tuple((lam, c) for lam in (0.5, 1.0, 2.0) for c in (0.003, 0.01, 0.03))


def base_output_layer(path: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The base's old output layer: (D, n_base) weights, (n_base,) bias of the Gemm that turns
    ``embedding`` into the logits under its softmax, and the base's labels."""
    import onnx
    from onnx import numpy_helper

    from genre_model import Classifier

    proto = onnx.load(path)
    init = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    gemm = next(n for n in proto.graph.node if n.op_type == "Gemm" and n.input[0] == "embedding")
    attrs = {a.name: a for a in gemm.attribute}
    w = init[gemm.input[1]].astype(np.float64)
    w = w.T if attrs.get("transB") and attrs["transB"].i else w
    return w, init[gemm.input[2]].astype(np.float64), list(Classifier(path, device="cpu").info.labels)


def fit_offset_lr(x, y, offset, n_labels, c, weights=None, max_iter=500, feature_scale=None):
    """Multinomial logistic regression with a fixed per-row logit offset (n, n_labels):
    minimises ``sum_i w_i CE(softmax(offset_i + z_i @ W + b), y_i) + |W|^2 / (2 C)`` on
    standardised z (sklearn's objective when the offset is 0), each standardised feature then
    multiplied by `feature_scale` (a larger scale: a weaker penalty). Returns raw-space (W, b)."""
    from scipy.optimize import minimize

    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-12
    if feature_scale is not None:
        scale = scale / feature_scale
    z = (x - mean) / scale
    n, d = z.shape
    onehot = np.eye(n_labels)[y]
    w_row = np.ones(n) if weights is None else weights

    def loss(theta):
        wm, b = theta[: d * n_labels].reshape(d, n_labels), theta[d * n_labels :]
        logits = offset + z @ wm + b
        logits -= logits.max(axis=1, keepdims=True)
        logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        p = np.exp(logp)
        value = -(w_row * (onehot * logp).sum(axis=1)).sum() + (wm**2).sum() / (2 * c)
        g = (p - onehot) * w_row[:, None]
        return value, np.concatenate([(z.T @ g + wm / c).ravel(), g.sum(axis=0)])

    res = minimize(loss, np.zeros(d * n_labels + n_labels), jac=True, method="L-BFGS-B", options={"maxiter": max_iter})
    wm, b = res.x[: d * n_labels].reshape(d, n_labels), res.x[d * n_labels :]
    return wm / scale[:, None], b - (mean / scale) @ wm


def balanced(y, n_labels):
    counts = np.bincount(y, minlength=n_labels)
    return len(y) / (n_labels * counts[y])


def l2n(x):
    return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-12)


class Heads:
    """Fits each variant on (tracks' window embeddings, label indices) and returns a function
    from one track's window embeddings (n, D) to its window probabilities (n, n_labels)."""

    def __init__(self, n_labels: int, base_w: np.ndarray, base_b: np.ndarray, shared: dict[int, int]):
        self.n = n_labels
        self.base_w, self.base_b = base_w, base_b
        # Base logits of the shared labels in the new label order; 0 for a label the base lacks.
        self.prior_w = np.zeros((base_w.shape[0], n_labels))
        self.prior_b = np.zeros(n_labels)
        for new, old in shared.items():
            self.prior_w[:, new], self.prior_b[new] = base_w[:, old], base_b[old]

    def lr(self, emb, y, c=HEAD_C, norm=False):
        f = l2n if norm else (lambda a: a)
        head = fit_head([f(e) for e in emb], y, self.n, c)
        return lambda e: head.window_probabilities(f(e))

    def prior(self, emb, y, lam=1.0, c=HEAD_C):
        x = np.concatenate(emb).astype(np.float64)
        yy = np.concatenate([np.full(len(e), t) for e, t in zip(emb, y, strict=True)])
        offset = lam * (x @ self.prior_w + self.prior_b)
        w, b = fit_offset_lr(x, yy, offset, self.n, c, balanced(yy, self.n))
        w, b = w + lam * self.prior_w, b + lam * self.prior_b  # one linear layer: base logits + residual
        return lambda e: softmax(e.astype(np.float64) @ w + b)

    def base_logp(self, e):
        """The base model's log-probabilities over all its labels, (n, n_base)."""
        logits = e @ self.base_w + self.base_b
        logits = logits - logits.max(axis=1, keepdims=True)
        return logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))

    def stack(self, emb, y, k=3.0, c=HEAD_C, with_embedding=True):
        """LR on [embedding, base log-probabilities], both standardised, the latter times k."""
        feats = [np.hstack([e, self.base_logp(e)]) if with_embedding else self.base_logp(e) for e in emb]
        x = np.concatenate(feats)
        yy = np.concatenate([np.full(len(e), t) for e, t in zip(emb, y, strict=True)])
        fs = np.r_[np.ones(x.shape[1] - self.base_w.shape[1]), np.full(self.base_w.shape[1], k)]
        w, b = fit_offset_lr(x, yy, np.zeros((len(x), self.n)), self.n, c, balanced(yy, self.n), feature_scale=fs)

        def predict(e):
            f = np.hstack([e, self.base_logp(e)]) if with_embedding else self.base_logp(e)
            return softmax(f @ w + b)

        return predict

    def mix(self, emb, y, alpha=0.5, c=HEAD_C):
        """(1 - alpha) * the shipped head's probabilities + alpha * the base's, mapped: a shared
        label gets the base's probability, the base's remaining mass is split over the other
        labels in the head's proportions."""
        head = self.lr(emb, y, c)
        shared = self.prior_w.any(axis=0)
        cols = [int(np.argmax((self.base_w == self.prior_w[:, k : k + 1]).all(axis=0))) for k in np.flatnonzero(shared)]

        def predict(e):
            p_head = head(e).astype(np.float64)
            p_base = np.exp(self.base_logp(e))
            mapped = np.zeros_like(p_head)
            mapped[:, shared] = p_base[:, cols]
            rest = p_head[:, ~shared]
            left = 1.0 - mapped.sum(axis=1, keepdims=True)
            mapped[:, ~shared] = left * rest / (rest.sum(axis=1, keepdims=True) + 1e-12)
            return (1 - alpha) * p_head + alpha * mapped

        return predict

    def ncm(self, emb, y, scale=10.0):
        """Cosine prototypes: logits = scale * cos(e, class mean of L2-normalised windows)."""
        x = np.concatenate([l2n(e.astype(np.float64)) for e in emb])
        yy = np.concatenate([np.full(len(e), t) for e, t in zip(emb, y, strict=True)])
        protos = l2n(np.stack([x[yy == k].mean(axis=0) for k in range(self.n)]))
        return lambda e: softmax(scale * l2n(e.astype(np.float64)) @ protos.T)

    def inner_choice(self, emb, y, groups, fit, grid):
        """The grid point with the best track accuracy over 3 artist folds of the training tracks."""
        folds = group_kfold_indices(y, groups)
        best, best_acc = grid[0], -1.0
        scores = {}
        for point in grid:
            hits = []
            for f in range(3):
                tr = [i for i in range(len(y)) if folds[i] != f]
                te = [i for i in range(len(y)) if folds[i] == f]
                if len({y[i] for i in tr}) < self.n or not te:
                    continue
                predict = fit([emb[i] for i in tr], [y[i] for i in tr], *point)
                hits += [int(predict(emb[i]).mean(axis=0).argmax() == y[i]) for i in te]
            acc = float(np.mean(hits)) if hits else -1.0
            scores[str(point)] = acc
            if acc > best_acc:
                best, best_acc = point, acc
        return best, scores


def group_kfold_indices(y, groups):
    from training.data.tracks import Track

    fake = [
        Track(path=str(i), label=str(t), group=g, source="") for i, (t, g) in enumerate(zip(y, groups, strict=True))
    ]
    return group_kfold(fake, 3, seed=0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("base")
    ap.add_argument("library")
    ap.add_argument("--out", required=True)
    ap.add_argument("--sizes", default="10,25,50")
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--draws", type=int, default=1, help="draws per fold and size; draw 0 is the curve's")
    ap.add_argument("--first-draw", type=int, default=0, help="run draws first-draw .. first-draw + draws - 1")
    ap.add_argument("--summary", nargs="*", help="only print the tables of these head_variants.json files")
    ap.add_argument("--cache", default="runs/feature-cache")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--variants", default="", help="only these variant names, '|'-separated (and the shipped head)")
    args = ap.parse_args()
    if args.summary:
        rows = [r for f in args.summary for r in json.loads(Path(f).read_text())]
        names = list(dict.fromkeys(r["variant"] for r in rows))
        print_tables(rows, sorted({r["per_genre"] for r in rows}), names)
        return

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tracks = load_manifest(args.library)
    labels = sorted({t.label for t in tracks})
    embedded, failures = window_embeddings(args.base, [t.path for t in tracks], 8, args.workers, args.cache)
    assert not failures, failures
    emb = {t.path: e.astype(np.float64) for t, e in zip(tracks, embedded, strict=True)}
    base_w, base_b, base_labels = base_output_layer(args.base)
    heads = Heads(len(labels), base_w, base_b, shared_label_indices(labels, base_labels))
    folds = group_kfold(tracks, args.folds, seed=0)
    sizes = [int(s) for s in args.sizes.split(",")]
    variants = {f"lr C={c}": (lambda e, y, g, c=c: (heads.lr(e, y, c), {})) for c in C_GRID}
    variants["lr C=inner"] = lambda e, y, g: _inner(heads, e, y, g, heads.lr, [(c,) for c in C_GRID])
    variants["l2 + lr C=0.01"] = lambda e, y, g: (heads.lr(e, y, HEAD_C, norm=True), {})
    variants["cosine prototypes"] = lambda e, y, g: (heads.ncm(e, y), {})
    variants["base prior λ=1 C=0.01"] = lambda e, y, g: (heads.prior(e, y, 1.0, HEAD_C), {})
    variants["base prior λ,C=inner"] = lambda e, y, g: _inner(heads, e, y, g, heads.prior, list(PRIOR_GRID))
    variants["base log-probs only, C=inner"] = lambda e, y, g: _inner(
        heads, e, y, g, lambda e2, y2, c: heads.stack(e2, y2, 1.0, c, False), [(c,) for c in (0.01, 0.1, 1.0)]
    )
    variants["embedding + base log-probs ×3 C=0.01"] = lambda e, y, g: (heads.stack(e, y, 3.0, HEAD_C), {})
    variants["embedding + base log-probs, k,C=inner"] = lambda e, y, g: _inner(
        heads, e, y, g, heads.stack, [(k, c) for k in (1.0, 3.0, 10.0) for c in (0.003, 0.01, 0.03)]
    )
    variants["mix with base α=0.5"] = lambda e, y, g: (heads.mix(e, y, 0.5), {})
    variants["mix with base α=inner"] = lambda e, y, g: _inner(
        heads, e, y, g, heads.mix, [(a,) for a in (0.0, 0.25, 0.5, 0.75)]
    )
    if args.variants:
        keep = args.variants.split("|")
        variants = {k: v for k, v in variants.items() if k in keep or k == f"lr C={HEAD_C}"}
    rows = []
    for fold in range(args.folds):
        test = [t for t, f in zip(tracks, folds, strict=True) if f == fold]
        pool = [t for t, f in zip(tracks, folds, strict=True) if f != fold]
        truth = np.array([labels.index(t.label) for t in test])
        for n in sizes:
            for r in range(args.first_draw, args.first_draw + args.draws):
                train = sample_per_genre(pool, labels, n, seed=fold + 1000 * r)
                e_tr = [emb[t.path] for t in train]
                y_tr = [labels.index(t.label) for t in train]
                g_tr = [t.group for t in train]
                for name, fit in variants.items():
                    started = time.time()
                    predict, chosen = fit(e_tr, y_tr, g_tr)
                    pred = np.array([predict(emb[t.path]).mean(axis=0).argmax() for t in test])
                    row = {
                        "fold": fold, "per_genre": n, "draw": r, "variant": name, "n_train": len(train),
                        "n_test": len(test), "track_accuracy": float((pred == truth).mean()),
                        "macro_f1": _macro_f1(truth, pred, len(labels)), "chosen": chosen,
                        "seconds": round(time.time() - started, 2),
                    }  # fmt: skip
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    (out / "head_variants.json").write_text(json.dumps(rows, indent=1))
    print_tables(rows, sizes, list(variants))


def _inner(heads, e, y, g, fit, grid):
    point, scores = heads.inner_choice(e, y, g, fit, grid)
    return fit(e, y, *point), {"chosen": list(point), "inner": scores}


def _macro_f1(truth, pred, n_labels) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(truth, pred, labels=list(range(n_labels)), average="macro", zero_division=0))


def print_tables(rows, sizes, names) -> None:
    """Mean ± sd over folds (draw 0: the learning curve's own draws), then over every fold and
    draw with the paired difference to the shipped head (C=0.01), then nested choices: for each
    fold, the variant (or C) best on the other folds, scored on that fold."""

    def ms(values):
        return f"{statistics.mean(values):.3f} ± {statistics.stdev(values) if len(values) > 1 else 0.0:.3f}"

    by = defaultdict(dict)
    for r in rows:
        by[(r["variant"], r["per_genre"])][(r["fold"], r["draw"])] = r["track_accuracy"]
    draws = sorted({r["draw"] for r in rows})
    folds = sorted({r["fold"] for r in rows})
    ref = f"lr C={HEAD_C}"
    print(f"\ndraws {draws}; mean ± sd over folds (draw 0) | over folds x draws | paired diff to {ref} (better/worse)")
    print("| variant | " + " | ".join(f"{n}: draw 0" for n in sizes) + " | " + " | ".join(f"{n}: all" for n in sizes)
          + " | " + " | ".join(f"{n}: diff" for n in sizes) + " |")  # fmt: skip
    print("|---" * (1 + 3 * len(sizes)) + "|")
    for name in names:
        first = [ms([v for (f, d), v in by[(name, n)].items() if d == 0]) for n in sizes]
        every = [ms(list(by[(name, n)].values())) for n in sizes]
        diffs = []
        for n in sizes:
            d = [v - by[(ref, n)][k] for k, v in by[(name, n)].items()]
            diffs.append(f"{statistics.mean(d):+.3f} ({sum(x > 0 for x in d)}/{sum(x < 0 for x in d)})")
        print(f"| {name} | " + " | ".join(first + every + diffs) + " |")

    def fold_mean(name, n, f):
        return statistics.mean(v for (ff, _), v in by[(name, n)].items() if ff == f)

    for title, pool in (("C of lr", [x for x in names if x.startswith("lr C=0")]), ("any variant", names)):
        print(f"\nnested choice of {title}: per size, fold: picked on the other folds -> its accuracy there")
        for n in sizes:
            got, picks = [], []
            for f in folds:
                pick = max(pool, key=lambda x: statistics.mean(fold_mean(x, n, g) for g in folds if g != f))
                got.append(fold_mean(pick, n, f))
                picks.append(pick)
            print(f"{n}: {ms(got)} (shipped head {ms([fold_mean(ref, n, f) for f in folds])}); picked {picks}")


if __name__ == "__main__":
    main()
