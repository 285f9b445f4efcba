#!/usr/bin/env python3
"""Generate the synthetic support-ticket data set shipped with batch_magic.

Writes ``src/batch_magic/data/tickets.csv`` (or the path given with ``--out``):
300 short customer-support tickets for the fictional online shop
"Northwind Gadgets", with gold labels for category, sentiment and urgency.

Everything is made up by this script; no real customer data is involved.
The output is byte-for-byte deterministic (fixed seed, stdlib only, no
iteration over sets or dicts whose order could vary), so the shipped CSV can be
checked against a fresh run.

How the texts are built
-----------------------
Each ticket is composed from a category body (about 25 per category), an
optional greeting, an optional sentiment opener or closing line, and an
optional urgency line, with the product, order number, amounts and day counts
slotted in.  The labels are deliberately *not* trivially recoverable:

* about 74% of bodies contain a word sharing a 4-letter prefix with their
  category name ("billed", "shipment", "tech", "account", "returned"); about
  16% contain no such word ("I was charged twice"), and about 10% contain a
  word pointing at a *different* category ("I was charged for shipping" is a
  billing ticket).  A naive word-overlap classifier therefore lands around
  70% accuracy on category.
* most positive and negative tickets carry a common sentiment cue word
  (love, great, thanks, terrible, disappointed, never...), but some do not,
  some neutral tickets say "Thanks.", and some bodies contain words such as
  "refund" or "broken" whatever the customer's tone.

Rows kept on purpose for demos
------------------------------
* 5 rows have an empty ``text`` (a web-form submission with no message; the
  category is the one the customer picked in the form, sentiment is
  ``neutral`` and ``urgent`` is false).  Demos use them to show skipping.
* 10 rows are exact duplicates of an earlier ticket (the customer submitted
  the same form twice): same customer, product, order number, text and
  labels, different ``ticket_id``.  Demos use them to show deduplication.
  No other two texts are equal.
* A handful of texts stress prompt rendering: double quotes, JSON-like braces
  such as ``{"error": "token_expired"}``, an embedded newline, and non-ASCII
  characters (é, ü, emoji).  Some customer names are non-ASCII too.

Run ``python scripts/make_dataset.py`` from the repository root to regenerate.
"""

from __future__ import annotations

import argparse
import csv
import random
import re
from pathlib import Path

SEED = 20240611
N_TICKETS = 300
N_MISSING = 5
N_DUPLICATES = 10

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "src" / "batch_magic" / "data" / "tickets.csv"

COLUMNS = [
    "ticket_id",
    "customer",
    "product",
    "order_number",
    "text",
    "category",
    "sentiment",
    "urgent",
]

CATEGORIES = ["billing", "shipping", "technical", "account", "returns"]
CATEGORY_WEIGHTS = [22, 24, 22, 15, 17]
SENTIMENTS = ["negative", "neutral", "positive"]
SENTIMENT_WEIGHTS = [45, 33, 22]

FIRST_NAMES = [
    "Olivia",
    "Liam",
    "Emma",
    "Noah",
    "Ava",
    "Ethan",
    "Sophia",
    "Mason",
    "Isabella",
    "Lucas",
    "Mia",
    "Oliver",
    "Amelia",
    "Elijah",
    "Harper",
    "James",
    "Evelyn",
    "Benjamin",
    "Abigail",
    "Henry",
    "Priya",
    "Arjun",
    "Mei",
    "Hiroshi",
    "Fatima",
    "Omar",
    "Chidi",
    "Amara",
    "Lars",
    "Ingrid",
    "Mateo",
    "Lucía",
    "Zoë",
    "José",
    "Jürgen",
    "Renée",
    "Søren",
    "Chloé",
    "Siobhan",
    "Tomasz",
    "Aisha",
    "Diego",
    "Hannah",
    "Kwame",
    "Nadia",
    "Rafael",
    "Yuki",
    "Grace",
]
LAST_NAMES = [
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Martinez",
    "Lopez",
    "Wilson",
    "Anderson",
    "Taylor",
    "Thomas",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Thompson",
    "White",
    "Harris",
    "Clark",
    "Patel",
    "Nguyen",
    "Kim",
    "Tanaka",
    "Okafor",
    "Mensah",
    "Andersson",
    "Kowalski",
    "Rossi",
    "Fischer",
    "Müller",
    "Dubois",
    "Álvarez",
    "Larsen",
    "O'Brien",
    "Schmidt",
    "Haddad",
    "Novak",
    "Costa",
    "Bianchi",
]

