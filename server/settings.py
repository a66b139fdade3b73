"""Django settings for Relais, read from ``RELAIS_*`` environment variables.

Defaults are the embedded first-run setup (SQLite, in-memory fan-out); production sets
``RELAIS_DEBUG=0`` with PostgreSQL and Redis. See ``docs/configuration.md``.
"""

from __future__ import annotations

import os
from pathlib import Path

import django_stubs_ext
from rest_framework.serializers import BaseSerializer

from observability.asgi import parse_networks
from observability.logs import logging_config
from server.environment import (
    ConfigurationError,
    env_bool,
    env_int,
    env_list,
    env_str,
    parse_database_url,
)

# Lets generic annotations such as ModelAdmin[Practitioner] work at run time (typing only).
django_stubs_ext.monkeypatch(extra_classes=[BaseSerializer])

BASE_DIR = Path(__file__).resolve().parent.parent

# deploy/relais.env.example marks what an operator must fill in with CHANGE-ME.
_unfilled = sorted(
    name for name in os.environ if name.startswith("RELAIS_") and "CHANGE-ME" in os.environ[name]
)
if _unfilled:
    raise ConfigurationError(
        f"{', '.join(_unfilled)}: still the example's CHANGE-ME; set real values "
        "(docs/configuration.md)"
    )

DEBUG = env_bool("RELAIS_DEBUG", False)

_DEVELOPMENT_SECRET = "development-only-secret-key-never-use-in-production-0123456789"  # noqa: S105
SECRET_KEY = env_str("RELAIS_SECRET_KEY", _DEVELOPMENT_SECRET if DEBUG else "")
if not SECRET_KEY:
    raise ConfigurationError("RELAIS_SECRET_KEY must be set when RELAIS_DEBUG is off")
if not DEBUG and SECRET_KEY == _DEVELOPMENT_SECRET:
    raise ConfigurationError("RELAIS_SECRET_KEY must not be the development key in production")

ALLOWED_HOSTS = env_list(
    "RELAIS_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"] if DEBUG else []
)

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "server",
    "directory",
    "chat",
    "mobile_api",
    "attachments",
    "keylog",
    "keyring",
    "push",
    "identity",
    "teleexpertise",
    "archiving",
    "webapp",
    # The REST API's OpenAPI schema and its page (docs/api.md); Swagger UI's files are
    # served from STATIC_URL, never a CDN.
    "drf_spectacular",
    "drf_spectacular_sidecar",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The language of validation messages follows Accept-Language (French by default);
    # error envelopes always carry both English and French.
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "server.urls"
ASGI_APPLICATION = "server.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

_database = parse_database_url(
    env_str("RELAIS_DATABASE_URL", "sqlite:///var/relais.sqlite3"), base_dir=BASE_DIR
)
DATABASES = {"default": _database.settings}
if _database.engine == "postgresql":
    DATABASES["default"]["CONN_MAX_AGE"] = env_int("RELAIS_DB_CONN_MAX_AGE", 60)
    # A kept connection is checked before reuse: after a database restart the first
    # request gets a new connection instead of an error.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("RELAIS_REDIS_URL", "")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {
                "hosts": [REDIS_URL],
                "prefix": env_str("RELAIS_REDIS_PREFIX", "relais") + "-layer",
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "fr"
LANGUAGES = [("fr", "Français"), ("en", "English")]
TIME_ZONE = "Europe/Paris"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env_str("RELAIS_STATIC_ROOT", str(BASE_DIR / "var" / "static"))

DATA_UPLOAD_MAX_MEMORY_SIZE = 256 * 1024

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["mobile_api.authentication.DeviceTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # JSON with a bound on nesting (mobile_api/parsers.py).
    "DEFAULT_PARSER_CLASSES": ["mobile_api.parsers.BoundedJSONParser"],
    "EXCEPTION_HANDLER": "mobile_api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
    # The client address is the one the ASGI server gives: uvicorn resolves the proxy
    # headers of the trusted nginx (--proxy-headers, --forwarded-allow-ips). Reading
    # X-Forwarded-For here as well would let any client pick its own address.
    "NUM_PROXIES": 0,
    # Counted in Django's cache: Redis when configured, so every server process shares
    # the budgets (mobile_api/throttling.py, docs/api.md "Rate limits").
    "DEFAULT_THROTTLE_CLASSES": [
        "mobile_api.throttling.AnonymousIpThrottle",
        "mobile_api.throttling.DeviceThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env_str("RELAIS_RATE_ANON", "60/minute"),
        "user": env_str("RELAIS_RATE_USER", "600/minute"),
        "login_ip": env_str("RELAIS_RATE_LOGIN_IP", "30/minute"),
        "send_device": env_str("RELAIS_RATE_SEND_DEVICE", "300/minute"),
        "send_ip": env_str("RELAIS_RATE_SEND_IP", "3000/minute"),
        "upload_device": env_str("RELAIS_RATE_UPLOAD_DEVICE", "600/minute"),
        "upload_ip": env_str("RELAIS_RATE_UPLOAD_IP", "3000/minute"),
        "search_device": env_str("RELAIS_RATE_SEARCH_DEVICE", "120/minute"),
        "search_ip": env_str("RELAIS_RATE_SEARCH_IP", "1200/minute"),
        # The public read of the key-transparency log, and lookups by national id.
        "keylog_ip": env_str("RELAIS_RATE_KEYLOG_IP", "600/minute"),
        "keylog_lookup_device": env_str("RELAIS_RATE_KEYLOG_LOOKUP_DEVICE", "300/minute"),
    },
}

