"""The one way vigil talks to S3: a client with timeouts and bounded retries, the
server-side encryption the config asks for, and errors worded for a person (which object,
where, what to fix, whether trying again may help). Backups and the status page's upload
both come through here.
"""

from __future__ import annotations

from typing import Any

from tasks.storage.base import StorageError
from vigil.config import S3Settings

CONNECT_TIMEOUT_S = 10
READ_TIMEOUT_S = 120
# S3 answers that mean "not now" rather than "never".
TRANSIENT_CODES = frozenset(
    {
        "InternalError",
        "ServiceUnavailable",
        "SlowDown",
        "RequestTimeout",
        "Throttling",
        "ThrottlingException",
        "RequestTimeTooSkewed",
        "503",
        "500",
        "502",
        "504",
    }
)
_HINTS = {
    "NoSuchBucket": "; create the bucket {bucket!r} or fix the s3:// URL",
    "AccessDenied": "; check the credentials' permissions on the bucket",
    "InvalidAccessKeyId": "; check backup.s3.access_key_id",
    "SignatureDoesNotMatch": "; check backup.s3.secret_access_key",
}


def s3_client(settings: S3Settings, *, pool: int = 4) -> Any:
    """A boto3 S3 client for `backup.s3` (endpoint, region, credentials).

    Request retries follow boto3's chain (standard mode, 3 attempts unless AWS_MAX_ATTEMPTS /
    AWS_RETRY_MODE or ~/.aws/config say otherwise); the tasks retry the whole step on top,
    with longer pauses. boto3 is imported here only, so what never touches S3 never pays
    for it."""
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3",
        endpoint_url=settings.endpoint_url,
        region_name=settings.region,
        aws_access_key_id=settings.access_key_id,
        aws_secret_access_key=settings.secret_access_key,
        config=Config(
            connect_timeout=CONNECT_TIMEOUT_S,
            read_timeout=READ_TIMEOUT_S,
            max_pool_connections=pool,
            # No CRC32 of every part on top (boto3's default since 1.36): each part still
            # travels under TLS on HTTPS (or with its SHA-256 signed on plain HTTP), and
            # vigil proves the whole object's SHA-256 by reading it back. The extra CRC cost
            # CPU on both ends (a quarter of moto's per part).
            request_checksum_calculation="when_required",
        ),
    )


def encryption(settings: S3Settings) -> dict[str, str]:
    """The arguments of a PUT or multipart start that ask for `backup.s3.sse`."""
    return {"ServerSideEncryption": settings.sse} if settings.sse else {}


def s3_error(action: str, where: str, bucket: str, exc: Exception) -> StorageError:
    """`cannot <action> <where>: <what S3 said>; <what to do>`, retryable when S3 said
    'not now' (throttling, 5xx, a dropped connection)."""
    from botocore.exceptions import (
        ClientError,
        ConnectionError,
        HTTPClientError,
        NoCredentialsError,
    )

    if isinstance(exc, NoCredentialsError):
        return StorageError(
            f"cannot {action} {where}: no AWS credentials (set backup.s3.access_key_id and "
            "secret_access_key, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)"
        )
    if isinstance(exc, ConnectionError | HTTPClientError):
        return StorageError(f"cannot {action} {where}: S3 unreachable ({exc})", retryable=True)
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        hint = _HINTS.get(code, "").format(bucket=bucket)
        return StorageError(
            f"cannot {action} {where}: {code or exc}{hint}", retryable=code in TRANSIENT_CODES
        )
    return StorageError(f"cannot {action} {where}: {exc!r}", retryable=True)