# Products a body can name when it needs a battery, a speaker or a screen.
BATTERY_PRODUCTS = [
    "Breeze smart ring",
    "Pulse fitness watch",
    "Volt 20000 power bank",
    "Orbit Bluetooth speaker",
    "Aria noise-cancelling headset",
    "Glide ergonomic mouse",
    "Drift 4K action camera",
    "Halo e-reader",
]
AUDIO_PRODUCTS = ["Orbit Bluetooth speaker", "Aria noise-cancelling headset"]
SCREEN_PRODUCTS = [
    "Pulse fitness watch",
    "Nimbus smart thermostat",
    "Drift 4K action camera",
    "Halo e-reader",
]
PRODUCT_SLOTS = {
    "{battery}": BATTERY_PRODUCTS,
    "{audio}": AUDIO_PRODUCTS,
    "{screen}": SCREEN_PRODUCTS,
}

PRODUCTS = [
    "Breeze smart ring",
    "Pulse fitness watch",
    "Lumen smart bulb",
    "Volt 20000 power bank",
    "Orbit Bluetooth speaker",
    "Nimbus smart thermostat",
    "Aria noise-cancelling headset",
    "Sentry video doorbell",
    "Glide ergonomic mouse",
    "Tempo mechanical keyboard",
    "Drift 4K action camera",
    "Halo e-reader",
]

