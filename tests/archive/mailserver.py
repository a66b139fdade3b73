"""A real MSSanté-shaped operator on loopback: Postfix requiring STARTTLS and a client
certificate from a test CA, delivering over LMTP to Dovecot, which serves IMAP.

Everything lives in one private directory (certificates, both daemons' configuration,
Postfix's queue, the mailboxes) and listens on free loopback ports, so that each
pytest-xdist worker runs an instance of its own. Postfix is started with
``postfix -c <config dir>`` and Dovecot with ``dovecot -c <config file>``; the
distribution's own services are not used. Needs root (both daemons drop privileges to
their own users) and Debian's ``postfix dovecot-core dovecot-imapd dovecot-lmtpd``.
"""

from __future__ import annotations

import contextlib
import imaplib
import os
import shutil
import smtplib
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Literal

from archive.transport import ImapConfig, SmtpConfig
from tests.archive.mdn import build_mdn
from tests.archive.operator_config import (
    BOUNCING_ADDRESS,
    PASSWORD,
    POSTFIX_MASTER_CF,
    SLOW_ADDRESS,
    SLOW_SECONDS,
    UNKNOWN_ADDRESS,
    USERS,
    dovecot_conf,
    oauth2_conf,
    postfix_main_cf,
)
from tests.archive.pki import Pki, make_pki

__all__ = [
    "PASSWORD",
    "SLOW_SECONDS",
    "MailServer",
    "Pki",
    "build_mdn",
    "make_pki",
    "running_mail_server",
]

