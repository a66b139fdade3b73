"""The test operator's addresses and its Postfix and Dovecot configuration files."""

from __future__ import annotations

from pathlib import Path

from tests.archive.pki import Pki

# The operator's domains; every address below is a mailbox of this server.
DOMAIN = "relais.mssante.test"
PEER_DOMAIN = "medecin.mssante.test"
PASSWORD = "mailbox-password"
# A mailbox for which Postfix waits before answering the end of DATA (longer than the
# clients' timeout in the tests), then accepts and delivers: an answer lost after the
# data was sent, for a mail that did arrive.
SLOW_ADDRESS = f"slow@{DOMAIN}"
SLOW_SECONDS = 3
USERS = {
    "archiver": f"archiver@{DOMAIN}",  # the archiver's applicative mailbox (sender)
    "records": f"archives@{DOMAIN}",  # the organisation's records mailbox
    "doctor": f"dr.martin@{PEER_DOMAIN}",  # a practitioner's personal mailbox
    "slow": SLOW_ADDRESS,
}
# Known to Postfix, unknown to Dovecot: Postfix accepts mail for it, LMTP refuses it
# (550 5.1.1), and Postfix returns a delivery status notification to the sender.
BOUNCING_ADDRESS = f"departed@{DOMAIN}"
# Unknown to both: refused at RCPT TO.
UNKNOWN_ADDRESS = f"nobody@{DOMAIN}"


def postfix_main_cf(state: Path, pki: Pki, smtp_port: int) -> str:
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
POSTFIX_MASTER_CF = """\
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


def oauth2_conf(introspection_url: str) -> str:
    """Dovecot's OAuth2 passdb (XOAUTH2, OAUTHBEARER): the bearer token is checked at
    the identity provider's introspection endpoint and must be active and issued to
    the mailbox logging in (its ``client_id``: a mailbox's software credentials)."""
    return f"""\
introspection_mode = post
introspection_url = {introspection_url}
username_attribute = client_id
active_attribute = active
active_value = true
"""


def dovecot_conf(
    state: Path, pki: Pki, imap_port: int, imaps_port: int, *, oauth2: bool = False
) -> str:
    run, queue = state / "dovecot-run", state / "queue"
    mechanisms = "plain login xoauth2 oauthbearer" if oauth2 else "plain login"
    oauth2_passdb = (
        f"""passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {state / "dovecot-oauth2.conf.ext"}
}}
"""
        if oauth2
        else ""
    )
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
auth_mechanisms = {mechanisms}
# Tests log in with wrong passwords on purpose: no delay after a failure, and no
# growing penalty for loopback afterwards (anvil's penalty socket closed below).
auth_failure_delay = 0
auth_verbose = yes
auth_username_format = %Lu
{oauth2_passdb}passdb {{
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
