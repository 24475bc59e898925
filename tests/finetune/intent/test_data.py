from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from bot.errors import InputError
from finetune.intent.data import Examples, check_trainable, read_csv, split_dev
from finetune.intent.hparams import IntentHyperParams
from finetune.intent.train import train_intent


def test_read_csv_reads_named_columns_and_gzip(tmp_path: Path) -> None:
    plain = tmp_path / "a.csv"
    plain.write_text("q,lab,other\nhello there,greet,x\nbye now,leave,y\n", encoding="utf-8")
    zipped = tmp_path / "a.csv.gz"
    zipped.write_bytes(gzip.compress(plain.read_bytes()))
    for path in (plain, zipped):
        ex = read_csv(path, text_col="q", label_col="lab")
        assert ex.texts == ("hello there", "bye now")
        assert ex.labels == ("greet", "leave")


def test_missing_column_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("text,category\nhi,greet\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"missing column 'intent'.*header has text, category"):
        read_csv(path)


def test_empty_file_and_header_only_are_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(InputError, match="empty"):
        read_csv(empty)
    header = tmp_path / "header.csv"
    header.write_text("text,intent\n", encoding="utf-8")
    with pytest.raises(InputError, match="no rows"):
        read_csv(header)


def test_empty_label_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "hole.csv"
    path.write_text("text,intent\nhi,greet\nbye,\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"hole.csv:3: empty 'intent'"):
        read_csv(path)


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        read_csv(tmp_path / "nope.csv")


def test_one_class_is_refused_before_any_model_loads(tmp_path: Path) -> None:
    path = tmp_path / "one.csv"
    path.write_text("text,intent\nhi,greet\nhello,greet\nhey,greet\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"single intent \('greet'\)"):
        train_intent(path, IntentHyperParams(), tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_check_trainable_rejects_no_examples() -> None:
    with pytest.raises(InputError, match="no examples"):
        check_trainable(Examples((), ()))


def test_dev_split_is_stratified_and_keeps_duplicates_together() -> None:
    texts = [f"question {i % 7} of {lab}" for lab in "abc" for i in range(40)]
    labels = [lab for lab in "abc" for _ in range(40)]
    train, dev = split_dev(Examples(tuple(texts), tuple(labels)), 0.3, seed=0)
    assert set(train.texts).isdisjoint(dev.texts)
    assert set(dev.labels) == {"a", "b", "c"}
    assert len(train) + len(dev) == 120


def test_bad_hyperparameters_name_the_field() -> None:
    with pytest.raises(InputError, match="epochs"):
        IntentHyperParams(epochs=0)
    with pytest.raises(InputError, match="dev_fraction"):
        IntentHyperParams(dev_fraction=1.5)


def test_hyperparameters_round_trip_through_json_dict() -> None:
    hp = IntentHyperParams.quick()
    assert IntentHyperParams.from_dict(hp.to_dict()) == hp
