"""The archiver's mail transport against a real Postfix and Dovecot on loopback."""

from __future__ import annotations

import dataclasses
import email
import smtplib
import socket
import ssl
import warnings
from email import policy
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import pytest

from archive.transport import (
    DeliveryError,
    MailboxError,
    SmtpConfig,
    TransportConfigError,
    fetch_new,
    find_message,
    imap_config_from_env,
    send_mail,
    smtp_config_from_env,
    tls_context,
)
from tests.archive.mailserver import PASSWORD, SLOW_SECONDS, MailServer

pytestmark = pytest.mark.timeout(180)


def archive_mail(server: MailServer, *, to: str | list[str] | None = None) -> EmailMessage:
    message = EmailMessage()
    message["From"] = server.users["archiver"]
    message["To"] = to or server.users["records"]
    message["Subject"] = "XDM/1.0/DDM+Transcription de conversation"
    message["Message-ID"] = make_msgid(domain="relais.mssante.test")
    message["Disposition-Notification-To"] = server.users["archiver"]
    message["X-MSS-NIL"] = "TEST-NIL-0000"
    message.set_content("Archive de conversation.\n")
    message.add_attachment(
        bytes(range(256)) * 64, maintype="application", subtype="zip", filename="IHE_XDM.zip"
    )
    return message


def test_mail_sent_with_starttls_and_client_certificate_is_read_back_over_imap(
    mail_server: MailServer,
) -> None:
    message = archive_mail(mail_server)
    result = send_mail(mail_server.smtp_config(), message)
    assert result.code == 250
    assert result.queue_id is not None
    assert result.reply.startswith("250 2.0.0 Ok: queued as ")
    assert result.refused == {}

    [stored] = mail_server.wait_for_mail("records", 1)
    received = email.message_from_bytes(stored, policy=policy.default)
    assert received["Message-ID"] == message["Message-ID"]
    assert received["X-MSS-NIL"] == "TEST-NIL-0000"
    assert received["Disposition-Notification-To"] == mail_server.users["archiver"]
    [attachment] = received.iter_attachments()
    assert attachment.get_content() == bytes(range(256)) * 64
    # Postfix verified the archiver's certificate and says so in its Received header.
    assert 'Client CN "ARCHIVEUR RELAIS TEST"' in stored.decode()
    assert "(verified OK)" in stored.decode()

    batch = fetch_new(mail_server.imap_config("records"), after_uid=0)
    assert batch.uidvalidity > 0
    [fetched] = batch.mails
    assert fetched.raw == stored
    assert not fetched.truncated
    assert fetched.size == len(stored)
    assert not batch.more
    again = fetch_new(mail_server.imap_config("records"), after_uid=fetched.uid)
    assert (again.uidvalidity, again.mails) == (batch.uidvalidity, [])


def test_imap_over_implicit_tls_reads_the_same_mailbox(mail_server: MailServer) -> None:
    message = archive_mail(mail_server)
    send_mail(mail_server.smtp_config(), message)
    [stored] = mail_server.wait_for_mail("records", 1)
    batch = fetch_new(mail_server.imap_config("records", implicit_tls=True), after_uid=0)
    assert [mail.raw for mail in batch] == [stored]


def test_fetch_is_bounded_in_messages_and_bytes(mail_server: MailServer) -> None:
    for _ in range(3):
        send_mail(mail_server.smtp_config(), archive_mail(mail_server))
    stored = mail_server.wait_for_mail("records", 3)
    config = mail_server.imap_config("records")

    first = fetch_new(config, after_uid=0, max_messages=2)
    assert [mail.raw for mail in first] == stored[:2]
    assert first.more
    rest = fetch_new(config, after_uid=first.mails[-1].uid, max_messages=2)
    assert [mail.raw for mail in rest] == stored[2:]
    assert not rest.more

    # A byte budget smaller than two messages: one message, and more to come.
    budget = fetch_new(config, after_uid=0, max_bytes=len(stored[0]) + 10)
    assert len(budget) == 1
    assert budget.more
    # A message larger than the per-message limit comes cut, and says so.
    cut = fetch_new(config, after_uid=0, max_messages=1, max_message_bytes=1000)
    [mail] = cut.mails
    assert mail.truncated
    assert mail.raw == stored[0][:1000]
    assert mail.size == len(stored[0])


