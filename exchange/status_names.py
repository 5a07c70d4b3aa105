"""Names for edXML status codes, for people typing them (``kyso status --code accepted``).

Kept apart from :mod:`exchange.client` so that the command line can list them in its help
without importing the client and the signing stack.
"""

CODE_NAMES = {
    "arrived": "01",
    "refused": "02",
    "refuse": "02",
    "accepted": "03",
    "registered": "03",
    "assigned": "04",
    "in-progress": "05",
    "processing": "05",
    "done": "06",
    "completed": "06",
    "recall": "13",
    "recalled": "13",
    "agree": "15",
    "agreed": "15",
    "deny": "16",
    "denied": "16",
}
