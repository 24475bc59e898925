"""Personal data out of shared text: what one customer or agent typed becomes typed placeholders
(``{{Email}}``, ``{{Card Number}}``, ``{{Address}}``...) before it reaches the index, another
customer's prompt, a training export or a log line.

The placeholders are Bitext-style slots, so a scrubbed answer fills back in the next
conversation from that customer's own values (:mod:`bot.generation.placeholders`).

Detection works on the original text: each built-in rule, most specific first, finds spans, and
a span that overlaps one already taken (or a placeholder already in the text, such as Bitext's
``{{Order Number}}``) is dropped. Checksums decide where they exist (Luhn for cards, mod-97 for
IBANs, the address grammar of :mod:`ipaddress`); values that only context makes personal (a
security code, an expiry or birth date, a one-time code, a postcode) need their cue words
nearby. Identifiers the business uses (order, tracking, invoice numbers, product codes, prices)
are left alone when their cue word precedes them. Configured patterns
(``[learning] scrub_patterns``) run after the built-in ones.

Customer text is hostile: every pattern bounds its repeats and is deterministic where repeats
meet (a separator class never overlaps what follows it), so matching stays linear in the text.
"""

from __future__ import annotations

import bisect
import ipaddress
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from bot.errors import InputError

EMAIL = "Email"
CARD = "Card Number"
IBAN = "IBAN"
ACCOUNT = "Account Number"
PHONE = "Phone Number"
ADDRESS = "Address"
POSTCODE = "Postcode"
BIRTH_DATE = "Date of Birth"
CVV = "CVV"
EXPIRY = "Expiry Date"
IP_ADDRESS = "IP Address"
ONE_TIME_CODE = "One-Time Code"

# -- checksums ------------------------------------------------------------------------------


def _digits(s: str) -> str:
    return "".join(c for c in s if c.isdigit())


def luhn_valid(number: str) -> bool:
    """Whether ``number`` (12 to 19 digits, separators ignored) passes the Luhn check."""
    digits = [int(c) for c in _digits(number)]
    if not 12 <= len(digits) <= 19:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


# IBAN length per country (SWIFT IBAN registry).
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18,
    "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24,
    "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24,
    "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip


def iban_valid(iban: str) -> bool:
    """Whether ``iban`` (any case, spaces ignored) has its country's length and passes mod-97."""
    compact = "".join(c for c in iban if c.isalnum()).upper()
    if IBAN_LENGTHS.get(compact[:2]) != len(compact) or not compact[2:4].isdigit():
        return False
    if not compact.isascii():
        return False
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


# -- patterns -------------------------------------------------------------------------------

# Business identifiers: a number right after one of these is an order, tracking, invoice or
# product number, not personal data.
_ID_CUE = re.compile(
    r"(?i)(?:\b(?:orders?|purchase|tracking|track|shipment|parcel|package|consignment|awb|"
    r"invoice|inv|receipt|bill|ref|reference|sku|item|product|model|part|article|art|ticket|"
    r"case|confirmation|booking|reservation|transaction|txn|return|rma|claim|po|asin|upc|ean|"
    r"isbn|gtin|batch|lot|serial|catalog(?:ue)?|style|size|qty|quantity|version|firmware|v|"
    r"build|error|status)\b[\s.:#-]{0,4}"
    r"(?:(?:number|numbers|no|nos|num|nr|id|code|ref|reference)\b[\s.:#-]{0,4})?"
    r"(?:(?:is|was|of|=)\s{0,3})?(?:#\s?)?|#\s?)$"
)
_MONEY_BEFORE = re.compile(
    r"(?i)(?:[$€£¥₹]|\b(?:usd|eur|gbp|chf|cad|aud|jpy|inr|sek|nok|dkk|pln)\b)\s?$"
)
_MONEY_AFTER = re.compile(
    r"(?i)\s?(?:[$€£¥₹%]|(?:usd|eur|gbp|chf|cad|aud|jpy|inr|dollars?|euros?|pounds?|"
    r"cents?|bucks)\b)"
)
_CUE_WINDOW = 40


