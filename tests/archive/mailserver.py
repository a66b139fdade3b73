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
import datetime
import imaplib
import os
import shutil
import smtplib
import socket
import ssl
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from archive.transport import ImapConfig, SmtpConfig

# The operator's domains; every address below is a mailbox of this server.
DOMAIN = "relais.mssante.test"
PEER_DOMAIN = "medecin.mssante.test"
PASSWORD = "mailbox-password"
USERS = {
    "archiver": f"archiver@{DOMAIN}",  # the archiver's applicative mailbox (sender)
    "records": f"archives@{DOMAIN}",  # the organisation's records mailbox
    "doctor": f"dr.martin@{PEER_DOMAIN}",  # a practitioner's personal mailbox
}
# Known to Postfix, unknown to Dovecot: Postfix accepts mail for it, LMTP refuses it
# (550 5.1.1), and Postfix returns a delivery status notification to the sender.
BOUNCING_ADDRESS = f"departed@{DOMAIN}"
# Unknown to both: refused at RCPT TO.
UNKNOWN_ADDRESS = f"nobody@{DOMAIN}"
# A mailbox for which Postfix waits before answering the end of DATA (longer than the
# clients' timeout in the tests), then accepts: an answer lost after the data was sent.
SLOW_ADDRESS = f"slow@{DOMAIN}"
SLOW_SECONDS = 3

