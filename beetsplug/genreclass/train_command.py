"""`beet genreclass-train`: retrain on the library's own genres, or install a trained model.

Wiring only: the options are parsed into a `LibraryRetrain` for `training.pipelines.retrain_library`
(imported when the command runs, so the plugin needs no torch to load), whose outcome is printed.
The plugin's `map` travels both ways: the genres it writes are learnt as the labels they came from,
and a model whose labels lack one of its keys is not installed (`beet genreclass` would stop on it).
What must be installed depends on the method `training.pipelines.retrain.training_method` picks for the
configured model: a head on its embedding needs scikit-learn and onnx, torch training the
train extra.
"""

from __future__ import annotations

import importlib
import os
import shutil

from beets import logging as beets_logging
from beets import ui

from genre_model import Classifier, ModelError, resolve_workers
from genre_model.model_file import version_stamp

from .settings import genreclass_dir, installed_model_path

# The extra that brings each package retraining may need (import name -> extra, pip name).
EXTRA_OF = {
    "sklearn": ("head", "scikit-learn"),
    "onnx": ("head", "onnx"),
    "torch": ("train", "torch"),
    "matplotlib": ("train", "matplotlib"),
}
# Retraining's own progress lines carry the command's name, not just the plugin's.
log = beets_logging.getLogger("beets.genreclass-train")


def add_options(cmd: ui.Subcommand) -> None:
    """The command's usage text and options."""
    from training.data.splits import K_FOLDS  # the one default (light: no numpy-heavy modules)

    cmd.parser.usage = "%prog [options] [QUERY]" + (
        "\n\nLearn the genres of the matching tracks that have them and write a model in your"
        "\nvocabulary. A track's genres (in canonical spelling) are the set it may carry: 'Rock; Pop'"
        "\nteaches both. First an estimate: the artists are cut into folds (album artists; on"
        "\ncompilations, track artists), and each fold's tracks are predicted by a model trained on"
        "\nthe others, so every track is judged by a model that never heard its artist; the current"
        "\nmodel is scored on the same tracks. Then the model is trained on every tagged track."
        "\nTracks whose genres genreclass itself set are not used; genres you corrected by hand since are."
        "\nA genre your 'map' setting writes is learnt as the label it stands for, so the map keeps working."
        "\nA model with an embedding output gets a new head on it, in seconds per fold once its"
        "\nembeddings are computed: pip install 'beets-genreclass[head]'. A CNN/CRNN model,"
        "\nor --from-scratch, is trained with torch (the estimate then trains the first fold only):"
        "\npip install 'beets-genreclass[train]'."
        "\n\n%prog --install-file FILE makes an already trained .onnx the model in use."
    )
    add = cmd.parser.add_option
    add("--vocabulary", metavar="LABELS", help="comma-separated genres to learn (default: every genre with --min-tracks tracks)")  # fmt: skip
    add("--min-tracks", type="int", default=10, metavar="N", help="fewest tracks a genre needs to be learnt [%default]")  # fmt: skip
    add("--rollup", action="store_true", default=False,
        help="merge each genre with fewer than --min-tracks tracks (with --vocabulary: each genre not in it) into its "
             "parent in beets' genre tree (lastgenre's genres-tree.yaml) until it has enough: Delta Blues + Chicago "
             "Blues + Blues train one Blues")  # fmt: skip
    add("--alias", metavar="FILE", help="YAML mapping of genre spellings to canonical names, e.g. 'hip hop: Hip-Hop'")  # fmt: skip
    add("--folds", type="int", default=K_FOLDS, metavar="K",
        help="folds of the cross-validation over artists [%default; as many as there are artists when fewer]")  # fmt: skip
    add("--epochs", type="int", default=30, metavar="N", help="training epochs of a torch-trained model [%default]")
    add("--from-scratch", action="store_true", default=False, help="random initial weights instead of the current model's")  # fmt: skip
    add("--out", metavar="FILE", help="the .onnx to write [CONFIG/genreclass/personal-DATE.onnx]")
    add("--install", action="store_true", default=False, help="make the new model the one 'beet genreclass' uses")  # fmt: skip
    add("--install-file", metavar="FILE", help="install this trained .onnx instead of training one")  # fmt: skip
    add("--force", action="store_true", default=False,
        help="train (and --install) even when no estimate is possible (a genre whose tracks are all by one artist); "
             "the model's card then says it has none")  # fmt: skip
    add("--cache", metavar="DIR", help="keep computed features here to speed up the next run [temporary]")  # fmt: skip