def _business_id(text: str, start: int, end: int) -> bool:
    """Whether the number at ``start:end`` is an order/tracking/product number or an amount."""
    before = text[max(0, start - _CUE_WINDOW) : start]
    return bool(
        _ID_CUE.search(before) or _MONEY_BEFORE.search(before) or _MONEY_AFTER.match(text, end)
    )


_EMAIL = re.compile(
    r"(?<![\w.%+-])[\w.%+-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}\.){1,8}[A-Za-z]{2,24}(?![\w-])"
)
# "john dot smith at gmail dot com", "jane(at)example(dot)org"
_AT = r"(?:\s{0,2}[(\[{<]\s?at\s?[)\]}>]\s{0,2}|\s{1,2}at\s{1,2})"
_DOT = r"(?:\s{0,2}[(\[{<]\s?dot\s?[)\]}>]\s{0,2}|\s{1,2}dot\s{1,2})"
_SPELLED_EMAIL = re.compile(
    rf"(?i)(?<![\w.@-])[a-z0-9][\w+-]{{0,63}}(?:(?:{_DOT}|\.)[a-z0-9][\w+-]{{0,63}}){{0,3}}"
    rf"{_AT}[a-z0-9][\w-]{{0,62}}(?:(?:{_DOT}|\.)[a-z0-9][\w-]{{0,62}}){{0,2}}"
    rf"(?:{_DOT}|\.)(?:com|net|org|edu|gov|info|biz|io|co|me|mail|[a-z]{{2}})(?![\w-])"
)
_IBAN = re.compile(r"(?i)(?<![\w-])[a-z]{2}\d{2}(?:[ -]?[a-z0-9]){10,30}")
# 12 to 19 digits, optionally grouped by single spaces or dashes.
_CARD = re.compile(r"(?<![\w+(.,/-])\d(?:[ -]?\d){11,18}(?![\w-]|[.,]\d)")

_DATE_NUM = r"(?:\d{1,2}[./-]\d{1,2}[./-](?:19|20)?\d{2}|(?:19|20)\d{2}[./-]\d{1,2}[./-]\d{1,2})"
_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
    r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
_DATE_WORDS = (
    rf"(?:\d{{1,2}}(?:st|nd|rd|th)?\s(?:of\s)?{_MONTH},?\s(?:19|20)\d{{2}}|"
    rf"{_MONTH}\s\d{{1,2}}(?:st|nd|rd|th)?,?\s(?:19|20)\d{{2}})"
)
_BIRTH_DATE = re.compile(
    r"(?i)\b(?:born|birth\s?day|birth\s?date|date\sof\sbirth|d\.?o\.?b\b\.?)[^\d\n]{0,24}?"
    rf"(?P<v>{_DATE_NUM}|{_DATE_WORDS})(?![\d/.-]\d)"
)
_CVV = re.compile(
    r"(?i)\b(?:cvv2?|cvc2?|cid|csc|cvn|security\s(?:code|number)|card\s(?:verification|security)"
    r"\s(?:code|value|number)|(?:3|4|three|four)[- ]digit\s(?:code|number))\b[^\d\n]{0,20}?"
    r"(?P<v>\d{3,4})(?![\d/])"
)
_EXPIRY = re.compile(
    r"(?i)\b(?:exp(?:iry|iration|ires|ire|iring|\.)?|valid\s(?:thru|through|until|till|to)|"
    r"good\sthru)\b[^\d\n]{0,20}?(?P<v>(?:0?[1-9]|1[0-2])\s?[/-]\s?(?:20)?\d{2})(?![\d/])"
)
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?<![\w.])(?:{_OCTET}\.){{3}}{_OCTET}(?![\w]|\.\d)")
_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{1,4}|:)(?::[0-9A-Fa-f]{0,4}){1,7}(?![\w:])")
_CODE = re.compile(
    r"(?i)\b(?P<cue>otp|one[- ]time\s(?:pass(?:word|code)?|code|pin)|verification\scode|"
    r"confirmation\scode|auth(?:entication|orization)?\scode|log-?in\scode|sign-?in\scode|"
    r"2fa\scode|sms\scode|security\spin|passcode|pin(?:\scode|\snumber)?|code)\b[^\d\n]{0,12}?"
    r"(?<![A-Za-z])(?P<v>\d{3}[ -]\d{3}|\d{4,8})(?![\w/])"
)
_NOT_SECRET_CODE = re.compile(
    r"(?i)\b(?:product|discount|promo|promotional|coupon|voucher|gift|zip|postal|post|area|"
    r"country|dialing|dialling|tracking|item|sku|error|status|reference|sort|swift|bic|bank|ifsc|"
    r"tax|vat|style|colour|color|size|qr|bar|access)\s$"
)
_ACCOUNT = re.compile(
    r"(?i)\b(?:(?:bank\s)?account|acct|a/c|routing|sort\scode|bsb)\b"
    r"(?:\s{1,3}(?:number|no\.?|num(?:ber)?|nr\.?))?\s{0,3}(?:is\s{1,3})?(?:[:#]\s{0,3}){0,2}"
    r"(?P<v>\d[\d -]{4,30}\d)(?!\d)"
)
# One digit per repeat, after at most three separators: the split of a number is unique.
_PHONE = re.compile(
    r"(?<![\w+$€£/.,-])(?:\+|\b00)?\(?\d(?:[ ().-]{0,3}\d){6,16}"
    r"(?:\s{0,2}(?:x|ext\.?|extension)\s{0,2}\d{1,6})?(?![\w]|[.,]\d)"
)
_PHONE_DATE = re.compile(rf"{_DATE_NUM}")
_TIME = re.compile(r"\d{1,2}[:.]\d{2}")
# A compact timestamp such as a model version ("20261202-042503"), not a phone number.
_STAMP = re.compile(r"(?:19|20)\d{6}[-_T]\d{4,6}")

