"""The root of hasf's typed errors.

Library code raises; only entry points (the OCF dispatcher, fence front ends,
the hasf-cib CLI) turn errors into messages and exit statuses.  Every message
passes through secret redaction before anyone can see it.
"""

from hasf.secret import redact


class HasfError(Exception):
    """An error a person can act on; str() is already redacted."""

    def __init__(self, message=""):
        super().__init__(redact(str(message)))

    @property
    def message(self):
        return self.args[0] if self.args else ""
