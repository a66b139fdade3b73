"""What every device of one practitioner shares: the identity key, the account secret
and the recovery public key (``e2ee.identity``, ``e2ee.recovery``).

The first device makes them and shows the recovery code once; linked devices receive
them in the link bundle; a device recovered with the code gets the identity key and the
account secret back from the sealed backup.
"""

from __future__ import annotations

import secrets
from typing import Any

from e2ee import recovery
from e2ee.encoding import JsonObject, b64u, unb64u
from e2ee.identity import IdentityKeyPair


class Account:
    """The part of the key store under ``data["account"]``::

    {"identity": b64u, "secret": b64u, "recovery_key": b64u | None}
    """

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    @classmethod
    def create(cls) -> tuple[Account, recovery.RecoveryCode]:
        code = recovery.RecoveryCode.generate()
        identity = IdentityKeyPair.generate()
        account = cls(
            {
                "identity": b64u(identity.private_bytes()),
                "secret": b64u(secrets.token_bytes(recovery.ACCOUNT_SECRET_BYTES)),
                "recovery_key": b64u(code.public_key()),
            }
        )
        return account, code

    @classmethod
    def from_parts(
        cls, *, identity_private: bytes, account_secret: bytes, recovery_key: bytes | None
    ) -> Account:
        return cls(
            {
                "identity": b64u(identity_private),
                "secret": b64u(account_secret),
                "recovery_key": b64u(recovery_key) if recovery_key else None,
            }
        )

    @property
    def identity(self) -> IdentityKeyPair:
        return IdentityKeyPair.from_private_bytes(unb64u(self.data["identity"]))

    @property
    def secret(self) -> bytes:
        return unb64u(self.data["secret"])

    @property
    def recovery_key(self) -> bytes | None:
        value = self.data.get("recovery_key")
        return unb64u(value) if value else None

    def account_key(self, purpose: str) -> bytes:
        return recovery.account_key(self.secret, purpose)

    def identity_backup(self, national_id: str) -> bytes | None:
        """The identity backup sealed to the recovery key (None without one)."""
        if self.recovery_key is None:
            return None
        return recovery.seal(
            self.recovery_key,
            recovery.identity_backup(
                national_id=national_id,
                identity_private=self.identity.private_bytes(),
                account_secret=self.secret,
            ),
        )

    def bundle_part(self) -> JsonObject:
        """What a link bundle carries of the account."""
        return {
            "identity_key": self.data["identity"],
            "account_secret": self.data["secret"],
            "recovery_key": self.data.get("recovery_key"),
        }

    @classmethod
    def from_bundle(cls, bundle: JsonObject) -> Account:
        recovery_key = bundle.get("recovery_key")
        return cls.from_parts(
            identity_private=unb64u(bundle.get("identity_key"), length=32, field="identity_key"),
            account_secret=unb64u(
                bundle.get("account_secret"),
                length=recovery.ACCOUNT_SECRET_BYTES,
                field="account_secret",
            ),
            recovery_key=unb64u(recovery_key, length=32) if recovery_key else None,
        )
