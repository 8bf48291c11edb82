"""The model folder format: manifest, verification, amending, tampering.

Saving and loading round trips are in test_registry.py, the heads' arrays in test_heads.py.
"""

import json

import pytest

from feedback_nlp import ArtifactError, load_model, verify_model


def test_manifest_records_what_a_reader_needs(model_dir):
    manifest = json.loads((model_dir / "manifest.json").read_text())
    assert manifest["format_version"] == 2
    assert manifest["encoder"] == {"kind": "hashing", "dim": 256}
    assert set(manifest["thresholds"]) == {"speed", "attitude", "skills", "not_solved", "bounced_around"}
    assert [t["id"] for t in manifest["taxonomy"]["themes"]][0] == "speed"
    assert {"heads.json", "heads.npz", "MODEL_CARD.md"} <= set(manifest["files"])
    assert all(len(h) == 64 for h in manifest["files"].values())
    assert "scikit-learn" in manifest["libraries"]
    assert "threshold" in (model_dir / "MODEL_CARD.md").read_text()


def test_missing_file_is_named(model_dir):
    (model_dir / "heads.npz").unlink()
    with pytest.raises(ArtifactError, match="heads.npz: missing"):
        load_model(model_dir)


def test_altered_file_is_named(model_dir):
    with open(model_dir / "heads.npz", "ab") as fh:
        fh.write(b"tampered")
    with pytest.raises(ArtifactError, match="heads.npz: sha256 does not match"):
        load_model(model_dir)


def test_truncated_file_is_refused(model_dir):
    data = (model_dir / "heads.npz").read_bytes()
    (model_dir / "heads.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError, match="heads.npz"):
        verify_model(model_dir)


def test_altered_card_is_refused_too(model_dir):
    (model_dir / "MODEL_CARD.md").write_text("fake metrics")
    with pytest.raises(ArtifactError, match="MODEL_CARD.md"):
        load_model(model_dir)


def test_unknown_format_version_and_missing_manifest(model_dir, tmp_path):
    manifest = json.loads((model_dir / "manifest.json").read_text())
    manifest["format_version"] = 99
    (model_dir / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="format_version 99"):
        load_model(model_dir)
    with pytest.raises(ArtifactError, match="not found"):
        load_model(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArtifactError, match="manifest.json: missing"):
        load_model(tmp_path / "empty")


def test_loading_checks_the_files_of_its_runtime_and_info_checks_all(model_dir):
    from feedback_nlp import load_model, verify_model
    from feedback_nlp.artifacts import amend_model
    from feedback_nlp.errors import ArtifactError

    for rel in ("onnx/graph.bin", "encoder/weights.bin"):
        (model_dir / rel).parent.mkdir(exist_ok=True)
        (model_dir / rel).write_bytes(b"original")
    amend_model(model_dir, {}, files=["onnx/graph.bin", "encoder/weights.bin"])
    verify_model(model_dir)
    # An altered ONNX file does not stop the torch runtime, which never reads it ...
    (model_dir / "onnx" / "graph.bin").write_bytes(b"altered")
    assert load_model(model_dir, runtime="torch").classify(["still broken"])
    with pytest.raises(ArtifactError, match="onnx/graph.bin"):
        verify_model(model_dir, runtime="onnx")
    # ... an altered torch encoder file does not stop the onnx runtime, but stops torch ...
    (model_dir / "onnx" / "graph.bin").write_bytes(b"original")
    (model_dir / "encoder" / "weights.bin").write_bytes(b"altered")
    verify_model(model_dir, runtime="onnx")
    with pytest.raises(ArtifactError, match="encoder/weights.bin"):
        load_model(model_dir, runtime="torch")
    # ... and a full check (feedback-nlp info) finds any of them.
    with pytest.raises(ArtifactError, match="encoder/weights.bin"):
        verify_model(model_dir)


def test_a_model_folder_holds_no_pickle_and_loads_none(model_dir, monkeypatch):
    """Heads are JSON + arrays: loading never unpickles (np.load refuses pickled arrays)."""
    import pickle

    assert not list(model_dir.rglob("*.joblib")) and not list(model_dir.rglob("*.pkl"))

    def refuse(*args, **kwargs):
        raise AssertionError("loading a model unpickled something")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    assert load_model(model_dir).classify(["still broken"])
