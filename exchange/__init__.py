"""Kyso's exchange relay: packages, receipts and statuses between the agencies of the directory.

The agency side needs only :mod:`exchange.client` and :mod:`exchange.wire`; the rest is the relay.
"""
