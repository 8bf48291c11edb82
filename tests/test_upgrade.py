"""Format-1 model folders (heads pickled in heads.joblib) load only after `feedback-nlp upgrade`,
which converts them once, with the defaults format 1 relied on written out, and answers as before.

tests/data/format1/ was written by feedback-nlp before format 2 (multi- and single-label models
on the tiny corpus with the fake encoder; the multi-label one from before ``whole_vector``
existed), with its answers in expected.json.
"""

import json
import shutil

import pytest
from typer.testing import CliRunner

from conftest import DATA
from feedback_nlp import ArtifactError, load_model, verify_model
from feedback_nlp.cli import app

FORMAT1 = DATA / "format1"


@pytest.fixture
def old(tmp_path):
    target = tmp_path / "old"
    shutil.copytree(FORMAT1, target)
    return target


def test_a_format_1_folder_is_refused_with_the_command_that_converts_it(old):
    with pytest.raises(ArtifactError, match=r"format_version 1 .*feedback-nlp upgrade"):
        load_model(old / "multi")


@pytest.mark.parametrize("kind", ["multi", "single"])
def test_upgrade_in_place_answers_exactly_as_format_1_did(old, kind):
    result = CliRunner().invoke(app, ["upgrade", str(old / kind)])
    assert result.exit_code == 0, result.output
    assert "format 1 -> 2" in result.output
    manifest = verify_model(old / kind)
    assert manifest["format_version"] == 2
    assert not (old / kind / "heads.joblib").exists() and (old / kind / "heads.npz").is_file()
    expected = json.loads((FORMAT1 / "expected.json").read_text())
    assert load_model(old / kind).classify(expected["texts"]) == expected[kind]
    again = CliRunner().invoke(app, ["upgrade", str(old / kind)])
    assert again.exit_code == 0 and "nothing to do" in again.output


def test_format_1_defaults_are_written_out(old, tmp_path):
    """The multi-label fixture predates ``whole_vector``: its heads were trained on encoded whole
    comments, so the upgraded folder must say "encode", not today's default "mean"."""
    from feedback_nlp.upgrade import upgrade_model

    target = upgrade_model(old / "multi", tmp_path / "new")
    assert (old / "multi" / "heads.joblib").is_file()  # the source is left alone with an output
    assert json.loads((target / "manifest.json").read_text())["params"]["whole_vector"] == "encode"
    assert load_model(target).whole_vector == "encode"


def test_a_use_spec_of_format_1_keeps_its_pure_python_tokenizer(old):
    from feedback_nlp.upgrade import _upgrade_spec

    spec = {"kind": "concat", "parts": [{"kind": "sentence-transformers", "model": "m"}, {"kind": "use"}]}
    assert _upgrade_spec(spec)["parts"][1] == {"kind": "use", "tokenizer": "pure"}


def test_an_altered_format_1_folder_is_not_upgraded(old):
    with open(old / "multi" / "heads.joblib", "ab") as fh:
        fh.write(b"x")
    result = CliRunner().invoke(app, ["upgrade", str(old / "multi")])
    assert result.exit_code != 0
    assert "heads.joblib" in result.output and "altered" in result.output


def test_a_heads_file_naming_another_class_is_refused(old):
    """The one unpickler left reads only numpy arrays and the five format-1 head classes."""
    import joblib

    from feedback_nlp.upgrade import upgrade_model

    joblib.dump({"mode": "multi", "theme_heads": [ArtifactError("not a head")]}, old / "multi" / "heads.joblib", compress=3)
    manifest = json.loads((old / "multi" / "manifest.json").read_text())
    from feedback_nlp.files import sha256_file

    manifest["files"]["heads.joblib"] = sha256_file(old / "multi" / "heads.joblib")
    (old / "multi" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="feedback_nlp.errors.ArtifactError"):
        upgrade_model(old / "multi")
