"""``openfiles events``: the NATS relay of one mounted volume (issue 15).

The engine (trio) starts this program as its child when it mounts with
``--events``, and talks to it over the child's stdin and stdout in the lines of
:mod:`openfiles_contracts.event`. The relay owns the NATS connection (nats-py
is asyncio, which the engine may not import): it publishes what the engine
sends, forwards the volume's events from other mounts, and reports whether it
is connected. It exits when its stdin closes (the engine is gone).
"""