# Django's cache holds the REST rate-limit counters. With Redis (several server
# processes) they live there, so a budget is the same whichever process answers;
# the embedded default keeps them in the process.
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env_str("RELAIS_REDIS_PREFIX", "relais") + "-cache",
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# The OpenAPI 3 schema of the REST API (GET /api/v1/schema) and its page
# (GET /api/v1/docs); see docs/api.md.
SPECTACULAR_SETTINGS = {
    "TITLE": "Relais API",
    "DESCRIPTION": (
        "The REST API of Relais, for mobile apps, the web client and integrations. "
        "Authenticate with `Authorization: Bearer <device token>`; every error has the "
        'body `{"error": {"code", "message", "message_fr"}}` with a stable '
        "code. Guide: docs/api.md."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PUBLIC": True,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "ErrorCodeEnum": "mobile_api.openapi.ERROR_CODES",
        "TeleexpertiseStateEnum": "mobile_api.views.teleexpertise.STATES",
        "ActCodeEnum": "mobile_api.views.billing.ACT_CODES",
        "UploadStateEnum": "mobile_api.openapi_attachments.UPLOAD_STATES",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "mobile_api.openapi.add_error_responses",
    ],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {"persistAuthorization": False, "tryItOutEnabled": False},
}

# One namespace for Relais' own knobs, read lazily through chat.conf.relais_settings().
RELAIS = {
    "DEV_LOGIN": DEBUG,  # the development login exists only with DEBUG on; never in production
    "REDIS_URL": REDIS_URL,
    "REDIS_PREFIX": env_str("RELAIS_REDIS_PREFIX", "relais"),
    # A 48 KiB body is 64 KiB of base64url: the frame carrying it must be larger, so
    # that a body over the limit gets body_too_large, not frame_too_large.
    "MAX_FRAME_BYTES": env_int("RELAIS_MAX_FRAME_BYTES", 80 * 1024),
    "MAX_BODY_BYTES": env_int("RELAIS_MAX_BODY_BYTES", 48 * 1024),
    "RATE_PER_SECOND": env_int("RELAIS_WS_RATE_PER_SECOND", 200),
    "RATE_BURST": env_int("RELAIS_WS_RATE_BURST", 400),
    "FLOOD_ERRORS_BEFORE_CLOSE": env_int("RELAIS_WS_FLOOD_ERRORS", 50),
    "OUTBOUND_QUEUE_LIMIT": env_int("RELAIS_WS_OUTBOUND_QUEUE", 2000),
    "BACKLOG_PAGE": 500,
    "HISTORY_PAGE_MAX": 200,
    "AUTH_TIMEOUT_SECONDS": env_int("RELAIS_WS_AUTH_TIMEOUT", 10),
    "STORE_TIMEOUT_SECONDS": env_int("RELAIS_STORE_TIMEOUT", 10),
    "WRITE_BATCH_MAX": env_int("RELAIS_WRITE_BATCH_MAX", 256),
    "WRITE_CONCURRENCY": env_int("RELAIS_WRITE_CONCURRENCY", 2),
    "DB_POOL_SIZE": env_int("RELAIS_DB_POOL_SIZE", 4),
    # A device token unused this long stops working; the device logs in again and
    # proves it holds its keys to stay the same device (docs/protocol.md §10.4).
    "TOKEN_IDLE_SECONDS": env_int("RELAIS_TOKEN_IDLE_DAYS", 30) * 24 * 3600,
    # WebSockets per server process (chat/limits.py): a hospital's staff share an address.
    "MAX_CONNECTIONS_PER_DEVICE": env_int("RELAIS_WS_MAX_PER_DEVICE", 10),
    "MAX_CONNECTIONS_PER_ADDRESS": env_int("RELAIS_WS_MAX_PER_ADDRESS", 2000),
    "MAX_UNAUTHENTICATED_PER_ADDRESS": env_int("RELAIS_WS_MAX_UNAUTHENTICATED_PER_ADDRESS", 100),
}

