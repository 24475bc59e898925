"""The transformers runtime: the reference path, used for training and when llama.cpp is absent.

Jobs are generated as one left-padded batch with a shared KV cache; new requests wait for the
next batch (the scheduler collects them meanwhile).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch

from bot.generation.scheduler import Job

log = logging.getLogger("deskbot.generation")


class TransformersEngine:
    name = "transformers"

    def __init__(self, model: Any, tokenizer: Any, *, max_batch: int = 8) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_batch = max_batch
        flat = set(self.stop_ids_of(tokenizer))
        eos = getattr(model.generation_config, "eos_token_id", None)
        flat.update([eos] if isinstance(eos, int) else (eos or []))
        self.stop_ids = frozenset(flat)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(flat)

    @staticmethod
    def stop_ids_of(tokenizer: Any) -> frozenset[int]:
        """End-of-turn tokens: eos, and ``<|im_end|>`` for ChatML templates."""
        stops = {tokenizer.eos_token_id}
        im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
        if isinstance(im_end, int) and im_end != tokenizer.unk_token_id:
            stops.add(im_end)
        return frozenset(int(s) for s in stops if isinstance(s, int))

    @torch.inference_mode()
    def run(self, jobs: list[Job], admit: Callable[[int], list[Job]]) -> None:
        device = next(self.model.parameters()).device
        width = max(len(j.prompt_ids) for j in jobs)
        ids = torch.full((len(jobs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(jobs), width), dtype=torch.long)
        for i, job in enumerate(jobs):
            n = len(job.prompt_ids)
            ids[i, width - n :] = torch.tensor(job.prompt_ids)
            mask[i, width - n :] = 1
        ids, mask = ids.to(device), mask.to(device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True)
        cache = out.cache
        logits = out.logits[:, -1, :]
        last_pos = positions[:, -1:]
        while True:
            next_ids = torch.full((len(jobs), 1), self.pad_id, dtype=torch.long)
            scores = logits.float().cpu().numpy()
            for i, job in enumerate(jobs):
                if not job.wants_more:
                    job.finish()
                    continue
                token = job.sample(scores[i])
                if token in self.stop_ids:
                    job.finish("stop")
                    continue
                job.push(token)
                next_ids[i, 0] = token
            if not any(j.wants_more for j in jobs):
                break
            mask = torch.cat([mask, torch.ones((len(jobs), 1), dtype=mask.dtype, device=device)], 1)
            last_pos = last_pos + 1
            out = self.model(
                input_ids=next_ids.to(device),
                attention_mask=mask,
                position_ids=last_pos,
                cache=cache,
                use_cache=True,
            )
            cache = out.cache
            logits = out.logits[:, -1, :]
        for job in jobs:
            job.finish()

    def close(self) -> None:
        pass