ClientKind = Literal["good", "foreign"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --- Certificates ---------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca: Path  # the test CA (trusted by both daemons for client certificates)
    server_cert: Path
    server_key: Path
    client_cert: Path  # signed by the test CA
    client_key: Path
    foreign_ca: Path  # another CA: trusted by nobody
    foreign_cert: Path  # a client certificate signed by the other CA
    foreign_key: Path
    dh: Path


def _name(common_name: str, organisation: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _write_key(path: Path, key: rsa.RSAPrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _certificate(
    subject: x509.Name,
    key: rsa.RSAPrivateKey,
    issuer: x509.Name,
    issuer_key: rsa.RSAPrivateKey,
    *,
    ca: bool = False,
    usage: x509.ObjectIdentifier | None = None,
    names: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    else:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write_cert(path: Path, *certificates: x509.Certificate) -> None:
    path.write_bytes(
        b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in certificates)
    )


def make_pki(directory: Path) -> Pki:
    """A test CA with a server certificate for localhost (not 127.0.0.1) and a client
    certificate (ORG AUTH_CLI-like), and another CA with a client certificate of its own."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, foreign_ca_key = _key(), _key()
    ca_name = _name("TEST AC IGC-SANTE ELEMENTAIRE ORGANISATIONS", "RELAIS TEST - NOT ANS")
    foreign_name = _name("AUTRE AC DE TEST", "AUTRE AUTORITE - TEST")
    ca = _certificate(ca_name, ca_key, ca_name, ca_key, ca=True)
    foreign_ca = _certificate(foreign_name, foreign_ca_key, foreign_name, foreign_ca_key, ca=True)
    server_key, client_key, foreign_key = _key(), _key(), _key()
    server = _certificate(
        _name("mx.mssante.test", "RELAIS TEST - NOT ANS"),
        server_key,
        ca_name,
        ca_key,
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        names=[
            x509.DNSName("mx.mssante.test"),
            x509.DNSName("localhost"),
            # Not 127.0.0.1: a client connecting by that address must refuse the server.
        ],
    )
    client = _certificate(
        _name("ARCHIVEUR RELAIS TEST", "CLINIQUE DE TEST"),
        client_key,
        ca_name,
        ca_key,
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
    )
    foreign = _certificate(
        _name("ARCHIVEUR RELAIS TEST", "CLINIQUE DE TEST"),
        foreign_key,
        foreign_name,
        foreign_ca_key,
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
    )
    pki = Pki(
        ca=directory / "ca.crt",
        server_cert=directory / "server.crt",
        server_key=directory / "server.key",
        client_cert=directory / "client.crt",
        client_key=directory / "client.key",
        foreign_ca=directory / "foreign-ca.crt",
        foreign_cert=directory / "foreign-client.crt",
        foreign_key=directory / "foreign-client.key",
        dh=directory / "dh.pem",
    )
    _write_cert(pki.ca, ca)
    _write_cert(pki.foreign_ca, foreign_ca)
    _write_cert(pki.server_cert, server, ca)
    _write_cert(pki.client_cert, client)
    _write_cert(pki.foreign_cert, foreign)
    _write_key(pki.server_key, server_key)
    _write_key(pki.client_key, client_key)
    _write_key(pki.foreign_key, foreign_key)
    # RFC 7919's ffdhe2048 group (named, so nothing is generated); Dovecot wants ssl_dh.
    with pki.dh.open("wb") as dh:
        subprocess.run(
            ["openssl", "genpkey", "-genparam", "-algorithm", "DH", "-pkeyopt", "group:ffdhe2048"],
            check=True,
            stdout=dh,
        )
    return pki


# --- The two daemons ----------------------------------------------------------------------


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


def _postfix_main_cf(state: Path, pki: Pki, smtp_port: int) -> str:
    conf, queue = state / "postfix", state / "queue"
    return f"""\
compatibility_level = 3.6
queue_directory = {queue}
data_directory = {state / "postfix-data"}
meta_directory = /etc/postfix
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
syslog_name = postfix-test-{smtp_port}
maillog_file = {state / "postfix.log"}
maillog_file_prefixes = {state}
myhostname = mx.mssante.test
mydomain = mssante.test
myorigin = {DOMAIN}
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.1/32
mydestination =
alias_maps =
alias_database =
local_recipient_maps =
local_transport = error:5.1.1 no local delivery
default_transport = error:5.7.1 this operator delivers to its own domains only
relay_transport = error:5.7.1 this operator delivers to its own domains only
virtual_mailbox_domains = {DOMAIN} {PEER_DOMAIN}
virtual_mailbox_maps = texthash:{conf / "mailboxes"}
virtual_transport = lmtp:unix:{state / "dovecot-run" / "lmtp"}
biff = no
smtputf8_enable = no
message_size_limit = 52428800
smtpd_banner = $myhostname ESMTP
smtpd_error_sleep_time = 0
smtpd_tls_chain_files = {pki.server_key}, {pki.server_cert}
smtpd_tls_CAfile = {pki.ca}
smtpd_tls_security_level = encrypt
smtpd_tls_protocols = >=TLSv1.2
smtpd_tls_mandatory_protocols = >=TLSv1.2
smtpd_tls_ask_ccert = yes
smtpd_tls_req_ccert = yes
smtpd_tls_received_header = yes
smtpd_tls_loglevel = 1
smtpd_sasl_type = dovecot
smtpd_sasl_path = private/auth
smtpd_sasl_auth_enable = yes
smtpd_tls_auth_only = yes
smtpd_sender_login_maps = texthash:{conf / "sender-logins"}
smtpd_client_restrictions = permit_sasl_authenticated, reject
smtpd_sender_restrictions = reject_non_fqdn_sender, reject_sender_login_mismatch,
    permit_sasl_authenticated, reject
smtpd_relay_restrictions = permit_sasl_authenticated, reject
smtpd_recipient_restrictions = reject_unauth_destination, reject_unlisted_recipient, permit
smtpd_end_of_data_restrictions = check_recipient_access texthash:{conf / "slow-recipients"}
"""


# The submission service, a second one that does not offer STARTTLS (to show that the
# archiver then says nothing), and Postfix's internal services, none chrooted (the queue
# is in a private directory).
_POSTFIX_MASTER_CF = """\
{address}:{port} inet n - n - - smtpd
{address}:{plain_port} inet n - n - - smtpd
  -o syslog_name=postfix-test-plain
  -o smtpd_tls_security_level=none
  -o smtpd_tls_ask_ccert=no
  -o smtpd_tls_req_ccert=no
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def _dovecot_conf(state: Path, pki: Pki, imap_port: int, imaps_port: int) -> str:
    run, queue = state / "dovecot-run", state / "queue"
    return f"""\
base_dir = {run}
state_dir = {state / "dovecot-state"}
instance_name = dovecot-test-{imap_port}
log_path = {state / "dovecot.log"}
protocols = imap lmtp
listen = 127.0.0.1
ssl = required
ssl_min_protocol = TLSv1.2
ssl_cert = <{pki.server_cert}
ssl_key = <{pki.server_key}
ssl_dh = <{pki.dh}
ssl_ca = <{pki.ca}
ssl_verify_client_cert = yes
ssl_require_crl = no
verbose_ssl = yes
disable_plaintext_auth = yes
auth_mechanisms = plain login
# Tests log in with wrong passwords on purpose: no delay after a failure, and no
# growing penalty for loopback afterwards (anvil's penalty socket closed below).
auth_failure_delay = 0
auth_verbose = yes
auth_username_format = %Lu
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%Lu {state / "dovecot-users"}
}}
userdb {{
  driver = passwd-file
  args = username_format=%Lu {state / "dovecot-users"}
  default_fields = uid=mail gid=mail home={state / "mail"}/%d/%n
}}
mail_location = maildir:{state / "mail"}/%d/%n/Maildir
first_valid_uid = 1
protocol imap {{
  auth_ssl_require_client_cert = yes
}}
protocol lmtp {{
  postmaster_address = postmaster@{DOMAIN}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
    ssl = yes
  }}
}}
service lmtp {{
  unix_listener lmtp {{
    mode = 0666
  }}
}}
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service auth {{
  unix_listener {queue / "private" / "auth"} {{
    mode = 0660
    user = postfix
    group = postfix
  }}
}}
"""


class MailServer:
    """Postfix (submission with STARTTLS, client certificate and login required) and
    Dovecot (LMTP delivery, IMAP with STARTTLS or implicit TLS) on loopback."""

    def __init__(self, state: Path) -> None:
        self.state = state
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
        (conf / "main.cf").write_text(_postfix_main_cf(state, self.pki, self.smtp_port))
        (conf / "master.cf").write_text(
            _POSTFIX_MASTER_CF.format(
                address="127.0.0.1", port=self.smtp_port, plain_port=self.plain_smtp_port
            )
        )
        mailboxes = [*self.users.values(), self.bouncing_address, self.slow_address]
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
        (state / "dovecot.conf").write_text(
            _dovecot_conf(state, self.pki, self.imap_port, self.imaps_port)
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
        self._postfix("stop")
        subprocess.run(
            ["doveadm", "-c", str(self.state / "dovecot.conf"), "stop"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )

    def postfix_log(self) -> str:
        return self._read("postfix-command.log") + self._read("postfix.log")

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


def build_mdn(
    *,
    original: EmailMessage,
    sender: str,
    to: str,
    code: int | None = None,
    label: str = "",
) -> bytes:
    """An MDN (RFC 8098) as an MSSanté receiving system sends it, laid out as the ANS
    example (volet "transmission de documents CDA … par messagerie sécurisée", MDN
    structure): ``processed`` on integration; ``processed/Error: <code>^<label>^…`` and
    a ``[KO Intégration système !][<code>]`` subject when it could not integrate; the
    original mail attached. Written out byte by byte (8-bit UTF-8 in the report part,
    as the example), not through the email package's generator."""
    subject = str(original["Subject"] or "")
    if code:
        subject = f"[KO Intégration système !][{code}] {subject}"
        text = (
            "Le document n'a pas pu être intégré.\r\n"
            f"Le système a retourné l'erreur {code}^{label}^messageErrorCondition"
            "| E^Error^errorSeverity\r\n"
        )
        disposition = (
            "automatic-action/MDN-sent-automatically; processed/Error: "
            f"{code}^{label}^messageErrorCondition| E^Error^errorSeverity"
        )
    else:
        text = "Le document a été intégré.\r\n"
        disposition = "automatic-action/MDN-sent-automatically; processed"
    boundary = f"report-{uuid.uuid4().hex}"
    headers = EmailMessage(policy=policy.SMTP)
    headers["Date"] = format_datetime(datetime.datetime.now(datetime.UTC))
    headers["From"] = sender
    headers["To"] = to
    headers["Message-ID"] = make_msgid(domain=sender.split("@")[1])
    headers["Subject"] = subject  # RFC 2047-encoded by the policy
    headers["MIME-Version"] = "1.0"
    headers["Content-Type"] = (
        f'multipart/report; report-type=disposition-notification; boundary="{boundary}"'
    )
    head = b"".join(policy.SMTP.fold_binary(name, value) for name, value in headers.items())
    body = (
        f"--{boundary}\r\n"
        'Content-Type: text/plain; charset="UTF-8"\r\n'
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
        f"{text}\r\n"
        f"--{boundary}\r\n"
        "Content-Type: message/disposition-notification\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
        f"Original-Recipient: rfc822;{sender}\r\n"
        f"Final-Recipient: rfc822;{sender}\r\n"
        f"Original-Message-ID: {original['Message-ID']}\r\n"
        f"Disposition: {disposition}\r\n\r\n"
        f"--{boundary}\r\n"
        "Content-Type: message/rfc822\r\n\r\n"
    ).encode()
    returned = original.as_bytes(policy=policy.SMTP)
    return head + b"\r\n" + body + returned + f"\r\n--{boundary}--\r\n".encode()


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
def running_mail_server() -> Iterator[MailServer]:
    """A started server in a fresh private directory, stopped and removed afterwards."""
    if os.geteuid() != 0:
        raise RuntimeError("the test mail server runs Postfix and Dovecot: it needs root")
    # A short path: Dovecot's and Postfix's Unix sockets live under it (108 bytes max).
    state = Path(tempfile.mkdtemp(prefix="relais-mail-"))
    server = MailServer(state)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(state, ignore_errors=True)
