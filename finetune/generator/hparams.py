"""The one hyperparameter dataclass of generator fine-tuning, with the reasons for each default."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GeneratorHyperParams:
    """How the reply generator is fine-tuned. Defaults fit 15 minutes on 2 CPU cores."""

    seed: int = 7
    # As many examples as one CPU epoch fits in the time budget; a GPU takes more.
    max_examples: int = 480
    epochs: int = 1
    # Stop early (keeping what was learned) past this many seconds from the start; with the
    # index, the validation passes and the GGUF export a CPU run stays within 15 minutes.
    time_budget_s: float = 780.0
    # Gradient accumulation over examples of different lengths, no padding; small batches give
    # more updates within the CPU budget.
    batch_size: int = 4
    # LoRA takes a high learning rate; the targets are formulaic so a few hundred steps suffice.
    lr: float = 4e-4
    warmup_steps: int = 6
    weight_decay: float = 0.0
    # Rank 16 on attention and MLP projections: ~4.9M trainable parameters (3.6% of 135M).
    lora_r: int = 16
    lora_alpha: int = 32
    # No dropout: drawing its masks is a large share of a CPU step, and a run sees each
    # example once, so there is little to overfit.
    lora_dropout: float = 0.0
    lora_targets: tuple[str, ...] = (
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    )
    # Targets are cut here: replies stream, so the opening carries the content; the loss on
    # long tails costs time without teaching much new.
    max_answer_tokens: int = 192
    # Retrieved answers in the training prompt, as at inference: `retrieved` hits (the
    # default retrieval.top_k), ordered by consensus (retrieval/consensus.py), the first
    # `sources` of them shown.
    retrieved: int = 5
    sources: int = 2
    # Held-out distinct questions for the validation loss in metrics.json.
    val_examples: int = 16
    # bf16 autocast where it is native (a GPU, AVX512-BF16 or AMX), where it speeds matmuls up;
    # where torch emulates it (AVX2 only) fp32 is used instead.
    bf16: bool = True
    # Recorded in the artifact and served with it (unless generation.repetition_penalty is
    # set): the base model's 1.15 pushes a fine-tuned one off the formulaic words its answers
    # share with the team's.
    serve_repetition_penalty: float = 1.05
    # Export the merged model with Q8_0 for the LoRA-changed tensors: a Q4 step is coarser than
    # most of the learned update, so requantizing to Q4 would erase much of it.
    export_quant: str = "Q8_0"
