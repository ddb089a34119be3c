"""Evaluation: replay simulated traffic with and without a learner and score it against
simulation truth (which no learner ever reads)."""