# Téléexpertise (docs/teleexpertise.md): reminders to the requis before the deadline,
# the range of deadlines a request may ask for, and how often the clock runs.
RELAIS_TELEEXPERTISE = {
    "REMINDERS": env_list("RELAIS_TELEEXPERTISE_REMINDERS", ["24h", "1h"]),
    "MIN_DEADLINE": env_str("RELAIS_TELEEXPERTISE_MIN_DEADLINE", "10m"),
    "MAX_DEADLINE": env_str("RELAIS_TELEEXPERTISE_MAX_DEADLINE", "30d"),
    "CLOCK_INTERVAL_SECONDS": env_int("RELAIS_TELEEXPERTISE_CLOCK_INTERVAL", 60),
}

# The key-transparency log (docs/configuration.md, "Key-transparency log"). Its signing
# and VRF keys come from a 32-byte seed file, required in production (manage.py
# keylog_generate_key); with DEBUG on a seed is generated under var/ on first use.
KEYLOG_KEY_FILE = env_str("RELAIS_KEYLOG_KEY_FILE", "")
if not DEBUG and not KEYLOG_KEY_FILE:
    raise ConfigurationError(
        "RELAIS_KEYLOG_KEY_FILE must be set when RELAIS_DEBUG is off "
        "(create it with: manage.py keylog_generate_key PATH)"
    )
KEYLOG_DEVELOPMENT_KEY_FILE = str(BASE_DIR / "var" / "keylog.key") if DEBUG else ""
# Witnesses whose cosignatures the log accepts: Ed25519 public keys, base64url.
KEYLOG_WITNESSES = env_list("RELAIS_KEYLOG_WITNESSES", [])
# A fresh head is signed when the newest is older than this (seconds).
KEYLOG_HEAD_INTERVAL = env_int("RELAIS_KEYLOG_HEAD_INTERVAL", 600)
# An identity reset is allowed only from a device that logged in this recently (seconds).
KEYLOG_RESET_WINDOW = env_int("RELAIS_KEYLOG_RESET_WINDOW", 600)

# Logs: JSON lines in production (one object per line, with the request or connection
# id), plain text in development; always redacted (observability/logs.py).
LOG_LEVEL = env_str("RELAIS_LOG_LEVEL", "INFO").upper()
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ConfigurationError(
        f"RELAIS_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, not {LOG_LEVEL!r}"
    )
LOG_FORMAT = env_str("RELAIS_LOG_FORMAT", "plain" if DEBUG else "json")
if LOG_FORMAT not in {"json", "plain"}:
    raise ConfigurationError(f"RELAIS_LOG_FORMAT must be json or plain, not {LOG_FORMAT!r}")
LOGGING = logging_config(level=LOG_LEVEL, json_lines=LOG_FORMAT == "json")

# Prometheus metrics at /metrics, answered only to these addresses and never through a
# proxy (observability/asgi.py); empty turns the endpoint off.
try:
    METRICS_ALLOWED_NETWORKS = parse_networks(
        env_list("RELAIS_METRICS_ALLOWED_NETWORKS", ["127.0.0.0/8", "::1"])
    )
except ValueError as _error:
    raise ConfigurationError(f"RELAIS_METRICS_ALLOWED_NETWORKS: {_error}") from None

if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("RELAIS_SECURE_SSL_REDIRECT", True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SECURE_HSTS_SECONDS = env_int("RELAIS_HSTS_SECONDS", 31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
    X_FRAME_OPTIONS = "DENY"

# Encrypted attachments (docs/attachments.md). Blobs go through Django's storage API:
# the filesystem by default, S3-compatible object storage with RELAIS_ATTACHMENT_STORAGE=s3.
RELAIS_ATTACHMENTS = {
    "MAX_FILE_BYTES": env_int("RELAIS_ATTACHMENT_MAX_BYTES", 100 * 1024 * 1024),
    "QUOTA_BYTES": env_int("RELAIS_ATTACHMENT_QUOTA_BYTES", 5 * 1024 * 1024 * 1024),
    "PART_BYTES": env_int("RELAIS_ATTACHMENT_PART_BYTES", 4 * 1024 * 1024),
    "UPLOAD_TTL_SECONDS": env_int("RELAIS_ATTACHMENT_UPLOAD_TTL", 24 * 3600),
    "UNSENT_GRACE_SECONDS": env_int("RELAIS_ATTACHMENT_UNSENT_GRACE", 24 * 3600),
    "RETENTION_DAYS": env_int("RELAIS_ATTACHMENT_RETENTION_DAYS", 365),
}
_attachment_backend = env_str("RELAIS_ATTACHMENT_STORAGE", "filesystem")
if _attachment_backend == "filesystem":
    _attachment_storage: dict[str, object] = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {
            "location": env_str("RELAIS_ATTACHMENT_ROOT", str(BASE_DIR / "var" / "attachments")),
            "base_url": None,
            "file_permissions_mode": 0o600,
            "directory_permissions_mode": 0o700,
        },
    }
elif _attachment_backend == "s3":
    _bucket = env_str("RELAIS_ATTACHMENT_S3_BUCKET", "")
    if not _bucket:
        raise ConfigurationError("RELAIS_ATTACHMENT_S3_BUCKET must be set with the s3 storage")
    # Credentials come from the standard AWS variables or the instance role, never here.
    _attachment_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": _bucket,
            "endpoint_url": env_str("RELAIS_ATTACHMENT_S3_ENDPOINT_URL", "") or None,
            "region_name": env_str("RELAIS_ATTACHMENT_S3_REGION", "") or None,
            "default_acl": "private",
            "querystring_auth": True,
            "file_overwrite": False,
        },
    }
