"""Scripted conversations for `deskbot eval conversations`, and the intent model's training CSV.

    python benchmarks/conversation_set.py --out var/convs [--n-dev 200] [--n-test 100] [--seed 7]

Reads ../shared/data (Bitext, CuCom, Banking77) and writes, all deterministic:

- ``conversations.jsonl``: one conversation a line, ``{"id", "split", "turns": [{"type", "text",
  "expect", "source"}]}``; ``expect`` keys (all optional): ``status``, ``action`` (lists of allowed
  values), ``intent``, ``contains`` (texts the reply must hold).
- ``intent_train.csv`` (text,intent): every Bitext row that is not held out, its
  ``{{Order Number}}`` removed or replaced by a made-up number (``--keep-placeholders``: as is).
- ``heldout_dev.csv`` / ``heldout_test.csv`` (text,intent,source): the held-out questions the
  conversations draw from, for single-question figures on the same split.
- with ``--train-per-intent N``, also ``intent_train_N.csv``: N distinct questions per intent from
  ``intent_train.csv`` (for a model that must train in limited CPU time).

Held out: a Bitext question that ``finetune.held_out.is_held_out`` holds out (a tenth, the
texts whose ``text_hash`` ends in 0: the split generator fine-tuning uses too); among those,
``(hash // 10) % 3 == 0`` goes to the test part, the rest to dev (distinct questions, so the two
parts share none). Handwritten lines (greetings, follow-ups, requests for a person...) are split
between dev and test by the same hash, and Banking77 out-of-domain lines come from its train.csv
for dev and its test.csv for test, so the test part holds no line that dev tuning has seen.

Bitext asks nearly all of its cancel/change/track-order questions with an order number in them
(``cancel order {{Order Number}}``: 1 held-out cancel_order question has none). Such a question
becomes "cancel my order" (source ``bitext-heldout-stripped``, the bot must ask for the number),
or, in a share of conversations, gets a made-up number filled in (``bitext-heldout-filled``,
the answer must carry it). ``--no-stripped`` keeps only questions that never held a placeholder.

Turn order: greeting (or greeting_question), question, [slot_value], topic_switch, [slot_value],
follow_up, out_of_domain, thanks, human.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import random
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

REPO = Path(__file__).resolve().parent.parent
# Run as a script, this folder comes first on sys.path and benchmarks/retrieval.py would shadow
# the retrieval package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(REPO))

from finetune.held_out import is_held_out, text_hash  # noqa: E402

T = TypeVar("T")

DATA = REPO.parent / "shared" / "data"

HUMAN_INTENT = "contact_human_agent"
# Intents whose answers ask for {{Order Number}} (over 90% of their Bitext answers do).
ORDER_INTENTS = ("cancel_order", "change_order", "track_order", "delivery_period")
ORDER_SLOT = "{{Order Number}}"

# Shares of conversations, chosen so that every turn type gets enough cases to report on.
P_GREETING_QUESTION = 0.3
P_FIRST_ORDER = 0.4
P_SWITCH_ORDER = 0.35
P_SLOT_TURN = 0.85  # else the customer ignores the request and switches topic
P_FILLED = 0.2  # an order question that already carries its number
P_BITEXT_HUMAN = 0.5
P_BANKING_OOD = 0.5
P_CUCOM_THANKS = 0.4
P_SPECIFIC_FOLLOW_UP = 0.3

# Banking77 categories no retail support bot owns. Left out as overlapping retail support:
# card_arrival, card/transfer payments and refunds, balances, account/passcode/personal details,
# country_support, apple_pay_or_google_pay, contactless, card expiry, getting_spare_card, the
# identity checks; and, because Bitext uses their words for its own intents, pin_blocked and
# change_pin (a PIN is a password there), cash_withdrawal_charge (a "withdrawal fee" is a
# cancellation fee there) and top_up_by_bank_transfer_charge (paying by bank transfer).
BANKING_OOD_CATEGORIES = (
    "exchange_rate",
    "exchange_via_app",
    "exchange_charge",
    "fiat_currency_support",
    "wrong_exchange_rate_for_cash_withdrawal",
    "atm_support",
    "card_swallowed",
    "declined_cash_withdrawal",
    "pending_cash_withdrawal",
    "wrong_amount_of_cash_received",
    "cash_withdrawal_not_recognised",
    "automatic_top_up",
    "pending_top_up",
    "top_up_limits",
    "top_up_reverted",
    "topping_up_by_card",
    "top_up_by_cash_or_cheque",
    "top_up_failed",
    "top_up_by_card_charge",
    "verify_top_up",
    "getting_virtual_card",
    "get_disposable_virtual_card",
    "disposable_card_limits",
    "virtual_card_not_working",
    "age_limit",
    "verify_source_of_funds",
)
# A query from those categories that names something a shop also handles is dropped too.
RETAIL_WORDS = re.compile(
    r"(?i)\b(?:order|refund|deliver|ship|purchas|invoice|bill|account|password|subscri|return"
    r"|cancel|pay|paid|buy|bought|item|product|parcel|package|shop|store|merchant|address"
    r"|sign ?up|regist|complain|review|customer service|agent|human|person|e-?mail|app\b"
    r"|log ?in|charg|online|pin|fee|cost|transfer)"
)
# "Exchange" is also what a shop does with goods: keep only exchanges of money.
MONEY_WORDS = re.compile(
    r"(?i)\b(?:currenc|rate|foreign|forex|eur|euros?|gbp|usd|aud|dollars?|pounds?|cash)"
)
# CuCom customer turns made only of these words, with a thank-you among them, are closers.
CLOSER_WORDS = frozenset(
    "ok okay k alright fine cool great gr8 good perfect thanks thank thanx thnx thx tnx tanks "
    "thankyou ty you u so much a lot alot ton bunch man again for your ur help the that thats "
    "it all nope nah no i im think good bye goodbye really appreciate".split()
)
THANKS_WORDS = frozenset("thanks thank thanx thnx thx tnx tanks thankyou ty".split())

GREETINGS = (
    "hi", "hello", "hey", "hello there!", "hi there", "hey there", "good morning",
    "good afternoon", "good evening", "hey, anyone here?", "hello? anyone around?",
    "hi, is anyone there?", "hiya", "heya", "hii", "hiii", "helo", "hellooo", "heyy", "hi!",
    "Hi :)", "HELLO", "howdy", "greetings", "morning!", "evening", "gud morning", "good mornin",
    "hallo", "hullo", "hello, good day", "hi team", "hey support", "hello, hope you're well",
    "hi there, how are you?", "hey hey", "Hello!!", "yo", "hi bot", "good day to you",
    "hey, hi", "hello :)", "hi again", "hey! how's it going?",
)  # fmt: skip
GREETING_PREFIXES = (
    "hi", "hello", "hey", "hi there", "hello there", "good morning", "hey there", "hiya",
    "helo", "good evening", "hi team", "hey, good afternoon",
)  # fmt: skip
THANKS = (
    "thanks!", "thank you", "thank you so much", "thx", "ty", "thanks a lot", "great, thanks",
    "cheers", "perfect, thank you!", "ok thanks", "thanks, that helps", "awesome, thank you",
    "thank u", "thanks for your help", "many thanks", "thnx", "ok cool, thx", "much appreciated",
    "thanks, bye", "that's all, thanks!", "thank you very much", "great help, thanks",
    "ok, thank you!", "super, thanks", "tysm", "thanks again", "nice, thanks!", "thankyou",
    "alright, thanks a bunch", "thanks :)",
)  # fmt: skip
FOLLOW_UPS = (
    "and how long does that take?", "how do I do that?", "what's the next step?",
    "can you explain that again?", "and what if it doesn't work?", "ok, and then?",
    "sorry, what do I do after that?", "and where do I find that?", "is there a faster way?",
    "could you go over that once more?", "what if I can't find it?", "ok, and after that?",
    "wait, how?", "can you be more specific?", "and if that doesn't help?",
    "what do I need for that?", "how long will that take?", "is that the only way?",
    "and then what happens?", "can I do that from my phone?", "do I have to do it today?",
    "sorry I didn't get that, can you repeat?", "so what should I do now?",
    "and when will I hear back?", "ok but how exactly?", "and how long until it's done?",
    "what happens next?", "hmm, and if I get stuck?", "can you walk me through it?",
    "ok so what now?", "and is that free?", "will I get a confirmation?",
)  # fmt: skip
# Elliptical follow-ups that only make sense after some intents.
SPECIFIC_FOLLOW_UPS = {
    "delivery_period": ("what about international orders?", "and to Canada?", "and express?"),
    "delivery_options": ("what about international orders?", "and to the UK?", "and on weekends?"),
    "check_payment_methods": ("what about PayPal?", "and Apple Pay?", "and for gift cards?"),
    "payment_issue": ("and with a different card?", "what about PayPal?"),
    "get_invoice": ("and for last month's?", "what about the older ones?"),
    "check_invoice": ("and for last month's?", "what about the older ones?"),
    "create_account": ("and on the mobile app?", "what about a business one?"),
    "edit_account": ("and on the mobile app?", "what about my phone number?"),
    "delete_account": ("and on the mobile app?", "what about my data?"),
    "recover_password": ("and on the mobile app?", "what if I don't get the email?"),
    "place_order": ("what about by phone?", "and for a gift?"),
    "get_refund": ("and for a gift?", "what about if I paid by card?"),
    "track_refund": ("and if I paid by card?", "and for the other one?"),
    "change_shipping_address": ("and for an order already shipped?", "what about a PO box?"),
    "set_up_shipping_address": ("what about a second one?", "and a PO box?"),
    "newsletter_subscription": ("and the weekly one?", "what about text messages?"),
}
OUT_OF_DOMAIN = (
    "what's the weather in Paris?", "tell me a joke", "who won the game last night?",
    "how do I make pancakes?", "what's 17 times 23?", "what is the capital of Australia?",
    "can you recommend a good movie?", "write me a poem about the sea",
    "how tall is Mount Everest?", "what time is it in Tokyo?",
    "translate 'good night' into Spanish",
    "who is the president of France?", "how do I fix a flat bike tyre?",
    "what's a good recipe for lasagna?", "is it going to rain tomorrow?",
    "can you help me with my maths homework?", "what's the square root of 144?",
    "who wrote Pride and Prejudice?", "how many calories are in a banana?",
    "what's the best way to learn guitar?", "how far is the moon?",
    "explain quantum physics in simple words", "who won the world cup in 2018?",
    "what's the score of the Lakers game?", "how do I boil an egg?",
    "what is the meaning of life?", "give me a fun fact", "what's the population of Brazil?",
    "how do I change a car tyre?", "book me a flight to Rome", "what's bitcoin trading at?",
    "which planet is the largest?", "how do you say thank you in Japanese?",
    "what's a good name for a dog?", "solve x + 5 = 12", "what should I cook for dinner tonight?",
    "how do I get rid of hiccups?", "what's the stock price of Tesla?",
    "when does the next full moon happen?", "recommend a book for my holiday",
    "how do I train for a marathon?", "what is photosynthesis?", "tell me a riddle",
    "what's the speed of light?", "who painted the Mona Lisa?",
    "can you play some music?", "what's the traffic like on the M25?",
    "how do I unclog a drain?", "what's 15% of 80?", "who is the richest person in the world?",
)  # fmt: skip
HUMAN_REQUESTS = (
    "can I talk to a human?", "I want to speak to a real person", "agent please",
    "human please", "connect me to an agent", "let me talk to someone", "operator",
    "get me a person", "is there a human I can chat with?", "I'd rather talk to a person",
    "transfer me to a live agent", "real person pls", "pls connect me w a human",
    "speak to representative", "customer service representative please",
    "I need a human, not a bot", "can a real agent take over?", "i want to talk to a human being",
    "put me through to someone", "talk to human", "can someone from your team help me?",
    "live chat with an agent please", "I want to speak to a manager",
    "escalate this to a person please", "stop, I want a human", "let me chat with a real agent",
    "is anyone real there? I need a person", "human agent", "AGENT", "representative!",
    "can I get a human on this?", "I'd like to talk to your staff",
)  # fmt: skip
SLOT_FORMS_ALONE = ("{v}",)
SLOT_FORMS_SENTENCE = (
    "it's {v}", "my order number is {v}", "sure, {v}", "the order number is {v}", "order {v}",
    "yes, it's {v}", "here you go: {v}", "it is {v}", "that would be {v}", "{v} is the number",
    "ok it's {v}", "sure thing, it's {v}", "my order is {v}", "order number: {v}",
)  # fmt: skip
SLOT_FORMS_NOISE = (
    "{v} thanks!", "um ok its {v}", "{v} pls hurry", "oh right, {v}", "hmm let me check... {v}",
    "{v} I think", "ah yes {v}, thanks", "{v}!!", "it's {v}, thx", "sorry, it's {v}",
    "ok here: {v} :)", "uh {v}", "found it - {v}",
)  # fmt: skip

SENT = {"status": ["sent"]}
SMALLTALK = {"status": ["sent"], "action": ["smalltalk"]}


def part_of(text: str) -> str:
    """Dev or test part of a held-out question (or of a handwritten line)."""
    return "test" if (text_hash(text) // 10) % 3 == 0 else "dev"


@dataclass(frozen=True)
class Question:
    text: str  # as in Bitext; an order question may hold {{Order Number}}
    intent: str

    @property
    def has_slot(self) -> bool:
        return ORDER_SLOT in self.text

    @property
    def shown(self) -> str:
        """The question as a customer without the number at hand would ask it."""
        return strip_order_slot(self.text) if self.has_slot else self.text


def normal(text: str) -> str:
    return " ".join(text.lower().split())


class Deck(Generic[T]):
    """Draws items in shuffled order, reshuffling when all were drawn; counts the reuses."""

    def __init__(self, items: Iterable[T], rng: random.Random, name: str) -> None:
        self.items = list(items)
        if not self.items:
            raise SystemExit(f"no items for {name}: the data or the split left none")
        self.rng = rng
        self.pending: list[T] = []
        self.rounds = 0

    def draw(self) -> T:
        if not self.pending:
            self.pending = self.items[:]
            self.rng.shuffle(self.pending)
            self.rounds += 1
        return self.pending.pop()

    @property
    def reused(self) -> bool:
        return self.rounds > 1


def read_bitext(data: Path) -> list[dict[str, str]]:
    path = data / "bitext" / "bitext_cs_train.csv.gz"
    with gzip.open(path, "rt", encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def strip_order_slot(text: str) -> str:
    """'cancelling order {{Order Number}}' -> 'cancelling my order'."""
    words = text.replace(ORDER_SLOT, "\0").split()
    out: list[str] = []
    for word in words:
        if "\0" not in word:
            out.append(word)
            continue
        tail = word.replace("\0", "")
        if not out:
            out += ["my", "order"]
        elif len(out) < 2 or out[-2].lower() not in ("the", "my", "this", "that", "an", "a"):
            out.insert(len(out) - 1, "my")
        if tail:
            if out:
                out[-1] += tail
            else:
                out.append(tail)
    return " ".join(out)


def order_number(rng: random.Random) -> tuple[str, str]:
    """A made-up order number as a customer types it, and the part the reply must contain."""
    kind = rng.randrange(4)
    if kind == 0:
        value = f"ORD-{rng.randrange(1000, 100000)}"
        return value, value
    if kind == 1:
        digits = str(rng.randrange(10000, 100000))
        return "#" + digits, digits
    if kind == 2:
        parts = (rng.randrange(100, 1000), rng.randrange(10**6, 10**7), rng.randrange(10**6, 10**7))
        value = "-".join(map(str, parts))
        return value, value
    digits = str(rng.randrange(1000, 1000000))
    return digits, digits


def bitext_pools(
    rows: list[dict[str, str]], stripped: bool
) -> tuple[dict[str, dict[str, list[Question]]], list[dict[str, str]]]:
    """Held-out questions by part and intent, and the training rows."""
    pools: dict[str, dict[str, list[Question]]] = {
        "dev": defaultdict(list),
        "test": defaultdict(list),
    }
    seen: set[str] = set()
    train: list[dict[str, str]] = []
    for row in rows:
        text, intent = row["instruction"].strip(), row["intent"].strip()
        if not is_held_out(text):
            train.append({"text": text, "intent": intent})
            continue
        key = normal(text)
        if key in seen or "\ufffd" in text:
            continue
        seen.add(key)
        clean = "{{" not in text
        order_only = (
            stripped and intent in ORDER_INTENTS and text.count("{{") == 1 and ORDER_SLOT in text
        )
        if clean or order_only:
            pools[part_of(text)][intent].append(Question(text, intent))
    return pools, train


def realize_order_numbers(rows: list[dict[str, str]], seed: int) -> list[dict[str, str]]:
    """Training text as customers type it: "{{Order Number}}" removed or made up, half each.

    A model trained on the literal placeholder (97% of Bitext's order questions) is unsure of
    "cancel my order" and "cancel order 5521", which are what customers send.
    """
    rng = random.Random(f"{seed}-train-order-numbers")
    out = []
    for row in rows:
        text = row["text"]
        if ORDER_SLOT in text:
            if rng.random() < 0.5:
                text = strip_order_slot(text)
            else:
                text = text.replace(ORDER_SLOT, order_number(rng)[0])
        out.append({"text": text, "intent": row["intent"]})
    return out


def banking_ood(data: Path) -> dict[str, list[str]]:
    keep = set(BANKING_OOD_CATEGORIES)
    out: dict[str, list[str]] = {}
    for part, name in (("dev", "train.csv"), ("test", "test.csv")):
        with open(data / "banking77" / name, encoding="utf-8", newline="") as fh:
            texts = {
                " ".join(r["text"].split())
                for r in csv.DictReader(fh)
                if r["category"] in keep
                and not RETAIL_WORDS.search(r["text"])
                and ("exchang" not in r["text"].lower() or MONEY_WORDS.search(r["text"]))
            }
        out[part] = sorted(texts)
    return out


def cucom_closers(data: Path) -> list[str]:
    found: set[str] = set()
    with gzip.open(data / "cucom" / "cucom_ecommerce.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            for turn in json.loads(line)["turns"]:
                if turn["role"].lower() != "user":
                    continue
                text = " ".join(turn["content"].split())
                words = re.findall(r"[a-z0-9']+", text.lower().replace("'", ""))
                if (
                    words
                    and len(words) <= 8
                    and set(words) <= CLOSER_WORDS
                    and THANKS_WORDS & set(words)
                ):
                    found.add(text)
    return sorted(found)


def split_lines(lines: Iterable[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {"dev": [], "test": []}
    for line in lines:
        out[part_of(line)].append(line)
    return out


def join_greeting(prefix: str, question: str, rng: random.Random) -> str:
    sep = rng.choice((", ", "! ", " ", ". "))
    if sep in (", ", " ") and not re.match(r"I\b", question):
        question = question[:1].lower() + question[1:]
    return f"{prefix}{sep}{question}"


class Builder:
    def __init__(self, data: Path, seed: int, stripped: bool, keep_placeholders: bool) -> None:
        self.data = data
        self.seed = seed
        rows = read_bitext(data)
        self.pools, self.train = bitext_pools(rows, stripped)
        raw_train = self.train
        if not keep_placeholders:
            self.train = realize_order_numbers(self.train, seed)
        # A held-out question that reads like a training text once spaces and the order number
        # are normalised ("cancel order  {{Order Number}}" vs "cancel order {{Order Number}}")
        # would be no test of generalisation.
        trained = {normal(r["text"]) for r in [*raw_train, *self.train]}
        trained |= {normal(strip_order_slot(r["text"])) for r in raw_train}
        self.dropped = 0
        for part in self.pools.values():
            for intent, questions in part.items():
                kept = [q for q in questions if normal(q.shown) not in trained]
                self.dropped += len(questions) - len(kept)
                part[intent] = kept
        self.banking = banking_ood(data)
        closers = cucom_closers(data)
        self.lines = {
            "greeting": split_lines(GREETINGS),
            "prefix": split_lines(GREETING_PREFIXES),
            "thanks": split_lines(THANKS),
            "cucom_thanks": split_lines(closers),
            "follow_up": split_lines(FOLLOW_UPS),
            "ood": split_lines(OUT_OF_DOMAIN),
            "human": split_lines(HUMAN_REQUESTS),
            "slot_alone": {"dev": list(SLOT_FORMS_ALONE), "test": list(SLOT_FORMS_ALONE)},
            "slot_sentence": split_lines(SLOT_FORMS_SENTENCE),
            "slot_noise": split_lines(SLOT_FORMS_NOISE),
        }
        self.intents = sorted(i for i in self.pools["dev"] if i != HUMAN_INTENT)

    def heldout_rows(self, part: str) -> list[dict[str, str]]:
        rng = random.Random(f"{self.seed}-heldout-{part}")
        rows = []
        for intent in sorted(self.pools[part]):
            for q in self.pools[part][intent]:
                source = "bitext-heldout-stripped" if q.has_slot else "bitext-heldout"
                rows.append({"text": q.shown, "intent": intent, "source": source})
        rng.shuffle(rows)
        return rows

    def conversations(self, part: str, n: int) -> tuple[list[dict[str, object]], list[str]]:
        rng = random.Random(f"{self.seed}-{part}")
        pool = self.pools[part]
        decks = {i: Deck(pool[i], rng, f"{part} {i}") for i in self.intents}
        order_deck = Deck([i for i in self.intents if i in ORDER_INTENTS], rng, "order intents")
        other_deck = Deck([i for i in self.intents if i not in ORDER_INTENTS], rng, "intents")
        human_q = Deck(pool[HUMAN_INTENT], rng, f"{part} {HUMAN_INTENT}")
        line = {k: Deck(v[part], rng, f"{part} {k}") for k, v in self.lines.items()}
        ood_bank = Deck(self.banking[part], rng, f"{part} banking77")

        def question_turns(intent: str, kind: str, greeting: str | None) -> list[dict[str, object]]:
            q = decks[intent].draw()
            expect: dict[str, object] = {**SENT, "intent": intent}
            source = "bitext-heldout"
            slot_turn = False
            if q.has_slot and rng.random() < P_FILLED:
                value, shown = order_number(rng)
                text = q.text.replace(ORDER_SLOT, value)
                expect["contains"] = [shown]
                source = "bitext-heldout-filled"
            else:
                text = q.shown
                if q.has_slot:
                    source = "bitext-heldout-stripped"
                slot_turn = intent in ORDER_INTENTS and rng.random() < P_SLOT_TURN
            if greeting is not None:
                text = join_greeting(greeting, text, rng)
            turns: list[dict[str, object]] = [
                {"type": kind, "text": text, "expect": expect, "source": source}
            ]
            if slot_turn:
                value, shown = order_number(rng)
                form_kind = rng.choice(("slot_alone", "slot_sentence", "slot_noise"))
                form = line[form_kind].draw()
                turns.append(
                    {
                        "type": "slot_value",
                        "text": form.format(v=value),
                        "expect": {
                            **SENT,
                            "action": ["fill"],  # the answer that waited for the value
                            "intent": intent,
                            "contains": [shown],
                        },
                        "source": "template",
                    }
                )
            return turns

        out: list[dict[str, object]] = []
        for k in range(n):
            turns: list[dict[str, object]] = []
            first = (order_deck if rng.random() < P_FIRST_ORDER else other_deck).draw()
            if rng.random() < P_GREETING_QUESTION:
                prefix = line["prefix"].draw()
                turns += question_turns(first, "greeting_question", prefix)
            else:
                turns.append(
                    {
                        "type": "greeting",
                        "text": line["greeting"].draw(),
                        "expect": SMALLTALK,
                        "source": "template",
                    }
                )
                turns += question_turns(first, "question", None)
            # At most one order number per conversation: a second order question could
            # rightly reuse the first number, and then no value would be asked for.
            switch_deck = other_deck
            if first not in ORDER_INTENTS and rng.random() < P_SWITCH_ORDER:
                switch_deck = order_deck
            switch = switch_deck.draw()
            while switch == first:
                switch = switch_deck.draw()
            turns += question_turns(switch, "topic_switch", None)
            specific = [t for t in SPECIFIC_FOLLOW_UPS.get(switch, ()) if part_of(t) == part]
            if specific and rng.random() < P_SPECIFIC_FOLLOW_UP:
                follow = rng.choice(specific)
            else:
                follow = line["follow_up"].draw()
            turns.append(
                {
                    "type": "follow_up",
                    "text": follow,
                    "expect": {**SENT, "intent": switch},
                    "source": "template",
                }
            )
            if rng.random() < P_BANKING_OOD:
                ood, source = ood_bank.draw(), "banking77"
            else:
                ood, source = line["ood"].draw(), "template"
            turns.append(
                {
                    "type": "out_of_domain",
                    "text": ood,
                    "expect": {"action": ["capabilities"]},
                    "source": source,
                }
            )
            if rng.random() < P_CUCOM_THANKS:
                thanks, source = line["cucom_thanks"].draw(), "cucom"
            else:
                thanks, source = line["thanks"].draw(), "template"
            turns.append({"type": "thanks", "text": thanks, "expect": SMALLTALK, "source": source})
            if rng.random() < P_BITEXT_HUMAN:
                human, source = human_q.draw().text, "bitext-heldout"
            else:
                human, source = line["human"].draw(), "template"
            turns.append(
                {
                    "type": "human",
                    "text": human,
                    "expect": {"status": ["handoff"]},
                    "source": source,
                }
            )
            out.append({"id": f"{part}-{k + 1:04d}", "split": part, "turns": turns})
        # Handwritten lines repeat by design; a data pool that repeats is worth knowing.
        reused = [f"{i} questions" for i, deck in sorted(decks.items()) if deck.reused]
        for name, deck in (
            ("human questions", human_q),
            ("banking77", ood_bank),
            ("cucom thanks", line["cucom_thanks"]),
        ):
            if deck.reused:
                reused.append(name)
        return out, reused


def write_csv(path: Path, rows: list[dict[str, str]], columns: tuple[str, ...]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8")


def sample_training(rows: list[dict[str, str]], per_intent: int, seed: int) -> list[dict[str, str]]:
    """``per_intent`` distinct questions of each intent (stratified, seeded)."""
    rng = random.Random(f"{seed}-train-{per_intent}")
    by_intent: dict[str, dict[str, dict[str, str]]] = defaultdict(dict)
    for row in rows:
        by_intent[row["intent"]].setdefault(row["text"].lower(), row)
    chosen: list[dict[str, str]] = []
    for intent in sorted(by_intent):
        distinct = list(by_intent[intent].values())
        chosen += rng.sample(distinct, min(per_intent, len(distinct)))
    rng.shuffle(chosen)
    return chosen


def summary(convs: list[dict[str, object]], reused: dict[str, list[str]]) -> str:
    lines = []
    for part in ("dev", "test"):
        mine = [c for c in convs if c["split"] == part]
        turns = [t for c in mine for t in c["turns"]]  # type: ignore[attr-defined]
        types = Counter(t["type"] for t in turns)
        sources = Counter(t["source"] for t in turns)
        intents = Counter(
            t["expect"]["intent"]
            for t in turns
            if t["type"] in ("question", "greeting_question", "topic_switch")
        )
        lines.append(f"{part}: {len(mine)} conversations, {len(turns)} turns")
        lines.append("  turns per type: " + ", ".join(f"{k} {v}" for k, v in sorted(types.items())))
        lines.append("  sources: " + ", ".join(f"{k} {v}" for k, v in sorted(sources.items())))
        lines.append(
            f"  intents asked ({len(intents)}): "
            + ", ".join(f"{k} {v}" for k, v in sorted(intents.items()))
        )
        if reused[part]:
            lines.append("  data pools drawn more than once: " + ", ".join(reused[part]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="Directory to write to.")
    ap.add_argument("--n-dev", type=int, default=200)
    ap.add_argument("--n-test", type=int, default=100)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--data", type=Path, default=DATA, help="The shared data directory.")
    ap.add_argument(
        "--train-per-intent",
        type=int,
        default=0,
        help="Also write intent_train_N.csv with N distinct questions per intent.",
    )
    ap.add_argument(
        "--no-stripped",
        dest="stripped",
        action="store_false",
        help="Leave out order questions that held {{Order Number}} in Bitext.",
    )
    ap.add_argument(
        "--keep-placeholders",
        action="store_true",
        help="Train on Bitext's literal {{Order Number}} instead of removing or filling it.",
    )
    args = ap.parse_args(argv)
    if not (args.data / "bitext" / "bitext_cs_train.csv.gz").is_file():
        print(
            f"{args.data}: no bitext/bitext_cs_train.csv.gz (see shared/data/README.md)",
            file=sys.stderr,
        )
        return 2
    if args.n_dev < 0 or args.n_test < 0 or args.train_per_intent < 0:
        print("--n-dev, --n-test and --train-per-intent must not be negative", file=sys.stderr)
        return 2

    builder = Builder(args.data, args.seed, args.stripped, args.keep_placeholders)
    dev, dev_reused = builder.conversations("dev", args.n_dev)
    test, test_reused = builder.conversations("test", args.n_test)
    convs = dev + test

    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "conversations.jsonl", "w", encoding="utf-8") as fh:
        for conv in convs:
            fh.write(json.dumps(conv, ensure_ascii=False) + "\n")
    write_csv(args.out / "intent_train.csv", builder.train, ("text", "intent"))
    for part in ("dev", "test"):
        write_csv(
            args.out / f"heldout_{part}.csv",
            builder.heldout_rows(part),
            ("text", "intent", "source"),
        )
    written = ["conversations.jsonl", "intent_train.csv", "heldout_dev.csv", "heldout_test.csv"]
    if args.train_per_intent:
        name = f"intent_train_{args.train_per_intent}.csv"
        write_csv(
            args.out / name,
            sample_training(builder.train, args.train_per_intent, args.seed),
            ("text", "intent"),
        )
        written.append(name)

    print(summary(convs, {"dev": dev_reused, "test": test_reused}))
    print(f"intent_train.csv: {len(builder.train)} rows (Bitext rows not held out)")
    print(f"held-out questions left out as near-copies of a training text: {builder.dropped}")
    for part in ("dev", "test"):
        n = sum(len(v) for v in builder.pools[part].values())
        print(f"held-out {part} questions: {n} in {len(builder.pools[part])} intents")
    print(f"wrote {', '.join(written)} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
