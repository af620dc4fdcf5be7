"""Generate bot/data/nlu/generated.yml: customer-service and out-of-scope training examples.

Hand-written examples (bot/data/nlu/*.yml) are in one voice: short, tidy, lower case. Shoppers
write short and long, polite and angry, with typos and no punctuation, with an order id or
their name in the message and a story before the request ("I bought shoes last week and ...").
This script writes such examples systematically:

    request  = intent template (verb phrase in a frame, a question, a keyword, a topic)
               x slot fillers (order ids, items, names, account types, times...)
    message  = [greeting / name / context / complaint] + request + [politeness / urgency]
    style    = lower case, dropped punctuation, chat spelling ("u", "pls"), typos

All randomness comes from one seed (per intent), so the output is the same on every run.
Examples whose normalised text already exists in bot/data (outside generated.yml), in a
benchmark file (bench/nlu_*.yml) or under another intent are skipped. No entity annotations
are written.

Usage:  .venv/bin/python scripts/generate_nlu.py [--out bot/data/nlu/generated.yml] [--check]
        --check: exit 1 if the file on disk differs from what would be generated.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
from pathlib import Path

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = PROJECT_ROOT / "bot" / "data" / "nlu" / "generated.yml"
SEED = 20250611
# Training time: DIET's cost grows with the number of tokens (about 6 s per 1000 on 2 cores),
# the sentence encoders' with the number of examples. 1008 examples of up to 40 words made
# `rasa train` 304 s instead of 214 s: keep the total near 850 and messages to 16 words so it
# stays under 5 minutes.
DEFAULT_COUNT = 28
MAX_WORDS = 16
# The weakest intents on third-party text (issue): more and more varied examples.
WEAK = {"get_invoice": 42, "check_cancellation_fee": 40, "change_order": 42,
        "check_refund_policy": 40, "create_account": 42, "check_invoice": 36,
        "registration_problems": 32, "review": 32}
# Intents the hand-written data already gets right on third-party text (F1 >= 0.95): fewer.
STRONG = {"check_payment_methods", "contact_customer_service", "contact_human_agent",
          "delete_account", "edit_account", "newsletter_subscription", "payment_issue",
          "get_refund", "recover_password"}
STRONG_COUNT = 16
OUT_OF_SCOPE_COUNT = 145

# ---------------------------------------------------------------------------------- fillers
FILLERS: dict[str, list[str]] = {
    # No product-type words (dress, shoes...): unannotated here, they would teach DIET that
    # they are not article_type entities. Product searches carry the entity annotations.
    "item": ["clothes", "an outfit", "a gift", "some stuff", "a few things", "a couple of items",
             "a present", "the items", "my stuff", "a new outfit", "party wear", "summer clothes",
             "gym wear", "winter wear", "two items", "stuff for my kids", "workwear"],
    "when": ["yesterday", "last week", "two days ago", "this morning", "on monday",
             "a few days ago", "last month", "an hour ago", "on the weekend", "3 days ago"],
    "name": ["Priya", "Rahul Sharma", "John", "Maria Lopez", "Aisha", "Tom Becker", "Wei",
             "Ananya", "Carlos", "Fatima", "Sam", "Olga", "Kenji", "Meera Iyer"],
    "relative": ["my wife", "my husband", "my mom", "my dad", "my son", "my daughter",
                 "my sister", "my brother", "a friend", "my partner"],
    "acct": ["premium", "gold", "platinum", "standard", "business", "free", "basic", "pro",
             "{{Account Type}}", "{{Account Category}}"],
    "inv": ["{{Invoice Number}}", "#INV-20931", "INV-5521", "number 88412", "#77310",
            "SB-INV-1042"],
    "city": ["Pune", "Mumbai", "Delhi", "Bangalore", "Chennai", "London", "Berlin", "Austin",
             "{{Delivery City}}", "Kolkata", "Jaipur"],
    "pay": ["credit card", "debit card", "paypal", "upi", "apple pay", "google pay",
            "net banking", "cash on delivery", "gift card", "{{Payment Method}}", "amex",
            "bank transfer"],
    "channel": ["phone", "email", "chat", "whatsapp"],
    "period": ["from July", "from last month", "from September", "of two months ago",
               "from my last purchase", "from March", "from last year", "from 3 orders ago",
               "for the last quarter"],
}


def order_id(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.35:
        return f"SB-{rng.randint(100100, 399999)}"
    if kind < 0.55:
        return "{{Order Number}}"
    if kind < 0.7:
        return f"#{rng.randint(10000, 99999)}"
    if kind < 0.85:
        return f"ORD-{rng.randint(1000, 99999)}"
    return str(rng.randint(100000, 9999999))


def fill(template: str, rng: random.Random) -> str:
    def one(match: re.Match[str]) -> str:
        key = match.group(1)
        if key == "oid":
            return order_id(rng)
        return rng.choice(FILLERS[key])

    return re.sub(r"\{(\w+)\}", one, template)


# -------------------------------------------------------------------------------- frames
# A verb phrase (vp) starts with a verb in base form; frames put it in a sentence.
VP_FRAMES = [
    "I need to {vp}", "i want to {vp}", "I'd like to {vp}", "i wanna {vp}", "how do I {vp}",
    "how can i {vp}", "how to {vp}", "can you help me {vp}", "could you help me {vp}",
    "help me {vp}", "I need help to {vp}", "i'm trying to {vp}", "I don't know how to {vp}",
    "where can I {vp}", "is it possible to {vp}", "can I {vp}", "can u help me {vp}",
    "what do I have to do to {vp}", "tell me how to {vp}", "show me how to {vp}",
    "I have to {vp}", "I would like to {vp}", "i need u to help me {vp}",
    "what's the way to {vp}", "where do i go to {vp}", "I want you to help me {vp}",
    "any way to {vp}?", "i must {vp}", "need to {vp}", "want to {vp}",
]
ING_FRAMES = [
    "I need help {ing}", "i need assistance {ing}", "help with {ing}", "help {ing}",
    "I'd like some help {ing}", "question about {ing}", "i have a question about {ing}",
    "info on {ing}", "I want information about {ing}", "assistance {ing}",
    "can you assist me with {ing}", "i need support {ing}", "guide me through {ing}",
    "where can I get information about {ing}", "I want to know about {ing}",
    "i need some info about {ing}", "what should I do for {ing}",
]
TOPIC_FRAMES = [
    "what is your {topic}", "what's the {topic}", "tell me about the {topic}",
    "info about {topic}", "I want information about the {topic}", "{topic}?", "{topic}",
    "where can I find the {topic}", "can you explain the {topic}", "question about the {topic}",
    "I need to know the {topic}", "i'd like to know your {topic}", "what about the {topic}",
    "could you tell me the {topic}", "i want to see the {topic}", "where is the {topic}",
    "need info on the {topic} pls",
]
GERUND = {
    "add": "adding", "ask": "asking", "buy": "buying", "call": "calling", "cancel": "cancelling",
    "change": "changing", "check": "checking", "chat": "chatting", "claim": "claiming",
    "close": "closing", "complain": "complaining", "contact": "contacting", "correct": "correcting",
    "create": "creating", "delete": "deleting", "download": "downloading", "edit": "editing",
    "email": "emailing", "file": "filing", "find": "finding", "fix": "fixing", "get": "getting",
    "give": "giving", "join": "joining", "leave": "leaving", "locate": "locating",
    "log": "logging", "look": "looking", "lodge": "lodging", "make": "making",
    "modify": "modifying", "move": "moving", "obtain": "obtaining", "open": "opening",
    "order": "ordering", "pay": "paying", "place": "placing", "post": "posting",
    "purchase": "purchasing", "rate": "rating", "reach": "reaching", "receive": "receiving",
    "recover": "recovering", "register": "registering", "remove": "removing",
    "replace": "replacing", "report": "reporting", "request": "requesting", "reset": "resetting",
    "retrieve": "retrieving", "review": "reviewing", "save": "saving", "see": "seeing",
    "send": "sending", "set": "setting", "share": "sharing", "sign": "signing",
    "speak": "speaking", "start": "starting", "submit": "submitting", "subscribe": "subscribing",
    "swap": "swapping", "switch": "switching", "talk": "talking", "track": "tracking",
    "unsubscribe": "unsubscribing", "update": "updating", "upgrade": "upgrading",
    "use": "using", "view": "viewing", "write": "writing", "consult": "consulting",
    "inform": "informing", "know": "knowing", "enter": "entering", "book": "booking",
    "return": "returning", "follow": "following",
}

GREETINGS = ["hi", "hello", "hey", "hi there", "good morning", "good evening", "hey team",
             "hello support", "hiya", "yo", "dear support team", "hi, my name is {name}",
             "hello, this is {name}", "hi it's {name} here", "{name} here"]
POLITE_END = ["please", "pls", "thanks", "thank you", "thanks in advance", "asap",
              "if possible", "thx", "cheers", "please help", "as soon as possible",
              "when you get a chance", "right now", "quickly please"]
ANGRY_START = ["this is ridiculous.", "seriously,", "I'm so frustrated.", "ugh",
               "I'm really annoyed", "what the hell,", "come on,", "honestly,",
               "third time asking:", "not happy at all,"]
POLITE_START = ["could you please", "would you kindly", "excuse me,", "sorry to bother you,",
                "quick question,", "i was wondering,", "if you don't mind,"]
# Generic stories before a request ("... and" / ". " joins them to the request).
CONTEXT_GENERIC = ["I bought {item} {when}", "I ordered {item} {when}",
                   "I placed an order {when}", "I shop with you a lot",
                   "I'm a regular customer", "I got an email from you {when}",
                   "I was on your website {when}", "my order is {oid}",
                   "so I made a purchase {when}", "i've been a customer for years",
                   "I'm writing about order {oid}"]

CHAT_SPELLING = [(r"\byou\b", "u"), (r"\byour\b", "ur"), (r"\bplease\b", "pls"),
                 (r"\bare\b", "r"), (r"\bwant to\b", "wanna"), (r"\bthanks\b", "thx"),
                 (r"\bI am\b", "im"), (r"\bI'm\b", "im"), (r"\bdon't\b", "dont"),
                 (r"\bcan't\b", "cant"), (r"\bwhat's\b", "whats"), (r"\bwhere's\b", "wheres"),
                 (r"\bbecause\b", "cuz"), (r"\bto\b", "2"), (r"\bfor\b", "4")]
COMMON_TYPOS = {"receive": "recieve", "cancel": "cancle", "account": "acount",
                "invoice": "invoce", "address": "adress", "password": "pasword",
                "refund": "refnd", "delivery": "delivry", "cancellation": "cancelation",
                "order": "oder", "subscription": "subscripton", "policy": "polciy",
                "payment": "paymnet", "shipping": "shiping", "newsletter": "newsleter",
                "customer": "custumer", "register": "regster", "modify": "modfy",
                "change": "chnage", "information": "infomation", "purchase": "purchse",
                "tracking": "traking", "review": "reveiw", "complaint": "complant",
                "agent": "agnet", "fee": "fe", "bill": "bil", "available": "availble"}


# ------------------------------------------------------------------------------- intents
# vp: verb phrases (base form).  q: whole sentences.  kw: short keyword forms.
# topic: noun phrases for TOPIC_FRAMES.  ctx: stories specific to the intent.
INTENTS: dict[str, dict[str, list[str]]] = {
    "place_order": {
        "vp": ["place an order", "make an order", "make a purchase", "buy some items",
               "order a few things", "purchase something from you", "place a new order",
               "buy something from your store", "make a new purchase", "order from your site",
               "complete a purchase", "place an order for {relative}", "shop and order online",
               "buy stuff on this website", "make an order through the app"],
        "q": ["where do i place my order", "how does ordering work here",
              "i wanna buy smth how do i do it", "i've never ordered before, what do i do",
              "is ordering online easy, how do i start", "can i order by phone",
              "what are the steps to make a purchase", "how do purchases work on this site",
              "can i still order today", "i'd like to order, walk me through it"],
        "kw": ["place order", "new order", "purchase help", "ordering", "making a purchase"],
        "ctx": ["I'm new to your shop", "first time here", "I found a few things I like",
                "I have a list of stuff I want"],
    },
    "delivery_options": {
        "vp": ["check the delivery options", "see the shipping methods", "choose express shipping",
               "get next day delivery", "know what shipping options you offer",
               "pick up my order from a store", "check if you ship to {city}",
               "find out about shipping methods", "see the delivery choices",
               "choose a faster delivery", "check the shipping costs",
               "get my order delivered on the weekend"],
        "q": ["which delivery methods do you have", "do you ship internationally",
              "do u deliver to {city}", "is there a store pickup option",
              "what are the options for shipping", "do you do same day delivery in {city}",
              "how much is express shipping", "can i pay extra for faster delivery",
              "do you offer free delivery over some amount",
              "what shipping carriers do you use", "is standard shipping free",
              "can i get it delivered to a locker", "do you have economy shipping"],
        "kw": ["shipping options", "delivery methods", "express delivery", "shipping methods",
               "delivery options", "shipping choices", "ship to {city}?"],
        "topic": ["delivery options", "shipping methods", "shipping options", "delivery choices",
                  "shipping rates", "delivery charges", "shipping costs", "courier options",
                  "delivery methods available"],
    },
    "delivery_period": {
        "vp": ["know when my package will arrive", "check the delivery time",
               "find out how long shipping takes", "know the estimated delivery date",
               "check when my order gets here", "know how many days delivery takes",
               "estimate the arrival of order {oid}", "know the shipping time to {city}"],
        "q": ["how long does delivery take", "when will my stuff arrive",
              "how many days until my order {oid} arrives", "when can i expect my parcel",
              "how long does shipping take to {city}",
              "will it arrive before friday", "when is my order expected to be delivered",
              "how soon can i get it", "how long till it gets here",
              "if i order today when will it come", "delivery takes how many days"],
        "kw": ["delivery time", "shipping time", "estimated delivery date",
               "delivery period", "usual delivery times"],
        "topic": ["delivery time", "estimated delivery date", "shipping time", "delivery period",
                  "expected arrival date"],
        "ctx": ["I ordered {item} {when}", "I need it for a wedding next week",
                "I'm travelling soon"],
    },
    "check_cancellation_fee": {
        "vp": ["check the cancellation fee", "see the cancellation charges",
               "know the early termination fee", "find out the cancellation penalty",
               "check if there's a fee for cancelling", "know how much cancelling costs",
               "check the exit fee", "see the early exit penalty",
               "find the cancellation costs", "know the termination charges",
               "check what you charge to cancel an order", "know the withdrawal fee",
               "check the fees for cancelling order {oid}",
               "find out if I pay a fee to cancel", "see how much I'd lose by cancelling",
               "check the cancellation fee on my {acct} plan"],
        "q": ["is there a fee if i cancel", "will i be charged for cancelling my order",
              "how much will it cost me to cancel", "do you charge anything to cancel",
              "is cancelling free or is there a charge",
              "what's the penalty if i cancel order {oid}", "are there charges for cancelling",
              "would i lose money if i cancel now", "how much do you keep if i cancel",
              "is there an early cancellation charge",
              "do i have to pay to cancel after it ships",
              "what does it cost to cancel my {acct} subscription early",
              "is there a fee for cancelling an order that already shipped",
              "how much is deducted when you cancel an order"],
        "kw": ["cancellation fee", "cancellation charges", "early termination fee",
               "cancellation penalty", "fee to cancel", "exit fee", "termination penalty",
               "cancelation costs", "withdrawal penalty", "early exit fees"],
        "topic": ["cancellation fee", "cancellation charges", "early termination fee",
                  "early exit fee", "cancellation penalty", "termination fees",
                  "cost of cancelling", "withdrawal penalty", "cancellation costs",
                  "fees for cancelling an order"],
        "ctx": ["I'm thinking about cancelling my order", "I might cancel order {oid}",
                "I changed my mind about {item}", "before I cancel anything",
                "I don't want to be charged"],
    },
    "check_refund_policy": {
        "vp": ["check your refund policy", "read the return policy", "see the money back policy",
               "know your refund policy", "understand how refunds work",
               "check the return rules", "see the refund conditions",
               "know if I can return {item}", "check how many days I have to return something",
               "find the money back guarantee", "know the reimbursement policy",
               "check in which cases I get a refund", "see the refund terms"],
        "q": ["what is your refund policy", "can i return {item} if they don't fit",
              "how long do i have to send something back", "do you give full refunds",
              "in what cases can i ask for a refund", "do you refund sale items",
              "is there a money back guarantee", "can i get my money back if i don't like it",
              "how many days do i get to return an item",
              "what's the deadline for returns", "are returns free",
              "do you refund shipping costs", "what items can't be returned",
              "will i get a refund or store credit", "can i return worn shoes",
              "what conditions must items meet to be refunded",
              "how long do refunds usually take to process"],
        "kw": ["refund policy", "return policy", "money back guarantee", "returns policy",
               "refund rules", "return window", "refund conditions", "policy on refunds"],
        "topic": ["refund policy", "return policy", "money back guarantee", "refund conditions",
                  "returns policy", "reimbursement policy", "refund rules", "return window",
                  "terms for refunds", "refund guarantee"],
        "ctx": ["I'm not sure about the size", "before I buy {item}",
                "I'm thinking of buying {item} as a gift", "I want to know before ordering"],
    },
    "check_payment_methods": {
        "vp": ["check the payment methods", "see the payment options", "pay with {pay}",
               "know which payment methods you accept", "find out how I can pay",
               "check if you take {pay}", "see what payment modes are available"],
        "q": ["what payment methods do you accept", "do you accept {pay}", "can i pay by {pay}",
              "which cards do you take", "is {pay} accepted", "how can i pay for my order",
              "do you have cash on delivery", "can i pay in installments",
              "what are the ways to pay", "do you take {pay} or only cards"],
        "kw": ["payment methods", "payment options", "ways to pay", "accepted payment modes",
               "payment with {pay}?"],
        "topic": ["payment methods", "payment options", "accepted payment methods",
                  "payment modes", "ways of paying"],
    },
    "payment_issue": {
        "vp": ["report a payment problem", "fix a payment issue", "solve my payment issue",
               "report a problem with my {pay} payment", "sort out a failed payment"],
        "q": ["my payment didn't go through", "my {pay} payment keeps failing",
              "i was charged but the order didn't go through", "payment error at checkout",
              "the {pay} payment was declined", "i got charged twice for order {oid}",
              "money got deducted but no order", "why was my card declined",
              "there's an error when i try to pay", "can't complete the payment",
              "the payment page keeps crashing", "i paid but it says payment pending"],
        "kw": ["payment problem", "payment failed", "payment error", "card declined",
               "issue with payment"],
        "ctx": ["I tried to buy {item}", "I was checking out {when}",
                "I tried three times already"],
    },
    "check_invoice": {
        "vp": ["check my invoice", "see the invoice for order {oid}", "view my invoices",
               "find the invoice {inv}", "look at my bill", "check the bill from {when}",
               "locate invoice {inv}", "consult my invoices", "see my past bills",
               "check the invoice for {name}", "look up the bill for order {oid}",
               "view the invoice for {item}", "check my billing history",
               "find my invoices {period}", "see invoice {inv}", "locate the bills {period}",
               "check the invoice details", "locate the bill for my last purchase"],
        "q": ["where can i see my invoices", "where are my bills stored",
              "can you show me invoice {inv}", "where do i find my old invoices",
              "is there a page with all my invoices", "how do i look at the bill for {oid}",
              "what does my last invoice say", "where's the invoice for {name}",
              "which invoices do i have on my account"],
        "kw": ["invoice {inv}", "my invoices", "billing history", "check invoice",
               "bill for {oid}", "invoices from last month"],
        "ctx": ["I'm doing my accounts", "my accountant asked me", "I need to check something",
                "I'm reviewing my expenses"],
    },
    "get_invoice": {
        "vp": ["get my invoice", "download the invoice for order {oid}", "get a copy of my bill",
               "receive the invoice by email", "obtain invoice {inv}", "get the bill for {item}",
               "download my bill", "get an invoice for {name}", "get a tax invoice",
               "request a duplicate invoice", "get the receipt for order {oid}",
               "get a pdf of the invoice", "obtain a copy of invoice {inv}",
               "get the invoice sent to {relative}", "download invoice {inv}",
               "get the invoices for my last orders", "request an invoice for my company",
               "get a printed copy of the bill", "receive my invoice again",
               "retrieve the invoice for order {oid}", "get the invoices {period}",
               "get my invoice {period}", "download the bills {period}",
               "receive the invoice {period}", "obtain my invoices {period}"],
        "q": ["can you send me the invoice for {oid}", "please email me my bill",
              "i never received an invoice for my order", "send the invoice to my email",
              "can i get an invoice with my company name", "i need a copy of my receipt",
              "could you resend invoice {inv}", "how do i get a gst invoice",
              "where do i download my invoice", "can i have the bill in pdf",
              "i lost the invoice, can you send another one",
              "email the invoice for my last order pls", "send me the invoices {period}"],
        "kw": ["invoice copy", "download invoice", "get invoice", "send invoice",
               "invoice pdf for {oid}", "copy of bill", "duplicate invoice"],
        "ctx": ["I need it for my expenses", "my company needs a receipt",
                "I'm claiming the cost at work", "I bought {item} {when}",
                "for my tax return"],
    },
    "set_up_shipping_address": {
        "vp": ["set up a shipping address", "add a new delivery address", "save my address",
               "set up a new address in {city}", "add my office address",
               "create a shipping address", "enter a new shipping address",
               "save a second delivery address", "register an address for deliveries",
               "set a default shipping address"],
        "q": ["where do i add my address", "my account has no address yet, how do i add one",
              "can i save more than one address", "i moved to {city}, how do i add the new address",
              "how do i put in a shipping address"],
        "kw": ["new shipping address", "add address", "set up address", "save address"],
    },
    "create_account": {
        "vp": ["create an account", "open an account", "sign up", "register",
               "make an account", "create a {acct} account", "open a {acct} account",
               "sign up for an account", "register a new account", "set up an account",
               "create a user account", "open a new profile", "create an account for {relative}",
               "open an account for {relative}", "sign up on your website",
               "register with my email", "create a profile", "join your shop",
               "get an account", "sign up with my phone number", "make a new {acct} account",
               "create a customer account", "open a user profile", "open a different account",
               "create another account", "create a second {acct} account",
               "open an additional account", "make a new account for my business"],
        "q": ["is it free to create an account",
              "do i need an account to buy", "where is the sign up page",
              "what do i need to register", "can i sign up with google",
              "i don't have an account yet, can i make one",
              "how long does it take to open an account",
              "what info do you need to create an account", "is there a sign up form"],
        "kw": ["new account", "sign up", "open account", "create account",
               "account creation", "signup", "new {acct} account", "register"],
        "ctx": ["I'm new here", "I want to buy {item}", "my friend recommended your shop",
                "I've never shopped with you before", "I always check out as a guest"],
    },
    "registration_problems": {
        "vp": ["report a registration problem", "fix a sign-up error",
               "solve a registration issue"],
        "q": ["i can't register", "the sign up form gives an error", "registration keeps failing",
              "i never got the verification code to sign up", "sign up isn't working for me",
              "it says my email is already registered", "i'm having trouble signing up",
              "the register button does nothing", "problems creating an account",
              "why can't i create an account", "error while registering",
              "the otp for registration never arrives"],
        "kw": ["registration problem", "sign up error", "registration issues", "can't sign up"],
        "topic": ["registration", "online registration", "sign-up process", "registration form",
                  "account verification email", "registration process"],
        "ctx": ["I tried to sign up {when}", "I've been trying to register for an hour"],
    },
    "edit_account": {
        "vp": ["edit my account", "update my profile", "change my personal details",
               "edit my account details", "update my phone number",
               "change the email on my account",
               "modify my profile information", "change my name on the account",
               "update my {acct} account details", "correct my date of birth",
               "edit my user information"],
        "q": ["where do i change my account info", "my phone number changed, how do i update it",
              "can i change the name on my profile", "how are my account details edited"],
        "kw": ["edit account", "update profile", "change account details", "account settings"],
    },
    "switch_account": {
        "vp": ["switch accounts", "switch to my other account", "change to the {acct} account",
               "switch to a {acct} account", "upgrade to {acct}", "move to another account",
               "switch my account type", "use a different account", "change my plan to {acct}",
               "log into my other profile"],
        "q": ["can i move from {acct} to {acct}", "how do i go to my second account",
              "is it possible to have a {acct} account instead",
              "i want the {acct} plan instead of my current one"],
        "kw": ["switch account", "change account type", "account switch", "upgrade to {acct}"],
    },
    "delete_account": {
        "vp": ["delete my account", "close my account", "remove my account",
               "cancel my {acct} account", "deactivate my profile", "terminate my account",
               "delete my user profile", "get rid of my account", "close my {acct} account"],
        "q": ["how can my account be deleted", "i don't want an account anymore, delete it",
              "please remove all my account data and close it",
              "where is the delete account option"],
        "kw": ["delete account", "close account", "account deletion", "remove my profile"],
    },
    "recover_password": {
        "vp": ["reset my password", "recover my password", "change my forgotten password",
               "get a new password", "retrieve my password", "reset the pin for my account",
               "recover my account access"],
        "q": ["i forgot my password", "i can't remember my password",
              "the password reset email never came", "my password isn't working",
              "locked out because i forgot my password", "forgot password help",
              "what do i do if i lost my password"],
        "kw": ["forgot password", "password reset", "reset password", "lost password",
               "lost pwd", "pwd retrieval", "password recovery", "forgot my pass"],
    },
    "newsletter_subscription": {
        "vp": ["subscribe to the newsletter", "unsubscribe from the newsletter",
               "sign up for your newsletter", "stop the newsletter emails",
               "join the mailing list", "cancel my newsletter subscription",
               "get your weekly newsletter", "opt out of marketing emails"],
        "q": ["do you have a newsletter", "how do i stop getting your promo emails",
              "i get too many newsletters from you", "is the newsletter free",
              "can i get deals by email"],
        "kw": ["newsletter", "newsletter subscription", "unsubscribe", "mailing list"],
    },
    "contact_customer_service": {
        "vp": ["contact customer service", "reach customer support", "call your support team",
               "email customer service", "get in touch with customer care",
               "speak with customer service by {channel}", "contact the support team"],
        "q": ["what is the customer service number", "when is customer support available",
              "what are your support hours", "is there a support email",
              "how can i reach you by {channel}", "do you have a helpline",
              "what's the phone number for customer care"],
        "kw": ["customer service", "customer support number", "support email",
               "helpline", "customer care contact"],
    },
    "contact_human_agent": {
        "vp": ["talk to a human", "speak with a real person", "chat with an agent",
               "talk to a representative", "speak to a live agent", "get a human on the line",
               "be transferred to an agent", "talk with someone real"],
        "q": ["is there a real person i can talk to", "can i speak with an operator",
              "i don't want a bot, get me a person", "put me through to an agent",
              "connect me with a human pls", "are you a bot? i want a human"],
        "kw": ["human agent", "real person", "live agent", "representative", "talk to human"],
    },
    "complaint": {
        "vp": ["file a complaint", "make a complaint", "lodge a complaint",
               "complain about your service", "report a bad experience",
               "complain about the delivery guy", "submit a complaint about order {oid}",
               "file a claim against your company", "make a consumer claim",
               "submit a reclamation", "raise a grievance"],
        "q": ["i'm very unhappy with your service", "your customer service is awful",
              "this is the worst shopping experience ever", "i want to complain",
              "the courier threw my parcel at the door", "i'm disappointed with how i was treated",
              "nobody answers my emails, this is unacceptable"],
        "kw": ["complaint", "file complaint", "i have a complaint", "formal complaint"],
    },
    "review": {
        "vp": ["leave a review", "write a review for {item}", "rate my purchase",
               "give feedback about your service", "review the {item} I bought",
               "share my opinion about the shop", "post a review", "rate the product",
               "submit feedback"],
        "q": ["where do reviews go", "can i give your store 5 stars",
              "i loved {item}, how do i say so", "how are products rated here",
              "would not recommend this shop", "amazing quality, very happy",
              "the packaging was poor but the product is ok", "five stars from me",
              "decent product, slow delivery", "your app is hard to use, just saying",
              "love the new collection", "meh, the fabric is thin"],
        "kw": ["leave review", "feedback", "product review", "rate product",
               "feedback about the website", "my opinion on your service"],
    },
    "track_order": {
        "vp": ["track my order", "track order {oid}", "check the status of my order",
               "see where my package is", "find my parcel", "check order {oid}",
               "locate my shipment", "follow my delivery", "check on my purchase"],
        "q": ["where is my order", "where's order {oid}", "has my order shipped yet",
              "what's the status of {oid}", "my package hasn't arrived, where is it",
              "is my order on the way", "any update on my delivery",
              "why hasn't my order moved in days", "what's the eta of order {oid}",
              "check the ETA of my purchase"],
        "kw": ["order status", "track order", "tracking number", "where is {oid}",
               "package status"],
        "ctx": ["I ordered {item} {when}", "it was supposed to arrive {when}"],
    },
    "cancel_order": {
        "vp": ["cancel my order", "cancel order {oid}", "cancel the purchase I made",
               "cancel the {item} I ordered", "stop my order", "call off my order",
               "cancel purchase {oid}", "cancel an order I just placed"],
        "q": ["i don't want my order anymore, cancel it", "please cancel {oid}",
              "can my order still be cancelled", "i ordered by mistake, cancel it",
              "is it too late to cancel my order"],
        "kw": ["cancel order", "order cancellation", "cancel purchase {oid}", "cancel {oid}"],
        "topic": ["order cancellation", "cancellation of my order", "cancelling orders",
                  "cancellation of purchase {oid}", "process to cancel an order"],
        "ctx": ["I ordered {item} {when}", "I changed my mind", "I found it cheaper elsewhere",
                "I ordered the wrong thing"],
    },
    "change_order": {
        "vp": ["change my order", "modify order {oid}", "edit the order I placed",
               "update my purchase", "add an item to my order", "remove {item} from my order",
               "change the size in my order", "change the quantity in order {oid}",
               "make changes to my purchase", "correct my order", "replace an item in my order",
               "swap {item} in my order for another colour", "add {item} to order {oid}",
               "change the colour of {item} in my order", "alter my order",
               "update the items in my order", "change something in purchase {oid}",
               "edit purchase {oid}", "modify what I ordered", "fix a mistake in my order",
               "take {item} out of my order", "change an item I ordered", "add some items",
               "add more items to my purchase", "remove something from my order",
               "remove an article from order {oid}"],
        "q": ["i picked the wrong size, can the order be changed",
              "is it too late to change my order", "can i still modify order {oid}",
              "i want 3 instead of 2 in my order", "can i add something to an existing order",
              "i ordered a medium but need a large, can you change it",
              "can the order be updated before it ships", "how do changes to an order work",
              "i forgot to add {item} to my order", "i purchased the wrong item by mistake",
              "i selected the wrong colour when ordering"],
        "kw": ["change order", "modify order", "edit order {oid}", "order change",
               "update order", "order modification"],
        "ctx": ["I just placed an order", "I ordered {item} {when}",
                "I made a mistake when ordering", "I realised I picked the wrong size",
                "my order {oid} hasn't shipped yet", "I forgot something"],
    },
    "change_shipping_address": {
        "vp": ["change my shipping address", "update the delivery address on order {oid}",
               "correct the address on my order", "send my order to a different address",
               "change the address for delivery", "fix the wrong address on my order",
               "edit the shipping address", "ship order {oid} to my office instead"],
        "q": ["i entered the wrong address, can you change it",
              "i moved, can my order go to the new place",
              "can the delivery address still be changed", "the address on {oid} is wrong"],
        "kw": ["change address", "wrong address", "update shipping address", "address change"],
    },
    "get_refund": {
        "vp": ["get a refund", "get my money back", "request a refund for order {oid}",
               "claim a refund", "get reimbursed", "return {item} for a refund",
               "ask for a refund", "get a refund for {item}"],
        "q": ["i want a refund", "refund me for {oid}",
              "the item was damaged, i want my money back",
              "i want to send {item} back and get refunded", "can i have a refund please"],
        "kw": ["refund", "refund request", "money back", "refund {oid}"],
        "ctx": ["I bought {item} {when} and it broke", "{item} didn't fit",
                "the package came damaged"],
    },
    "track_refund": {
        "vp": ["track my refund", "check my refund status", "check if my refund was processed",
               "see where my refund is", "follow up on my refund"],
        "q": ["where is my refund", "has my refund been sent", "i still haven't got my refund",
              "when will the refund reach my account", "what's the status of the refund for {oid}",
              "it's been two weeks and no refund"],
        "kw": ["refund status", "track refund", "where is my refund", "refund update"],
        "ctx": ["I returned {item} {when}", "you approved my refund {when}"],
    },
}

# Out of scope: topic templates with fillers; many domains, nothing a clothing shop sells.
OOS_FILLERS = {
    "city": ["paris", "tokyo", "new york", "delhi", "london", "sydney", "cairo", "lima"],
    "food": ["lasagna", "pad thai", "banana bread", "biryani", "sushi", "pancakes", "chili"],
    "sport": ["football", "cricket", "basketball", "tennis", "baseball", "hockey", "f1"],
    "team": ["the lakers", "real madrid", "chennai super kings", "the yankees", "arsenal"],
    "country": ["peru", "norway", "kenya", "japan", "canada", "vietnam", "chile"],
    "lang": ["python", "javascript", "java", "rust", "c++", "sql", "go"],
    "word": ["good night", "thank you", "where is the train station", "i love you", "cheers"],
    "tongue": ["german", "spanish", "japanese", "italian", "korean", "hindi"],
    "illness": ["the flu", "a migraine", "diabetes", "a sore throat", "covid", "allergies"],
    "animal": ["my dog", "my cat", "a parrot", "my hamster", "a goldfish", "my rabbit"],
    "artist": ["taylor swift", "the beatles", "ar rahman", "drake", "beethoven", "adele"],
    "n": ["17", "245", "3.5", "12", "1000", "64", "7"],
    "unit": ["miles", "kilograms", "cups", "fahrenheit", "liters", "inches", "ounces"],
    "unit2": ["kilometers", "pounds", "ml", "celsius", "gallons", "centimeters", "grams"],
    "company": ["amazon", "netflix", "spotify", "uber", "my bank", "my phone company",
                "the electricity company", "my airline", "my insurance company"],
    "thing": ["car", "laptop", "fridge", "washing machine", "bike", "printer", "router"],
    "goods": ["roof shingles", "toothpaste", "a lawn mower", "a gaming laptop", "lego sets",
              "dog food", "a sofa", "car tyres", "paint for my walls", "fresh vegetables",
              "a microwave", "printer ink", "ski rentals", "concert tickets"],
    "topic": ["crypto", "jaywalking", "gambling online", "drone flying", "street racing"],
    "person": ["napoleon", "elvis", "einstein", "a famous footballer", "the first astronaut"],
    "site": ["nasa", "wikipedia", "bbc news", "the city council", "imdb"],
}
OOS_TEMPLATES = [
    # weather, time, reminders
    "what's the weather in {city} tomorrow", "is it going to snow in {city} this week",
    "do i need an umbrella today", "what time is it in {city}", "set a timer for {n} minutes",
    "remind me to water the plants at 7", "wake me up at 6 tomorrow",
    "what's the humidity like right now",
    # cooking
    "how do i make {food}", "give me a recipe for {food}", "how long do i boil an egg",
    "what can i cook with rice and chickpeas", "how many calories are in {food}",
    "is {food} healthy", "what wine goes with fish",
    # maths, units, science
    "what is {n} times {n}", "convert {n} {unit} to {unit2}", "what's the square root of {n}",
    "how many {unit2} in a {unit}", "solve x squared minus 4 equals 0",
    "how far is the sun from earth", "why is the sky blue", "what is photosynthesis",
    "how do black holes form", "what's the boiling point of water in {unit2}",
    "explain the theory of relativity simply", "what's the chemical formula of salt",
    # music, movies, games
    "play something by {artist}", "who sang this song", "recommend a movie for tonight",
    "what's the best netflix series right now", "when does the next {artist} album come out",
    "tell me the plot of the last harry potter book", "what are good video games for kids",
    "how do i beat the final boss in zelda",
    # sports
    "who won the {sport} game last night", "what's the score of {team}",
    "when do {team} play next", "how many players are on a {sport} team",
    "who holds the record for most goals",
    # news, politics, history, geography
    "what's in the news today", "who is the prime minister of {country}",
    "what's the capital of {country}", "when did world war 2 end",
    "what is the population of {country}", "who invented the light bulb",
    "tell me about the roman empire", "what language do they speak in {country}",
    # health
    "what are the symptoms of {illness}", "how do i treat {illness} at home",
    "is it safe to take ibuprofen with coffee", "how much water should i drink a day",
    "book me an appointment with a dentist", "how many hours of sleep do adults need",
    # coding, tech support for other things
    "how do i reverse a list in {lang}", "write a {lang} function that sorts numbers",
    "why does my {lang} code throw a null pointer error", "what is a rest api",
    "my {thing} won't turn on", "how do i reset my {thing}", "my wifi keeps disconnecting",
    "how do i update my phone's software",
    # money, banking, travel: other businesses
    "what's my bank balance", "transfer 200 dollars to my savings",
    "how do i apply for a mortgage", "what's my credit score", "is bitcoin going up",
    "what is the exchange rate for euros", "book a flight to {city}",
    "find a cheap hotel in {city}", "when does the next train to {city} leave",
    "cancel my {company} subscription", "how do i contact {company}",
    "my {company} bill is too high", "change my seat on my {company} flight",
    "how do i file my taxes", "what's the interest rate on a car loan",
    "rent a car in {city}", "is my passport still valid for travel to {country}",
    # chit-chat, jokes, random
    "tell me a joke", "tell me a joke about {animal}", "what's the meaning of life",
    "do you dream", "write me a poem about the sea", "what's your favourite colour",
    "sing happy birthday", "flip a coin", "roll a dice", "give me a fun fact",
    "translate {word} to {tongue}", "how do you say {word} in {tongue}",
    "what should i name {animal}", "how often should i feed {animal}",
    "why does {animal} keep scratching", "how do i change a flat tire",
    "how do i unclog a sink", "how do i get a stain out of a carpet",
    "how do i grow tomatoes on a balcony", "when should i plant tulips",
    "what's a good gift for a 5 year old who loves dinosaurs",
    "help me write a cover letter", "how do i ask my boss for a raise",
    "what's the best university for engineering", "how do i study for an exam",
    "recommend a good book about history", "how do i meditate",
    "what's the difference between a virus and bacteria", "how do airplanes fly",
    "order a large pepperoni pizza", "book a table for two tonight",
    "call a taxi to the airport", "find a plumber near me",
    "how much does a used {thing} cost", "what's the best phone plan",
    # buying things this shop does not sell (it sells clothes, shoes, accessories)
    "where can i buy {goods}", "find the cheapest {goods} near me", "best price for {goods}",
    "show me {goods} on sale", "i need to buy {goods} for my house",
    "compare prices of {goods} online",
    # trivia and odd questions
    "is {topic} legal", "was {person} ever arrested", "did {person} really say that",
    "how old was {person} when they died", "what is {person} famous for",
    "pull up the {site} website", "open {site} for me",
    # banking and taxes (their refunds, accounts and payments are not the shop's)
    "when will i get my tax refund", "how do i add someone to my bank account",
    "close my savings account", "can i deposit a cheque at an atm",
    "upgrade my flight to business class", "answer the incoming call",
    "what are the opening hours of the post office", "how do i renew my driving licence",
]


# ------------------------------------------------------------------------------- styling
def typo(word: str, rng: random.Random) -> str:
    if word.lower() in COMMON_TYPOS and rng.random() < 0.6:
        return COMMON_TYPOS[word.lower()]
    if len(word) < 4 or not word.isalpha():
        return word
    i = rng.randrange(1, len(word) - 1)
    kind = rng.random()
    if kind < 0.4:  # swap two letters
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    if kind < 0.7:  # drop one
        return word[:i] + word[i + 1:]
    return word[:i] + word[i] + word[i:]  # double one


def add_typos(text: str, rng: random.Random) -> str:
    words = text.split(" ")
    candidates = [i for i, w in enumerate(words) if len(w) >= 4 and "{" not in w
                  and not any(c.isdigit() for c in w)]
    for i in rng.sample(candidates, min(len(candidates), rng.choice([1, 1, 2]))):
        words[i] = typo(words[i], rng)
    return " ".join(words)


def chat_spelling(text: str, rng: random.Random) -> str:
    for pattern, short in rng.sample(CHAT_SPELLING, 4):
        text = re.sub(pattern, short, text, flags=re.IGNORECASE)
    return text


def drop_punctuation(text: str) -> str:
    # keep placeholders and ids intact; drop sentence punctuation and apostrophes
    return re.sub(r"[?!.,;:']", "", text)


def capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


def style(text: str, rng: random.Random) -> str:
    if rng.random() < 0.2:
        text = chat_spelling(text, rng)
    if rng.random() < 0.25:
        text = add_typos(text, rng)
    roll = rng.random()
    if roll < 0.45:
        text = text.lower().replace("{{order number}}", "{{Order Number}}")
        text = re.sub(r"\{\{[a-z ]+\}\}", lambda m: m.group(0).title(), text)
    elif roll < 0.8:
        text = capitalise(text)
    elif roll < 0.83:
        text = text.upper() if "{{" not in text else text
    if rng.random() < 0.35:
        text = drop_punctuation(text)
    elif rng.random() < 0.3 and not text.endswith(("?", "!", ".")):
        text += rng.choice(["?", "?", ".", "!", "??", "!!", " ?"])
    return re.sub(r"\s+", " ", text).strip(" ,")


# ------------------------------------------------------------------------------ requests
def core_request(spec: dict[str, list[str]], rng: random.Random) -> str:
    kinds = [k for k in ("vp", "vp", "vp", "ing", "q", "q", "kw", "topic", "topic")
             if spec.get("vp" if k == "ing" else k)]
    kind = rng.choice(kinds)
    if kind == "vp":
        return rng.choice(VP_FRAMES).format(vp=rng.choice(spec["vp"]))
    if kind == "ing":
        vp = rng.choice(spec["vp"])
        verb, _, rest = vp.partition(" ")
        if verb not in GERUND:
            return rng.choice(VP_FRAMES).format(vp=vp)
        return rng.choice(ING_FRAMES).format(ing=f"{GERUND[verb]} {rest}".strip())
    if kind == "topic":
        return rng.choice(TOPIC_FRAMES).format(topic=rng.choice(spec["topic"]))
    return rng.choice(spec[kind])


def message(spec: dict[str, list[str]], rng: random.Random) -> str:
    request = core_request(spec, rng)
    parts: list[str] = []
    roll = rng.random()
    if roll < 0.15:
        parts.append(rng.choice(GREETINGS) + rng.choice([",", "!", "", "."]))
    elif roll < 0.22:
        parts.append(rng.choice(ANGRY_START))
    elif roll < 0.3 and len(request.split()) >= 4 and not request.lower().startswith(
            ("can", "could", "how", "what", "where", "help", "tell", "show", "any", "is")):
        parts.append(rng.choice(POLITE_START))
    if rng.random() < 0.22 and len(request.split()) >= 3:
        story = rng.choice((spec.get("ctx") or []) + CONTEXT_GENERIC[:6])
        joiner = rng.choice([" and ", ". ", ", ", " so "])
        request = story + joiner + request[:1].lower() + request[1:]
    parts.append(request)
    roll = rng.random()
    if roll < 0.2:
        parts.append(rng.choice(POLITE_END))
    elif roll < 0.26 and "{oid}" not in request and "oid" in "".join(spec.get("vp", [])):
        parts.append(rng.choice(["order {oid}", "it's order {oid}", "(order {oid})"]))
    elif roll < 0.3:
        parts.append(rng.choice(["i've been waiting all day", "this is urgent",
                                 "nobody is helping me", "need this sorted today"]))
    text = " ".join(parts)
    return style(fill(text, rng), rng)


def oos_message(rng: random.Random) -> str:
    text = rng.choice(OOS_TEMPLATES)
    text = re.sub(r"\{(\w+)\}", lambda m: rng.choice(OOS_FILLERS[m.group(1)]), text)
    roll = rng.random()
    if roll < 0.12:
        text = rng.choice(["hey", "hi", "quick question", "ok so", "hello bot"]) + " " + text
    elif roll < 0.2:
        text += rng.choice([" please", " thanks", " asap", " lol", " pls"])
    return style(text, rng)


# ---------------------------------------------------------------------------- collisions
def normalise(text: str) -> str:
    text = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", text.lower())
    text = re.sub(r"[^\w{} ]+", " ", text)
    return re.sub(r"\s+", " ", text).strip()


def existing_texts(root: Path, skip: Path) -> set[str]:
    texts: set[str] = set()
    for path in sorted((root / "bot" / "data").rglob("*.yml")):
        if path.resolve() == skip.resolve():
            continue
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for block in data.get("nlu") or []:
            if "intent" not in block:
                continue
            for line in (block.get("examples") or "").splitlines():
                if line.strip().startswith("- "):
                    texts.add(normalise(line.strip()[2:]))
    return texts


def eval_texts(root: Path) -> set[str]:
    """The benchmark's held-out utterances (bench/nlu_*.yml): never generated as training."""
    texts: set[str] = set()
    for path in sorted((root / "bench").glob("nlu_*.yml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if isinstance(data, dict):
            texts |= {normalise(t) for v in data.values() for t in v or []
                      if isinstance(t, str)}
    return texts


def generate(root: Path = PROJECT_ROOT, out: Path = DEFAULT_OUT) -> dict[str, list[str]]:
    taken = existing_texts(root, out) | eval_texts(root)
    wanted = {intent: WEAK.get(intent, STRONG_COUNT if intent in STRONG else DEFAULT_COUNT)
              for intent in INTENTS}
    wanted["out_of_scope"] = OUT_OF_SCOPE_COUNT
    candidates: dict[str, list[str]] = {}
    for intent, count in wanted.items():
        rng = random.Random(f"{SEED}:{intent}")
        seen: list[str] = []
        keys: set[str] = set()
        for _ in range(count * 40):
            text = (oos_message(rng) if intent == "out_of_scope"
                    else message(INTENTS[intent], rng))
            key = normalise(text)
            if key and key not in keys and key not in taken and len(text) <= 300:
                keys.add(key)
                seen.append(text)
            if len(seen) >= count * 2:
                break
        candidates[intent] = seen
    # a text produced for two intents is ambiguous: drop it from both
    owners: dict[str, set[str]] = {}
    for intent, texts in candidates.items():
        for text in texts:
            owners.setdefault(normalise(text), set()).add(intent)
    kept = {intent: [t for t in texts if len(owners[normalise(t)]) == 1][: wanted[intent]]
            for intent, texts in candidates.items()}
    return {intent: [t for t in texts if len(t.split()) <= MAX_WORDS]
            for intent, texts in kept.items()}


def render(result: dict[str, list[str]]) -> str:
    lines = [
        'version: "3.1"',
        "",
        "# GENERATED by scripts/generate_nlu.py -- do not edit by hand; change the script and",
        "# rerun it. Styled variants (typos, no punctuation, context, greetings, ids) of the",
        "# customer-service intents, and diverse out-of-scope requests.",
        "nlu:",
    ]
    for intent, texts in result.items():
        lines += [f"- intent: {intent}", "  examples: |"]
        lines += [f"    - {text}" for text in texts]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if the file differs from what would be generated")
    args = parser.parse_args()
    text = render(generate(PROJECT_ROOT, args.out))
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
        if current != text:
            print(f"{args.out} is out of date: run scripts/generate_nlu.py", file=sys.stderr)
            sys.exit(1)
        return
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