else:
    raise ConfigurationError(
        f"RELAIS_ATTACHMENT_STORAGE must be filesystem or s3, not {_attachment_backend!r}"
    )
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "attachments": _attachment_storage,
}

# Web Push (push/, docs/push.md): on when a VAPID private key is configured. Read lazily
# through push.conf.push_settings(), which checks the values and names the variable.
RELAIS_PUSH = {
    "VAPID_PRIVATE_KEY": env_str("RELAIS_VAPID_PRIVATE_KEY", ""),
    "VAPID_SUBJECT": env_str("RELAIS_VAPID_SUBJECT", ""),
    # Push services a subscription may point to (deny by default: the server POSTs there).
    "ENDPOINT_HOSTS": env_list(
        "RELAIS_PUSH_ENDPOINT_HOSTS",
        ["*"]
        if DEBUG
        else [
            "fcm.googleapis.com",
            "android.googleapis.com",
            "updates.push.services.mozilla.com",
            "web.push.apple.com",
            "*.notify.windows.com",
        ],
    ),
    "ALLOW_HTTP_ENDPOINTS": DEBUG,  # https only in production
    "TTL_SECONDS": env_int("RELAIS_PUSH_TTL", 24 * 3600),
    "REQUEST_TIMEOUT_SECONDS": env_int("RELAIS_PUSH_TIMEOUT", 10),
    "MAX_ATTEMPTS": env_int("RELAIS_PUSH_MAX_ATTEMPTS", 6),
    "BACKOFF_BASE_SECONDS": env_int("RELAIS_PUSH_BACKOFF_BASE", 2),
    "BACKOFF_MAX_SECONDS": env_int("RELAIS_PUSH_BACKOFF_MAX", 600),
    "CONCURRENCY": env_int("RELAIS_PUSH_CONCURRENCY", 32),
    "STREAM_MAXLEN": env_int("RELAIS_PUSH_STREAM_MAXLEN", 100_000),
    "WORKER_NAME": env_str("RELAIS_PUSH_WORKER_NAME", ""),
    "RATE_DEVICE": env_str("RELAIS_RATE_PUSH_DEVICE", "30/minute"),
    "RATE_IP": env_str("RELAIS_RATE_PUSH_IP", "300/minute"),
}

# The daily directory import (directory/management/commands/update_directory.py): where
# the Annuaire Santé extracts are downloaded from, with which trust anchors, and to where.
_ANNUAIRE_EXTRACTS = (
    "https://service.annuaire.sante.fr/annuaire-sante-webservices/V300/services/extraction/"
)
RELAIS_DIRECTORY = {
    "PERSONNE_URL": env_str("RELAIS_DIRECTORY_PERSONNE_URL", _ANNUAIRE_EXTRACTS + "PS_LibreAcces"),
    "MSSANTE_URL": env_str(
        "RELAIS_DIRECTORY_MSSANTE_URL", _ANNUAIRE_EXTRACTS + "Extraction_Correspondance_MSSante"
    ),
    "CA_FILE": env_str("RELAIS_DIRECTORY_CA_FILE", ""),
    "DOWNLOAD_DIR": env_str("RELAIS_DIRECTORY_DOWNLOAD_DIR", str(BASE_DIR / "var" / "directory")),
    "HTTP_TIMEOUT_SECONDS": env_int("RELAIS_DIRECTORY_HTTP_TIMEOUT", 60),
}

# Pro Santé Connect (identity/, docs/identity.md): RELAIS_PSC_* environment variables.
from identity.environment import psc_from_environment  # noqa: E402

RELAIS_PSC = psc_from_environment()