# ---------------------------------------------------------------------------
# Category bodies.  Slots: {product} {order} {amount} {days}; {battery},
# {audio} and {screen} are {product} restricted to products that fit.
# {order} renders as "order NW-12345" style when the ticket has an order
# number and as "my order" style otherwise; bodies without {order} get the
# number attached as a prefix or parenthesis when the ticket has one.
# A leading "!" marks a body that makes the ticket urgent by itself; a
# leading "?" marks a plain question or request, which is never sent in anger
# and never urgent.
# Three pools per category:
#   cue      - contains a word sharing a 4-letter prefix with the category
#   plain    - contains no category word at all
#   mislead  - contains a word pointing at another category
# ---------------------------------------------------------------------------
BODIES: dict[str, dict[str, list[str]]] = {
    "billing": {
        "cue": [
            "I was billed twice for {order}.",
            "My card was billed {amount}, but the total at checkout was lower.",
            "?Can you send me an itemised bill for {order}? I need it for my expense report.",
            "The billing address on the invoice for {order} is wrong.",
            "Why was I billed for express delivery when I picked standard?",
            "I got billed again this month for the Northwind Plus membership I cancelled.",
            "There's a billing error on {order}: the {product} is listed twice.",
            "Please explain the extra {amount} on my latest bill.",
            "!My bank shows a charge of {amount} from Northwind Gadgets that I don't recognise. Is this a billing mistake?",
            "Could your billing team reverse the duplicate charge for the {product}?",
            "The coupon code didn't apply and I was billed full price for the {product}.",
            "?I need to change the card you bill for my Northwind Plus membership.",
            "?Billing question: is VAT included in the {amount} I paid for {order}?",
            "You billed me in dollars instead of euros for {order}.",
            "?My company needs the bill for {order} addressed to our office, not to me.",
            "I was billed {amount} for the {product} even though it was on sale for less.",
            "?Is there a way to get billed monthly instead of paying for the {product} up front?",
        ],
        "plain": [
            "I was charged twice for {order}.",
            "The price of the {product} dropped by {amount} a day after I bought it. Can I get the difference?",
            "My credit card statement shows {amount} more than the total of {order}.",
            "?Where can I download a VAT invoice for {order}?",
            "The promo code SAVE10 was rejected at checkout even though it hasn't expired.",
            "Payment went through on PayPal but the site says {order} is unpaid.",
            "!I've been charged three times for the same {product}.",
        ],
        "mislead": [
            "I was charged for shipping even though {order} was over the free-shipping threshold.",
            "!My account shows a payment of {amount} that I never made.",
            "The return label fee was taken from my card twice.",
            "Your tech support line charged me a premium-rate fee for the call.",
        ],
    },
    "shipping": {
        "cue": [
            "{Order} still says 'awaiting shipment' after {days} days.",
            "Has my {product} shipped yet? I ordered it last week.",
            "The tracking number for my shipment hasn't updated since Monday.",
            "?Can you ship {order} to my work address instead?",
            "Shipping was supposed to take 2 days, but it's been {days}.",
            "My shipment arrived with the box crushed and the {product} rattling inside.",
            "?Do you ship to Canada? I'd like to send the {product} to my brother as a gift.",
            "I paid for express shipping on {order} and it came by standard post.",
            "The shipping confirmation for {order} lists the wrong street.",
            "Only half of my shipment arrived: the {product} is missing from the box.",
            "?Is there a way to combine shipping for two orders I placed today?",
            "!The courier says the shipment was delivered, but nothing was left at my door.",
            "?Could you hold {order} and ship it after the 20th? I'll be away until then.",
            "What's the shipping status of {order}?",
            "Your site said the {product} ships within 24 hours; it's been {days} days.",
            "I got two shipping notifications for {order} with different tracking numbers.",
            "The {product} was shipped to my old address even though I changed it before paying.",
        ],
        "plain": [
            "Where is my package? Tracking for {order} hasn't moved in {days} days.",
            "The courier left {order} with a neighbour I don't know.",
            "My {product} was delivered to the wrong address.",
            "When will {order} arrive? I need it by Friday.",
            "The post office sent the parcel for {order} back to your warehouse.",
            "The driver marked {order} as 'recipient not available' but I was home all day.",
        ],
        "mislead": [
            "The tracking page says {order} is being returned to sender. Why?",
            "I can't see a delivery date for {order} anywhere in my account.",
            "The courier billed me customs fees on delivery of {order}.",
        ],
    },
    "technical": {
        "cue": [
            "Tech question: my {product} won't pair with my phone over Bluetooth.",
            "The {product} keeps restarting, and I've tried everything in the tech guide.",
            "Is there a technical reason the {battery} only charges to 80%?",
            "I need a technician to look at my {screen}; the screen flickers constantly.",
            "Your technical support chat closed before anyone answered about my {product}.",
            "Technical issue: the firmware update for the {product} fails at 47%.",
            "The tech specs say the {battery} charges over USB-C, but mine only works with the old cable.",
            "The {product} gets very hot after ten minutes. Is that a technical fault?",
            "?Can someone from tech support explain how to factory-reset the {product}?",
            "Since the last update my {product} drops off Wi-Fi every hour. Technical details: firmware 2.3.1, mesh router.",
            "There's a technical glitch: the companion app crashes as soon as I open it.",
            "The {product} shows error E07 and the tech FAQ doesn't mention it.",
            "?I'm not very technical, so how do I set up the {product} with the app?",
            "?Technical question about the {product}: does it work with Android 14?",
            "Your tech team's reset steps didn't fix the crackling in my {audio}.",
            "!The {battery} started smoking while charging. Can a technician call me?",
            "Is there a tech workaround for the {product} losing its settings after a power cut?",
        ],
        "plain": [
            "My {battery} won't turn on even after charging overnight.",
            "The {product} app says 'device not found' no matter what I do.",
            "One side of the {audio} stopped working after two days.",
            "The battery in the {battery} drains in under an hour.",
            "Bluetooth keeps dropping on the {product} every few minutes.",
            "The {screen} is broken: the screen stays black.",
        ],
        "mislead": [
            "The {product} from {order} won't turn on. Should I return it, or can you help me fix it?",
            "The {battery} arrived fine but won't charge. Do I need to ship it somewhere for repair?",
            "The {product} froze after a week; I already returned the first one for the same fault.",
        ],
    },
    "account": {
        "cue": [
            "I can't log in to my account and the password reset email never arrives.",
            "?Please delete my Northwind Gadgets account and all the data you hold on me.",
            "!Someone changed the email on my account without my permission.",
            "?How do I merge two accounts? I accidentally signed up twice.",
            "My account is locked after too many login attempts.",
            "?I'd like to change the name on my account to my married name.",
            "The two-factor code for my account goes to an old phone number.",
            "!My account page shows orders that aren't mine.",
            "?Can I turn off marketing emails in my account settings? I can't find the option.",
            "The account verification link says 'expired' every time I click it.",
            "I created an account at checkout but never got a confirmation email.",
            "Why does my account say my loyalty points have expired?",
            "?Is it possible to have a business account with several users?",
            "?Account question: can I change my username?",
            "My account keeps logging me out every few minutes on the mobile site.",
            "?I placed {order} as a guest. Can you link it to my account?",
            "The {product} I bought doesn't show up in my account's order history.",
        ],
        "plain": [
            "I forgot my password and the reset link doesn't work.",
            "?How do I change the email address I sign in with?",
            "!I think someone else has been logging into my profile.",
            "?Please unsubscribe me from your newsletter and remove my personal data.",
            "My login stopped working after I changed my phone number.",
        ],
        "mislead": [
            "I can't update the shipping address saved in my profile.",
            "My saved card disappeared from my profile and I can't see my billing history.",
            "My order history shows a return I never made.",
        ],
    },
    "returns": {
        "cue": [
            "I'd like to return the {product} from {order}; it doesn't suit my needs.",
            "?How do I get a return label for {order}?",
            "I returned the {product} two weeks ago and haven't heard anything.",
            "?Is the {product} still within the 30-day return window?",
            "Your return form won't accept the number for {order}.",
            "I sent back the {product} but the return status still says 'pending'.",
            "?Can I return an opened {product}? It was a gift I won't use.",
            "The return policy says returns are free, but I was asked to pay for the label.",
            "?I want to exchange the {product} for a different colour. Do I need to return it first?",
            "?Returning {order}: where should I drop the parcel off?",
            "I returned {order} on the 3rd. When will I see the money?",
            "Please confirm you received my return of the {product}.",
            "?I'd like to return one item from {order} and keep the rest.",
            "?The {product} was a duplicate gift, so I'd like to return it unopened.",
            "?What's the return address for {order}?",
            "!My return window for the {product} closes tomorrow and the return portal is down.",
            "?Can I return the {product} in a shop, or does it have to go by post?",
        ],
        "plain": [
            "I want my money back for the {product}; it's not what I expected.",
            "?Can I exchange the {product} for the larger model?",
            "I sent the {product} back to you ten days ago. Where is my refund?",
            "Please cancel {order} and refund me; I found it cheaper elsewhere.",
            "?How long do refunds take once you receive the item?",
        ],
        "mislead": [
            "I shipped the {product} back to you last week. Has it arrived?",
            "The refund for {order} hasn't shown up on my bill yet.",
            "The {product} has a technical fault, so I'd like to send it back for a refund.",
        ],
    },
}
POOL_WEIGHTS = {"cue": 74, "plain": 16, "mislead": 10}

