"""Allowlist policies: the decide stage of the gate."""
