"""The loopback MSSanté operator (tests/archive/mailserver.py) for the archive tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.archive.mailserver import MailServer, running_mail_server


@pytest.fixture(scope="session")
def mail_server_instance() -> Iterator[MailServer]:
    """One Postfix + Dovecot per test process (each pytest-xdist worker has its own)."""
    with running_mail_server() as server:
        yield server


@pytest.fixture
def mail_server(mail_server_instance: MailServer) -> MailServer:
    """The shared server with Postfix running and every mailbox empty. (A bounce of an
    earlier test may still arrive: wait for a mail by its content, not by count, where
    bounces are made.)"""
    server = mail_server_instance
    if not server.smtp_running():
        server.start_smtp()
    for user in server.users:
        server.empty(user)
    return server
