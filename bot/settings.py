"""The one settings object.

Sources, highest priority first: keyword arguments, ``DESKBOT_*`` environment variables,
the TOML file given by ``--config`` or ``DESKBOT_CONFIG``, then defaults.

Top-level keys are flat (``DESKBOT_HOME``, ``DESKBOT_DATABASE_URL``); keys inside a section
use a double underscore in the environment (``DESKBOT_SERVER__PORT=9000``) and a table in
TOML (``[server] port = 9000``). A bad value raises :class:`SettingsError` naming the key
and what was expected.

Each area owns one section class here; add fields to your own section. The sections of
``retrieval`` and ``connectors`` live in those packages (``retrieval/config.py``,
``connectors/config.py``), which import nothing of ``bot``; this module composes them.
"""

from __future__ import annotations

import os
import re
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from bot.errors import SettingsError
from connectors.config import DeliverySettings
from retrieval.config import RetrievalSettings

ENV_PREFIX = "DESKBOT_"
CONFIG_ENV = "DESKBOT_CONFIG"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class ServerSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    # auto: send when confident and grounded; assist: every reply is reviewed;
    # hybrid: auto when sure, suggestion otherwise, handoff for out-of-scope / "human".
    policy: Literal["auto", "assist", "hybrid"] = "hybrid"
    max_message_chars: int = Field(4000, ge=1)
    cors_origins: list[str] = Field(default_factory=list)
    rate_limit_per_conversation: float = Field(1.0, gt=0, description="messages per second")
    rate_limit_burst: int = Field(10, ge=1)
    rate_limit_per_ip: float = Field(20.0, gt=0, description="requests per second")
    batching: bool = True
    batch_max_size: int = Field(32, ge=1)
    batch_max_wait_ms: float = Field(5.0, ge=0)
    # Threads for intent + retrieval encoding; 0 = one less than the cores (at least 1), so
    # the event loop keeps a core instead of fighting the model threads for it.
    model_threads: int = Field(0, ge=0)
    # Run the intent and retrieval encoders of a batch at the same time on two threads.
    parallel_encoders: bool = True
    # Keep the server's encoders' weights in bfloat16 where they serve in bf16 (AMX CPUs,
    # bot.core.precision.bf16_weights): the same vectors at less CPU a message. Intent training
    # in the same process ran slower afterwards, so a process that also trains (the test
    # suite) turns it off; jobs train in child processes.
    encoder_bf16_weights: bool = True
    shutdown_timeout_s: float = Field(30.0, ge=0)
    # Run queued jobs (imports, training) in this process; off when `deskbot worker` runs them.
    run_jobs: bool = True
    # A claimed job is its runner's for this long, renewed every 2 s while it runs; a crashed
    # runner's job is claimed again by another once it lapses.
    job_lease_s: float = Field(60.0, ge=3)
    # How often a process checks the database for newly active model versions, in case it
    # missed the bus event (0: never; events and start-up only).
    model_poll_s: float = Field(10.0, ge=0)
    # Prefix of every Redis key and channel, so several deployments can share one Redis.
    redis_prefix: str = "deskbot:"
    # -- limits for the public internet (issue 20) --
    # Largest request body read by any JSON route (admin file uploads stream with their own cap).
    max_body_bytes: int = Field(64 * 1024, ge=1024)
    # Keys a widget may store in a conversation's `meta`, and their total JSON size.
    widget_meta_keys: list[str] = Field(
        default_factory=lambda: ["page", "referrer", "locale", "user_agent", "name", "email"]
    )
    widget_meta_bytes: int = Field(1024, ge=0)
    feedback_per_conversation: float = Field(0.2, gt=0, description="ratings per second")
    feedback_burst: int = Field(5, ge=1)
    # Replies being worked on at once by this process; past it a new message is refused with
    # 503 and Retry-After ("reject"), or stored and handed to an agent ("handoff").
    max_replies_in_flight: int = Field(256, ge=1)
    overload: Literal["reject", "handoff"] = "reject"
    overload_retry_after_s: int = Field(5, ge=1)
    # Open event streams: per conversation (or per agent key) and per process.
    max_streams_per_conversation: int = Field(3, ge=1)
    max_streams: int = Field(1000, ge=1)
    # Addresses (or CIDR networks) of reverse proxies whose X-Forwarded-For is believed.
    trusted_proxies: list[str] = Field(default_factory=list)
    # A widget token stops working this many days after its conversation's last activity.
    conversation_idle_days: float = Field(30.0, gt=0)
    # Event-stream tickets: one use, valid this long after the POST that issued them.
    stream_ticket_s: float = Field(60.0, gt=0, le=3600)
    # Customer messages left without a decision (a crash mid-reply) are answered by whichever
    # process claims them first, at start-up and every `recovery_interval_s` (0: start-up
    # only). A process renews the claims of its replies in flight at each pass; a claim not
    # renewed for `recovery_lease_s` is taken over. Unclaimed messages (stored by an older
    # version) wait `recovery_grace_s`.
    recovery_interval_s: float = Field(30.0, ge=0)
    recovery_lease_s: float = Field(120.0, ge=0)
    recovery_grace_s: float = Field(120.0, ge=0)

    @model_validator(mode="after")
    def _lease_outlives_renewals(self) -> ServerSettings:
        if 0 < self.recovery_lease_s <= self.recovery_interval_s:
            raise ValueError(
                "recovery_lease_s must be longer than recovery_interval_s, or claims of "
                "replies still running would lapse between renewals"
            )
        return self

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_networks(cls, value: list[str]) -> list[str]:
        import ipaddress

        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network") from None
        return value


