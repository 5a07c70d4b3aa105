"""Kyso's exchange relay: the agency directory, packages, receipts and statuses."""