GREETINGS = [
    "Hi,",
    "Hello,",
    "Hi there,",
    "Hey,",
    "Good morning,",
    "Hello Northwind,",
    "Hi team,",
    "Good afternoon,",
]

# Sentiment openers come before the body, tails after it.
POSITIVE_OPENERS = [
    "I love my new {product}, but I have a question.",
    "Great service so far!",
    "First of all, thanks for the fast delivery last time.",
    "Big fan of Northwind Gadgets, I'm always happy with my orders.",
    "The {product} itself is excellent.",
    "You've always been great to deal with.",
    "Your team was really helpful last time, so I'm hoping you can sort this out too.",
    "Really enjoying the {product} so far!",
]
POSITIVE_TAILS = [
    "Thanks so much!",
    "Thanks in advance, you're great.",
    "Otherwise I'm really happy with it.",
    "Keep up the excellent work!",
    "Appreciate your help 🙂",
    "Everything else about the order was perfect.",
    "No rush at all, I love the {product}.",
    "Thank you, your support has always been fast and friendly.",
    "Cheers, you folks are wonderful!",
]
NEGATIVE_OPENERS = [
    "This is the worst experience I've had with an online shop.",
    "I'm really disappointed.",
    "Honestly, I'm angry.",
    "Third time writing about this.",
    "Not impressed at all.",
    "I've been a customer for years and this is terrible.",
    "Very frustrated right now.",
    "I'm angry and I want this fixed.",
    "Terrible experience so far.",
    "I'm so disappointed with Northwind Gadgets.",
]
NEGATIVE_TAILS = [
    "This is terrible service.",
    "Really disappointed, to be honest.",
    "I'll never order from you again if this isn't fixed.",
    "Worst support experience ever.",
    "I'm very angry about this 😡",
    "Frankly, this is unacceptable.",
    "I'm losing patience.",
    "Nobody has replied to my last two emails.",
    "Ridiculous.",
    "What a waste of money.",
    "Honestly the worst service I've had.",
    "I'm disappointed and want this resolved.",
    "Terrible.",
    "I've never been treated like this by a shop.",
]
NEUTRAL_TAILS = [
    "Thanks.",
    "Please let me know.",
    "Could you look into it?",
    "Kind regards.",
    "Any update would help.",
    "Let me know what you need from me.",
]
URGENCY_LINES = [
    "I need this sorted today, please.",
    "URGENT: I leave for a trip on Friday.",
    "It's time-sensitive, so please prioritise it.",
    "Please treat this as urgent.",
    "I need an answer as soon as possible.",
    "This is blocking my work, so please hurry.",
    "Please reply ASAP.",
]