# Street addresses. USPS street suffixes (also used in the UK), then continental shapes.
_SUFFIXES = (
    "street|st|avenue|ave|av|road|rd|lane|ln|drive|dr|court|ct|boulevard|blvd|way|place|pl|"
    "terrace|ter|circle|cir|parkway|pkwy|highway|hwy|square|sq|trail|trl|loop|crescent|cres|"
    "close|grove|gardens?|row|walk|hills?|park|mews|alley|aly|plaza|plz|points?|ridge|run|pass|"
    "path|pike|crossing|xing|estates?|heights|hts|meadows?|mills?|mount|mt|mountains?|springs?|"
    "station|sta|summit|valley|vly|views?|village|vlg|vista|wells?|harbou?r|haven|hollow|"
    "junction|jct|knolls?|lakes?|landing|manor|orchard|oval|pines?|ports?|ranch|shores?|"
    "streams?|brooks?|burgs?|creek|crk|forks?|glens?|greens?|islands?|isle|keys?|lights?|"
    "lodge|route|rte|spurs?|streets|track|trace|turnpike|tpke|union|via|ville|ways|fields?|"
    "falls|ferry|fords?|forest|forge|fort|ft|freeway|fwy|expressway|expy|causeway|bypass|"
    "center|centre|ctr|club|commons?|corners?|course|cove|cliffs?|canyon|cape|camp|dale|dam|"
    "divide|extensions?|flats?|gateway|inlet|land|loaf|locks?|mall|mission|motorway|neck|"
    "overpass|plains?|prairie|radial|ramp|rapids?|rest|river|shoals?|skyway|stravenue|"
    "throughway|trafficway|tunnel|underpass|viaduct|wall|wharf|quay|rise|yard|parade|"
    "broadway|esplanade|embankment|approach|chase|drove|gate|green|hill|end"
)
_SECONDARY = (
    r"(?:,?\s(?i:apt|apartment|suite|ste|unit|flat|fl|floor|room|rm|bldg|building|#)\.?"
    r"\s?#?[A-Za-z0-9-]{1,6}\b)?"
)
_NAME_WORD = r"[A-Z][\w'’.-]{0,24}"
# "1600 Pennsylvania Avenue NW", "17066 Heather Grove Apt. 915", "Flat 3, 12 High St"
_HOUSE = r"\d{1,6}[A-Za-z]?(?:[-/]\d{1,5}[A-Za-z]?)?,?\s"
# Lower-case words that may follow an address ("12 Oak Park is my address"); any other word
# makes it a product ("2 Oak Park benches").
_AFTER_ADDRESS = (
    r"is|was|and|or|in|on|please|but|for|with|which|where|near|so|since|now|then|if|as|by|"
    r"from|to|until|thanks|thank|because|today|tomorrow|yesterday|last|this|next|instead|too|"
    r"also|not|anymore|already|right|though|although|when|while|after|before|recently|here|"
    r"there|apt|suite|unit|flat|ste"
)
_STREET_EN = re.compile(
    rf"(?:\b(?i:flat|apartment|apt|unit|suite|studio)\.?\s[A-Za-z0-9-]{{1,5}},?\s(?:{_HOUSE})?|"
    rf"\b{_HOUSE})(?:{_NAME_WORD}\s){{1,4}}"
    rf"(?i:(?:{_SUFFIXES})s?)\b\.?(?:\s(?:N|S|E|W|NE|NW|SE|SW)\b\.?)?{_SECONDARY}"
    rf"(?=\s?$|\s?[,;:!?)\n(]|\.(?:\s|$)|\s(?i:{_AFTER_ADDRESS}|#)\b)"
)
# "Hauptstraße 12", "Jens-Drubin-Straße 47-26", "Kerkstraat 7a", "Ellaboulevard 12"
_STREET_NUMBER_LAST = re.compile(
    r"\b[A-ZÄÖÜ][\wäöüß'’.-]{0,40}?(?i:straße|strasse|str\.|weg|gasse|platz|allee|ring|damm|"
    r"ufer|chaussee|pfad|steig|straat|laan|plein|gracht|kade|hof|boulevard|singel|dijk|dreef|"
    r"steeg|markt|berg|baan|pad)\s(?!(?:19|20)\d\d\b)"  # "Spring 2024" is no street
    r"\d{1,5}[a-zA-Z]?(?:[-/]\d{1,5}[a-zA-Z]?)?(?![\w])"
)
_PARTICLES = r"(?:de|du|des|la|le|les|aux?|del|della|delle|dei|di|da|el|los|las|y|e)"
# "8, rue Jeanne Henry", "12 avenue des Champs-Élysées"
_STREET_FR = re.compile(
    r"(?i:\b(?P<n>\d{1,4}(?:\s?(?:bis|ter))?,?\s)?"
    r"(?:rue|avenue|av\.|boulevard|bd|place|chemin|impasse|all[ée]e|quai|route|cours|square|"
    r"passage|voie|rond-point))"
    rf"(?:\s(?:{_PARTICLES}\s|d['’]|l['’]){{0,2}}[A-ZÀ-Ý][\w'’-]{{0,24}}){{1,5}}"
)
# "Via Roma 10", "Piazza Pellico, 59", "Calle de Juan Pérez 23 Puerta 3"
_STREET_PREFIX = re.compile(
    r"\b(?i:via|viale|piazza|piazzale|corso|vicolo|strada|contrada|borgo|rotonda|stretto|"
    r"incrocio|canale|largo|calle|avenida|paseo|plaza|camino|carrer|rambla|ronda|carretera|"
    r"pasaje|glorieta|callej[oó]n|cuesta|urbanizaci[oó]n|alameda|v[ií]a|rua|travessa|traves[ií]a|"
    r"acceso|vial|ca[ñn]ada|c/|c\.)"
    rf"(?:\s{_PARTICLES})?(?:\s(?:{_PARTICLES}\s)?[A-ZÀ-Ý][\w'’-]{{0,24}}){{1,4}},?\s\d{{1,4}}"
    r"[a-zA-Z]?(?![\w])(?:,?\s(?i:apt\.?|puerta|piso|appartamento|piano|interno|scala)\s?\d{1,4})?"
)
_PO_BOX = re.compile(r"(?i)\bp\.?\s?o\.?\s?box\s{1,3}\d{1,6}\b")
_POSTCODE_TAIL = re.compile(r",?\s?(?P<v>\d{4,5}(?:\s?[A-Z]{2})?)(?=\s[A-ZÀ-Ý])")
# Words that announce an address.
_CUE = (
    r"(?i)\b(?:live\sat|living\sat|reside\sat|address(?:\sis|:)?|"
    r"(?:ship|deliver|send|mail|post|forward|return)(?:ed|ped)?(?:\s[\w]{1,12}){0,2}\sto|"
    r"moved\sto)\s{1,3}"
)
# "I live at 12 main st", "ship it to 4 elm court": any number and words after an address cue.
_ADDRESS_CUE = re.compile(rf"{_CUE}(?P<v>\d{{1,5}}[a-z]?(?:\s[\w'’.-]{{1,24}}){{1,4}})")
_CUE_BEFORE = re.compile(rf"{_CUE}$")
_SECONDARY_AFTER = re.compile(_SECONDARY)
_SUFFIX_WORD = re.compile(rf"(?i)^(?:{_SUFFIXES})s?\.?$")
_STATES = (
    "AL|AK|AZ|AR|CA|CO|CT|DE|DC|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|NE|NV|"
    "NH|NJ|NM|NY|NC|ND|OH|OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY|AA|AE|AP|PR|GU|VI|AS|"
    "FM|MH|MP|PW"
)
_UK_POSTCODE = r"(?:[A-Z]{1,2}\d[A-Z\d]?|GIR)\s?\d[A-Z]{2}"
_POSTCODE = re.compile(
    rf"\b(?P<uk>{_UK_POSTCODE})\b|\b(?:{_STATES})\s(?P<us>\d{{5}}(?:-\d{{4}})?)\b|"
    r"(?i:\b(?:post\s?code|postal\scode|zip(?:\s?code)?|plz|cap|code\spostal)\b)"
    r"[^\w\n]{0,3}(?i:is\s)?(?P<cue>(?i:[a-z]{1,2}\d[a-z\d]?\s?\d[a-z]{2})|\d{4}\s?[A-Z]{2}|"
    r"\d{5}(?:-\d{4})?|\d{4})\b|"
    # India's six-digit PIN code, not a card PIN
    r"(?i:\bpin\s?code\b)[^\w\n]{0,3}(?i:is\s)?(?P<pin>\d{6})\b"
)
# ", Springfield, IL 62704", ", London SW1A 1AA", ", Chennai - 600001" after a street: the town
# and postcode go with it.
_TOWN = r"[A-Z][\w'’.-]{1,24}(?:\s[A-Z][\w'’.-]{1,24}){0,2}"
_EN_TAIL = re.compile(
    rf"(?:,\s?|\s)(?:{_TOWN}(?:,\s?|\s?-\s?|\s)){{1,2}}"
    rf"(?P<v>\d{{5,6}}(?:-\d{{4}})?|{_UK_POSTCODE})(?![\w-])"
)


