"""The real packaging and mail transport behind the service's interfaces
(``archive.ports``), configured from ``RELAIS_ARCHIVE_*`` (docs/configuration.md)."""

from __future__ import annotations

from archive.delivery import SmtpDelivery
from archive.packaging import Packaging
from archive.ports import Delivery, Packager
from archive.service import ArchivingClient, ServiceSettings
from archive.transport import TransportConfigError, imap_config_from_env, smtp_config_from_env
from client.cli_errors import CliError


def smtp_delivery() -> SmtpDelivery:
    """The MSSanté operator of ``RELAIS_ARCHIVE_SMTP_*`` / ``RELAIS_ARCHIVE_IMAP_*``."""
    try:
        return SmtpDelivery(smtp_config_from_env(), imap_config_from_env())
    except TransportConfigError as error:
        raise CliError(f"messagerie : {error}", f"mail settings: {error}") from None


def real_ports(client: ArchivingClient, settings: ServiceSettings) -> tuple[Packager, Delivery]:
    packager = Packaging(client=client, sender=settings.sender, recipients=settings.recipients)
    return packager, smtp_delivery()
