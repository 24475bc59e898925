"""Small talk: greetings, thanks, goodbyes, yes/no, "are you a bot?", requests for a person.

A separate small model that every deployment gets, whatever its own intents: the nearest
labelled example, by cosine similarity in the retrieval encoder's space, over the examples
below. The server already has each message's vector from that encoder, so recognising small
talk costs one small matrix product per batch. Whether a message *is* small talk rather than a
question that opens with a greeting is decided against the deployment's own knowledge (see
:func:`bot.dialogue.manager.read_signals`), so "hi, I want to cancel my order" is a question.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

# Labels the dialogue manager acts on. "human" is an explicit request for a person.
GREET, THANKS, BYE, AFFIRM, DENY, BOT, CAPABILITIES, ABUSE, HUMAN, ELSEWHERE = (
    "greet",
    "thanks",
    "bye",
    "affirm",
    "deny",
    "bot",
    "capabilities",
    "abuse",
    "human",
    "elsewhere",  # chat about anything but the business: "what's the weather like?"
)

EXAMPLES: Mapping[str, tuple[str, ...]] = {
    GREET: (
        "hi",
        "hello",
        "hey",
        "hi there",
        "hello there",
        "hey there",
        "hiya",
        "howdy",
        "good morning",
        "good afternoon",
        "good evening",
        "morning",
        "greetings",
        "hi!",
        "hello?",
        "hey, anyone there?",
        "is anybody there?",
        "hello, are you there?",
        "hi, how are you?",
        "how are you doing?",
        "how's it going?",
        "yo",
        "sup",
        "hey hey",
        "hellooo",
        "hi team",
        "hello support",
        "hi bot",
        "good day",
        "hey, good morning",
        "hello, I have a question",
        "hi, can you help me?",
        "can you help me?",
        "I need some help",
        "bonjour",
        "hola",
        "hallo",
        "hey, how are things?",
        "hello again",
    ),
    THANKS: (
        "thanks",
        "thank you",
        "thank you so much",
        "thanks a lot",
        "many thanks",
        "thx",
        "ty",
        "cheers",
        "much appreciated",
        "thanks for your help",
        "thank you very much",
        "great, thanks",
        "ok thanks",
        "perfect, thank you",
        "awesome thanks",
        "that helps, thanks",
        "that was helpful",
        "thanks, that solved it",
        "appreciate it",
        "thank you for the help",
        "super, thanks!",
        "thanks a million",
        "brilliant, cheers",
        "got it, thanks",
        "ok great thank you",
        "thanks, that's all I needed",
        "thanks again for your help",
        "thanx",
        "ta",
        "thank you kindly",
        "cool, thanks",
        "fine, thanks",
        "ok, thx",
        "thanks so much for the help",
    ),
    BYE: (
        "bye",
        "goodbye",
        "bye bye",
        "see you",
        "see you later",
        "have a nice day",
        "have a good day",
        "that's all",
        "that's all for now",
        "nothing else",
        "I'm done",
        "talk to you later",
        "take care",
        "ok bye",
        "good night",
        "later",
        "cya",
        "that's everything, bye",
        "no that's all, thanks",
        "I'm all set",
        "nope, that's it",
        "no, that's everything, thanks",
        "nah, I'm good",
        "that's it, thank you",
        "no thanks, that's all I needed",
        "I think that's it",
        "that's it for today",
        "all good now",
        "no more questions",
    ),
    AFFIRM: (
        "yes",
        "yeah",
        "yep",
        "yes please",
        "sure",
        "ok",
        "okay",
        "correct",
        "right",
        "exactly",
        "that's right",
        "of course",
        "absolutely",
        "sounds good",
        "alright",
        "yes that's it",
        "affirmative",
        "indeed",
        "y",
        "yup",
        "definitely",
    ),
    DENY: (
        "no",
        "nope",
        "no thanks",
        "not really",
        "no thank you",
        "nah",
        "not now",
        "that's wrong",
        "no, that's not it",
        "negative",
        "n",
        "never mind",
        "nevermind",
        "forget it",
        "not at all",
        "no it isn't",
    ),
    BOT: (
        "are you a bot?",
        "are you a robot?",
        "am I talking to a machine?",
        "is this a real person?",
        "are you human?",
        "are you real?",
        "are you an AI?",
        "who am I talking to?",
        "who are you?",
        "what are you?",
        "is this automated?",
        "are you a chatbot?",
        "am I chatting with a computer?",
        "are you a person or a bot?",
    ),
    CAPABILITIES: (
        "what can you do?",
        "what can you help me with?",
        "how can you help?",
        "what do you do?",
        "what are you able to do?",
        "what can I ask you?",
        "what questions can you answer?",
        "help",
        "menu",
        "options",
        "what are my options?",
        "what services do you offer?",
        "what can I do here?",
        "show me what you can do",
    ),
    ABUSE: (
        "you're useless",
        "you are stupid",
        "this bot is useless",
        "you suck",
        "what a stupid bot",
        "you're an idiot",
        "this is rubbish",
        "you're dumb",
        "worst bot ever",
        "shut up",
        "you are so annoying",
        "stupid machine",
        "this is a joke",
        "useless piece of junk",
        "you don't understand anything",
    ),
    HUMAN: (
        "I want to talk to a human",
        "can I speak to a real person?",
        "agent please",
        "let me talk to an agent",
        "connect me to a representative",
        "human please",
        "I need a person",
        "get me a human",
        "transfer me to an operator",
        "I want to speak to your manager",
        "let me talk to a supervisor",
        "escalate this to someone",
        "I need to talk to staff",
        "I want to speak to your manager",
        "let me talk to a supervisor",
        "escalate this to someone",
        "I need to talk to staff",
        "speak to someone",
        "I want a real person",
        "talk to customer service agent",
        "can I chat with a live agent?",
        "put me through to a human",
        "real person please",
        "I'd like to speak with a human being",
        "representative",
        "operator",
        "talk to a person",
        "is there a human I can talk to?",
        "give me an agent",
        "I don't want a bot, I want a person",
        "live chat with staff",
    ),
    ELSEWHERE: (
        "what's the weather like today?",
        "will it rain tomorrow?",
        "tell me something funny",
        "sing me a song",
        "who is the president?",
        "what's the capital of France?",
        "recommend a good movie",
        "how do I cook pasta?",
        "what time is it?",
        "can you do my homework?",
        "what is the meaning of life?",
        "who won the football match?",
        "do you like music?",
        "what's your favourite colour?",
        "translate this into Spanish",
        "write me a poem",
    ),
}

# Short replies; {company} and {capabilities} are filled in. Configurable per deployment
# through ``dialogue.replies``.
REPLIES: Mapping[str, str] = {
    GREET: "Hello! Welcome to {company}. How can I help you today?",
    THANKS: "You're welcome! Is there anything else I can help you with?",
    BYE: "Thank you for contacting {company}. Have a great day!",
    AFFIRM: "Great. What else can I help you with?",
    DENY: "All right. Is there anything else I can help you with?",
    BOT: (
        "I'm the virtual assistant of {company}. I can help with {capabilities}, and I can "
        "put you through to a person whenever you like."
    ),
    CAPABILITIES: "I can help with {capabilities}. What would you like to do?",
    ABUSE: (
        "I'm sorry this has been frustrating. Tell me what went wrong and I'll do my best to "
        "help, or ask for a person and I'll pass you to our team."
    ),
    "out_of_domain": (
        "Sorry, I can't help with that. I can help with {capabilities}. Would you like to "
        "talk to a person?"
    ),
    "ask_slot": "Sure, I can help with that. Could you please share {slot}?",
    "slot_noted": "Thanks, I have {slot}: {value}.",
    "ask_slot_again": (
        "That doesn't look like {slot}. Could you check it and send it again? "
        "It looks like {example}."
    ),
    "ask_slot_missing": (
        "To help with that I need {slot}. Could you share it? If you don't have it, just say so."
    ),
    "clarify": "I want to make sure I understand. Did you mean:",
    "clarify_again": "Sorry, I didn't catch that. Please pick one of these:",
    "declined_human": "No problem. What else can I help you with?",
    "handoff_wait": (
        "Sorry, no one from our team is free to take this right now. You can leave a message "
        "here, or share your email address, and we'll get back to you as soon as we can."
    ),
    "handoff_closed": (
        "Our team is away right now ({hours}). You can leave a message here, or share your "
        "email address, and we'll get back to you as soon as we're back."
    ),
    "something_else": "Something else",
    "talk_to_person": "Talk to a person",
}


@dataclass(frozen=True, slots=True)
class SmallTalkGuess:
    label: str
    score: float  # similarity to the nearest example of that label
    # Every word of the message is a social word (greeting, thanks, yes/no, goodbye, filler),
    # allowing one typo, so it is small talk whatever the deployment's knowledge says.
    closed: bool = False
    human_score: float = 0.0  # similarity to the nearest request for a person


# Labels whose examples hold only social words; their words make up the closed vocabulary.
SOCIAL = (GREET, THANKS, BYE, AFFIRM, DENY)
# Chat the bot answers itself (chat about anything else with what it can help with), never a
# request for a person.
CHAT = (*SOCIAL, BOT, CAPABILITIES, ABUSE, ELSEWHERE)
# A closed message with one of these is thanks, not a yes ("okay..thanks alot!" is no yes to
# "would you like to talk to a person?").
_THANKS_WORDS = frozenset(
    "thanks thank thx thnx thanx thnks thks tnx tks ty tysm tyvm thankyou thanku cheers ta "
    "appreciate appreciated".split()
)
_YES_WORDS = frozenset("yes yeah yep yup sure please pls y absolutely definitely".split())
# A question word makes a message a question ("ok so what now?"), never a closer; listed so
# that no typo rule turns "what" into "that".
QUESTION_WORDS = frozenset("what whats how hows why when where which who whom whose".split())
# Spellings customers use that no example could list one by one.
_EXTRA_WORDS = (
    "thanx thnx thnks thks tnx tks tysm tyvm thankyou thanku thank u ur ya yeah again "
    "alot lot lots so very much ok okay okey okie k kk cool fine great good nice perfect "
    "awesome super brilliant lovely hmm um uh oh ah well just really all"
)
_MAX_CLOSED_WORDS = 12


def _social_vocabulary(examples: Mapping[str, tuple[str, ...]]) -> frozenset[str]:
    words = set(_EXTRA_WORDS.split())
    for label in SOCIAL:
        for text in examples.get(label, ()):
            words.update(_tokens(text))
    return frozenset(words)


def _tokens(text: str) -> list[str]:
    """Lower-cased words with apostrophes dropped ("that's" -> "thats"); linear in the text."""
    out: list[str] = []
    word: list[str] = []
    for ch in text[:500].lower():
        if ch.isalnum():
            word.append(ch)
        elif ch in "'’":
            continue
        elif word:
            out.append("".join(word))
            word = []
    if word:
        out.append("".join(word))
    return out


class SmallTalkModel:
    """Nearest-example small-talk recogniser.

    Two views of each message are compared with the examples: the encoder's unit vectors
    (meaning) and character n-grams within words (spelling: "thnx", "hullo", "tanks"), as
    Rasa's char_wb count featuriser does for typos; the better similarity counts. The examples
    are encoded once, on first use, with the encoder the caller's vectors come from;
    :meth:`classify` is then two small matrix products, safe from executor threads.
    """

    def __init__(self, examples: Mapping[str, tuple[str, ...]] = EXAMPLES) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        self._texts = [t for texts in examples.values() for t in texts]
        self._labels = [label for label, texts in examples.items() for _ in texts]
        self._social = np.array([label in SOCIAL for label in self._labels])
        self._human = np.array([label == HUMAN for label in self._labels])
        self._vocabulary = _social_vocabulary(examples)
        self._long_words = sorted(w for w in self._vocabulary if len(w) >= 4)
        self._chars = TfidfVectorizer(
            analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True, lowercase=True
        )
        self._char_matrix = self._chars.fit_transform(self._texts)
        self._matrix: np.ndarray | None = None
        self._encoder: Any = None
        self._lock = threading.Lock()

    def _examples_for(self, encoder: Any) -> np.ndarray:
        with self._lock:
            if self._matrix is None or self._encoder is not encoder:
                self._matrix = np.ascontiguousarray(encoder.encode(self._texts), dtype=np.float32)
                self._encoder = encoder
            return self._matrix

    def closed(self, text: str) -> bool:
        """Whether every word of ``text`` is a social word, one typo allowed in longer ones."""
        from rapidfuzz import process
        from rapidfuzz.distance import Levenshtein

        words = _tokens(text)
        if not words or len(words) > _MAX_CLOSED_WORDS:
            return False
        for word in words:
            if word in QUESTION_WORDS:
                return False
            if word in self._vocabulary:
                continue
            if len(word) < 4 or len(word) > 12:
                return False
            near = process.extractOne(
                word, self._long_words, scorer=Levenshtein.distance, score_cutoff=1
            )
            if near is None:
                return False
        return True

    def classify(
        self, vectors: np.ndarray, encoder: Any, texts: list[str] | None = None
    ) -> list[SmallTalkGuess]:
        """The nearest example's label and similarity for each of ``vectors`` (unit length),
        with ``texts`` (the same messages) also compared by spelling."""
        if len(vectors) == 0:
            return []
        sims = np.asarray(vectors, dtype=np.float32) @ self._examples_for(encoder).T
        closed = [texts is not None and self.closed(t) for t in texts or [""] * len(sims)]
        if texts is not None and any(closed):
            # Spelling only decides among social words: "solve x + 5 = 12" shares n-grams
            # with "ty" but is no thanks.
            rows = [i for i, c in enumerate(closed) if c]
            chars = self._chars.transform([texts[i][:500] for i in rows]) @ self._char_matrix.T
            sims[rows] = np.maximum(sims[rows], chars.toarray().astype(np.float32))
        out = []
        for row in range(len(sims)):
            # A message of social words only is one of the social labels, whatever is near.
            scores = np.where(self._social, sims[row], -1.0) if closed[row] else sims[row]
            best = int(scores.argmax())
            label = self._labels[best]
            if texts is not None and label == AFFIRM:
                words = set(_tokens(texts[row]))
                if words & _THANKS_WORDS and not words & _YES_WORDS:
                    label = THANKS
            near_human = float(sims[row][self._human].max()) if self._human.any() else 0.0
            out.append(SmallTalkGuess(label, float(sims[row, best]), closed[row], near_human))
        return out


# Words that open a message as a greeting ("hey team.", "good morning,"), and whom it greets.
_OPENERS = frozenset(
    "hi hii hiya hello helo hallo hullo hey heya hay howdy hola yo greetings morning "
    "afternoon evening".split()
)
_TIMES_OF_DAY = frozenset("morning afternoon evening day".split())
_ADDRESSEES = frozenset(
    "there team all everyone everybody guys folks friend friends sir madam dear support".split()
)
_EDGES = ".,!?;:-~"  # punctuation around a greeting word ("hey,", "morning!")


def without_greeting(text: str, min_rest: int = 2) -> str:
    """``text`` without the greeting it opens with, when at least ``min_rest`` words are left:
    "hi team. I want to cancel my order" reads as the question it is, since the greeting only
    pulls its vectors away from the questions the bot knows. Linear: looks at the first words."""
    words = text.split(maxsplit=8)
    i = 0
    while i < min(len(words), 6):
        word = words[i].strip(_EDGES).lower()
        following = words[i + 1].strip(_EDGES).lower() if i + 1 < len(words) else ""
        if word in _OPENERS or (i > 0 and word in _ADDRESSEES):
            i += 1
        elif word == "good" and following in _TIMES_OF_DAY:
            i += 2
        else:
            break
    parts = text.split(maxsplit=i) if i else []
    if len(parts) <= i or len(parts[i].split(maxsplit=min_rest)) < min_rest:
        return text
    return parts[i]