class IntentSettings(Section):
    # Artifact directory to use instead of the active registered version.
    model: str = ""
    base_encoder: str = ""
    oos_label: str = "oos"
    human_label: str = "human_agent"
    # Serving arithmetic for the classifier (bot/core/precision.py); training is unaffected.
    precision: Literal["auto", "fp32", "bf16", "int8"] = "auto"
    # A customer query is read up to this many tokens (or the model's trained max_length if
    # shorter), since the classifier's work grows with a text's length: a request is stated
    # in its first sentences, and retrieval reads further (retrieval.max_query_tokens).
    max_query_tokens: int = Field(64, ge=8)


class GenerationSettings(Section):
    backend: Literal["local", "remote", "off"] = "local"
    # HF causal-LM directory; empty means the bundled SmolLM2-135M-Instruct GGUF.
    model: str = ""
    max_new_tokens: int = Field(160, ge=1, le=4096)
    context_tokens: int = Field(2048, ge=128)
    temperature: float = Field(0.0, ge=0)
    # Penalty on tokens already generated (1 = off); stops greedy decoding from looping.
    # Unset: the model's own, 1.15 for the base model (it loops), what a fine-tuned artifact
    # recorded for itself (1.05: its replies repeat the team's words on purpose).
    repetition_penalty: float | None = Field(None, ge=1.0, le=2.0)
    grounding_threshold: float = Field(0.55, ge=0, le=1)
    # Send drafts of the bundled base model (no fine-tuned version active, no `model` set)
    # without an agent. Off: it was trained on no support answers, and a draft can pass the
    # grounding check garbled ("To cancel order or DOWNLOAD..."); a message sure enough to
    # send gets the best retrieved answer (placeholders handled), and its drafts serve as
    # suggestions to agents.
    send_base_drafts: bool = False
    company_name: str = "our company"
    remote_url: str = ""
    remote_model: str = "default"
    remote_api_key: SecretStr = SecretStr("")
    remote_timeout_s: float = Field(30.0, gt=0)
    remote_retries: int = Field(2, ge=0)
    # auto: llama.cpp when llama-cpp-python is installed and the model has a GGUF (the bundled
    # one does; a fine-tuned artifact carries model.gguf), else transformers.
    runtime: Literal["auto", "llama_cpp", "transformers"] = "auto"
    # llama.cpp runs 4/5-bit GGUF tensors re-stored as Q8_0 (converted once, cached): prompts
    # run faster for slightly slower decoding, so replies arrive sooner; "original" runs the
    # file as it is.
    gguf_quant: Literal["Q8_0", "original"] = "Q8_0"
    # llama.cpp's flash-attention kernel. auto: on where the CPU lacks AVX-512, off where it
    # has it: the kernel sped replies up on the one and slowed them down on the other.
    flash_attention: Literal["auto", "on", "off"] = "auto"
    max_batch: int = Field(8, ge=1, le=64)  # sequences decoded together
    batch_wait_ms: float = Field(5.0, ge=0)  # how long a lone request waits for company
    threads: int = Field(0, ge=0)  # 0: all cores, at most 8
    # Retrieved answers shown to the base model; a fine-tuned one sees as many as in training.
    max_sources: int = Field(3, ge=1, le=10)
    # Company facts that fill placeholders, e.g. {"Customer Support Hours" = "9am-5pm"}.
    facts: dict[str, str] = Field(default_factory=dict)
    # Embedding similarity in the grounding score (content overlap alone when false).
    grounding_embedder: bool = True


