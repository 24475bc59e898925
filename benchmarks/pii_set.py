"""Write the labelled PII test set: customer-service lines with fake personal data, and hard
negatives (order and tracking numbers, prices, order dates, product codes) that must be kept.

    .venv/bin/python benchmarks/pii_set.py [--lines 1500] [--out benchmarks/data/pii_set.jsonl]

Values come from Faker (seeded, seven locales); the wording from the templates below. Each line
is a JSON object: ``text``, ``pii`` (a list of ``{"type", "start", "end"}`` spans to be removed;
empty for a negative) and ``kind`` (the PII type or negative family the template was written
for). The same seed and Faker version give the same file.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Callable
from pathlib import Path

from faker import Faker

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "data" / "pii_set.jsonl"
SEED = 21
LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR", "nl_NL", "es_ES", "it_IT")

_IT_TOWNS = (
    "Roma",
    "Milano",
    "Napoli",
    "Torino",
    "Bologna",
    "Firenze",
    "Bari",
    "Verona",
    "Padova",
    "Trieste",
    "Reggio Emilia",
    "Sant'Agata de' Goti",
    "Castel San Pietro",
)

# A piece of a line: plain text, or (type, value) for personal data.
Piece = str | tuple[str, str]


def assemble(pieces: list[Piece]) -> dict[str, object]:
    text = ""
    spans = []
    for piece in pieces:
        if isinstance(piece, str):
            text += piece
        else:
            kind, value = piece
            spans.append({"type": kind, "start": len(text), "end": len(text) + len(value)})
            text += value
    return {"text": text, "pii": spans}


class Values:
    """Fake values in the shapes customers type them."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.fakers = {loc: Faker(loc) for loc in LOCALES}
        for i, f in enumerate(self.fakers.values()):
            f.seed_instance(seed + i)
        self.en = self.fakers["en_US"]

    def pick(self, *options: str) -> str:
        return self.rng.choice(options)

    def faker(self) -> Faker:
        return self.fakers[self.rng.choice(LOCALES)]

    def email(self) -> str:
        f = self.faker()
        value = self.rng.choice([f.email, f.free_email, f.company_email])()
        return value.upper() if self.rng.random() < 0.05 else value

    def spelled_email(self) -> str:
        user, domain = self.en.free_email().split("@")
        name, _, tld = domain.rpartition(".")
        at, dot = self.rng.choice(
            [(" at ", " dot "), ("(at)", "(dot)"), (" [at] ", " [dot] "), (" AT ", " DOT ")]
        )
        if "." in user and self.rng.random() < 0.5:
            user = user.replace(".", dot)
        return f"{user}{at}{name}{dot}{tld}"

    def card(self) -> str:
        kind = self.pick("visa16", "visa13", "mastercard", "amex", "discover", "jcb16", "maestro")
        number = self.en.credit_card_number(card_type=kind)
        style = self.rng.random()
        if style < 0.4:
            return number
        sep = " " if style < 0.75 else "-"
        if kind == "amex":
            return sep.join([number[:4], number[4:10], number[10:]])
        return sep.join(number[i : i + 4] for i in range(0, len(number), 4))

    def iban(self) -> str:
        value = self.fakers[self.pick("de_DE", "fr_FR", "nl_NL", "es_ES", "it_IT", "en_GB")].iban()
        style = self.rng.random()
        if style < 0.45:
            value = " ".join(value[i : i + 4] for i in range(0, len(value), 4))
        if self.rng.random() < 0.25:
            value = value.lower()
        return value

    def phone(self) -> str:
        return self.faker().phone_number()

    def street(self) -> tuple[str, str, str, str]:
        """(locale, street line, postcode, city)."""
        loc = self.rng.choice(LOCALES)
        f = self.fakers[loc]
        street = f.street_address().replace("\n", ", ").strip()
        if loc == "en_US" and self.rng.random() < 0.25:
            number, _, rest = street.partition(" ")
            words = rest.split(" ")
            abbrev = {"Street": "St", "Avenue": "Ave", "Road": "Rd", "Drive": "Dr", "Lane": "Ln"}
            words = [abbrev.get(w, w) for w in words]
            street = f"{number} {' '.join(words)}"
            if self.rng.random() < 0.5:
                street = street.lower()
        # Faker draws Italian towns from a set, whose order changes with PYTHONHASHSEED.
        city = self.rng.choice(_IT_TOWNS) if loc == "it_IT" else f.city()
        return loc, street, f.postcode(), city

    def birth_date(self) -> str:
        d = self.en.date_of_birth(minimum_age=18, maximum_age=90)
        return self.rng.choice(
            [
                d.isoformat(),
                d.strftime("%d/%m/%Y"),
                d.strftime("%m/%d/%Y"),
                d.strftime("%d.%m.%Y"),
                d.strftime("%B %-d, %Y"),
                d.strftime("%-d %B %Y"),
                d.strftime("%b %-d %Y"),
                d.strftime("%-d %b %Y"),
            ]
        )

    def code(self) -> str:
        n = self.rng.choice([4, 5, 6, 6, 6, 8])
        value = "".join(self.rng.choice("0123456789") for _ in range(n))
        return f"{value[:3]} {value[3:]}" if n == 6 and self.rng.random() < 0.15 else value

    def account(self) -> str:
        n = self.rng.choice([8, 8, 10, 12])
        value = "".join(self.rng.choice("0123456789") for _ in range(n))
        return f"{value[:4]}-{value[4:]}" if self.rng.random() < 0.2 else value

    # -- negatives --
    def order_number(self) -> str:
        r = self.rng
        return r.choice(
            [
                f"{r.randint(10**5, 10**10)}",
                f"ORD-{r.randint(10**4, 10**8)}",
                f"#{r.randint(10**5, 10**9)}",
                f"{r.choice('ABCDEFGHJKLMNPQRSTUVWXYZ')}{r.randint(10**6, 10**9)}",
                f"{r.randint(100, 999)}-{r.randint(10**6, 10**7 - 1)}-"
                f"{r.randint(10**6, 10**7 - 1)}",
            ]
        )

    def tracking_number(self) -> str:
        r = self.rng

        def digits(n: int) -> str:
            return "".join(r.choice("0123456789") for _ in range(n))

        return r.choice(
            [
                f"1Z{''.join(r.choice('0123456789ABCDEFGHJKLMNPRSTUVWXY') for _ in range(6))}"
                f"{digits(10)}",
                f"9400 {digits(4)} {digits(4)} {digits(4)} {digits(4)} {digits(2)}",
                digits(12),
                f"{digits(4)} {digits(4)} {digits(4)}",
                f"JD{digits(16)}",
                f"{r.choice(['LX', 'RR', 'CP'])}{digits(9)}{r.choice(['DE', 'GB', 'NL', 'FR'])}",
            ]
        )

    def price(self) -> str:
        r = self.rng
        amount = r.choice([r.randint(1, 99), r.randint(100, 9999), r.randint(10000, 2_000_000)])
        cents = r.randint(0, 99)
        return r.choice(
            [
                f"${amount:,}.{cents:02d}",
                f"€{amount}",
                f"{amount:,}.{cents:02d} USD".replace(",", "."),
                f"£{amount:,}",
                f"{amount} EUR",
                f"{amount:,},{cents:02d} €".replace(",", "X").replace(".", ",").replace("X", "."),
                f"USD {amount}",
            ]
        )

    def order_date(self) -> str:
        d = self.en.date_between(start_date="-2y", end_date="today")
        return self.rng.choice(
            [
                d.isoformat(),
                d.strftime("%d/%m/%Y"),
                d.strftime("%m/%d/%Y"),
                d.strftime("%d.%m.%Y"),
                d.strftime("%B %-d, %Y"),
                d.strftime("%-d %B %Y"),
                d.strftime("%b %-d"),
            ]
        )

    def product_code(self) -> str:
        r = self.rng
        letters = "ABCDEFGHJKLMNPQRSTUVWXYZ"
        return r.choice(
            [
                f"SKU-{r.randint(1000, 99999)}-{r.choice(['XS', 'S', 'M', 'L', 'XL'])}",
                f"{r.choice(letters)}{r.choice(letters)}-{r.randint(100, 99999)}",
                f"B0{''.join(r.choice(letters + '0123456789') for _ in range(8))}",
                f"{r.randint(1000, 9999)}-{r.randint(100, 999)}",
                f"{r.choice(['XPS', 'MX', 'KD', 'RT'])}{r.randint(100, 9999)}",
                f"{r.randint(10**11, 10**12 - 1)}{r.randint(0, 9)}",  # EAN-13
            ]
        )


