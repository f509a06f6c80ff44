"""Deploying LoRA adapters to a live vLLM server, behind an eval gate."""