def test_fetch_is_read_only(mail_server: MailServer) -> None:
    send_mail(mail_server.smtp_config(), archive_mail(mail_server))
    mail_server.wait_for_mail("records", 1)
    fetch_new(mail_server.imap_config("records"), after_uid=0)
    fetch_new(mail_server.imap_config("records"), after_uid=0)
    # Still unseen: the archiver's reading changes nothing in the mailbox.
    assert b"\\Seen" not in mail_server.flags("records")


def test_server_refuses_mail_without_starttls(mail_server: MailServer) -> None:
    with smtplib.SMTP("localhost", mail_server.smtp_port, timeout=10) as smtp:
        smtp.ehlo()
        assert smtp.has_extn("starttls")
        assert not smtp.has_extn("auth")  # no login in clear
        code, reply = smtp.mail(mail_server.users["archiver"])
    assert code == 530
    assert b"5.7.0 Must issue a STARTTLS command first" in reply


def test_archiver_says_nothing_to_a_server_without_starttls(mail_server: MailServer) -> None:
    config = dataclasses.replace(mail_server.smtp_config(), port=mail_server.plain_smtp_port)
    with pytest.raises(DeliveryError) as refused:
        send_mail(config, archive_mail(mail_server))
    assert refused.value.code == "tls_failed"
    assert refused.value.needs_configuration
    # Postfix counts the commands of each session: EHLO and QUIT, no login, no MAIL.
    session = mail_server.wait_for_log_line("postfix-test-plain/smtpd", "disconnect from")
    assert session.endswith("ehlo=1 quit=1 commands=2")


def test_client_certificate_from_another_ca_is_refused_and_nothing_is_queued(
    mail_server: MailServer,
) -> None:
    message = archive_mail(mail_server)
    with pytest.raises(DeliveryError) as refused:
        send_mail(mail_server.smtp_config("foreign"), message)
    assert refused.value.code == "client_certificate_refused"
    assert not refused.value.permanent  # the archive is kept and sent again once fixed
    assert refused.value.needs_configuration
    assert refused.value.message_fr
    assert refused.value.reply == "421 4.7.1 mx.mssante.test Error: Client certificate not trusted"
    # The same archive goes through with the right certificate.
    send_mail(mail_server.smtp_config(), message)
    [stored] = mail_server.wait_for_mail("records", 1)
    assert message["Message-ID"].encode() in stored


def test_server_certificate_from_an_untrusted_ca_is_refused(mail_server: MailServer) -> None:
    config = dataclasses.replace(mail_server.smtp_config(), ca_bundle=mail_server.pki.foreign_ca)
    with pytest.raises(DeliveryError) as refused:
        send_mail(config, archive_mail(mail_server))
    assert refused.value.code == "server_certificate_invalid"
    assert not refused.value.permanent
    assert "CERTIFICATE_VERIFY_FAILED" in refused.value.reply


def test_server_certificate_for_another_host_name_is_refused(mail_server: MailServer) -> None:
    # The same server, reached by an address its certificate does not name.
    config = dataclasses.replace(mail_server.smtp_config(), host="127.0.0.1")
    with pytest.raises(DeliveryError) as refused:
        send_mail(config, archive_mail(mail_server))
    assert refused.value.code == "server_certificate_invalid"
    assert "IP address mismatch" in refused.value.reply


def test_stopped_server_is_a_temporary_failure_and_the_mail_goes_once_it_is_back(
    mail_server: MailServer,
) -> None:
    message = archive_mail(mail_server)
    with mail_server.smtp_stopped():
        with pytest.raises(DeliveryError) as down:
            send_mail(mail_server.smtp_config(), message)
        assert down.value.code == "smtp_unreachable"
        assert not down.value.permanent
        assert not down.value.maybe_delivered
    send_mail(mail_server.smtp_config(), message)
    [stored] = mail_server.wait_for_mail("records", 1)
    assert message["Message-ID"].encode() in stored


def test_server_that_never_answers_times_out(tmp_path: Path, mail_server: MailServer) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # accepts connections in its backlog, never greets
        config = dataclasses.replace(
            mail_server.smtp_config(), port=silent.getsockname()[1], timeout=0.5
        )
        with pytest.raises(DeliveryError) as waited:
            send_mail(config, archive_mail(mail_server))
    assert waited.value.code == "smtp_timeout"
    assert not waited.value.permanent