ClientKind = Literal["good", "foreign"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _ensure_system_accounts() -> None:
    """The Debian packages create these; a machine where they were removed gets them back."""
    for group in ("postfix", "postdrop", "dovecot", "dovenull"):
        if subprocess.run(["getent", "group", group], capture_output=True).returncode:
            subprocess.run(["groupadd", "--system", group], check=True)
    for user in ("postfix", "dovecot", "dovenull"):
        if subprocess.run(["getent", "passwd", user], capture_output=True).returncode:
            subprocess.run(
                ["useradd", "--system", "--gid", user, "--no-create-home", user], check=True
            )


class MailServer:
    """Postfix (submission with STARTTLS, client certificate and login required) and
    Dovecot (LMTP delivery, IMAP with STARTTLS or implicit TLS) on loopback."""

    def __init__(self, state: Path, *, oauth2_introspection: str | None = None) -> None:
        self.state = state
        self.oauth2_introspection = oauth2_introspection
        self.pki = make_pki(state / "pki")
        self.smtp_port = free_port()
        self.plain_smtp_port = free_port()  # no STARTTLS offered
        self.imap_port = free_port()
        self.imaps_port = free_port()
        self.users = dict(USERS)
        self.bouncing_address = BOUNCING_ADDRESS
        self.unknown_address = UNKNOWN_ADDRESS
        self.slow_address = SLOW_ADDRESS
        self._write_configuration()

    # -- lifecycle

    def _write_configuration(self) -> None:
        state = self.state
        state.chmod(0o755)
        conf = state / "postfix"
        conf.mkdir()
        (conf / "main.cf").write_text(postfix_main_cf(state, self.pki, self.smtp_port))
        (conf / "master.cf").write_text(
            POSTFIX_MASTER_CF.format(
                address="127.0.0.1", port=self.smtp_port, plain_port=self.plain_smtp_port
            )
        )
        mailboxes = [*self.users.values(), self.bouncing_address]
        (conf / "slow-recipients").write_text(f"{self.slow_address} sleep {SLOW_SECONDS}\n")
        (conf / "mailboxes").write_text("".join(f"{address} ok\n" for address in mailboxes))
        (conf / "sender-logins").write_text(
            "".join(f"{address} {address}\n" for address in self.users.values())
        )
        (state / "postfix-data").mkdir()
        shutil.chown(state / "postfix-data", "postfix", "postfix")
        (state / "queue").mkdir()
        mail = state / "mail"
        mail.mkdir()
        shutil.chown(mail, "mail", "mail")
        (state / "dovecot-users").write_text(
            "".join(f"{address}:{{PLAIN}}{PASSWORD}::::::\n" for address in self.users.values())
        )
        if self.oauth2_introspection:
            (state / "dovecot-oauth2.conf.ext").write_text(oauth2_conf(self.oauth2_introspection))
        (state / "dovecot.conf").write_text(
            dovecot_conf(
                state,
                self.pki,
                self.imap_port,
                self.imaps_port,
                oauth2=self.oauth2_introspection is not None,
            )
        )

    def _postfix(self, *arguments: str) -> int:
        """Run the postfix command; its daemons inherit no pipe of ours (they would keep
        it open), so its messages go to a file."""
        with (self.state / "postfix-command.log").open("a") as log:
            return subprocess.run(
                ["postfix", "-c", str(self.state / "postfix"), *arguments],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                timeout=60,
            ).returncode

    def start(self) -> None:
        _ensure_system_accounts()
        # Postfix's private/ directory holds Dovecot's authentication socket, so it must
        # exist before Dovecot starts; Postfix makes the rest of its queue when it starts.
        private = self.state / "queue" / "private"
        private.mkdir(mode=0o700)
        shutil.chown(private, "postfix")
        with (self.state / "dovecot-command.log").open("a") as log:
            started = subprocess.run(
                ["dovecot", "-c", str(self.state / "dovecot.conf")],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                timeout=60,
            )
        if started.returncode:
            raise RuntimeError(f"dovecot failed to start: {self.dovecot_log()}")
        self.start_smtp()
        _wait_for_port(self.imap_port, timeout=30)

    def start_smtp(self) -> None:
        if self._postfix("start"):
            raise RuntimeError(f"postfix failed to start: {self.postfix_log()}")
        _wait_for_port(self.smtp_port, timeout=30)

    def stop_smtp(self) -> None:
        """Stop Postfix and return once its port is closed."""
        self._postfix("stop")
        deadline = time.monotonic() + 30
        while self._postfix("status") == 0 or _port_open(self.smtp_port):
            if time.monotonic() > deadline:
                raise RuntimeError("postfix did not stop")
            time.sleep(0.05)

    @contextlib.contextmanager
    def smtp_stopped(self) -> Iterator[None]:
        self.stop_smtp()
        try:
            yield
        finally:
            self.start_smtp()

    def smtp_running(self) -> bool:
        return self._postfix("status") == 0

    def stop(self) -> None:
        """Stop both daemons and return once they are gone (so that their directory can
        be removed without one of them writing into it meanwhile)."""
        if self.smtp_running():
            self.stop_smtp()
        subprocess.run(
            ["doveadm", "-c", str(self.state / "dovecot.conf"), "stop"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        pid_file = self.state / "dovecot-run" / "master.pid"
        deadline = time.monotonic() + 30
        while pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    def postfix_log(self) -> str:
        return self._read("postfix-command.log") + self._read("postfix.log")

    def wait_for_log_line(self, *fragments: str, timeout: float = 10.0) -> str:
        """The first line of Postfix's log holding every fragment, once written (its
        log daemon writes a moment after the session ends); fails at the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.postfix_log().splitlines():
                if all(fragment in line for fragment in fragments):
                    return line
            if time.monotonic() > deadline:
                raise AssertionError(f"no log line with {fragments}\n{self.postfix_log()[-3000:]}")
            time.sleep(0.05)

    def dovecot_log(self) -> str:
        return self._read("dovecot-command.log") + self._read("dovecot.log")

    def _read(self, name: str) -> str:
        path = self.state / name
        return path.read_text(errors="replace") if path.exists() else ""

    # -- client configurations

    def smtp_config(self, client: ClientKind = "good", *, user: str = "archiver") -> SmtpConfig:
        cert, key = self._client(client)
        return SmtpConfig(
            host="localhost",
            port=self.smtp_port,
            client_cert=cert,
            client_key=key,
            ca_bundle=self.pki.ca,
            timeout=10.0,
            helo="archiver.relais.test",
            username=self.users[user],
            password=PASSWORD,
        )

    def imap_config(
        self, user: str = "archiver", *, client: ClientKind = "good", implicit_tls: bool = False
    ) -> ImapConfig:
        cert, key = self._client(client)
        return ImapConfig(
            host="localhost",
            port=self.imaps_port if implicit_tls else self.imap_port,
            ca_bundle=self.pki.ca,
            client_cert=cert,
            client_key=key,
            username=self.users[user],
            password=PASSWORD,
            timeout=10.0,
            implicit_tls=implicit_tls,
        )

    def _client(self, client: ClientKind) -> tuple[Path, Path]:
        if client == "good":
            return self.pki.client_cert, self.pki.client_key
        return self.pki.foreign_cert, self.pki.foreign_key

    def client_context(self) -> ssl.SSLContext:
        """A TLS context with the good client certificate, for tests' own sessions."""
        context = ssl.create_default_context(cafile=str(self.pki.ca))
        context.load_cert_chain(str(self.pki.client_cert), str(self.pki.client_key))
        return context

    # -- mailboxes, read and written with the standard library (not the code under test)

    @contextlib.contextmanager
    def _imap(self, user: str) -> Iterator[imaplib.IMAP4_SSL]:
        imap = imaplib.IMAP4_SSL(
            "localhost", self.imaps_port, ssl_context=self.client_context(), timeout=10
        )
        try:
            imap.login(self.users[user], PASSWORD)
            imap.select("INBOX")
            yield imap
        finally:
            with contextlib.suppress(imaplib.IMAP4.error, OSError):
                imap.logout()

    def mailbox(self, user: str) -> list[bytes]:
        """Every message in the user's INBOX, oldest first, as stored."""
        with self._imap(user) as imap:
            _, found = imap.uid("SEARCH", "ALL")
            messages: list[bytes] = []
            for uid in (found[0] or b"").split():
                _, data = imap.uid("FETCH", uid.decode(), "(BODY.PEEK[])")
                messages.extend(part[1] for part in data if isinstance(part, tuple))
            return messages

    def flags(self, user: str) -> bytes:
        """The IMAP flags of every message in the user's INBOX, as the server lists them."""
        with self._imap(user) as imap:
            _, data = imap.uid("FETCH", "1:*", "(FLAGS)")
            return b" ".join(part for part in data if isinstance(part, bytes))

    def wait_for_mail(self, user: str, count: int, timeout: float = 30.0) -> list[bytes]:
        """The user's messages once there are at least ``count``; fails at the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            messages = self.mailbox(user)
            if len(messages) >= count:
                return messages
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.users[user]} has {len(messages)} messages, expected {count}\n"
                    f"{self.postfix_log()[-3000:]}"
                )
            time.sleep(0.1)

    def wait_for_message(self, user: str, containing: bytes, timeout: float = 30.0) -> bytes:
        """The first of the user's messages that contains ``containing`` (a Message-ID,
        say), once it has arrived; fails at the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            for message in self.mailbox(user):
                if containing in message:
                    return message
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no message with {containing!r} for {self.users[user]}\n"
                    f"{self.postfix_log()[-3000:]}"
                )
            time.sleep(0.1)

    def empty(self, user: str) -> None:
        with self._imap(user) as imap:
            imap.uid("STORE", "1:*", "+FLAGS.SILENT", r"(\Deleted)")
            imap.expunge()

    def submit(self, message: bytes, *, user: str, to: str) -> None:
        """Send as ``user`` through the operator to ``to``, the way any MSSanté client
        would (8BITMIME)."""
        with smtplib.SMTP("localhost", self.smtp_port, timeout=10) as smtp:
            smtp.starttls(context=self.client_context())
            smtp.login(self.users[user], PASSWORD)
            smtp.sendmail(self.users[user], [self.users[to]], message, ["BODY=8BITMIME"])

    def inject_mdn(
        self,
        *,
        to: str = "archiver",
        original: EmailMessage,
        code: int | None = None,
        label: str = "",
        sender: str = "records",
    ) -> bytes:
        """The receiving mailbox ``sender`` answers ``original`` with an MDN, sent
        through the operator to ``to``'s mailbox; returns the MDN."""
        mdn = build_mdn(
            original=original,
            sender=self.users[sender],
            to=self.users[to],
            code=code,
            label=label,
        )
        self.submit(mdn, user=sender, to=to)
        return mdn


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _wait_for_port(port: int, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not _port_open(port):
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")
        time.sleep(0.05)


@contextlib.contextmanager
def running_mail_server(*, oauth2_introspection: str | None = None) -> Iterator[MailServer]:
    """A started server in a fresh private directory, stopped and removed afterwards.
    ``oauth2_introspection``: also accept XOAUTH2 / OAUTHBEARER logins whose bearer
    token this introspection endpoint (with its client's credentials) says is active."""
    if os.geteuid() != 0:
        raise RuntimeError("the test mail server runs Postfix and Dovecot: it needs root")
    # A short path: Dovecot's and Postfix's Unix sockets live under it (108 bytes max).
    state = Path(tempfile.mkdtemp(prefix="relais-mail-"))
    server = MailServer(state, oauth2_introspection=oauth2_introspection)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(state, ignore_errors=True)
