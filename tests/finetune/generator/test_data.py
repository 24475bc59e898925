from __future__ import annotations

import gzip

import pytest

from bot.errors import ImportFileError
from finetune.generator.data import QAPair, read_pairs, split_by_question
from finetune.generator.hparams import GeneratorHyperParams
from finetune.generator.prompt import PromptConfig
from finetune.generator.train import build_examples
from retrieval.hit import Hit


def test_bitext_columns_are_read_and_gzip_works(tmp_path):
    path = tmp_path / "pairs.csv.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write(
            "flags,instruction,category,intent,response\n"
            'B,cancel it,ORDER,cancel_order,"Sure, done."\n'
        )
    assert read_pairs(path) == [QAPair(0, "cancel it", "Sure, done.", "cancel_order")]


def test_missing_columns_and_empty_cells_name_the_problem(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\nhi,greet\n")
    with pytest.raises(ImportFileError, match=r"bad\.csv:1: missing column 'answer'"):
        read_pairs(bad)
    empty = tmp_path / "empty.csv"
    empty.write_text("question,answer\nhi,hello\n,orphan answer\n")
    with pytest.raises(ImportFileError, match=r"empty\.csv:3: empty 'question'"):
        read_pairs(empty)


def test_split_keeps_every_copy_of_a_question_on_one_side():
    pairs = [QAPair(i, f"Question {i % 50}  number", f"answer {i}") for i in range(500)]
    train, held = split_by_question(pairs)
    assert train and held
    assert {p.question.lower() for p in train}.isdisjoint({p.question.lower() for p in held})


class _Index:
    def search(self, questions, k=2, exclude_same=True):
        return [
            [Hit(9, 0.7, "other question", "other answer {{Order Number}}", "x")] for _ in questions
        ]


def test_training_examples_mask_the_prompt(tiny_tokenizer):
    pairs = [QAPair(0, "cancel order", "You can cancel order {{Order Number}}.", "cancel")]
    hp = GeneratorHyperParams(max_answer_tokens=64)
    (example,) = build_examples(pairs, _Index(), tiny_tokenizer, PromptConfig(), hp)
    answer = [t for t in example.labels if t != -100]
    n_prompt = example.labels.index(answer[0])
    assert example.labels[:n_prompt] == [-100] * n_prompt
    assert example.input_ids[n_prompt:] == answer
    assert answer[-1] == tiny_tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert tiny_tokenizer.decode(answer, skip_special_tokens=True) == pairs[0].answer
    assert "other answer" in tiny_tokenizer.decode(example.input_ids[:n_prompt])


def test_answer_loss_is_the_causal_lm_loss_on_the_answer(tiny_tokenizer, tiny_llama):
    """Logits for the answer positions only give the loss transformers computes from labels."""
    import torch

    from finetune.generator.train import answer_loss

    pairs = [
        QAPair(0, "cancel order", "You can cancel order {{Order Number}}.", "cancel"),
        QAPair(1, "where is my parcel", "The tracking number is on your invoice.", "track"),
    ]
    hp = GeneratorHyperParams(max_answer_tokens=64)
    cpu = torch.device("cpu")
    for example in build_examples(pairs, _Index(), tiny_tokenizer, PromptConfig(), hp):
        with torch.no_grad():
            loss, n = answer_loss(tiny_llama, example, cpu, bf16=False)
            full = tiny_llama(
                input_ids=torch.tensor([example.input_ids]),
                labels=torch.tensor([example.labels]),
            ).loss
        assert n == sum(1 for t in example.labels if t != -100)
        assert float(loss) == pytest.approx(float(full), rel=1e-5)