def test_unknown_recipient_is_refused_for_good(mail_server: MailServer) -> None:
    message = archive_mail(mail_server, to=mail_server.unknown_address)
    with pytest.raises(DeliveryError) as refused:
        send_mail(mail_server.smtp_config(), message)
    assert refused.value.code == "recipient_refused"
    assert refused.value.permanent
    assert "550 5.1.1" in refused.value.reply
    assert "Recipient address rejected" in refused.value.reply


def test_unknown_recipient_among_others_is_reported_and_the_others_receive(
    mail_server: MailServer,
) -> None:
    message = archive_mail(
        mail_server, to=[mail_server.users["records"], mail_server.unknown_address]
    )
    result = send_mail(mail_server.smtp_config(), message)
    assert list(result.refused) == [mail_server.unknown_address]
    assert result.refused[mail_server.unknown_address].startswith("550 5.1.1")
    [stored] = mail_server.wait_for_mail("records", 1)
    assert message["Message-ID"].encode() in stored


def test_sender_other_than_the_logged_in_mailbox_is_refused(mail_server: MailServer) -> None:
    message = archive_mail(mail_server)
    message.replace_header("From", mail_server.users["doctor"])
    with pytest.raises(DeliveryError) as refused:
        send_mail(mail_server.smtp_config(), message)
    assert refused.value.code == "sender_refused"
    assert refused.value.permanent
    assert "553 5.7.1" in refused.value.reply
    assert "Sender address rejected" in refused.value.reply


def test_wrong_password_is_an_authentication_failure(mail_server: MailServer) -> None:
    config = dataclasses.replace(mail_server.smtp_config(), password="not-the-password")
    with pytest.raises(DeliveryError) as refused:
        send_mail(config, archive_mail(mail_server))
    assert refused.value.code == "authentication_failed"
    assert refused.value.needs_configuration
    assert "535" in refused.value.reply


def test_errors_never_carry_the_mail(mail_server: MailServer) -> None:
    message = archive_mail(mail_server, to=mail_server.unknown_address)
    message.replace_header("Subject", "XDM/1.0/DDM+CR DUPONT Jeanne 01/02/1950")
    with pytest.raises(DeliveryError) as refused:
        send_mail(mail_server.smtp_config(), message)
    shown = " ".join(
        [
            str(refused.value),
            refused.value.reply,
            refused.value.message_en,
            refused.value.message_fr,
        ]
    )
    assert "DUPONT" not in shown
    assert "Archive de conversation" not in shown


def test_tls_1_1_is_refused_by_the_server(mail_server: MailServer) -> None:
    context = mail_server.client_context()
    with warnings.catch_warnings(action="ignore", category=DeprecationWarning):
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    context.set_ciphers("DEFAULT:@SECLEVEL=0")  # so that our side does offer TLS 1.1
    with (
        smtplib.SMTP("localhost", mail_server.smtp_port, timeout=10) as smtp,
        pytest.raises(ssl.SSLError) as refused,
    ):
        smtp.starttls(context=context)
    assert refused.value.reason in {"TLSV1_ALERT_PROTOCOL_VERSION", "UNSUPPORTED_PROTOCOL"}


def test_archiver_never_offers_less_than_tls_1_2(mail_server: MailServer) -> None:
    config = mail_server.smtp_config()
    context = tls_context(
        ca_bundle=config.ca_bundle, client_cert=config.client_cert, client_key=config.client_key
    )
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname


def test_unreadable_client_key_is_a_configuration_error(
    tmp_path: Path, mail_server: MailServer
) -> None:
    config = dataclasses.replace(mail_server.smtp_config(), client_key=tmp_path / "absent.key")
    with pytest.raises(DeliveryError) as unusable:
        send_mail(config, archive_mail(mail_server))
    assert unusable.value.code == "client_certificate_unusable"
    assert unusable.value.needs_configuration


def test_imap_refuses_a_client_certificate_from_another_ca(mail_server: MailServer) -> None:
    with pytest.raises(MailboxError) as refused:
        fetch_new(mail_server.imap_config("records", client="foreign"), after_uid=0)
    # Dovecot completes the handshake and refuses the login that follows.
    assert refused.value.code == "client_certificate_refused"
    assert refused.value.reply == "[ALERT] Client didn't present valid SSL certificate"
    assert refused.value.needs_configuration


