"""Imports flow one way, and importing does no work."""

import subprocess
import sys


def modules_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_runtime_needs_no_torch_and_no_beets():
    loaded = modules_after("import genre_model")
    assert "torch" not in loaded and "beets" not in loaded and "training" not in loaded
    assert "onnxruntime" not in loaded  # loaded on first use only


def test_plugin_import_loads_no_model_runtime():
    loaded = modules_after("import beetsplug.genreclass")
    assert "onnxruntime" not in loaded and "torch" not in loaded