# -- rules ----------------------------------------------------------------------------------

Span = tuple[int, int]


def _group(m: re.Match[str]) -> Span:
    name = "v" if "v" in m.re.groupindex and m.group("v") is not None else 0
    return m.span(name)


def _card(text: str, m: re.Match[str]) -> Span | None:
    start = m.start()
    value = m.group(0)
    groups = [len(g) for g in re.split(r"[ -]", value)]
    # Cards are written whole or in fours (Amex 4-6-5); other groupings are phone numbers.
    if len(groups) > 1 and not (
        all(g == 4 for g in groups[:-1]) or (groups[:2] == [4, 6] and len(groups) == 3)
    ):
        return None
    # The longest prefix that ends a group and passes Luhn: "4111 1111 1111 1111 2 items".
    cut = len(value)
    while cut > 0:
        if luhn_valid(value[:cut]):
            return None if _business_id(text, start, start + cut) else (start, start + cut)
        cut = max(value.rfind(" ", 0, cut), value.rfind("-", 0, cut))
    return None


def _iban(text: str, m: re.Match[str]) -> Span | None:
    value = m.group(0)
    length = IBAN_LENGTHS.get(value[:2].upper())
    if length is None:
        return None
    seen = 0
    for i, c in enumerate(value):
        if c.isalnum():
            seen += 1
            if seen == length:
                cut = i + 1
                if cut < len(value) and value[cut].isalnum():
                    return None  # more characters in the same group: not this IBAN
                return (m.start(), m.start() + cut) if iban_valid(value[:cut]) else None
    return None


