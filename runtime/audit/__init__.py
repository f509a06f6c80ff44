"""The audit stage: one hash-chained record per step of every call."""
