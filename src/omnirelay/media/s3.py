"""The S3-compatible backend: a slot is a real presigned POST (boto3
``generate_presigned_post``) whose policy pins the object key, the content type and a size
of 1 byte to 10 MB, and expires with the slot. Signing is local computation: no request
reaches the bucket while a slot is made."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from omnirelay.media.storage import MAX_SIZE, Plan, StorageUnavailable, Target


class S3Storage:
    name = "s3"

    def __init__(
        self,
        bucket: str,
        endpoint_url: str,
        region: str,
        access_key_id: str,
        secret_access_key: str,
        prefix: str,
        public_url: str,
        acl: str,
    ) -> None:
        import boto3
        from botocore.config import Config

        self.bucket, self.prefix, self.acl = bucket, prefix, acl
        credentials: dict[str, Any] = {}
        if access_key_id:  # else boto3's own chain (environment, profile, instance role)
            credentials = {
                "aws_access_key_id": access_key_id,
                "aws_secret_access_key": secret_access_key,
            }
        self.client: Any = boto3.client(
            "s3",
            endpoint_url=endpoint_url or None,
            region_name=region,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
            **credentials,
        )
        if public_url:
            self.public_url = public_url.rstrip("/")
        elif endpoint_url:
            self.public_url = f"{endpoint_url.rstrip('/')}/{bucket}"
        else:
            self.public_url = f"https://{bucket}.s3.{region}.amazonaws.com"

    def target(self, plan: Plan, base_url: str) -> Target:
        key = f"{self.prefix}{plan.link_token}/{plan.filename}"
        fields: dict[str, str] = {"Content-Type": plan.content_type}
        conditions: list[Any] = [
            {"Content-Type": plan.content_type},
            ["content-length-range", 1, MAX_SIZE],
        ]
        if self.acl:
            fields["acl"] = self.acl
            conditions.append({"acl": self.acl})
        seconds = max(1, int((plan.expires_at - datetime.now(UTC)).total_seconds()))
        try:
            post = self.client.generate_presigned_post(
                Bucket=self.bucket, Key=key, Fields=fields, Conditions=conditions, ExpiresIn=seconds
            )
        except Exception as exc:  # botocore's: no credentials, a bad region, ...
            raise StorageUnavailable(
                "storage_unavailable", f"The media bucket cannot sign uploads: {exc}"
            ) from exc
        return Target(
            key=key,
            url=str(post["url"]),
            fields={str(k): str(v) for k, v in post["fields"].items()},
            media_url=f"{self.public_url}/{quote(key)}",
        )

    def put(self, plan: Plan, base_url: str, data: bytes) -> Target:
        key = f"{self.prefix}{plan.link_token}/{plan.filename}"
        extra: dict[str, Any] = {"ACL": self.acl} if self.acl else {}
        try:
            self.client.put_object(
                Bucket=self.bucket, Key=key, Body=data, ContentType=plan.content_type, **extra
            )
        except Exception as exc:  # botocore's: the bucket refused or is unreachable
            raise StorageUnavailable(
                "storage_unavailable", f"The media bucket did not store the file: {exc}"
            ) from exc
        return Target(key=key, url="", fields={}, media_url=f"{self.public_url}/{quote(key)}")