def _phone(text: str, m: re.Match[str]) -> Span | None:
    value = m.group(0)
    main = re.split(r"(?i)\s{0,2}(?:x|ext)", value, maxsplit=1)[0]
    digits = len(_digits(main))
    if not 7 <= digits <= 15 or main.count("(") != main.count(")"):
        return None
    if _PHONE_DATE.fullmatch(main.strip()) or _TIME.fullmatch(main.strip()):
        return None
    if _STAMP.fullmatch(main.strip()):
        return None
    if _business_id(text, m.start(), m.end()):
        return None
    return m.span()


def _ip(text: str, m: re.Match[str]) -> Span | None:
    try:
        ipaddress.ip_address(m.group(0))
    except ValueError:
        return None
    if m.group(0).count(":") and sum(c.isalnum() for c in m.group(0)) < 4:
        return None  # "::1"-like fragments in prose
    if _business_id(text, m.start(), m.end()):
        return None  # "version 1.2.3.4"
    return m.span()


def _code(text: str, m: re.Match[str]) -> Span | None:
    if m.group("cue").lower() == "code" and _NOT_SECRET_CODE.search(
        text[max(0, m.start() - 20) : m.start()]
    ):
        return None
    return m.span("v")


def _street_en(text: str, m: re.Match[str]) -> Span | None:
    tail = _EN_TAIL.match(text, m.end())
    return (m.start(), tail.end("v")) if tail else m.span()