def _positive(v: Values) -> dict[str, Callable[[], list[Piece]]]:
    r = v.rng

    def email() -> list[Piece]:
        e = ("Email", v.email())
        return r.choice(
            [
                ["my email is ", e],
                ["Please send the invoice to ", e, " instead."],
                ["I changed my email to ", e, " last week but still get nothing"],
                [e],
                ["can you update the address on file? it should be ", e],
                ["Contact: ", e, ", thanks"],
                ["I never got the confirmation at ", e, "."],
                ["use ", e, " for the refund receipt please"],
            ]
        )

    def spelled() -> list[Piece]:
        e = ("Email", v.spelled_email())
        return r.choice(
            [
                ["email me at ", e, " please"],
                ["my mail is ", e],
                ["write to ", e, ", I check it daily"],
            ]
        )

    def card() -> list[Piece]:
        c = ("Card Number", v.card())
        return r.choice(
            [
                ["my card number is ", c],
                ["I was charged twice on card ", c, "."],
                ["card ", c, " was declined again"],
                ["Please refund to ", c, " not to my wallet"],
                ["The payment with ", c, " failed"],
                [c, " is the card I used"],
                ["can you remove the card ending in ", c, "?"],
            ]
        )

    def card_details() -> list[Piece]:
        c = ("Card Number", v.card())
        exp = ("Expiry Date", v.en.credit_card_expire())
        cvv = ("CVV", v.en.credit_card_security_code())
        return r.choice(
            [
                ["card ", c, " exp ", exp, " cvv ", cvv],
                ["Number: ", c, ", expiry date ", exp, ", CVC: ", cvv],
                ["it's ", c, " expires ", exp, " and the security code is ", cvv],
                ["the cvv is ", cvv, " and it expires on ", exp],
            ]
        )

    def iban() -> list[Piece]:
        i = ("IBAN", v.iban())
        return r.choice(
            [
                ["my IBAN is ", i],
                ["please transfer the refund to ", i, "."],
                ["IBAN: ", i, " (Sparkasse)"],
                ["send it to this account ", i, " thanks"],
                [i, " is my new bank account"],
                ["iban ", i],
            ]
        )

    def phone() -> list[Piece]:
        p = ("Phone Number", v.phone())
        return r.choice(
            [
                ["call me on ", p],
                ["my phone number is ", p, "."],
                ["You can reach me at ", p, " after 5pm"],
                ["the courier should ring ", p, " when he arrives"],
                ["phone: ", p],
                ["text me at ", p, " please"],
                [p, " is my mobile"],
                ["my new number is ", p, ", please update it"],
            ]
        )

    def address() -> list[Piece]:
        loc, street, postcode, city = v.street()
        s, pc = ("Address", street), ("Postcode", postcode)
        if loc == "en_US":
            state = v.en.state_abbr()
            tail: list[Piece] = [", ", city, ", ", state, " ", pc]
        elif loc == "en_GB":
            tail = [", ", city, " ", pc]
        else:
            tail = [", ", pc, " ", city]
        if r.random() < 0.3:
            tail = []
        return r.choice(
            [
                ["I live at ", s, *tail],
                ["Please ship it to ", s, *tail, "."],
                ["my address is ", s, *tail],
                ["I moved to ", s, *tail, " last month, update my details"],
                ["Delivery address: ", s, *tail],
                ["can you send the replacement to ", s, *tail, "?"],
                [s, *tail, " is where it should go"],
            ]
        )

    def birth_date() -> list[Piece]:
        d = ("Date of Birth", v.birth_date())
        return r.choice(
            [
                ["my date of birth is ", d],
                ["I was born on ", d, "."],
                ["DOB: ", d],
                ["born ", d, ", if you need it for verification"],
                ["my birthday is ", d, " so the account should be mine"],
                ["Date of birth ", d],
            ]
        )

    def ip() -> list[Piece]:
        address = v.en.ipv4_public() if r.random() < 0.7 else v.en.ipv6()
        a = ("IP Address", address)
        return r.choice(
            [
                ["my IP is ", a],
                ["the login came from ", a, ", not me!"],
                ["I am connecting from ", a, " and it gets blocked"],
                ["IP address: ", a],
            ]
        )

    def code() -> list[Piece]:
        c = ("One-Time Code", v.code())
        return r.choice(
            [
                ["the verification code is ", c],
                ["I got the code ", c, " but it says invalid"],
                ["OTP ", c, " doesn't work"],
                ["my one-time password: ", c],
                ["Code: ", c],
                ["the sms code was ", c, " and it expired"],
                ["my PIN is ", c],
            ]
        )

    def account() -> list[Piece]:
        a = ("Account Number", v.account())
        return r.choice(
            [
                ["my account number is ", a],
                ["acct no. ", a, " is frozen"],
                ["please credit account ", a],
                ["Account #: ", a],
            ]
        )

    def mixed() -> list[Piece]:
        _, street, _, _ = v.street()
        return r.choice(
            [
                [
                    "Hi, I'm moving. New address ",
                    ("Address", street),
                    ", phone ",
                    ("Phone Number", v.phone()),
                    ", email ",
                    ("Email", v.email()),
                ],
                [
                    "refund to card ",
                    ("Card Number", v.card()),
                    " or IBAN ",
                    ("IBAN", v.iban()),
                    " please",
                ],
                [
                    "order ",
                    v.order_number(),
                    " should go to ",
                    ("Address", street),
                    ", call ",
                    ("Phone Number", v.phone()),
                ],
                [
                    "I paid ",
                    v.price(),
                    " with ",
                    ("Card Number", v.card()),
                    ", receipt to ",
                    ("Email", v.email()),
                ],
            ]
        )

    return {
        "Email": email,
        "Email (spelled out)": spelled,
        "Card Number": card,
        "Card details": card_details,
        "IBAN": iban,
        "Phone Number": phone,
        "Address": address,
        "Date of Birth": birth_date,
        "IP Address": ip,
        "One-Time Code": code,
        "Account Number": account,
        "Mixed": mixed,
    }