class ChannelSettings(Section):
    """One chat-platform channel, ``[connectors.channels.<name>]``.

    ``connector`` names the platform (telegram, slack, messenger, whatsapp, twilio, webhook);
    every other key is an option of that connector (``connectors/<platform>/config.py``),
    validated by the connector's own config class when settings load. Secret options are
    kept as SecretStr here so ``deskbot config show`` masks them.
    """

    model_config = ConfigDict(extra="allow", validate_default=True)

    connector: str
    enabled: bool = True
    _config: Any = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _connector_options(self) -> ChannelSettings:
        from bot.errors import DeskbotError
        from connectors.registration import build_channel_config  # the connectors load late

        extra = self.__pydantic_extra__ or {}
        try:
            config = build_channel_config(self.connector, extra)
        except DeskbotError as exc:
            raise ValueError(exc.message) from None
        for name in type(config).secret_options() & extra.keys():
            extra[name] = SecretStr(str(getattr(config, name)))
        self._config = config
        return self

    @property
    def config(self) -> Any:
        """The connector's typed, validated config dataclass."""
        return self._config


class ConnectorsSettings(Section):
    channels: dict[str, ChannelSettings] = Field(default_factory=dict)

    @field_validator("channels")
    @classmethod
    def _channel_names(cls, value: dict[str, ChannelSettings]) -> dict[str, ChannelSettings]:
        from connectors.config import channel_name_problem  # the connectors load late

        for name in value:
            problem = channel_name_problem(name)
            if problem is not None:
                raise ValueError(problem)
        return value


