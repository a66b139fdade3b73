"""The real packaging and mail transport behind the service's interfaces
(``archive.ports``)."""

from __future__ import annotations

from archive.ports import Delivery, Packager
from archive.service import ArchivingClient, ServiceSettings
from client.cli_errors import CliError


def real_ports(client: ArchivingClient, settings: ServiceSettings) -> tuple[Packager, Delivery]:
    raise CliError(
        "l'empaquetage IHE XDM et le transport MSSanté ne sont pas installés",
        "the IHE XDM packaging and the MSSanté transport are not installed",
    )