# Hand-written tickets that stress prompt rendering (quotes, braces, newline,
# non-ASCII, emoji).  (text, category, sentiment, urgent)
SPECIAL_TICKETS: list[tuple[str, str, str, bool]] = [
    (
        'The {product} app shows {{"error": "token_expired", "code": 401}} every time I open it.',
        "technical",
        "neutral",
        False,
    ),
    (
        'The screen on my {screen} literally says "Please contact support" and nothing else. '
        "Not great.",
        "technical",
        "negative",
        False,
    ),
    (
        "Hello,\nI was billed twice for {order}. Please check and reverse one of the charges.",
        "billing",
        "neutral",
        False,
    ),
    (
        "My parcel to Zürich still hasn't left the warehouse 🙁 I run a small café and "
        "need the {product} for the shop this week.",
        "shipping",
        "negative",
        True,
    ),
    (
        "Je voudrais retourner le {product}, s'il vous plaît. Sorry, my English is not good: "
        "I want to return it.",
        "returns",
        "neutral",
        False,
    ),
    (
        "Locked out of my account AGAIN 😡😡 fix it!!!",
        "account",
        "negative",
        True,
    ),
    (
        "Mon {product} est très bien, merci! Just wondering when the matching case ships 😊",
        "shipping",
        "positive",
        False,
    ),
    (
        "My invoice says \"Müller GmbH\" but it should read 'Mueller & Söhne'. Can you reissue the bill?",
        "billing",
        "neutral",
        False,
    ),
]

_SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)")


def sentence_count(text: str) -> int:
    """Rough sentence count: runs of terminal punctuation followed by space or end."""
    return max(1, len(_SENTENCE_END.findall(text)))


def order_number(rng: random.Random) -> str:
    return f"NW-{rng.randint(10000, 99999)}"


def amount(rng: random.Random) -> str:
    return f"${rng.randint(5, 189)}.{rng.choice(['00', '49', '95', '99'])}"


def order_phrase(rng: random.Random, number: str) -> str:
    if number:
        return rng.choice([f"order {number}", f"order #{number}", number, f"my order {number}"])
    return rng.choice(["my order", "my recent order", "my last order", "the order"])


def render(template: str, rng: random.Random, product: str, number: str) -> str:
    order = order_phrase(rng, number)
    return template.format(
        product=product,
        order=order,
        Order=order[0].upper() + order[1:],
        amount=amount(rng),
        days=rng.randint(4, 15),
    )


def attach_order(body: str, rng: random.Random, number: str, inline_only: bool = False) -> str:
    """Mention the order number in a body that has no {order} slot."""
    style = 2 if inline_only else rng.randrange(3)
    if style == 0:
        return f"Order {number}: {body}"
    if style == 1:
        return f"Re: order {number}. {body}" if sentence_count(body) < 3 else f"[{number}] {body}"
    # Parenthesis before the final punctuation mark of the body.
    end = len(body.rstrip(".!?"))
    return f"{body[:end]} (order {number}){body[end:]}"


def fit_product(template: str, rng: random.Random, product: str) -> tuple[str, str]:
    """Swap a restricted product slot for {product}, re-picking the product if needed."""
    for slot, fitting in PRODUCT_SLOTS.items():
        if slot in template:
            if product not in fitting:
                product = rng.choice(fitting)
            template = template.replace(slot, "{product}")
    return template, product