class LearningSettings(Section):
    """Learning from the logs: PII scrubbing of exports and the retraining gate."""

    # Extra patterns to scrub, placeholder name -> regex: {"Order Number" = "ORD-\\d{6}"}
    # becomes {{Order Number}}. Applied after the built-in patterns (bot.scrub.NAMES).
    scrub_patterns: dict[str, str] = Field(default_factory=dict)
    # Built-in patterns to turn off, by placeholder name, e.g. ["Phone Number"].
    scrub_disable: list[str] = Field(default_factory=list)
    # Base training data for intent retraining (CSV text,intent); empty: the imported
    # conversations' labelled customer messages.
    base_data: str = ""
    # Fixed evaluation set (CSV text,intent) shared by candidate and active model; empty: a
    # stable hash-chosen share of the base data, never trained on.
    eval_data: str = ""
    eval_fraction: float = Field(0.15, gt=0, lt=1)
    # Share of labelled log messages held out (chosen by a hash of the text, so a message
    # held out once is held out on every retrain and never used for training).
    holdout_fraction: float = Field(0.25, gt=0, lt=1)
    # Gate: the candidate may be at most `margin` below the active model's headline accuracy,
    # and no intent's recall may drop by more than `max_intent_drop` (intents with fewer than
    # `min_intent_support` held-out examples are too noisy to judge and are only reported).
    margin: float = Field(0.0, ge=0, le=1)
    max_intent_drop: float = Field(0.1, ge=0, le=1)
    min_intent_support: int = Field(5, ge=1)
    intent_preset: Literal["default", "quick", "few-shot"] = "default"
    intent_epochs: int = Field(0, ge=0)  # 0: the preset's number of epochs
    # Earlier customer turns kept with a reply pair as its context.
    context_turns: int = Field(3, ge=0, le=20)
    # The company's own contacts that stay in shared answers, not scrubbed as personal data:
    # ["support@shop.example", "+1 800 555 0199"] (compared on letters and digits only).
    scrub_keep: list[str] = Field(default_factory=list)

    @field_validator("scrub_patterns")
    @classmethod
    def _patterns_compile(cls, value: dict[str, str]) -> dict[str, str]:
        for name, pattern in value.items():
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9 ]{0,47}", name):
                raise ValueError(f"placeholder name {name!r}: use letters, digits and spaces")
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"pattern for {name!r} is not a valid regex: {exc}") from None
        return value


class SlotSettings(Section):
    """One slot the bot asks for (``[dialogue.slots."Order Number"]``)."""

    phrase: str = Field(min_length=1)  # how the question names it: "your order number"
    kind: Literal["identifier", "email", "text"] = "identifier"
    example: str = ""  # shown when a value is refused: "ORD-12345"
    pattern: str = ""  # an identifier must also match this (RE2 syntax, one token)
    min_digits: int = Field(3, ge=0, le=32)

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        if value:
            from bot.dialogue.slots import SlotSpec

            try:
                SlotSpec("x", pattern=value)
            except SettingsError as exc:
                raise ValueError(str(exc)) from None
        return value


class DialogueSettings(Section):
    """Conversations around the reply path: small talk, slots, follow-ups, clarification."""

    # Small talk is the nearest built-in example when it is at least this similar (cosine in
    # the retrieval encoder's space), the intent is unsure...
    smalltalk_threshold: float = Field(0.45, ge=0, le=1)
    # ...and at least this much more similar to it than to the nearest known question.
    smalltalk_margin: float = Field(0.1, ge=0, le=1)
    # Under this similarity, small talk that points back ("ok so what now?") is first read
    # as a follow-up of the topic.
    smalltalk_sure: float = Field(0.6, ge=0, le=1)
    # "Let me talk to a person" by the small-talk model alone from this similarity on.
    human_threshold: float = Field(0.55, ge=0, le=1)
    # ...and by the intent model when a person is its best guess at this probability, unless
    # the message is plain small talk or points back at the topic.
    human_guess: float = Field(0.5, ge=0, le=1)
    # An unsure intent is answered when the nearest known question (at least this similar)
    # has the same intent: the model and retrieval agree.
    agree_score: float = Field(0.75, ge=0, le=1)
    # A confident intent is answered only when some known question is at least this similar:
    # an intent model is confidently wrong on what it never saw ("will it rain tomorrow?").
    sure_domain_score: float = Field(0.6, ge=0, le=1)

    # An unsure message at least this similar to a known question is in domain (offer the
    # likely intents); below it the bot says what it can help with and offers a person.
    in_domain_score: float = Field(0.65, ge=0, le=1)
    clarify_options: int = Field(3, ge=2, le=4)
    # Clarifications for one message before a person takes over.
    max_clarifications: int = Field(2, ge=1, le=5)
    # Read a misspelt word as the word meant ("pucrhase" → "purchase") before the encoders read
    # a message (bot/dialogue/spelling.py); the stored text is the customer's.
    spelling: bool = True
    # Read an unsure message again joined to the topic's question ("and how long?"), and keep
    # that reading when it stays on the topic and is at most this much further from the known
    # questions than the topic question alone.
    follow_ups: bool = True
    follow_up_drop: float = Field(0.18, ge=0, le=1)
    # A short question with no word pointing back ("will I get a confirmation?") is read with
    # the topic too when it is at least this close to the known questions on its own, and
    # kept on a tighter drop.
    follow_up_question_score: float = Field(0.5, ge=0, le=1)
    follow_up_question_drop: float = Field(0.15, ge=0, le=1)
    # Look for a second request in one message ("cancel my order and send the invoice").
    split_requests: bool = True
    # ...when the model is unsure, or gives a second intent at least this probability.
    second_request: float = Field(0.05, ge=0, le=1)
    # Intent labels that mean "let me talk to a person".
    human_labels: list[str] = Field(default_factory=lambda: ["human_agent", "contact_human_agent"])
    # What the bot says it can help with; empty: the titles of the intents it knows.
    capabilities: str = ""
    intent_titles: dict[str, str] = Field(default_factory=dict)  # quick-reply labels
    # Reply texts by key (greet, thanks, bye, out_of_domain, ask_slot, clarify, handoff_wait...,
    # see bot/dialogue/smalltalk.py); {company} and {capabilities} are filled in.
    replies: dict[str, str] = Field(default_factory=dict)
    # Slots the bot asks for, by the answers' slot name; these extend the built-in ones.
    slots: dict[str, SlotSettings] = Field(default_factory=dict)

    @field_validator("replies")
    @classmethod
    def _known_replies(cls, value: dict[str, str]) -> dict[str, str]:
        from bot.dialogue.smalltalk import REPLIES

        unknown = sorted(set(value) - set(REPLIES))
        if unknown:
            raise ValueError(f"unknown reply keys {unknown}; known: {sorted(REPLIES)}")
        return value