def _street_with_postcode(text: str, m: re.Match[str]) -> Span | None:
    """The street, with a continental postcode that follows it (", 10115 Berlin")."""
    tail = _POSTCODE_TAIL.match(text, m.end())
    return (m.start(), tail.end("v")) if tail else m.span()


def _street_fr(text: str, m: re.Match[str]) -> Span | None:
    """A French street: with its number ("8, rue Henry"), or with a postcode after it ("rue
    Mallet, 79677 Costeboeuf") or an address cue before it ("new address boulevard Petit")."""
    tail = _POSTCODE_TAIL.match(text, m.end())
    if tail:
        return m.start(), tail.end("v")
    if m.group("n") or _CUE_BEFORE.search(text, max(0, m.start() - _CUE_WINDOW), m.start()):
        return m.span()
    return None


def _address_cue(text: str, m: re.Match[str]) -> Span | None:
    start, end = m.span("v")
    words = list(re.finditer(r"[\w'’.-]+", text[start:end]))
    last_suffix = max(
        (i for i, w in enumerate(words) if i and _SUFFIX_WORD.match(w.group(0))), default=None
    )
    if last_suffix is None:
        # No street word: only capitalised names make it an address ("3 different shops" not).
        names = [w for w in words[1:3] if w.group(0)[:1].isupper()]
        if not names:
            return None
        last_suffix = words.index(names[-1])
    keep = last_suffix + 1
    end = start + words[keep - 1].end()
    secondary = _SECONDARY_AFTER.match(text, end)
    return start, secondary.end() if secondary else end


def _postcode(text: str, m: re.Match[str]) -> Span | None:
    for name in ("uk", "us", "cue", "pin"):
        if m.group(name) is not None:
            if name == "uk" and _business_id(text, m.start(), m.end()):
                return None
            return m.span(name)
    return None


def _default(text: str, m: re.Match[str]) -> Span | None:
    return _group(m)


@dataclass(frozen=True, slots=True)
class Rule:
    """One kind of personal data: ``pattern`` and a ``locate`` function that, given the text
    and a match, returns the span to replace (group ``v`` by default) or None to keep it.

    The pattern runs only when the text holds a digit (if ``digit``) and, for each group of
    ``needs``, one of its strings in lower case: most messages hold no digit and none of the
    cue words, which keeps scrubbing cheap.
    """

    name: str
    pattern: re.Pattern[str]
    locate: Callable[[str, re.Match[str]], Span | None] = _default
    needs: tuple[tuple[str, ...], ...] = ()
    digit: bool = False

    def __post_init__(self) -> None:
        if any(isinstance(group, str) for group in self.needs):
            raise TypeError(f"{self.name}: needs holds groups of strings, not strings")

    def may_match(self, lower: str, has_digit: bool) -> bool:
        if self.digit and not has_digit:
            return False
        return all(any(s in lower for s in group) for group in self.needs)


_AT_WORDS = (" at ", "(at)", "[at]", "{at}", "<at>", "( at )", "[ at ]")


def _words(spaced: str, stems: str = "") -> tuple[str, ...]:
    """Gate strings: whole words (followed by a space) and word stems."""
    return (*(f"{w} " for w in spaced.split()), *stems.split())


