"""Harnesses, not the product: KSR scoring, eval, simulate, the Presage peer, and the predict, crash, soak and
learning benches. Only `app.cli` and the tests import them.
"""
