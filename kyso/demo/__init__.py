"""The demo province (Nghệ An): its PKI, seals and officers' certificates, drawn artwork.

Only the shell makes demo data (``kyso demo init``, ``kyso pki init``); the domain packages
know agencies (:mod:`directory`) and certificates (:mod:`certs`), not a particular province.
"""
