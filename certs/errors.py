"""Exceptions raised by the PKI; the CLI and HTTP layers map each to one message or status."""


class PKIError(Exception):
    """Base class for every error the PKI reports to a user."""


class WrongPassphrase(PKIError):
    """A key file could not be decrypted with the passphrase given."""


class KeyFileError(PKIError):
    """A key file is missing, unreadable or not a PKCS#12/PKCS#8 key."""


class UnknownAgency(PKIError):
    """An agency code is not in the directory."""


class UnknownCertificate(PKIError):
    """A serial number was never issued by this CA."""


class AlreadyRevoked(PKIError):
    """The certificate is already on the revocation list."""


class PKINotInitialised(PKIError):
    """The PKI directory does not hold a CA yet (run `kyso pki init`)."""


class PKIExists(PKIError):
    """`kyso pki init` would overwrite an existing CA."""


class InvalidName(PKIError):
    """A subject name or attribute is empty or not acceptable."""
