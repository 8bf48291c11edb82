"""Scale-out: the Ray Data callable class and `classify --ray` give the batch CLI's columns."""

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from conftest import DATA, read_jsonl
from feedback_nlp.cli import app
from feedback_nlp.distributed import BatchClassifier

TEXTS = [r["text"] for r in read_jsonl(DATA / "tiny.jsonl")]


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def frame(n=60):
    texts = [TEXTS[i % len(TEXTS)] for i in range(n)]
    texts[3] = None  # a missing comment still gets a row
    return pd.DataFrame({"id": [f"{i:03d}" for i in range(n)], "text": texts, "n": list(range(n))})


def batch_cli_output(model_dir, tmp_path, data: pd.DataFrame) -> pd.DataFrame:
    src, out = tmp_path / "plain.parquet", tmp_path / "plain.tagged.parquet"
    pq.write_table(pa.Table.from_pandas(data, preserve_index=False), src)
    assert invoke("classify", src, "-o", out, "--model", model_dir).exit_code == 0
    return pq.read_table(out).to_pandas()


def same(a: pd.DataFrame, b: pd.DataFrame):
    assert list(a.columns) == list(b.columns)
    assert a["id"].tolist() == b["id"].tolist() and a["themes"].tolist() == b["themes"].tolist()
    scores = [c for c in a.columns if c.startswith("score_")]
    assert len(scores) == 5 and ((a[scores].to_numpy() - b[scores].to_numpy()) ** 2).max() < 1e-12


def test_batch_classifier_gives_the_batch_cli_columns(model_dir, tmp_path):
    data = frame()
    out = BatchClassifier(str(model_dir))(data)
    same(out.reset_index(drop=True), batch_cli_output(model_dir, tmp_path, data))
    assert out["themes"][3] == "" and BatchClassifier(str(model_dir))(data.iloc[:0]).columns.tolist() == out.columns.tolist()


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.ray
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Ray's own, from its DataContext
def test_classify_dataset_and_cli_on_a_local_ray(local_ray, model_dir, tmp_path):
    from feedback_nlp.distributed import classify_dataset

    data = frame(300)
    expected = batch_cli_output(model_dir, tmp_path, data)
    tagged = classify_dataset(local_ray.data.from_pandas(data), model=model_dir, batch_size=64, concurrency=1)
    # Ray keeps row order only when asked (the CLI asks); compare a plain dataset by id.
    same(tagged.to_pandas().sort_values("id").reset_index(drop=True), expected)

    src = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pandas(data, preserve_index=False), src)
    result = invoke("classify", src, "-o", tmp_path / "out_parquet", "--ray", "--model", model_dir, "--chunk-size", "50")
    assert result.exit_code == 0, result.output
    same(pq.read_table(tmp_path / "out_parquet").to_pandas(), expected)  # every row once, in input order

    csv_in = tmp_path / "in.csv"
    data.to_csv(csv_in, index=False)
    assert invoke("classify", csv_in, "-o", tmp_path / "out.csv", "--ray", "--model", model_dir).exit_code == 0
    parts = sorted((tmp_path / "out.csv").iterdir())
    got = pd.concat([pd.read_csv(p, dtype={"id": str, "text": str}, keep_default_na=False) for p in parts], ignore_index=True)
    assert got["id"].tolist() == data["id"].tolist()  # "007" stays text, as in the batch CLI
    assert got["themes"].fillna("").tolist() == expected["themes"].tolist()

    again = invoke("classify", src, "-o", tmp_path / "out_parquet", "--ray", "--model", model_dir)
    assert again.exit_code == 2 and "already exists" in again.stderr

    # Large outputs roll over to a new file; the parts, read in name order, are the input order.
    from feedback_nlp.distributed import classify_path

    files = classify_path(str(src), str(tmp_path / "rolled"), model=model_dir, batch_size=32, rows_per_file=128)
    assert [Path(f).name for f in files] == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert [pq.read_metadata(f).num_rows for f in files] == [128, 128, 44]
    same(pd.concat([pq.read_table(f).to_pandas() for f in files], ignore_index=True), expected)

    wrong = invoke("classify", src, "-o", tmp_path / "wrong", "--ray", "--model", model_dir, "--text-column", "comment")
    assert wrong.exit_code == 2 and "no text column 'comment'" in wrong.stderr and "id, text, n" in wrong.stderr
