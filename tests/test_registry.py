"""feedback_nlp.registry: save_model and load_model round trips (promote/rollback through the CLI: test_pipeline_tools.py)."""

import numpy as np

from feedback_nlp import load_model, save_model


def test_round_trip_gives_identical_scores(fitted, model_dir, fake_encoder):
    loaded = load_model(model_dir)
    texts = ["quick and friendly", "still broken, transferred twice", ""]
    assert np.allclose(loaded.predict_proba(texts), fitted.predict_proba(texts))
    assert loaded.classify(texts) == fitted.classify(texts)


def test_loading_and_classifying_never_imports_scikit_learn(model_dir):
    """The heads are kept as weights: a process that only classifies skips scikit-learn, scipy
    and pandas (about 1 s and 160 MB of start-up)."""
    from conftest import assert_classifies_without

    assert_classifies_without(model_dir)


def test_save_replaces_an_existing_folder_atomically(fitted, tmp_path):
    path = tmp_path / "m"
    save_model(fitted, path)
    (path / "stale.txt").write_text("old")
    save_model(fitted, path)
    assert not (path / "stale.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["m"]
    load_model(path)
