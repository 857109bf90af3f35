"""The offline mention scorer: sentiment, intent, priority and escalation."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cartcast import sentiment
from cartcast.sentiment import SCORER_VERSION, MentionScore, score_mention

REPO = Path(__file__).resolve().parents[1]
TEAM_MENTIONS = json.loads(
    (REPO / "infra" / "data" / "team_mentions.json").read_text(encoding="utf-8")
)
INTENTS = {"order_issue", "question", "complaint", "praise", "spam", "other"}
SENTIMENTS = {"negative", "neutral", "positive"}

# Measured with SCORER_VERSION "vader-3.3.2+cartcast.6": 62 of 64 intents and 61 of
# 64 sentiments match (0.969 and 0.953). cartcast.5's rules alone read 63 intents;
# the learned model (decision 0018, fourth round) calls one complaint, about a phone
# that was ordered, an order issue. The rules and these mentions come from the same
# team, so the bar guards against regressions; it is not an accuracy claim.
MIN_TEAM_INTENT_ACCURACY = 0.93
MIN_TEAM_SENTIMENT_ACCURACY = 0.93


def test_an_order_that_never_arrived_is_an_urgent_order_issue():
    score = score_mention("@northwindgoods my order #48213 never arrived")

    assert score.intent == "order_issue"
    assert score.sentiment == "negative"
    assert score.priority == 1
    assert score.response_due_min == 60
    assert "keyword:not_arrived" in score.reasons


def test_where_is_my_order_leans_negative_though_vader_calls_it_neutral():
    score = score_mention("@northwindgoods where is my order?")

    assert score.intent == "order_issue"
    assert score.sentiment == "negative"
    assert "adjust:problem" in score.reasons


@pytest.mark.parametrize(
    ("text", "keyword"),
    [
        ("@northwindgoods you sent me the wrong item, I ordered a wok", "wrong_item"),
        ("@northwindgoods the lamp arrived broken", "damaged"),
        ("@northwindgoods I want a refund for the blender", "refund_demand"),
        ("@northwindgoods please cancel my order #55012", "order_number"),
        ("@northwindgoods you charged me twice for one order", "charged_twice"),
        ("@northwindgoods my parcel is late again", "late"),
    ],
)
def test_order_problems_are_order_issues_answered_within_the_hour(text, keyword):
    score = score_mention(text)

    assert score.intent == "order_issue"
    assert score.response_due_min == 60
    assert f"keyword:{keyword}" in score.reasons


def test_a_happy_refund_is_praise_not_an_order_issue():
    score = score_mention(
        "@northwindgoods got my refund in two days, thank you so much!"
    )

    assert score.intent == "praise"
    assert score.sentiment == "positive"
    assert score.response_due_min is None


def test_a_plain_question_is_a_question_answered_within_four_hours():
    score = score_mention("@northwindgoods do you ship to Canada?")

    assert score.intent == "question"
    assert score.sentiment == "neutral"
    assert score.priority == 3
    assert score.response_due_min == 240


def test_an_order_problem_had_and_put_right_is_no_order_issue():
    score = score_mention(
        "@northwindgoods had an issue with a wrong colour, you swapped it in two "
        "days. customer for life"
    )

    assert score.intent in ("praise", "other")
    assert score.priority == 4
    assert "keyword:wrong_item" in score.reasons


@pytest.mark.parametrize(
    "text",
    [
        "@northwindgoods fastest delivery ever, ordered at 9pm and here by 10am",
        "@northwindgoods the oak table has been used every day since christmas",
    ],
)
def test_delight_in_words_vader_lacks_is_praise_not_an_order_issue(text):
    score = score_mention(text)

    assert score.intent == "praise"
    assert score.sentiment == "positive"


@pytest.mark.parametrize(
    "text",
    [
        "@northwindgoods these trainers are fire",
        "@northwindgoods new drop \U0001f525\U0001f525",
        "returned a lamp to @northwindgoods, money back in two days. painless",
        "love that @northwindgoods tucked a thank-you card into my order, made my day",
    ],
)
def test_slang_fire_and_praise_of_an_order_are_praise_not_a_problem(text):
    score = score_mention(text)

    assert (score.intent, score.sentiment) == ("praise", "positive")


def test_fire_that_burns_is_still_a_crisis():
    score = score_mention("the toaster from @northwindgoods caught fire")

    assert score.escalate and score.crisis


def test_a_but_that_says_the_problem_was_put_right_is_praise():
    score = score_mention(
        "got the wrong colour at first but @northwindgoods sorted the exchange in a "
        "day, great team"
    )

    assert score.intent == "praise"


def test_a_but_that_asks_for_more_stays_an_order_issue():
    score = score_mention(
        "@northwindgoods I returned two items but was only refunded for one. "
        "please advise"
    )

    assert score.intent == "order_issue"


def test_a_lost_parcel_tracked_down_is_no_order_issue():
    score = score_mention(
        "thought my package was lost, @northwindgoods tracked it down and it came "
        "the next morning"
    )

    assert score.intent != "order_issue"
    assert score.priority == 4


def test_a_wrong_item_still_to_be_put_right_stays_an_order_issue():
    score = score_mention("@northwindgoods you swapped it for the wrong colour again")

    assert score.intent == "order_issue"


@pytest.mark.parametrize(
    "text",
    [
        "@northwindgoods the lamp shade came cracked, you replaced it the next day. "
        "lovely people",
        "wrong size boots at first, @northwindgoods exchanged them within a week and "
        "paid the postage. brilliant",
        "@northwindgoods my rug was stuck at the depot, your team found it and had it "
        "to me by friday. thank you",
    ],
)
def test_a_fix_told_as_done_after_the_problem_is_praise(text):
    score = score_mention(text)

    assert score.intent == "praise"
    assert "adjust:settled" in score.reasons


# With no order named ("my dented tin"), a problem is a complaint, as before
# cartcast.13; either way it is answered early, not listed as over.
ORDER = ("order_issue",)
EITHER = ("order_issue", "complaint")


@pytest.mark.parametrize(
    ("text", "intents"),
    [
        # The problem comes back after the fix.
        (
            "@northwindgoods you replaced the cracked lamp but the new one came "
            "cracked too",
            ORDER,
        ),
        ("@northwindgoods the replacement you sent arrived damaged as well", ORDER),
        ("@northwindgoods refunded the shipping but the vase is still smashed", ORDER),
        # REMEDY reads "exchanged the wrong size" as one fix; it must not read on
        # across "and is now" to take in the problem that came back.
        ("@northwindgoods the late parcel was resent and is now late as well", ORDER),
        # The fix is not done, or not all of it.
        (
            "@northwindgoods swapped my wrong size boots last week, still waiting for "
            "the right ones",
            ORDER,
        ),
        (
            "@northwindgoods my parcel was lost and you said you would resend it. any "
            "news?",
            ORDER,
        ),
        ("@northwindgoods was only refunded for one of the two damaged mugs", ORDER),
        # The fix is hoped for or asked for, not told as done.
        ("@northwindgoods you charged me twice, can that get fixed", ORDER),
        ("@northwindgoods my parcel came damaged, hope it gets replaced", ORDER),
        # What follows the fix turns against it in words no problem cue knows.
        (
            "@northwindgoods the mug came chipped, you said you replaced it but "
            "nothing has turned up",
            ORDER,
        ),
        (
            "@northwindgoods the wrong item was exchanged, but now my account shows a "
            "double charge",
            ORDER,
        ),
        (
            "@northwindgoods the damaged throw was refunded, except the money never "
            "reached me",
            ORDER,
        ),
        # The fix is only said to be done.
        (
            "@northwindgoods the throw came torn. refunded, apparently. my bank "
            "disagrees",
            EITHER,
        ),
        ("@northwindgoods my dented tin was allegedly resent on monday", EITHER),
        # The fix is denied.
        ("@northwindgoods the broken clock was never replaced", EITHER),
        (
            "@northwindgoods my cracked bowl wasn't replaced, you just closed the "
            "ticket",
            EITHER,
        ),
        ("@northwindgoods the torn cushion hasn't been refunded", EITHER),
        # What was sent as the fix is faulty too.
        (
            "@northwindgoods my dented kettle was replaced and the new one leaks "
            "everywhere",
            EITHER,
        ),
        ("@northwindgoods faulty lamp swapped, replacement is faulty", EITHER),
        (
            "@northwindgoods cracked screen on arrival, replaced it, new one wont "
            "turn on",
            EITHER,
        ),
        (
            "@northwindgoods the torn bag was replaced two weeks ago and that one has "
            "torn too",
            EITHER,
        ),
    ],
)
def test_a_problem_not_over_after_a_fix_is_answered_early(text, intents):
    score = score_mention(text)

    assert "adjust:settled" not in score.reasons
    assert score.intent in intents
    assert score.priority <= 2


def test_true_to_size_and_nickel_free_are_not_praise():
    sizing = score_mention("@northwindgoods do these trainers run true to size?")
    material = score_mention("@northwindgoods are the earrings nickel free?")

    assert sizing.sentiment == "neutral"
    assert material.sentiment == "neutral"


def test_a_negative_question_is_a_complaint():
    score = score_mention("@northwindgoods why is your website so awful and slow?")

    assert score.intent == "complaint"
    assert score.sentiment == "negative"
    assert score.response_due_min == 120


def test_support_that_never_replies_is_a_complaint_even_without_an_order():
    score = score_mention("@northwindgoods emailed support twice, still no reply")

    assert score.intent == "complaint"
    assert score.sentiment == "negative"


@pytest.mark.parametrize(
    ("text", "cue"),
    [
        ("@northwindgoods your customer service is absolutely hopeless", "bad_service"),
        ("@northwindgoods checkout keeps crashing on my phone", "site_trouble"),
        ("@northwindgoods prices have gone up again, daylight robbery", "price"),
        ("@northwindgoods the rug looks nothing like the photos", "poor_quality"),
        ("@northwindgoods why did you discontinue... you removed my soap", "policy"),
        ("@northwindgoods too many emails, I unsubscribed twice", "marketing"),
        ("@northwindgoods not happy. never shopping here again", "fed_up"),
    ],
)
def test_complaints_about_the_shop_itself_need_no_order(text, cue):
    score = score_mention(text)

    assert score.intent == "complaint"
    assert f"complaint:{cue}" in score.reasons


@pytest.mark.parametrize(
    "text",
    [
        "@northwindgoods my sofa arrived without a single scratch, thank you!",
        "@northwindgoods thanks for sorting my broken lamp so quickly, lovely people",
        "@northwindgoods the replacement mug is perfect, thanks for the fast exchange",
    ],
)
def test_a_problem_put_right_or_a_delivery_without_damage_is_praise(text):
    score = score_mention(text)

    assert score.intent == "praise"
    assert score.priority == 4


@pytest.mark.parametrize(
    "text",
    [
        "@northwindgoods the screws are missing from my bookcase",
        "@northwindgoods any update on my order 55321?",
        "@northwindgoods the courier left it outside in the rain",
        "@northwindgoods can you send an invoice for order 44120?",
        "@northwindgoods can I change the delivery address on my order?",
    ],
)
def test_everyday_order_trouble_is_an_order_issue(text):
    assert score_mention(text).intent == "order_issue"


def test_a_gloomy_word_in_a_plain_question_stays_a_question():
    score = score_mention("@northwindgoods is the wool blanket itchy?")

    assert score.intent == "question"


@pytest.mark.parametrize(
    ("text", "crisis"),
    [
        ("@northwindgoods I had an allergic reaction to your face cream", "allergic"),
        ("@northwindgoods the charger overheated on my desk", "fire"),
        ("@northwindgoods the kettle left a burn on my hand", "burn"),
        ("@northwindgoods my son got an injury from the toy", "injury"),
        ("@northwindgoods my lawyer will be in touch about this lawsuit", "lawsuit"),
        ("@northwindgoods is this blender part of the recall?", "recall"),
        ("@northwindgoods this heater is unsafe", "unsafe"),
        ("@northwindgoods the phone caught fire while charging", "fire"),
        ("@northwindgoods your shop is a scam", "scam"),
    ],
)
def test_crisis_words_escalate_at_once(text, crisis):
    score = score_mention(text)

    assert score.escalate is True
    assert score.priority == 1
    assert score.response_due_min == 60
    assert any(reason.startswith(f"crisis:{crisis}") for reason in score.reasons)


def test_a_crisis_in_a_happy_sounding_mention_still_escalates():
    score = score_mention("@northwindgoods love the lotion but I got hives all over :)")

    assert score.escalate is True
    assert score.priority == 1


def test_slang_fire_does_not_escalate():
    score = score_mention("@northwindgoods this new perfume is fire, obsessed with it")

    assert score.escalate is False
    assert not any(reason.startswith("crisis:") for reason in score.reasons)


def test_a_negation_does_not_leak_into_the_next_sentence():
    score = score_mention("@northwindgoods it never arrived. Worst shop ever.")

    assert score.sentiment == "negative"


def test_an_angry_order_issue_escalates_and_a_calm_one_does_not():
    angry = score_mention(
        "@northwindgoods three weeks and my package never arrived. Worst shop ever."
    )
    calm = score_mention("@northwindgoods can I change the address on order #55120?")

    assert angry.escalate is True
    assert "escalate:angry" in angry.reasons
    assert calm.intent == "order_issue"
    assert calm.escalate is False


@pytest.mark.parametrize(
    "text",
    [
        "🚀 $MOON presale closes tonight, connect your wallet https://moon.example",
        "@northwindgoods follow back? #f4f #followback",
        "@northwindgoods earn $500 a day from home https://a.example https://b.example",
        "@northwindgoods WIN big #giveaway #win #free #iphone #contest",
    ],
)
def test_spam_has_the_lowest_priority_and_no_opinion(text):
    score = score_mention(text)

    assert score.intent == "spam"
    assert score.priority == 4
    assert score.priority == max(s.priority for s in _one_score_per_intent())
    assert score.sentiment == "neutral"
    assert score.response_due_min is None
    assert score.escalate is False


@pytest.mark.parametrize(
    "text", ["", "   ", "\n\t ", "@northwindgoods", "https://x.co"]
)
def test_empty_text_is_neutral_other_without_error(text):
    score = score_mention(text)

    assert score.intent == "other"
    assert score.sentiment == "neutral"
    assert score.compound == 0.0
    assert score.priority == 4
    assert score.escalate is False
    assert score.response_due_min is None


def test_very_long_text_is_scored():
    text = "@northwindgoods where is my order? " + "It is late. " * 5_000

    score = score_mention(text)

    assert score.intent == "order_issue"
    assert -1.0 <= score.compound <= 1.0


def test_emoji_are_scored_including_the_variation_selector_phones_send():
    bare = score_mention("@northwindgoods thank you for the note in my parcel ❤")
    with_selector = score_mention(
        "@northwindgoods thank you for the note in my parcel ❤️"
    )
    only_emoji = score_mention("😍😍😍")

    assert with_selector.compound == bare.compound
    assert with_selector.sentiment == "positive"
    assert only_emoji.sentiment == "positive"


def test_handles_and_links_are_not_scored():
    plain = score_mention("the sofa is lovely")
    decorated = score_mention(
        "@LoveItStore @happy_days the sofa is lovely https://great.example/love"
    )

    assert decorated.compound == plain.compound


def test_a_score_is_a_frozen_record_with_a_bounded_compound():
    score = score_mention("@northwindgoods great service!")

    assert isinstance(score, MentionScore)
    assert score.sentiment in SENTIMENTS
    assert score.intent in INTENTS
    assert -1.0 <= score.compound <= 1.0
    assert score.reasons[0].startswith("intent:")
    with pytest.raises(dataclasses.FrozenInstanceError):
        score.priority = 1  # type: ignore[misc]


def test_the_scorer_version_names_the_vader_it_adapts():
    assert re.fullmatch(r"vader-3\.3\.2\+cartcast\.\d+", SCORER_VERSION)


def test_importing_the_module_does_not_load_vader():
    probe = (
        "import sys, cartcast.sentiment; "
        "print('vaderSentiment.vaderSentiment' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "functions")}

    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_the_team_mentions_reach_their_expected_intent():
    hits = [
        score_mention(m["text"]).intent == m["expected_intent"] for m in TEAM_MENTIONS
    ]

    assert sum(hits) / len(hits) >= MIN_TEAM_INTENT_ACCURACY


def test_the_team_mentions_reach_their_expected_sentiment():
    hits = [
        score_mention(m["text"]).sentiment == m["expected_sentiment"]
        for m in TEAM_MENTIONS
    ]

    assert sum(hits) / len(hits) >= MIN_TEAM_SENTIMENT_ACCURACY


def test_every_crisis_like_team_mention_escalates():
    crisis_texts = [
        m["text"]
        for m in TEAM_MENTIONS
        if re.search(r"allergic|overheat|burning", m["text"], re.IGNORECASE)
    ]

    assert len(crisis_texts) == 3
    assert all(score_mention(text).escalate for text in crisis_texts)


def test_the_team_mentions_are_well_formed():
    usernames = [m["author"]["username"] for m in TEAM_MENTIONS]

    assert 55 <= len(TEAM_MENTIONS) <= 70
    assert len(set(usernames)) == len(usernames)
    assert all(re.fullmatch(r"\w{1,15}", name, re.ASCII) for name in usernames)
    assert all(m["author"]["name"] and len(m["text"]) <= 280 for m in TEAM_MENTIONS)
    assert {m["expected_intent"] for m in TEAM_MENTIONS} == INTENTS
    assert {m["expected_sentiment"] for m in TEAM_MENTIONS} == SENTIMENTS


def _one_score_per_intent() -> list[MentionScore]:
    return [
        score_mention("@northwindgoods my order never arrived"),
        score_mention("@northwindgoods do you ship to Canada?"),
        score_mention("@northwindgoods your app is terrible"),
        score_mention("@northwindgoods love the new lamp!"),
        score_mention("@northwindgoods saw your ad today"),
    ]


GATED_GROUPS = (
    ("CRISIS", sentiment.CRISIS, sentiment.CRISIS_GATE),
    ("NOT_ARRIVED", sentiment.NOT_ARRIVED, sentiment.NOT_ARRIVED_GATE),
    ("ORDER_PROBLEMS", sentiment.ORDER_PROBLEMS, sentiment.ORDER_PROBLEMS_GATE),
    ("PROBLEMS", sentiment.PROBLEMS, sentiment.PROBLEMS_GATE),
    ("SPAM_STRONG", sentiment.SPAM_STRONG, sentiment.SPAM_STRONG_GATE),
    ("ORDER_REFERENCES", sentiment.ORDER_REFERENCES, sentiment.ORDER_REFERENCES_GATE),
    ("COMPLAINTS", sentiment.COMPLAINTS, sentiment.COMPLAINTS_GATE),
)
GATE_PROBES = (
    "these insoles cured my back ache, no more blisters, the squeak is gone",
    "not gonna lie, no joke, this frame is sick and the climb was brutal",
    "ridiculously light and killer grip in the worst rain, thanks for nothing",
    "my kid cut my finger on the lid, urgent care visit",
    "we'll sue you, my lawyer says; small claims next",
    "the charger started sparking and made me sick",
    "you sent me a different shade instead of my usual one",
    "someone else's parcel arrived. i paid for two",
    "billed my card twice, want my money back",
    "box was empty, the tracking has not updated since monday",
    "nobody picked up, on hold for 40 min, a total rip-off",
    "follow back! check out my bio, dm for promo, 100x gains, to the moon",
    "buy 5k real followers, trading forex, contact him on whatsapp",
    "order no. 12345, #4411, cancel my order, my big blue parcel",
    "the site took my payment, was i charged? the order failed",
    "the towels pilled and faded, the seams are coming apart, it sheds",
    "the app logs me out and gives an error; search never finds a thing",
    "waiting three weeks, stuck for four days now, gave me a backache",
    "the chat bot is hopeless, they hung up on me, auto-reply again",
    "checkout is always down and the voucher doesn't apply; can't log in",
    "delivery charges are silly, prices have gone up, hidden fees",
    "the legs are missing from my order, the courier left it outside",
    "any update on my parcel? still says processing, not yet dispatched",
    "can you send an invoice for order 4410, and change my delivery address",
    "you've quietly discontinued it. too many emails. unsubscribed",
    "it shrank, smells of chemicals and looks nothing like the photos",
    "never shopping here again, not happy, sort it out. seriously?",
)
TRIAGE_MENTIONS = [
    mention
    for path in sorted((REPO / "tests" / "data").glob("triage_mentions*.json"))
    for mention in json.loads(path.read_text(encoding="utf-8"))
]


@pytest.mark.parametrize(("name", "patterns", "gate"), GATED_GROUPS)
def test_a_gate_never_hides_a_match_of_its_group(name, patterns, gate):
    texts = [m["text"] for m in TEAM_MENTIONS + TRIAGE_MENTIONS] + list(GATE_PROBES)

    for text in texts:
        lowered = sentiment._normalise(text).lower()
        gated = sentiment._matching(patterns, lowered, gate)
        ungated = sentiment._matching(patterns, lowered)
        assert gated == ungated, (name, text)


def test_one_search_for_every_stem_passes_the_gates_each_search_would():
    texts = [m["text"] for m in TEAM_MENTIONS + TRIAGE_MENTIONS] + list(GATE_PROBES)
    texts += ["cancelled", "unsubscribe", "failed delivery", "the only ones", "<3 !!!"]
    gates = list(sentiment._GATE_STEMS)

    for text in texts:
        lowered = sentiment._normalise(text).lower()
        passed = sentiment._gates().passed(lowered)
        assert passed == {gate for gate in gates if gate.search(lowered)}, text
    assert len(gates) >= 12


@pytest.mark.parametrize(("name", "patterns", "gate"), GATED_GROUPS)
def test_a_pattern_matches_only_where_its_needed_words_are(name, patterns, gate):
    texts = [m["text"] for m in TEAM_MENTIONS + TRIAGE_MENTIONS] + list(GATE_PROBES)

    for text in texts:
        lowered = sentiment._normalise(text).lower()
        for cue, rx, needed in sentiment._prechecked(patterns):
            if rx.search(lowered) and needed is not None:
                assert any(word in lowered for word in needed), (name, cue, text)


@pytest.mark.parametrize(
    ("pattern", "needed"),
    [
        (r"\bburn(?:s|ed|t|ing)?\b", ("burn",)),
        (
            r"\b(?:never|not|n't) (?:turned|turn) up\b|\bmissed it",
            (" turn", "missed it"),
        ),
        # "not yet" holds "not": one check covers all three.
        (r"(?:still not|not yet|not) here", ("not",)),
        (r"\bmine\b|\w+ing\b", ("ing", "mine")),
        (r"(?:late)?ness", ("ness",)),
        # "my" and " " are in too many texts to tell anything.
        (r"\bmy\b|\w+ing\b", None),
        (r"\bmy\b|\w+\b", None),
        (r"(?i)burn", None),
    ],
)
def test_needed_words_are_what_every_match_must_hold(pattern, needed):
    assert sentiment._needed_words(re.compile(pattern)) == needed


@pytest.mark.parametrize(
    "text",
    [
        "@northwindgoods could you resend the invoice for order 77120? thank you!",
        "@northwindgoods hi! please change the address on order NW-40218, ta",
        "@northwindgoods I'd like to return the grey hoodie, ref: 51870",
    ],
)
def test_a_polite_request_about_a_numbered_order_is_an_order_issue(text):
    score = score_mention(text)

    assert score.intent == "order_issue"
    assert "keyword:order_number" in score.reasons


@pytest.mark.parametrize(
    ("text", "keyword"),
    [
        ("@northwindgoods ordered the red kettle, got a blue one", "wrong_item"),
        ("@northwindgoods the rug came with a huge stain on it", "damaged"),
        ("@northwindgoods day 9 of waiting for the sofa to ship", "stalled"),
        ("@northwindgoods only refunded for one of the two mugs", "payment_problem"),
        ("@northwindgoods another week without my desk", "still_without"),
    ],
)
def test_order_problems_put_in_a_customer_s_own_words_are_order_issues(text, keyword):
    score = score_mention(text)

    assert score.intent == "order_issue"
    assert f"keyword:{keyword}" in score.reasons


@pytest.mark.parametrize(
    "text",
    [
        "@northwindgoods why do you need my phone number to sign up",
        "@northwindgoods the idea is great but the app is not usable",
        "queue at @northwindgoods was 35 minutes with one till open",
        "@northwindgoods your sizes run small, again",
    ],
)
def test_grievances_without_an_angry_word_are_complaints(text):
    assert score_mention(text).intent == "complaint"


def test_a_worn_out_product_is_a_complaint_even_beside_the_order_it_came_in():
    score = score_mention("@northwindgoods the kettle I ordered in May leaks")

    assert score.intent == "complaint"


def test_a_question_to_the_writer_s_followers_asks_the_shop_nothing():
    score = score_mention("anyone selling a used @northwindgoods stand mixer?")

    assert score.intent == "other"
    assert score.response_due_min is None


def test_a_question_mark_of_delight_is_praise_not_a_question():
    score = score_mention("@northwindgoods here in two days?? so fast, thank you")

    assert score.intent == "praise"


def test_a_question_without_its_mark_is_still_a_question():
    score = score_mention("hi @northwindgoods do you sell gift cards")

    assert score.intent == "question"


def test_comfort_and_wear_that_lasts_read_as_praise():
    score = score_mention("@northwindgoods these slippers are the comfiest I own")

    assert score.intent == "praise"
    assert "adjust:praised" in score.reasons


def test_a_negated_praise_word_adds_no_praise():
    score = score_mention("@northwindgoods would not recommend the blender")

    assert "adjust:praised" not in score.reasons


@pytest.mark.parametrize(
    "text",
    [
        "@northwindgoods your account may be suspended, verify here: x.example",
        "@northwindgoods we are a marketing agency and can boost your sales",
        "@northwindgoods replica handbags 1/10 of the price, dm us",
    ],
)
def test_fake_notices_pitches_and_counterfeits_are_spam(text):
    assert score_mention(text).intent == "spam"


def test_feeling_words_inside_a_name_count_for_nothing():
    named = score_mention("Watching the Super Bowl with the Grateful Dead on")
    plain = score_mention("Watching the game with the band on")

    assert named.compound == plain.compound


def test_a_sentence_may_open_with_a_feeling_word_before_a_name():
    score = score_mention("Love Lumen Home towels, so soft")

    assert score.sentiment == "positive"


@pytest.mark.parametrize(
    ("name", "gate", "pattern"),
    [
        ("EAGER", sentiment.EAGER_GATE, sentiment.EAGER),
        ("PRAISED", sentiment.PRAISED_GATE, sentiment.PRAISED),
        ("FED_UP", sentiment.FED_UP_GATE, sentiment.FED_UP),
        ("NEUTRAL_PHRASES", sentiment.NEUTRAL_PHRASES_GATE, sentiment.NEUTRAL_PHRASES),
        ("RELIEF", sentiment.RELIEF_GATE, sentiment.RELIEF_WORDS),
        *(
            (f"GRUDGE_WORDS_{n}", gate, pattern)
            for n, (gate, pattern) in enumerate(sentiment.GRUDGE_WORD_GROUPS)
        ),
        ("NO_PROBLEM", sentiment.SETTLED_GATE, sentiment.NO_PROBLEM),
    ],
)
def test_a_feeling_gate_never_hides_a_match_of_its_phrases(name, gate, pattern):
    texts = [m["text"] for m in TEAM_MENTIONS + TRIAGE_MENTIONS] + list(GATE_PROBES)

    for text in texts:
        lowered = sentiment._normalise(text).lower()
        if pattern.search(lowered):
            assert gate.search(lowered), (name, text)


def test_json_escapes_left_in_a_post_are_read_as_characters():
    escaped = score_mention("the app doesn\\u2019t work and support doesn\\u2019t care")
    plain = score_mention("the app doesn't work and support doesn't care")

    assert escaped.compound == plain.compound


def test_a_lone_surrogate_escape_is_left_as_it_was():
    assert sentiment._normalise("a \\ud800 b") == "a \\ud800 b"
    assert score_mention("a \\ud800 b").intent == "other"


def test_an_eager_customer_reads_positive_and_a_fed_up_one_negative():
    assert score_mention("can't wait for my new boots to get here").sentiment == (
        "positive"
    )
    assert score_mention("smh, the app logged me out again").sentiment == "negative"


def test_stems_nested_by_prefix_match_what_the_plain_alternation_matches():
    stems = "app|appalling|cut |care|car|0x|won't let|see-through"
    nested, plain = sentiment._stems(stems), re.compile(stems)
    probes = ["apple", "appal", "a cut", "cut it", "scary", "10x", "won't", "see-thru"]

    for probe in probes + stems.split("|"):
        assert bool(nested.search(probe)) == bool(plain.search(probe)), probe


@pytest.mark.parametrize(
    "text",
    [
        "these insoles got rid of my heel pain. not even kidding",
        "this jacket is sick, wore it all week",
        "stupidly light frame, climbs like a dream",
        "rode through the worst storm of the winter in this jacket, bone dry",
        "not gonna lie, the new range is lovely",
        "these boots have changed my life",
        "nervous about the fit but the first boots in years that don't hurt",
    ],
)
def test_praise_put_in_a_grudge_s_words_is_praise(text):
    # Relief, slang, hard going and vouching (decision 0047).
    scored = score_mention(text)

    assert (scored.intent, scored.sentiment) == ("praise", "positive"), scored.reasons


def test_a_person_who_is_sick_is_no_slang_praise():
    assert score_mention("my son is sick today so we missed the ride").sentiment == (
        "negative"
    )


@pytest.mark.parametrize(
    "text",
    [
        "Please can my booking B-2291 be moved to the afternoon? Thank you!",
        "Hello, could you move my install on the 14th to the week after please? "
        "Job J-5530. Many thanks",
        "please could my plan R-8812 start next month instead of this one? thank you",
    ],
)
def test_a_polite_request_the_model_is_sure_of_is_an_order_issue(text):
    # A cheer ("thank you") keeps a happy text's order words from the model,
    # unless the model is all but sure (MODEL_ORDER_OVER_CHEER, decision 0055).
    scored = score_mention(text)

    assert scored.intent == "order_issue" and "model:order_issue" in scored.reasons


def test_thanks_for_nothing_is_no_thanks():
    scored = score_mention("thanks for nothing. three emails, zero replies")

    assert scored.intent == "complaint" and "keyword:no_response" in scored.reasons


def test_a_claim_held_up_in_quotes_is_a_guessed_complaint():
    scored = score_mention("the 'premium' gift box turned out to be a paper bag")

    assert scored.intent == "complaint"
    assert sentiment.QUOTED_REASON in scored.reasons


@pytest.mark.parametrize(
    "text",
    [
        "bonjour, ma commande 55120 n'est toujours pas arrivée, vous pouvez voir ?",
        "hola, mi pedido 48213 sigue sin llegar. ¿me ayudan?",
        "hoi, bestelling 77310 is nog niet verzonden, kunnen jullie kijken?",
    ],
)
def test_an_order_numbered_in_the_customer_s_own_language_is_an_order_issue(text):
    scored = score_mention(text)

    assert scored.intent == "order_issue" and "keyword:order_number" in scored.reasons


@pytest.mark.parametrize(
    "text",
    [
        "@northwindgoods hope it gets refunded",
        "@northwindgoods hopefully the broken lamp gets replaced soon",
        "@northwindgoods fingers crossed i get refunded",
        "@northwindgoods hope you refund me",
        "@northwindgoods refund please",
        "@northwindgoods hope this gets fixed, the zip broke on day one",
    ],
)
def test_a_fix_hoped_or_asked_for_is_not_a_problem_put_right(text):
    score = score_mention(text)

    assert "adjust:settled" not in score.reasons
    assert score.intent != "praise"


@pytest.mark.parametrize(
    "text",
    [
        "\U0001f600" * 25_000,
        ("the parcel never came. " * 1200)[:25_000],
        "word " * 100 + "x" * 700 + " end",
    ],
)
def test_a_long_text_reaches_vader_in_pieces_no_longer_than_a_post(text):
    # VADER's work grows with the square of a text's words: 25,000 emoji in one
    # call took over four minutes.
    pieces = sentiment.vader_pieces(text)

    assert all(0 < len(piece) <= sentiment.VADER_PIECE_CHARS for piece in pieces)
    assert "".join(pieces).replace(" ", "") == "".join(
        sentiment.SENTENCE_END.split(text)
    ).replace(" ", "")


def test_a_long_text_keeps_the_feeling_of_its_pieces():
    happy = score_mention(("love it, thank you! " * 1300)[:25_000])
    angry_post = "my order never arrived and nobody answers. "
    angry = score_mention((angry_post * 600)[:25_000])

    assert happy.sentiment == "positive"
    assert (angry.intent, angry.sentiment) == ("order_issue", "negative")
