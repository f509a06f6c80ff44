"""Test doubles users can use for their own agent tests."""

from runtime.testing.server import ScriptedReply, ScriptedServer

__all__ = ["ScriptedReply", "ScriptedServer"]
