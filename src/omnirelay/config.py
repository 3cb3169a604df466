"""Settings, read once from the environment (prefix ``OMNIRELAY_``).

Every setting is documented in docs/configuration.md; keep the two in step.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_database_url() -> str:
    return f"sqlite:///{Path('var') / 'omnirelay.db'}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OMNIRELAY_", extra="ignore")

    database_url: str = Field(default_factory=_default_database_url)
    database_echo: bool = False
    database_pool_size: int = 10

    host: str = "127.0.0.1"
    port: int = 8000
    # uvicorn's HTTP/1.1 parser; both send header names canonical (ADR 24): "httptools"
    # through omnirelay.httpserver, cheaper per request (ADR 41); "h11" pure Python.
    http_parser: Literal["h11", "httptools"] = "httptools"

    # Workers (the job queue).
    worker_concurrency: int = 4
    worker_poll_interval: float = 5.0
    # An idle poller backs off from worker_poll_interval to this (ADR 34): commits wake
    # it at once; the poll only catches what no wake-up reaches (another SQLite process).
    worker_idle_interval: float = 2.0
    # The web chat socket's read of its visitor's waiting sends: a safety net only,
    # sends reach sockets on any process by notice (docs/channels/webchat.md, ADR 44).
    webchat_poll_seconds: float = 60.0
    job_lease_seconds: float = 300.0
    job_max_attempts: int = 10
    job_backoff_base_seconds: float = 2.0
    job_backoff_max_seconds: float = 3600.0

    # The dispatch drain (messaging/dispatch.py): messages claimed per batch, and how long
    # a claim holds before another process may take the batch over (its owner died).
    dispatch_batch: int = 256
    dispatch_lease_seconds: float = 120.0

    # Rate limiting per subscription (seed 000): requests per window.
    rate_limit_requests: int = 1000
    rate_limit_window_seconds: int = 60
    # Per IP address and window, in each process: calls whose credentials fail, and the
    # gateway's OTP requests (/delete-device). Past them: 429 (docs/security.md).
    rate_limit_anonymous_requests: int = 60
    rate_limit_otp_requests: int = 10

    # Request bodies (docs/security.md): larger ones get 413 before they are read.
    # max_body_bytes: every body but multipart; max_upload_bytes: multipart (uploads,
    # streamed); max_json_string_bytes: the longest string in a JSON body.
    max_body_bytes: int = 4 * 1024 * 1024
    max_upload_bytes: int = 32 * 1024 * 1024
    max_json_string_bytes: int = 256 * 1024

    # Networks every outgoing connection a tenant can aim may reach although private
    # (webhooks, report URLs, provider base URLs, SMPP hosts): e.g. "10.20.0.0/16" for a
    # private SMSC, "127.0.0.0/8,::1/128" for local testing (docs/security.md).
    allowed_networks: str = ""

    # Webhook delivery.
    webhook_allowed_networks: str = ""  # older name: adds to allowed_networks
    webhook_timeout_seconds: float = 15.0
    webhook_concurrency: int = 256
    webhook_per_url_concurrency: int = 64
    # How long a killed process's claimed deliveries wait before another takes them
    # (at least twice the timeout; renewed while held).
    webhook_lease_seconds: float = 60.0
    # How long an SMPP connection waits for a new owner when its process died (renewed
    # every 5 s while alive; at least 15 s).
    smpp_session_lease_seconds: float = 30.0

    # The inbound SMTP listener of the email channel (replies and bounces,
    # docs/channels/email.md): "host:port" to listen on, e.g. "0.0.0.0:25"; empty: off.
    # It runs in every process that runs workers (several may share the port).
    smtp_listen: str = ""
    smtp_hostname: str = ""  # the name in its greeting; the host name when empty
    smtp_max_message_bytes: int = 10 * 1024 * 1024  # larger messages: 552
    smtp_max_recipients: int = 20  # per message; more: 452

    # Notifications (seed 001).
    default_phone_region: str = "RU"  # for numbers given without a country code
    initial_balance: str = "1000.00"  # what a new organization starts with
    currency: str = "EUR"
    default_prices: str = "sms=0.05,viber=0.03,vk=0.02,telegram=0.01"  # per message / SMS part
    sandbox_report_delay: float | None = None  # overrides the sandbox's own delays (seconds)

    # WhatsApp gateway (seed 002): where files uploaded to /send are kept for the driver.
    media_dir: str = "var/media"

    # Media storage (seed 004 `media/upload`, ADR 21): local disk under media_dir/storage
    # unless a bucket is named. public_url: the base URL clients reach omnirelay at, for
    # upload URLs and media links (empty: taken from each request's Host).
    public_url: str = ""
    media_s3_bucket: str = ""
    media_s3_endpoint_url: str = ""  # empty: AWS; else MinIO, Ceph, ... (path-style)
    media_s3_region: str = "us-east-1"
    media_s3_access_key_id: str = ""  # empty: boto3's own credential chain
    media_s3_secret_access_key: str = ""
    media_s3_prefix: str = "media/"
    media_s3_public_url: str = ""  # base of media links (a CDN); empty: the bucket's URL
    media_s3_acl: str = "public-read"  # empty: no ACL field (buckets with ACLs disabled)

    # How often a process that runs workers removes expired idempotency keys and uploads
    # that no message needs any more (seconds; 0: never, run `omnirelay admin housekeeping`).
    housekeeping_interval_seconds: float = 3600.0

    # Group commit of sendSMS, sendViber, sendVK, sendTelegram, send and sendSimple without
    # an Idempotency-Key (messaging/batcher.py): concurrent requests share one transaction.
    # accept_batch_max: most drafts per transaction.
    # accept_batch_wait_ms: how long the writer waits for more when fewer are queued
    #   (adds up to this to a request's latency; 0: take what is there).
    # accept_timeout_seconds: a request waits this long for its commit, then answers 503.
    accept_batch_max: int = 500
    accept_batch_wait_ms: float = 1.0
    accept_timeout_seconds: float = 30.0

    # How long a process trusts its memory of an API token (/v3, /user) before reading it
    # again: a token revoked by another process stops working within this many seconds
    # (at once in the process that revoked it). tenancy/cache.py.
    credential_cache_seconds: float = 1.0

    log_level: str = "INFO"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
