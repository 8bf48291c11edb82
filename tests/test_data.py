"""feedback_nlp.data: reading and writing labelled files, and telling formats apart."""

import pytest

from feedback_nlp.data import detect_format, read_labelled, write_labelled
from feedback_nlp.errors import InvalidInputError


def test_labelled_jsonl_round_trips(tmp_path):
    texts = ["quick but rude", "still broken", "thanks, zürich office 👍"]
    labels = [{"speed": "positive", "attitude": "negative"}, "not_solved:neg", {}]
    path = tmp_path / "labelled.jsonl"
    write_labelled(path, texts, labels)
    assert path.read_text(encoding="utf-8").splitlines()[0] == (
        '{"text": "quick but rude", "themes": {"speed": "pos", "attitude": "neg"}}')
    again_texts, again_labels = read_labelled(path)
    assert again_texts == texts
    assert again_labels == [{"speed": "positive", "attitude": "negative"}, {"not_solved": "negative"}, {}]


def test_read_labelled_names_the_missing_column_and_the_bad_row(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text("comment,themes\nslow,speed:neg\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match="no column 'text'; columns: comment, themes"):
        read_labelled(path)
    assert read_labelled(path, text_column="comment") == (["slow"], [{"speed": "negative"}])
    path.write_text("text,themes\nslow,speed:neg\nfast,speed:sideways\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match="row 2"):
        read_labelled(path)


def test_detect_format_by_suffix_and_unknown_types_name_the_choices():
    assert detect_format("a.CSV") == "csv" and detect_format("a.tsv.gz") == "tsv"
    assert detect_format("a.ndjson") == "jsonl" and detect_format("-") == "jsonl"
    assert detect_format("a.pq") == "parquet" and detect_format("a.xlsx") == "excel"
    with pytest.raises(InvalidInputError, match=r"a\.docx: unknown file type; use one of .*\.csv"):
        detect_format("a.docx")
    with pytest.raises(InvalidInputError, match="unknown file type"):
        detect_format("no_suffix")