def _negative(v: Values) -> dict[str, Callable[[], str]]:
    r = v.rng

    def order() -> str:
        n = v.order_number()
        return r.choice(
            [
                f"where is my order {n}?",
                f"Order number {n} never arrived",
                f"I want to cancel order #{n.lstrip('#')}",
                f"my order no. {n} is missing an item",
                f"can you check order {n} for me",
                f"Order ID: {n}",
                f"the invoice for purchase {n} is wrong",
            ]
        )

    def tracking() -> str:
        t = v.tracking_number()
        return r.choice(
            [
                f"tracking number {t} shows no movement",
                f"The tracking {t} says delivered but I have nothing",
                f"my parcel {t} is stuck in customs",
                f"Tracking #: {t}",
                f"shipment {t} was returned to sender",
            ]
        )

    def price() -> str:
        p = v.price()
        return r.choice(
            [
                f"I was charged {p} instead of the sale price",
                f"the total came to {p}",
                f"why does it cost {p} now?",
                f"refund of {p} not received",
                f"It says {p} at checkout.",
            ]
        )

    def order_date() -> str:
        d = v.order_date()
        return r.choice(
            [
                f"I ordered it on {d} and it still hasn't shipped",
                f"placed the order {d}",
                f"delivery was due {d}",
                f"Order date: {d}",
                f"my subscription renews on {d}",
                f"I returned it on {d}, where is my refund?",
            ]
        )

    def product() -> str:
        c = v.product_code()
        q = r.randint(1, 12)
        return r.choice(
            [
                f"is product {c} back in stock?",
                f"I need {q} more of item {c}",
                f"SKU {c} arrived damaged",
                f"the model {c} charger doesn't fit",
                f"part number {c} is wrong in the manual",
                f"Do you still sell article {c}?",
                f"I bought {q} Garden Chairs and one is broken",
                f"{q} x Oak Park Bench, {q} x Cushion",
            ]
        )

    def other() -> str:
        return r.choice(
            [
                f"I've been waiting {r.randint(2, 40)} days",
                f"the app version {r.randint(1, 9)}.{r.randint(0, 20)}.{r.randint(0, 9)} crashes",
                f"call back between {r.randint(8, 11)}:00 and {r.randint(12, 18)}:30",
                f"the discount code SAVE{r.randint(5, 50)} doesn't work",
                f"promo code {r.randint(1000, 99999)} was rejected",
                f"I got {r.randint(10, 90)}% off last time",
                f"the {r.randint(2019, 2025)} catalogue lists it at a lower price",
                f"ticket {r.randint(10**4, 10**7)} is still open",
                f"Spring {r.randint(2019, 2026)} collection, size {r.randint(36, 46)}",
            ]
        )

    return {
        "order number": order,
        "tracking number": tracking,
        "price": price,
        "order date": order_date,
        "product code": product,
        "other numbers": other,
    }


def generate(lines: int, seed: int = SEED) -> list[dict[str, object]]:
    """``lines`` labelled lines: two thirds with personal data, one third hard negatives."""
    v = Values(seed)
    positive, negative = _positive(v), _negative(v)
    n_negative = lines // 3
    rows: list[dict[str, object]] = []
    kinds = list(positive)
    for i in range(lines - n_negative):
        kind = kinds[i % len(kinds)]
        rows.append({**assemble(positive[kind]()), "kind": kind})
    families = list(negative)
    for i in range(n_negative):
        kind = families[i % len(families)]
        rows.append({"text": negative[kind](), "pii": [], "kind": f"negative: {kind}"})
    v.rng.shuffle(rows)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    rows = generate(args.lines, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} lines to {args.out}")


if __name__ == "__main__":
    main()