_FR_WORDS = _words(
    "rue avenue av. boulevard bd place chemin impasse allée allee quai route cours square "
    "passage voie rond-point"
)
_PREFIX_WORDS = _words(
    "via viale corso vicolo strada contrada borgo rotonda stretto incrocio canale largo calle "
    "avenida paseo plaza camino carrer rambla ronda carretera pasaje glorieta cuesta alameda "
    "vía rua acceso vial cañada canada c.",
    "piazza callej urbaniz traves c/",
)
_NUMBER_LAST_WORDS = _words(
    "weg gasse platz allee ring damm ufer chaussee pfad steig laan plein gracht kade hof "
    "boulevard singel dijk dreef steeg markt berg baan pad",
    "stra str.",
)
_CVV_WORDS = ("cvv", "cvc", "cid", "csc", "cvn", "security", "verification", "digit")
_CUE_WORDS = ("live", "living", "reside", "address", " to ")
_ACCOUNT_WORDS = ("account", "acct", "a/c", "routing", "sort", "bsb")
BUILTIN: tuple[Rule, ...] = (
    Rule(EMAIL, _EMAIL, needs=(("@",),)),
    Rule(EMAIL, _SPELLED_EMAIL, needs=(_AT_WORDS, ("dot", "."))),
    Rule(IBAN, _IBAN, _iban, digit=True),
    Rule(CARD, _CARD, _card, digit=True),
    Rule(CVV, _CVV, digit=True, needs=(_CVV_WORDS,)),
    Rule(EXPIRY, _EXPIRY, digit=True, needs=(("exp", "valid", "thru"),)),
    Rule(BIRTH_DATE, _BIRTH_DATE, digit=True, needs=(("born", "birth", "dob", "d.o.b"),)),
    Rule(IP_ADDRESS, _IPV4, _ip, digit=True, needs=((".",),)),
    Rule(IP_ADDRESS, _IPV6, _ip, needs=((":",),)),
    Rule(ADDRESS, _STREET_EN, _street_en, digit=True),
    Rule(ADDRESS, _STREET_NUMBER_LAST, _street_with_postcode, digit=True,
         needs=(_NUMBER_LAST_WORDS,)),
    Rule(ADDRESS, _STREET_FR, _street_fr, needs=(_FR_WORDS,)),
    Rule(ADDRESS, _STREET_PREFIX, _street_with_postcode, digit=True, needs=(_PREFIX_WORDS,)),
    Rule(ADDRESS, _ADDRESS_CUE, _address_cue, digit=True, needs=(_CUE_WORDS,)),
    Rule(ADDRESS, _PO_BOX, digit=True, needs=(("box",),)),
    Rule(POSTCODE, _POSTCODE, _postcode, digit=True),
    Rule(ONE_TIME_CODE, _CODE, _code, digit=True, needs=(("otp", "code", "pin", "one"),)),
    Rule(ACCOUNT, _ACCOUNT, digit=True, needs=(_ACCOUNT_WORDS,)),
    Rule(PHONE, _PHONE, _phone, digit=True),
)  # fmt: skip
NAMES: tuple[str, ...] = tuple(dict.fromkeys(r.name for r in BUILTIN))

_ANY_DIGIT = re.compile(r"\d")
_PLACEHOLDER = re.compile(r"\{\{[^{}\n]{1,80}\}\}")


class _Taken:
    """Non-overlapping spans sorted by start: an overlap check costs a binary search, so a text
    with thousands of matches is not quadratic."""

    def __init__(self, spans: Iterable[Span] = ()) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []
        for span in spans:
            self.add(span)

    def add(self, span: Span) -> bool:
        """Take ``span`` unless it overlaps one already taken; return whether it was taken."""
        start, end = span
        i = bisect.bisect_right(self.starts, start)
        if (i and self.ends[i - 1] > start) or (i < len(self.starts) and self.starts[i] < end):
            return False
        self.starts.insert(i, start)
        self.ends.insert(i, end)
        return True


@dataclass(frozen=True, slots=True)
class Found:
    start: int
    end: int
    name: str


@dataclass(frozen=True, slots=True)
class Scrubbed:
    text: str
    found: Mapping[str, int] = field(default_factory=dict)  # placeholder name -> count


