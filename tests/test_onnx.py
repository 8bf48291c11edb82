"""The ONNX fast path: OnnxEncoder and runtime selection of an export in the model folder.

These run on a tiny hand-built ONNX graph (word embeddings looked up and masked; no torch)
so they are fast. Exporting (and the real all-MiniLM-L6-v2 export) is tested in
test_export.py, the call scheduling in test_runtime.py; both build on make_toy_export here.
"""

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from feedback_nlp import ArtifactError, InvalidInputError, load_model, verify_model
from feedback_nlp.artifacts import amend_model
from feedback_nlp.cli import app
from feedback_nlp.errors import EncoderError
from feedback_nlp.onnx_encoder import OnnxEncoder

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