class HandoffSettings(Section):
    """What happens after the bot hands a conversation to the team."""

    # Tell the customer when no agent has taken the conversation after this many seconds.
    wait_s: float = Field(300.0, gt=0)
    # Business hours, e.g. "Mon-Fri 09:00-17:00" or "Mon-Fri 09:00-17:00, Sat 10:00-14:00";
    # empty: always open. Outside them a handoff says so at once.
    hours: str = ""
    timezone: str = "UTC"
    check_every_s: float = Field(15.0, gt=0)

    @model_validator(mode="after")
    def _parses(self) -> HandoffSettings:
        from bot.dialogue.handoff import BusinessHours

        try:
            BusinessHours.parse(self.hours, self.timezone)
        except SettingsError as exc:
            raise ValueError(str(exc)) from None
        return self


class PrivacySettings(Section):
    """Retention and what is kept about a widget visitor (bot/privacy.py)."""

    # Conversations with no activity for this many days are deleted with everything stored
    # about them, and uploaded import files older than this; 0 keeps everything.
    retain_days: int = Field(0, ge=0)
    # How often the purge runs: in the server that runs jobs, else in `deskbot worker`.
    purge_every_s: float = Field(3600.0, ge=1)
    # Visitor IP stored with a widget conversation: whole, truncated (IPv4 /24, IPv6 /48) or none.
    client_ip: Literal["full", "truncated", "none"] = "truncated"
    # Host page URL stored with a widget conversation: whole, without query and fragment
    # ("path", where tokens and e-mail addresses tend to sit), scheme and host only, or none.
    page_url: Literal["full", "path", "origin", "none"] = "path"


