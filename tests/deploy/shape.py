"""The production shape on loopback, built from the shipped files of ``deploy/``.

* Settings: ``deploy/relais.env.example`` with test values for its ``CHANGE-ME`` entries,
  host names, paths and services (``production_settings``).
* Processes: the ``ExecStart=`` lines of ``deploy/systemd/*.service``, with the venv's
  Python standing for ``/srv/relais/venv`` and the instance name for ``%i``
  (``unit_commands``).
* nginx: Debian's nginx running ``deploy/nginx/relais.conf``, with only its ports and
  paths changed (``Nginx``), behind a main configuration like Debian's.
"""

from __future__ import annotations

import datetime
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from ipaddress import ip_address
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
UNITS = DEPLOY / "systemd"
SITE = DEPLOY / "nginx" / "relais.conf"
PLACEHOLDER = "CHANGE-ME"
VENV = "/srv/relais/venv/bin/"


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=value`` lines of a systemd ``EnvironmentFile`` (comments and blanks skipped)."""
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, separator, value = line.partition("=")
        assert separator, f"not KEY=value: {line!r}"
        values[key.strip()] = value.strip()
    return values


def production_settings(*, extra: dict[str, str] | None = None, **values: str) -> dict[str, str]:
    """The example environment file with ``values`` replacing its entries. Every key of
    ``values`` must be in the example (what production needs is listed there); ``extra``
    adds variables production leaves at their defaults (a loopback PSC issuer...)."""
    example = read_env_file(DEPLOY / "relais.env.example")
    unknown = sorted(set(values) - set(example))
    assert not unknown, f"not in deploy/relais.env.example: {unknown}"
    settings = {**example, **values, **(extra or {})}
    left = sorted(key for key, value in settings.items() if PLACEHOLDER in value)
    assert not left, f"example values left: {left}"
    return settings


def unit_text(name: str) -> str:
    """A unit file with its continuation lines joined."""
    return (UNITS / name).read_text(encoding="utf-8").replace("\\\n", " ")


def unit_values(name: str, key: str) -> list[str]:
    return [
        line.split("=", 1)[1].strip()
        for line in unit_text(name).splitlines()
        if line.startswith(f"{key}=")
    ]


def unit_commands(name: str, *, instance: str = "") -> list[list[str]]:
    """The unit's ``ExecStart=`` command lines, runnable from this checkout."""
    commands = []
    for line in unit_values(name, "ExecStart"):
        words = shlex.split(line.replace("%i", instance))
        program = words[0]
        assert program.startswith(VENV), f"{name}: {program} is not in {VENV}"
        tool = program.removeprefix(VENV)
        head = [sys.executable] if tool == "python" else [sys.executable, "-m", tool]
        commands.append(head + words[1:])
    return commands


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode}: {log.read_text()[-3000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)  # polling for the port to open; nothing to wait on
    raise TimeoutError(f"nothing listens on {port}: {log.read_text()[-3000:]}")


class Process:
    """A command run as its unit would run it: the settings as its whole ``RELAIS_*``
    environment, the checkout as working directory, output to a log file."""

    def __init__(self, command: list[str], *, env: dict[str, str], log_path: Path) -> None:
        self.command = command
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("RELAIS_")}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command,
                cwd=ROOT,
                env={**clean, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Stop it as systemd does (``KillSignal=SIGTERM``); its exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                return self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
                return -9
        return self.process.returncode

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def make_certificate(folder: Path, name: str = "localhost") -> tuple[Path, Path]:
    """A self-signed certificate for ``localhost`` and 127.0.0.1 (its own trust anchor)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(name), x509.IPAddress(ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / f"{name}.pem", folder / f"{name}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _replace(text: str, old: str, new: str, *, count: int) -> str:
    found = text.count(old)
    assert found == count, f"the site file has {found} x {old!r}, the test expects {count}"
    return text.replace(old, new)


def site_for_test(
    *,
    http_port: int,
    https_port: int,
    upstreams: list[int],
    certificate: Path,
    key: Path,
    static_root: Path,
    log_dir: Path,
) -> str:
    """``deploy/nginx/relais.conf`` with its ports and paths changed, nothing else."""
    text = SITE.read_text(encoding="utf-8")
    servers = re.findall(r"^ +server 127\.0\.0\.1:\d+;\n", text, flags=re.MULTILINE)
    assert servers, "no upstream server lines in the site file"
    first = text.index(servers[0])
    text = text.replace("".join(servers), "")
    indent = servers[0][: len(servers[0]) - len(servers[0].lstrip())]
    lines = "".join(f"{indent}server 127.0.0.1:{port};\n" for port in upstreams)
    text = text[:first] + lines + text[first:]
    text = _replace(text, "listen 80;", f"listen 127.0.0.1:{http_port};", count=1)
    text = _replace(text, "listen [::]:80;", f"listen [::1]:{http_port};", count=1)
    text = _replace(text, "listen 443 ", f"listen 127.0.0.1:{https_port} ", count=1)
    text = _replace(text, "listen [::]:443 ", f"listen [::1]:{https_port} ", count=1)
    text = _replace(text, "/etc/ssl/relais/fullchain.pem", str(certificate), count=1)
    text = _replace(text, "/etc/ssl/relais/privkey.pem", str(key), count=1)
    text = _replace(text, "/srv/relais/static/", f"{static_root}/", count=1)
    return _replace(text, "/var/log/nginx/", f"{log_dir}/", count=1)


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else "")
    if not found:
        raise RuntimeError("nginx is needed (apt-get install nginx; .ci/run installs it)")
    return found


class Nginx:
    """Debian's nginx with the shipped site file, in a folder of its own."""

    def __init__(self, folder: Path, *, upstreams: list[int], certificate: Path, key: Path):
        self.folder = folder
        self.http_port = free_port()
        self.https_port = free_port()
        for name in ("logs", "static", "temp", "sites"):
            (folder / name).mkdir(parents=True, exist_ok=True)
        site = site_for_test(
            http_port=self.http_port,
            https_port=self.https_port,
            upstreams=upstreams,
            certificate=certificate,
            key=key,
            static_root=folder / "static",
            log_dir=folder / "logs",
        )
        (folder / "sites" / "relais.conf").write_text(site, encoding="utf-8")
        temp = folder / "temp"
        # Debian's nginx.conf, minus what a test does not need; the site is included in
        # the http block as sites-enabled/ is.
        user = "user root root;\n" if os.geteuid() == 0 else ""
        self.config = folder / "nginx.conf"
        self.config.write_text(
            f"""{user}worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/logs/error.log info;
events {{ worker_connections 768; }}
http {{
    sendfile on;
    tcp_nopush on;
    types_hash_max_size 2048;
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    ssl_protocols TLSv1.2 TLSv1.3;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    access_log {folder}/logs/other.access.log;
    include {folder}/sites/*.conf;
}}
""",
            encoding="utf-8",
        )
        self.process: Process | None = None

    @property
    def origin(self) -> str:
        return f"https://localhost:{self.https_port}"

    def command(self, *extra: str) -> list[str]:
        return [nginx_binary(), "-p", str(self.folder), "-c", str(self.config), *extra]

    def check(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command("-t"), capture_output=True, text=True, check=False, timeout=30
        )

    def start(self) -> None:
        self.process = Process(
            self.command("-g", "daemon off;"), env={}, log_path=self.folder / "logs" / "stderr.log"
        ).start()
        assert self.process.process is not None
        wait_for_port(self.https_port, self.process.process, self.process.log_path)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(signal.SIGQUIT)  # graceful, as systemctl stop nginx

    def access_log(self) -> str:
        path = self.folder / "logs" / "relais.access.log"
        return path.read_text(encoding="utf-8") if path.exists() else ""

    def error_log(self) -> str:
        path = self.folder / "logs" / "error.log"
        return path.read_text(encoding="utf-8") if path.exists() else ""