def train_command(plugin, lib, opts, args: list[str]) -> None:
    """Run ``beet genreclass-train``; `plugin` gives the configured model and settings."""
    if opts.install_file:
        install(opts.install_file, plugin)
        return
    from training.errors import TrainingError
    from training.pipelines.retrain import REQUIRED_PACKAGES, RetrainOptions, training_method
    from training.pipelines.retrain_estimated import estimate_lines
    from training.pipelines.retrain_library import LibraryRetrain, retrain_library

    if opts.epochs < 1 or opts.min_tracks < 1 or opts.folds < 2:
        raise ui.UserError("genreclass-train: --epochs and --min-tracks must be >= 1, --folds >= 2")
    settings = plugin.settings()
    base = settings.model
    _check_packages(REQUIRED_PACKAGES[training_method(base, opts.from_scratch)])
    version = version_stamp()
    request = LibraryRetrain(
        query=args,
        out=opts.out or os.path.join(genreclass_dir(), f"personal-{version}.onnx"),
        options=RetrainOptions(
            epochs=opts.epochs, from_scratch=opts.from_scratch, base_model=base, workers=resolve_workers("auto"),
            version=version,
        ),
        alias_file=opts.alias,
        # The `map` read backwards: a genre it writes ("Hip Hop") is learnt as its label ("Hip-Hop"), so the
        # map keeps applying to the new model.
        aliases={genre: label for label, genre in settings.rename.items() if genre},
        vocabulary=[v.strip() for v in opts.vocabulary.split(",") if v.strip()] if opts.vocabulary else None,
        min_tracks=opts.min_tracks,
        rollup=opts.rollup,
        folds=opts.folds,
        force=opts.force,
        cache=opts.cache,
        spellings=(*_model_labels(base), *settings.rename),  # the spelling of the genres the current model knows
    )  # fmt: skip
    try:
        result = retrain_library(lib, request, lambda text: log.info("{}", text))  # text may hold braces
    except (TrainingError, ModelError) as exc:
        raise ui.UserError(f"genreclass-train: {exc}") from None
    except KeyboardInterrupt:
        raise ui.UserError("genreclass-train: interrupted; no model written") from None
    for line in estimate_lines(result.card):
        ui.print_(line)
    if opts.install:
        install(result.model_path, plugin)
    else:
        ui.print_(f"to use it: beet genreclass-train --install-file {result.model_path}")


def install(model: str | os.PathLike[str], plugin) -> None:
    """Check that `model` is a loadable genreclass model, then copy it into place atomically."""
    if os.path.isdir(model):
        raise ui.UserError(f"genreclass-train: {model} is a folder; give the path of a .onnx model file")
    labels = _model_labels(os.fspath(model))
    unknown = sorted(set(plugin.settings().rename) - set(labels))
    if unknown:  # `beet genreclass` would stop on them (settings.check_rename): refuse before replacing a working model
        raise ui.UserError(
            f"genreclass-train: {model} not installed: its labels ({', '.join(labels)}) lack genreclass.map's "
            f"{'key' if len(unknown) == 1 else 'keys'} {', '.join(unknown)}, and 'beet genreclass' would stop on "
            f"{'it' if len(unknown) == 1 else 'them'}. Remove or rename {'it' if len(unknown) == 1 else 'them'} in the "
            f"config, then: beet genreclass-train --install-file {model}"
        )
    target = installed_model_path()
    os.makedirs(os.path.dirname(target), exist_ok=True)
    tmp = target + ".partial"
    shutil.copyfile(model, tmp)
    os.replace(tmp, target)
    ui.print_(f"installed {model} ({', '.join(labels)}): 'beet genreclass' now uses {target}")
    ui.print_(f"to go back to the bundled model, delete {target}")
    if plugin.config["model"].get():
        log.warning("the configured genreclass.model ({}) still takes precedence", plugin.config["model"].get())


def _model_labels(path: str | None) -> tuple[str, ...]:
    try:
        return Classifier(path, device="cpu").info.labels
    except ModelError as exc:
        raise ui.UserError(f"genreclass-train: {exc}") from None


def _check_packages(names: tuple[str, ...]) -> None:
    """Raise `UserError` naming the packages (import names) missing and the extra that brings them."""
    missing = []
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        extra = "train" if any(EXTRA_OF[name][0] == "train" for name in missing) else "head"
        raise ui.UserError(
            f"genreclass-train: {', '.join(EXTRA_OF[name][1] for name in missing)} not installed; install them with: "
            f"pip install 'beets-genreclass[{extra}]'"
        )