class GapsSettings(Section):
    """Knowledge gaps: mining what the bot did not answer well into topics (bot/gaps.py)."""

    # The period mined when no --since is given, in days back from now.
    period_days: int = Field(7, ge=1, le=3650)
    # A topic smaller than this is left out as noise; the known intent's examples clustered
    # with its messages count.
    min_topic_size: int = Field(3, ge=2)
    # A topic accepted as a new intent needs this many example messages, so that retraining
    # has some to train on and some to hold out.
    min_examples: int = Field(10, ge=2)
    # A topic whose centroid is less similar than this (cosine) to every known intent's
    # centroid is marked "new"; otherwise "existing" (an intent the model learned badly).
    # Chosen on Banking77 train, where related intents' centroids are close (see
    # docs/performance.md, "Knowledge gaps").
    new_below: float = Field(0.9, ge=0, le=1)
    # An edited suggestion counts as heavily edited when the word overlap (ROUGE-L F1) of the
    # draft and the text sent is under this.
    heavy_edit: float = Field(0.5, ge=0, le=1)
    # Feedback ratings at or under this are negative (thumbs down is 1).
    negative_rating: int = Field(2, ge=1, le=5)
    # At most this many messages are mined (the latest); bounds the job's time and memory.
    max_messages: int = Field(20_000, ge=10)
    # Mine on a schedule every this many hours (0: only when asked).
    every_hours: float = Field(0.0, ge=0)


class Settings(BaseSettings):
    """Validated settings for one deskbot process."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
        case_sensitive=False,
    )

    home: Path = Path("var")
    database_url: SecretStr = SecretStr("")
    redis_url: SecretStr = SecretStr("")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    server: ServerSettings = Field(default_factory=ServerSettings)
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    intent: IntentSettings = Field(default_factory=IntentSettings)
    generation: GenerationSettings = Field(default_factory=GenerationSettings)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    connectors: ConnectorsSettings = Field(default_factory=ConnectorsSettings)
    learning: LearningSettings = Field(default_factory=LearningSettings)
    dialogue: DialogueSettings = Field(default_factory=DialogueSettings)
    handoff: HandoffSettings = Field(default_factory=HandoffSettings)
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)

    gaps: GapsSettings = Field(default_factory=GapsSettings)

    @field_validator("database_url")
    @classmethod
    def _known_driver(cls, value: SecretStr) -> SecretStr:
        url = value.get_secret_value()
        if url and not url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError(
                "expected a URL starting with sqlite+aiosqlite:// or postgresql+asyncpg://"
            )
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_path = _config_file
        if toml_path:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_path))
        return tuple(sources)

    @cached_property
    def sqlalchemy_url(self) -> str:
        url = self.database_url.get_secret_value()
        return url or f"sqlite+aiosqlite:///{(self.home / 'deskbot.db').resolve()}"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def indexes_dir(self) -> Path:
        return self.home / "indexes"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    def masked(self) -> dict[str, Any]:
        """The effective settings as plain data, every secret masked."""
        data = self.model_dump(mode="json")
        data["database_url"] = mask_url(self.database_url.get_secret_value())
        data["redis_url"] = mask_url(self.redis_url.get_secret_value())
        data["generation"]["remote_api_key"] = (
            "********" if self.generation.remote_api_key.get_secret_value() else ""
        )
        data["sqlalchemy_url"] = mask_url(self.sqlalchemy_url)
        return data


_config_file: Path | None = None


def mask_url(url: str) -> str:
    """Hide the password in ``scheme://user:password@host``."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1********@", url)


def _key_name(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if not isinstance(p, int)]
    dotted = ".".join(parts)
    env = ENV_PREFIX + "__".join(parts).upper()
    return f"'{dotted}' ({env})"


def load_settings(config_file: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Read and validate settings; raise :class:`SettingsError` naming the first bad key."""
    global _config_file
    path = config_file or os.environ.get(CONFIG_ENV) or None
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise SettingsError(f"config file {path} does not exist")
    _config_file = path
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            got = err.get("input")
            shown = "" if isinstance(got, dict) else f", got {got!r}"
            if err["type"] == "extra_forbidden":
                problems.append(f"unknown setting {_key_name(err['loc'])}")
            else:
                problems.append(f"setting {_key_name(err['loc'])}: {err['msg']}{shown}")
        raise SettingsError("; ".join(problems)) from None
    except ValueError as exc:  # e.g. malformed TOML
        raise SettingsError(f"config file {path}: {exc}") from None
    finally:
        _config_file = None
