"""Retrieval's settings, the ``[retrieval]`` section of deskbot's settings (``bot/settings.py``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class RetrievalSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)

    # Any sentence-transformers directory; empty means the bundled all-MiniLM-L6-v2.
    embedder: str = ""
    top_k: int = Field(5, ge=1, le=100)
    # Up to this many vectors an exact IndexFlatIP is used, an approximate index above: exact
    # search stays fast up to about there.
    flat_max: int = Field(10_000, ge=1)
    context_turns: int = Field(0, ge=0, le=20)
    batch_size: int = Field(64, ge=1)
    # Queries of a server batch are encoded in length-sorted groups of this many, so a short
    # query is not padded to the batch's longest message.
    query_batch_size: int = Field(16, ge=1)
    # A customer query and its context turns are read up to this many encoder tokens, since
    # the encoder's work grows with a text's length (stored answers are read whole).
    max_query_tokens: int = Field(128, ge=8)
    # Weight of the mean context vector added to the query vector before normalising.
    context_weight: float = Field(0.5, ge=0)
    # IVF above flat_max: lists (0 = about 4*sqrt(n)) and lists probed per query.
    ivf_nlist: int = Field(0, ge=0)
    ivf_nprobe: int = Field(32, ge=1)
    # Predicted intent of a query: "boost" adds intent_boost to same-intent hits (and always
    # considers the best same-intent pairs), "filter" keeps only them, "off" ignores it.
    intent_mode: Literal["boost", "filter", "off"] = "boost"
    intent_boost: float = Field(0.2, ge=0)
    # Which retrieved answer leads (the fallback reply, the first source of a draft):
    # "consensus" = the one the other top_k answers agree with most (retrieval/consensus.py;
    # closer to the team's answers on held-out Bitext), "score" = the nearest question's.
    answer_order: Literal["consensus", "score"] = "consensus"
    # Threads faiss may use; 1 is fastest for the single queries a chat server sends.
    search_threads: int = Field(1, ge=1)
    # Encoder arithmetic (bot/core/precision.py): auto = bf16 on AMX CPUs, int8 on other VNNI
    # CPUs, bf16 where native, else fp32. Build an index with the precision its queries will use.
    precision: Literal["auto", "fp32", "bf16", "int8"] = "auto"
