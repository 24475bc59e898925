"""The llama.cpp runtime (through llama-cpp-python's C API): quantized, continuously batched.

Each job gets a sequence id with its own KV stream. Every step is one ``llama_decode`` call
holding the prompts of newly admitted jobs and the last token of every running one, so new
requests join a running batch instead of waiting for it, and the weights are read once per step
for all sequences (past a few sequences the matrix products, not the memory reads, set the
pace; ``benchmarks/generation_steps.py`` shows it).
"""

from __future__ import annotations

import ctypes
import logging
import os
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np

from bot.core.hardware import has_amx, has_avx512
from bot.errors import ModelError
from bot.generation.scheduler import Job

log = logging.getLogger("deskbot.generation")


_llama_log = logging.getLogger("deskbot.generation.llama_cpp")
_log_callback = None  # kept referenced: llama.cpp holds a pointer to it


def _route_llama_logs(lc: ModuleType) -> None:
    """Send llama.cpp's logging (model loading chatter) to a logger instead of stderr."""
    global _log_callback
    if _log_callback is not None:
        return

    @lc.llama_log_callback
    def callback(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        if level in (3, 4):  # GGML_LOG_LEVEL_WARN, GGML_LOG_LEVEL_ERROR
            _llama_log.warning("%s", text.decode("utf-8", "replace").rstrip())
        elif _llama_log.isEnabledFor(logging.DEBUG):
            _llama_log.debug("%s", text.decode("utf-8", "replace").rstrip())

    _log_callback = callback
    lc.llama_log_set(callback, ctypes.c_void_p(0))


def available() -> bool:
    try:
        import llama_cpp  # noqa: F401
    except Exception:  # ImportError, or the shared library failed to load
        return False
    return True


def use_flash_attention(setting: str) -> bool:
    """Resolve ``generation.flash_attention``: "auto" is on unless the CPU has AVX-512.

    The kernel sped concurrent replies up on an AVX2 CPU and slowed them down on an AVX-512 one
    (``benchmarks/generation.py``; figures in docs/performance.md).
    """
    if setting == "auto":
        return not has_avx512()
    return setting == "on"


# Shorter common starts are not worth a cache operation.
MIN_SHARED_PREFIX = 16


class LlamaCppEngine:
    name = "llama.cpp"

    def __init__(
        self,
        gguf: Path,
        *,
        stop_ids: frozenset[int],
        max_batch: int = 8,
        context_tokens: int = 2048,
        threads: int | None = None,
        flash_attention: bool = False,
    ) -> None:
        import llama_cpp as lc

        self._lc = lc
        _route_llama_logs(lc)
        lc.llama_backend_init()
        mparams = lc.llama_model_default_params()
        # On AMX CPUs llama.cpp repacks the weights for its AMX kernels, and the first batch
        # that uses them crashes the process in ggml_backend_amx_mul_mat (seen here on a
        # Sapphire Rapids Xeon with the Q8_0 model; llama.cpp issue #20824, closed unfixed).
        # Without the extra buffer types the ordinary AVX-512 kernels run.
        mparams.use_extra_bufts = not has_amx()
        self._model = lc.llama_model_load_from_file(str(gguf).encode(), mparams)
        if not self._model:
            raise ModelError(f"llama.cpp cannot load {gguf}")
        threads = threads or min(os.cpu_count() or 1, 8)
        cparams = lc.llama_context_default_params()
        self.max_batch = max_batch
        self.context_tokens = context_tokens
        n_ctx = context_tokens * (max_batch + 1)  # + the kept prefix (below)
        cparams.n_ctx = n_ctx
        cparams.n_batch = n_ctx
        cparams.n_ubatch = min(512, n_ctx)
        # One more sequence keeps the last prompt's KV cells: a new prompt copies the cells of
        # the start it has in common with it (the system policy and chat template)
        # instead of computing them again.
        cparams.n_seq_max = max_batch + 1
        # One KV stream per sequence: attention then reads only the sequence's own cells. In
        # one unified cache every token attends (masked) over the cells of all sequences, which
        # slows concurrent replies down.
        cparams.kv_unified = False
        cparams.n_threads = threads
        cparams.n_threads_batch = threads
        cparams.no_perf = True
        # llama.cpp's own default ("auto") turns flash attention on wherever it can; it pays on
        # some CPUs and costs on others, so the caller decides (``generation.flash_attention``).
        # With the f16 KV cache the replies stay as faithful to transformers' fp32 model either
        # way; flash attention over a q8_0 cache was less faithful, so the cache stays f16.
        cparams.flash_attn_type = (
            lc.LLAMA_FLASH_ATTN_TYPE_ENABLED
            if flash_attention
            else lc.LLAMA_FLASH_ATTN_TYPE_DISABLED
        )
        self._ctx = lc.llama_init_from_model(self._model, cparams)
        if not self._ctx:
            lc.llama_model_free(self._model)
            raise ModelError(f"llama.cpp cannot create a context for {gguf}")
        self._mem = lc.llama_get_memory(self._ctx)
        vocab = lc.llama_model_get_vocab(self._model)
        self.n_vocab = lc.llama_vocab_n_tokens(vocab)
        eog = {t for t in range(self.n_vocab) if lc.llama_vocab_is_eog(vocab, t)}
        self.stop_ids = frozenset(stop_ids | eog)
        self._batch = lc.llama_batch_init(n_ctx, 0, 1)
        self._capacity = n_ctx
        self.threads = threads
        self.flash_attention = flash_attention
        self._prefix_seq = max_batch
        self._prefix_ids: list[int] = []
        self.reused_tokens = 0  # prompt tokens not recomputed thanks to the shared prefix

    def _decode(self, entries: list[tuple[int, int, int, bool]]) -> None:
        """Decode (token, position, sequence, wants_logits) entries as one batch."""
        b = self._batch
        for start in range(0, len(entries), self._capacity):
            chunk = entries[start : start + self._capacity]
            b.n_tokens = len(chunk)
            for i, (token, pos, seq, logits) in enumerate(chunk):
                b.token[i] = token
                b.pos[i] = pos
                b.n_seq_id[i] = 1
                b.seq_id[i][0] = seq
                b.logits[i] = logits
            rc = self._lc.llama_decode(self._ctx, b)
            if rc != 0:
                raise ModelError(f"llama_decode failed with status {rc}")

    def _logits(self, index: int) -> np.ndarray:
        ptr = self._lc.llama_get_logits_ith(self._ctx, index)
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))

    def _release(self, seq: int) -> None:
        self._lc.llama_memory_seq_rm(self._mem, seq, -1, -1)

    def _reuse_prefix(self, ids: list[int], seq: int) -> int:
        """Share the KV cells of the prompt start ``ids`` has in common with the kept prefix.

        Returns how many tokens need no computing (at least one is always left to compute,
        for its logits).
        """
        common = 0
        for a, b in zip(ids, self._prefix_ids, strict=False):
            if a != b:
                break
            common += 1
        common = min(common, len(ids) - 1)
        if common < MIN_SHARED_PREFIX:
            return 0
        self._copy(self._prefix_seq, seq, common)
        self.reused_tokens += common
        return common

    def _copy(self, src: int, dst: int, n: int) -> None:
        """Make sequence ``dst`` hold the first ``n`` positions of ``src``.

        Between streams llama.cpp copies only whole buffers (a partial range fails an assertion
        that aborts the process), at the next decode: copy it all, then drop the tail. Copying
        the whole buffer costs far less than computing the shared prompt again.
        """
        self._lc.llama_memory_seq_cp(self._mem, src, dst, -1, -1)
        self._lc.llama_memory_seq_rm(self._mem, dst, n, -1)

    def _keep_prefix(self, seq: int, ids: list[int]) -> None:
        """Keep ``ids`` (just computed in ``seq``) as the prefix later prompts may share."""
        self._copy(seq, self._prefix_seq, len(ids))
        self._prefix_ids = list(ids)

    def run(self, jobs: list[Job], admit: Callable[[int], list[Job]]) -> None:
        free = list(range(self.max_batch - 1, -1, -1))
        waiting = list(jobs)
        running: dict[int, tuple[Job, int, int]] = {}  # seq -> (job, next position, last token)
        remember: list[tuple[int, list[int]]] = []
        try:
            while waiting or running:
                if len(waiting) < len(free):
                    waiting.extend(admit(len(free) - len(waiting)))
                entries: list[tuple[int, int, int, bool]] = []
                outputs: list[tuple[int, Job]] = []  # (seq, job) in the order of logits rows
                for seq, (job, pos, token) in running.items():
                    entries.append((token, pos, seq, True))
                    outputs.append((seq, job))
                while waiting and free:
                    job = waiting.pop(0)
                    if not job.wants_more:
                        job.finish()
                        continue
                    seq = free.pop()
                    self._release(seq)
                    ids = job.prompt_ids[-(self.context_tokens - job.max_new_tokens) :]
                    start = self._reuse_prefix(ids, seq)
                    last = len(ids) - 1
                    entries.extend((t, p, seq, p == last) for p, t in enumerate(ids[start:], start))
                    running[seq] = (job, len(ids), -1)
                    outputs.append((seq, job))
                    remember.append((seq, ids))
                if not entries:
                    continue
                self._decode(entries)
                if remember:  # the newest prompt becomes the shared prefix
                    self._keep_prefix(*remember[-1])
                remember.clear()
                row_of = [i for i, e in enumerate(entries) if e[3]]
                for (seq, job), row in zip(outputs, row_of, strict=True):
                    _, pos, _ = running[seq]
                    token = job.sample(self._logits(row)) if job.wants_more else -1
                    if token in self.stop_ids or token < 0:
                        job.finish("stop" if token >= 0 else None)
                    else:
                        job.push(token)
                    if not job.wants_more or job.done:
                        job.finish()
                        del running[seq]
                        self._release(seq)
                        free.append(seq)
                    else:
                        running[seq] = (job, pos + (1 if running[seq][2] >= 0 else 0), token)
        except BaseException as exc:
            for job, _, _ in running.values():
                job.finish(error=exc)
            for job in waiting:
                job.finish(error=exc)
            for seq in list(running):
                self._release(seq)
            self._release(self._prefix_seq)
            self._prefix_ids = []
            raise

    def close(self) -> None:
        lc = self._lc
        if self._ctx:
            lc.llama_batch_free(self._batch)
            lc.llama_free(self._ctx)
            lc.llama_model_free(self._model)
            self._ctx = None