class Scrubber:
    """Replaces personal data with ``{{Name}}`` placeholders; see the module docstring."""

    def __init__(
        self,
        extra: Mapping[str, str] | None = None,
        disable: Iterable[str] = (),
        keep: Iterable[str] = (),
    ) -> None:
        off = set(disable)
        unknown = off - set(NAMES)
        if unknown:
            raise InputError(
                f"learning.scrub_disable: unknown pattern(s) {', '.join(sorted(unknown))}; "
                f"expected some of {', '.join(sorted(NAMES))}"
            )
        rules = [r for r in BUILTIN if r.name not in off]
        for name, pattern in (extra or {}).items():
            try:
                rules.append(Rule(name, re.compile(pattern)))
            except re.error as exc:
                raise InputError(f"learning.scrub_patterns[{name!r}]: bad regex: {exc}") from None
        self.rules = tuple(rules)
        # The company's own contacts ("support@shop.example", its phone line) stay in answers.
        self.keep = frozenset(_normal(k) for k in keep if _normal(k))

    @classmethod
    def from_settings(cls, learning: object) -> Scrubber:
        return _cached(
            tuple(sorted((getattr(learning, "scrub_patterns", None) or {}).items())),
            tuple(sorted(getattr(learning, "scrub_disable", ()) or ())),
            tuple(sorted(getattr(learning, "scrub_keep", ()) or ())),
        )

    def find(self, text: str) -> list[Found]:
        """The personal data in ``text``, as non-overlapping spans in text order."""
        taken = _Taken(m.span() for m in _PLACEHOLDER.finditer(text))
        found: list[Found] = []
        lower = text.lower()
        has_digit = _ANY_DIGIT.search(text) is not None
        for rule in self.rules:
            if not rule.may_match(lower, has_digit):
                continue
            for m in rule.pattern.finditer(text):
                span = rule.locate(text, m)
                if span is None or span[0] >= span[1]:
                    continue
                if not taken.add(span):
                    continue
                if self.keep and _normal(text[span[0] : span[1]]) in self.keep:
                    continue
                found.append(Found(span[0], span[1], rule.name))
        found.sort(key=lambda f: f.start)
        return found

    def scrub(self, text: str) -> Scrubbed:
        found = self.find(text)
        if not found:
            return Scrubbed(text, {})
        parts: list[str] = []
        pos = 0
        for f in found:
            parts.append(text[pos : f.start])
            parts.append("{{" + f.name + "}}")
            pos = f.end
        parts.append(text[pos:])
        return Scrubbed("".join(parts), dict(Counter(f.name for f in found)))

    def __call__(self, text: str) -> str:
        return self.scrub(text).text


def _normal(value: str) -> str:
    """Letters and digits only, case-folded: "+1 (800) 555-0199" and "18005550199" agree."""
    return "".join(c for c in value.casefold() if c.isalnum())


@lru_cache(maxsize=8)
def _cached(
    extra: tuple[tuple[str, str], ...], disable: tuple[str, ...], keep: tuple[str, ...]
) -> Scrubber:
    return Scrubber(dict(extra), disable, keep)


def default_scrubber() -> Scrubber:
    """The built-in rules only, shared."""
    return _cached((), (), ())


_FORMATTER = logging.Formatter()


class ScrubLogFilter(logging.Filter):
    """Scrub each log record's message, so customer text never reaches a log line unscrubbed.

    Attach it to handlers (a logger's own filters do not apply to its children's records).
    """

    def __init__(self, scrubber: Scrubber | None = None) -> None:
        super().__init__()
        self.scrubber = scrubber or default_scrubber()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: let the handler report it as usual
            return True
        scrubbed = self.scrubber(message)
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        if record.exc_info and not record.exc_text:
            # An exception's message may quote customer text: format it now, scrubbed.
            record.exc_text = self.scrubber(_FORMATTER.formatException(record.exc_info))
        return True


def scrub_log_handlers(logger: logging.Logger | None = None) -> None:
    """Add a :class:`ScrubLogFilter` to every handler of ``logger`` (the root by default)."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, ScrubLogFilter) for f in handler.filters):
            handler.addFilter(ScrubLogFilter())