def compose(
    rng: random.Random, category: str, sentiment: str, product: str, number: str
) -> tuple[str, bool, str]:
    """Return (text, urgent, product) for one generated ticket."""
    for _ in range(50):
        pools = BODIES[category]
        pool_name = rng.choices(list(POOL_WEIGHTS), weights=list(POOL_WEIGHTS.values()))[0]
        template = rng.choice(pools[pool_name])
        inherent = template.startswith("!")
        mild = template.startswith("?")
        if inherent and sentiment == "positive":
            continue  # a serious problem is not reported cheerfully
        if mild and sentiment == "negative":
            continue  # nor is a simple question asked in anger
        template, product = fit_product(template.lstrip("!?"), rng, product)
        body = render(template, rng, product, number)

        urgent = inherent or (
            not mild and rng.random() < (0.18 if sentiment == "negative" else 0.08)
        )
        opener = tail = ""
        if sentiment == "positive":
            if rng.random() < 0.5:
                opener = render(rng.choice(POSITIVE_OPENERS), rng, product, number)
            else:
                tail = render(rng.choice(POSITIVE_TAILS), rng, product, number)
        elif sentiment == "negative":
            if rng.random() < 0.35:
                opener = rng.choice(NEGATIVE_OPENERS)
            else:
                tail = rng.choice(NEGATIVE_TAILS)
        elif rng.random() < 0.4:
            tail = rng.choice(NEUTRAL_TAILS)
        if number and "{order}" not in template and "{Order}" not in template:
            body = attach_order(body, rng, number, inline_only=bool(opener))

        # Urgency is stated outright unless the body is urgent by itself.
        urgency = ""
        if urgent and (not inherent or rng.random() < 0.3):
            urgency = rng.choice(URGENCY_LINES)

        greeting = rng.choice(GREETINGS) if not opener and rng.random() < 0.2 else ""
        parts = [p for p in (opener, body, tail, urgency) if p]
        text = " ".join(parts)
        if sentence_count(text) > 3:
            continue
        if greeting:
            if rng.random() < 0.15:
                text = f"{greeting}\n{text}"
            elif re.match(r"I\b", text):
                text = f"{greeting} {text}"
            else:
                text = f"{greeting[:-1]}! {text}"
        return text, urgent, product
    raise RuntimeError("could not compose a ticket of at most three sentences")


def generate() -> list[dict[str, str]]:
    rng = random.Random(SEED)
    rows: list[dict[str, str]] = []
    seen: set[str] = set()
    special_at = sorted(rng.sample(range(N_TICKETS), len(SPECIAL_TICKETS)))
    specials = dict(zip(special_at, SPECIAL_TICKETS, strict=True))

    for i in range(N_TICKETS):
        customer = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
        product = rng.choice(PRODUCTS)
        number = order_number(rng) if rng.random() < 0.7 else ""
        if i in specials:
            template, category, sentiment, urgent = specials[i]
            template, product = fit_product(template, rng, product)
            if "{order}" in template and not number:
                number = order_number(rng)
            text = render(template, rng, product, number)
            if number and number not in text:
                text = attach_order(text, rng, number)
        else:
            category = rng.choices(CATEGORIES, weights=CATEGORY_WEIGHTS)[0]
            sentiment = rng.choices(SENTIMENTS, weights=SENTIMENT_WEIGHTS)[0]
            for _ in range(100):
                text, urgent, product = compose(rng, category, sentiment, product, number)
                if text not in seen:
                    break
            else:
                raise RuntimeError("could not compose a unique ticket text")
        seen.add(text)
        rows.append(
            {
                "ticket_id": f"T{i + 1:04d}",
                "customer": customer,
                "product": product,
                "order_number": number,
                "text": text,
                "category": category,
                "sentiment": sentiment,
                "urgent": "True" if urgent else "False",
            }
        )

    # Exact duplicates: the customer submitted the same form twice, a few
    # tickets later.  Everything but the ticket id is copied.
    taken = set(special_at)
    duplicates = 0
    while duplicates < N_DUPLICATES:
        source = rng.randrange(N_TICKETS - 8)
        target = source + rng.randint(1, 6)
        if source in taken or target in taken:
            continue
        taken.update((source, target))
        rows[target] = {**rows[source], "ticket_id": rows[target]["ticket_id"]}
        duplicates += 1

    # Missing texts: web-form submissions with an empty message box.
    missing = 0
    while missing < N_MISSING:
        index = rng.randrange(N_TICKETS)
        if index in taken:
            continue
        taken.add(index)
        rows[index].update(text="", sentiment="neutral", urgent="False")
        missing += 1
    return rows


def write(rows: list[dict[str, str]], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="CSV path to write")
    args = parser.parse_args(argv)
    write(generate(), args.out)
    print(f"wrote {N_TICKETS} tickets to {args.out}")


if __name__ == "__main__":
    main()
