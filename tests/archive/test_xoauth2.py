"""SASL XOAUTH2 (the Ségur "API LPS" login): the archiver gets a bearer token from the
loopback OpenID provider (panva's oidc-provider, tests/identity/provider) with the
client credentials grant, and logs in with it to Postfix (SMTP AUTH through Dovecot)
and Dovecot (IMAP), whose OAuth2 passdb asks the provider's introspection endpoint
whether the token is active and issued to that mailbox."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import pytest

from archive.oauth2 import ClientCredentials
from archive.transport import (
    DeliveryError,
    MailboxError,
    TransportConfigError,
    fetch_new,
    imap_config_from_env,
    send_mail,
    smtp_config_from_env,
)
from tests.archive.mailserver import MailServer, running_mail_server
from tests.identity.psc_provider import PscProvider, start_provider

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]
ARCHIVER = "archiver@relais.mssante.test"
SECRET = "archiver-client-secret"
INTROSPECTION_SECRET = "mail-server-secret"
REALM = "/auth/realms/esante-wallet/protocol/openid-connect"


def software(client_id: str, secret: str) -> dict[str, object]:
    return {
        "client_id": client_id,
        "client_secret": secret,
        "grant_types": ["client_credentials"],
        "response_types": [],
        "redirect_uris": [],
    }


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PscProvider]:
    started = start_provider(
        log_path=tmp_path_factory.mktemp("oidc") / "provider.log",
        relais_origins=[],
        extra_clients=[
            software(ARCHIVER, SECRET),  # the archiver's mailbox software
            software("mail-server", INTROSPECTION_SECRET),  # Dovecot, to introspect
            software("someone-else@relais.mssante.test", SECRET),
        ],
    )
    yield started
    started.stop()


@pytest.fixture(scope="module")
def oauth2_mail_server(provider: PscProvider) -> Iterator[MailServer]:
    introspection = (
        f"http://mail-server:{INTROSPECTION_SECRET}@127.0.0.1:{provider.port}"
        f"{REALM}/token/introspect"
    )
    with running_mail_server(oauth2_introspection=introspection) as server:
        yield server


def credentials(provider: PscProvider, client_id: str = ARCHIVER) -> ClientCredentials:
    return ClientCredentials(
        token_url=f"{provider.origin}{REALM}/token", client_id=client_id, client_secret=SECRET
    )


def mail(server: MailServer) -> EmailMessage:
    message = EmailMessage()
    message["From"] = server.users["archiver"]
    message["To"] = server.users["records"]
    message["Subject"] = "Archive"
    message["Message-ID"] = make_msgid(domain="archive.relais")
    message.set_content("Archive de conversation.\n")
    return message


def test_smtp_and_imap_log_in_with_a_token(
    provider: PscProvider, oauth2_mail_server: MailServer
) -> None:
    server = oauth2_mail_server
    tokens = credentials(provider)
    message = mail(server)
    result = send_mail(replace(server.smtp_config(), password=None, oauth2=tokens), message)
    assert result.code == 250
    server.wait_for_message("records", message["Message-ID"].encode())
    assert f"sasl_method=XOAUTH2, sasl_username={ARCHIVER}" in server.postfix_log()
    # A receipt waits in the archiver's mailbox; it reads it with the same token (kept
    # until shortly before it expires: one request to the provider).
    reply = mail(server)
    server.submit(reply.as_bytes(), user="records", to="archiver")
    server.wait_for_message("archiver", reply["Message-ID"].encode())
    cached = tokens._cached
    imap = replace(server.imap_config(), password="", oauth2=tokens)
    [fetched] = fetch_new(imap, after_uid=0).mails
    assert reply["Message-ID"].encode() in fetched.raw
    assert f"user=<{ARCHIVER}>, method=XOAUTH2" in server.dovecot_log()
    assert tokens._cached == cached


def test_a_token_for_another_mailbox_or_a_wrong_secret_is_refused(
    provider: PscProvider, oauth2_mail_server: MailServer, tmp_path: Path
) -> None:
    server = oauth2_mail_server
    # A valid token, but issued to another mailbox's software: Dovecot refuses it.
    other = credentials(provider, "someone-else@relais.mssante.test")
    with pytest.raises(DeliveryError) as refused:
        send_mail(replace(server.smtp_config(), password=None, oauth2=other), mail(server))
    assert refused.value.code == "authentication_failed"
    with pytest.raises(MailboxError) as refused_imap:
        fetch_new(replace(server.imap_config(), password="", oauth2=other), after_uid=0)
    assert refused_imap.value.code == "imap_login_failed"
    # No token at all: the provider refuses the credentials; the mail is kept for later.
    wrong = replace(credentials(provider), client_secret="not-the-secret")
    with pytest.raises(DeliveryError) as no_token:
        send_mail(replace(server.smtp_config(), password=None, oauth2=wrong), mail(server))
    assert (no_token.value.code, no_token.value.permanent) == ("oauth2_token_failed", False)
    assert "401" in no_token.value.reply or "400" in no_token.value.reply


def test_the_settings_turn_xoauth2_on() -> None:
    base = {
        "RELAIS_ARCHIVE_SMTP_HOST": "mx.mssante.test",
        "RELAIS_ARCHIVE_SMTP_CLIENT_CERT": "/etc/relais/cert.pem",
        "RELAIS_ARCHIVE_SMTP_CLIENT_KEY": "/etc/relais/key.pem",
        "RELAIS_ARCHIVE_SMTP_CA_BUNDLE": "/etc/relais/igc-sante.pem",
        "RELAIS_ARCHIVE_SMTP_USERNAME": ARCHIVER,
        "RELAIS_ARCHIVE_SMTP_PASSWORD": "mailbox-password",
    }
    assert smtp_config_from_env(base).oauth2 is None
    token = {
        "RELAIS_ARCHIVE_OAUTH2_TOKEN_URL": "https://auth.mssante.test/token",
        "RELAIS_ARCHIVE_OAUTH2_CLIENT_ID": ARCHIVER,
        "RELAIS_ARCHIVE_OAUTH2_CLIENT_SECRET": SECRET,
    }
    smtp = smtp_config_from_env({**base, **token})
    imap = imap_config_from_env({**base, **token})
    assert smtp.oauth2 is not None
    assert imap.oauth2 is not None
    assert (smtp.oauth2.token_url, imap.oauth2.client_id) == (token[_URL], ARCHIVER)
    assert SECRET not in repr(smtp) + repr(imap)
    with pytest.raises(TransportConfigError, match="https"):
        smtp_config_from_env({**base, **token, _URL: "http://auth.mssante.test/token"})
    without_user = {k: v for k, v in base.items() if not k.endswith("USERNAME")}
    with pytest.raises(TransportConfigError, match="USERNAME"):
        smtp_config_from_env({**without_user, **token})
    with pytest.raises(TransportConfigError, match="CLIENT_SECRET"):
        smtp_config_from_env({**base, _URL: token[_URL], "RELAIS_ARCHIVE_OAUTH2_CLIENT_ID": "x"})


_URL = "RELAIS_ARCHIVE_OAUTH2_TOKEN_URL"