def test_imap_wrong_password_and_missing_mailbox(mail_server: MailServer) -> None:
    config = mail_server.imap_config("records")
    with pytest.raises(MailboxError) as refused:
        fetch_new(dataclasses.replace(config, password="wrong"), after_uid=0)
    assert refused.value.code == "imap_login_failed"
    with pytest.raises(MailboxError) as missing:
        fetch_new(dataclasses.replace(config, mailbox="Nulle part"), after_uid=0)
    assert missing.value.code == "mailbox_missing"


def test_imap_server_stopped_is_unreachable(mail_server: MailServer) -> None:
    config = dataclasses.replace(mail_server.imap_config("records"), port=_closed_port())
    with pytest.raises(MailboxError) as down:
        fetch_new(config, after_uid=0)
    assert down.value.code == "imap_unreachable"
    assert not down.value.permanent


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_configuration_from_the_environment(tmp_path: Path) -> None:
    environ = {
        "RELAIS_ARCHIVE_SMTP_HOST": "smtp.mssante.example",
        "RELAIS_ARCHIVE_SMTP_CLIENT_CERT": "/etc/relais/archiver.crt",
        "RELAIS_ARCHIVE_SMTP_CLIENT_KEY": "/etc/relais/archiver.key",
        "RELAIS_ARCHIVE_SMTP_CA_BUNDLE": "/etc/relais/igc-sante-roots.pem",
        "RELAIS_ARCHIVE_SMTP_USERNAME": "archives@clinique.mssante.fr",
        "RELAIS_ARCHIVE_SMTP_PASSWORD": PASSWORD,
        "RELAIS_ARCHIVE_IMAP_TLS": "implicit",
    }
    smtp = smtp_config_from_env(environ)
    assert smtp == SmtpConfig(
        host="smtp.mssante.example",
        port=587,
        client_cert=Path("/etc/relais/archiver.crt"),
        client_key=Path("/etc/relais/archiver.key"),
        ca_bundle=Path("/etc/relais/igc-sante-roots.pem"),
        timeout=30.0,
        helo=None,
        username="archives@clinique.mssante.fr",
        password=PASSWORD,
    )
    assert PASSWORD not in repr(smtp)
    imap = imap_config_from_env(environ)
    assert (imap.host, imap.port, imap.implicit_tls, imap.mailbox) == (
        "smtp.mssante.example",
        993,
        True,
        "INBOX",
    )
    assert imap.username == "archives@clinique.mssante.fr"
    with pytest.raises(TransportConfigError, match="RELAIS_ARCHIVE_SMTP_CA_BUNDLE"):
        smtp_config_from_env({k: v for k, v in environ.items() if "CA_BUNDLE" not in k})
    with pytest.raises(TransportConfigError, match="PORT"):
        smtp_config_from_env({**environ, "RELAIS_ARCHIVE_SMTP_PORT": "smtp"})


def test_answer_lost_after_the_data_says_the_mail_may_have_been_delivered(
    mail_server: MailServer,
) -> None:
    # Postfix waits SLOW_SECONDS before answering the end of DATA for this recipient.
    message = archive_mail(mail_server, to=mail_server.slow_address)
    config = dataclasses.replace(mail_server.smtp_config(), timeout=SLOW_SECONDS / 3)
    with pytest.raises(DeliveryError) as lost:
        send_mail(config, message)
    assert lost.value.code == "smtp_timeout"
    assert not lost.value.permanent
    assert lost.value.maybe_delivered
    # And it was: Postfix accepted the mail after its pause, and delivered it.
    mail_server.wait_for_message("slow", message["Message-ID"].encode())
    assert find_message(mail_server.imap_config("slow"), message["Message-ID"]) is not None


def test_find_message_by_message_id(mail_server: MailServer) -> None:
    first, second = archive_mail(mail_server), archive_mail(mail_server)
    send_mail(mail_server.smtp_config(), first)
    send_mail(mail_server.smtp_config(), second)
    mail_server.wait_for_mail("records", 2)
    config = mail_server.imap_config("records")
    batch = fetch_new(config, after_uid=0)
    uid_of = {email.message_from_bytes(mail.raw)["Message-ID"]: mail.uid for mail in batch.mails}
    assert find_message(config, first["Message-ID"]) == uid_of[first["Message-ID"]]
    assert find_message(config, second["Message-ID"]) == uid_of[second["Message-ID"]]
    assert find_message(config, make_msgid(domain="relais.mssante.test")) is None
    with pytest.raises(ValueError, match="Message-ID"):
        find_message(config, 'x" OR ALL')
