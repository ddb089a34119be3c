"""How well the real recogniser hears the answers to "Did you mean ...?" (yes, no, never mind).

    python bench/experiments/reply_asr.py [--conditions 40]

The real channel's language model is built from the assistant's command sentences, so it has no
"yes" or "no" (the noisy channel learned from it hears "yes" as "players"). A recogniser that
asks questions must expect their answers: this decodes flite speech of every reply the simulated
users say (``selflearn.simulation.household.YES_WORDS`` / ``NO_WORDS``, plus "never mind") under
sampled speaking conditions, with the domain model alone and with the domain model plus the
replies (:data:`selflearn.dialogue.REPLY_SENTENCES`, the dialogue-state model), and
prints how often :func:`selflearn.dialogue.read_reply` reads the intended answer, and
how often domain requests are misread as answers under the dialogue-state model. The second
figure is :data:`selflearn.assistant.asr.replies.REPLY_ACCURACY` (the noisy channel's replies).
"""

from __future__ import annotations

import argparse
import random
from collections import Counter

from selflearn.assistant.asr import RealASR, sample_condition
from selflearn.assistant.asr.replies import reply_lm_sentences
from selflearn.assistant.lm import domain_sentences
from selflearn.dialogue import read_reply
from selflearn.simulation.household import NO_WORDS, YES_WORDS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conditions", type=int, default=40, help="speaking conditions per reply")
    args = parser.parse_args()
    rng = random.Random(7)
    replies = sorted({*YES_WORDS, *NO_WORDS, "never mind"})
    utterances = [(text, sample_condition(rng)) for text in replies for _ in range(args.conditions)]
    requests = [(text, sample_condition(rng)) for text in domain_sentences(300, seed=99)[:300]]
    dialogue_state = RealASR(extra_sentences=reply_lm_sentences())
    channels = (("domain LM", RealASR()), ("domain + replies LM", dialogue_state))
    for name, asr in channels:
        heard = asr.transcribe_many(utterances, progress=True)
        right: Counter[bool] = Counter()
        for (said, _), trace in zip(utterances, heard, strict=True):
            right[read_reply(trace.text) == read_reply(said)] += 1
        wrongly = sum(read_reply(t.text) is not None for t in asr.transcribe_many(requests, progress=True))
        total = sum(right.values())
        print(
            f"{name}: replies read right {right[True]}/{total} ({right[True] / total:.1%}); "
            f"requests misread as replies {wrongly}/{len(requests)}"
        )


if __name__ == "__main__":
    main()
