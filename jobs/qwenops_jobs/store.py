"""Object-store I/O with the same layout and guarantees as the TypeScript stores
(src/storage/{minio,fs,manifest}.ts): writes go to a temporary key first and are copied
(or renamed) into place, every object records its sha256, and a prefix is complete only
when its manifest (``qwenops-manifest.json``, written last) exists.

URIs: ``s3://bucket/key`` (MinIO or any S3 API; endpoint and credentials from the Job's
environment) and ``file:///absolute/path`` (the embedded filesystem store).
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Protocol
from urllib.parse import unquote, urlparse

MANIFEST_NAME = "qwenops-manifest.json"
TEMP_PREFIX = ".qwenops-tmp/"
SIDECAR_SUFFIX = ".qwenops-sha256"
SINGLE_COPY_LIMIT = 5 * 1024**3  # S3 CopyObject limit; larger objects use a multipart compose


class StoreError(Exception):
    pass


@dataclass(frozen=True)
class FileEntry:
    path: str
    size: int
    sha256: str


def key_problem(key: str) -> str | None:
    """The storage-key rules of src/domain/validation.ts (no traversal, no absolute keys)."""
    if not key:
        return "must not be empty"
    if key.startswith("/"):
        return "must be relative"
    if "\\" in key:
        return "must use '/' as separator"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in key):
        return "must not contain control characters"
    segments = key.split("/")
    if any(s in (".", "..") for s in segments):
        return "must not contain '.' or '..' segments"
    if any(s == "" for s in segments[:-1]):
        return "must not contain empty segments"
    return None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class Store(Protocol):
    def put_file(self, key: str, source: Path) -> FileEntry: ...
    def put_bytes(self, key: str, data: bytes) -> FileEntry: ...
    def get_bytes(self, key: str) -> bytes: ...
    def get_file(self, key: str, target: Path) -> None: ...
    def list(self, prefix: str) -> Iterator[str]: ...


class LocalStore:
    """file:// URIs: the absolute path is the key (root '/'), as FsArtifactStore lays it out."""

    def __init__(self, root: Path = Path("/")):
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / key

    def _put(self, key: str, write) -> FileEntry:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.parent / f".qwenops-tmp-{uuid.uuid4().hex}"
        try:
            write(temp)
            sha = sha256_file(temp)
            size = temp.stat().st_size
            sidecar_temp = target.parent / f".qwenops-tmp-{uuid.uuid4().hex}"
            sidecar_temp.write_text(sha)
            os.replace(sidecar_temp, f"{target}{SIDECAR_SUFFIX}")
            os.replace(temp, target)
            return FileEntry(path=key, size=size, sha256=sha)
        finally:
            temp.unlink(missing_ok=True)

    def put_file(self, key: str, source: Path) -> FileEntry:
        def write(temp: Path) -> None:
            with open(source, "rb") as src, open(temp, "wb") as dst:
                for chunk in iter(lambda: src.read(1 << 20), b""):
                    dst.write(chunk)

        return self._put(key, write)

    def put_bytes(self, key: str, data: bytes) -> FileEntry:
        return self._put(key, lambda temp: temp.write_bytes(data))

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise StoreError(f"file:///{key} does not exist") from None

    def get_file(self, key: str, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(self.get_bytes(key))

    def list(self, prefix: str) -> Iterator[str]:
        base = self._path(prefix)
        if not base.is_dir():
            return
        for path in sorted(base.rglob("*")):
            name = path.name
            if path.is_file() and not name.endswith(SIDECAR_SUFFIX) and not name.startswith(".qwenops-tmp-"):
                yield str(path.relative_to(self.root)).replace(os.sep, "/")


class S3Store:
    """s3:// URIs through the MinIO client; endpoint and credentials come from the environment
    the worker gives the Job (QWENOPS_S3_ENDPOINT, QWENOPS_S3_REGION, QWENOPS_S3_ACCESS_KEY and
    QWENOPS_S3_SECRET_KEY, the last two from a Kubernetes Secret)."""

    def __init__(self, bucket: str, client: Any | None = None):
        self.bucket = bucket
        self.client = client if client is not None else self._client_from_env()

    @staticmethod
    def _client_from_env() -> Any:
        from minio import Minio  # lazy: only s3:// Jobs need it

        endpoint = os.environ.get("QWENOPS_S3_ENDPOINT")
        access = os.environ.get("QWENOPS_S3_ACCESS_KEY")
        secret = os.environ.get("QWENOPS_S3_SECRET_KEY")
        missing = [n for n, v in (("QWENOPS_S3_ENDPOINT", endpoint), ("QWENOPS_S3_ACCESS_KEY", access), ("QWENOPS_S3_SECRET_KEY", secret)) if not v]
        if missing:
            raise StoreError(f"s3:// URIs need {', '.join(missing)} in the environment")
        parsed = urlparse(endpoint)
        return Minio(
            parsed.netloc or endpoint,
            access_key=access,
            secret_key=secret,
            secure=parsed.scheme == "https",
            region=os.environ.get("QWENOPS_S3_REGION", "us-east-1"),
        )

    def _commit(self, temp_key: str, key: str, sha: str, size: int) -> None:
        from minio.commonconfig import REPLACE, ComposeSource, CopySource

        metadata = {"sha256": sha}
        if size <= SINGLE_COPY_LIMIT:
            self.client.copy_object(self.bucket, key, CopySource(self.bucket, temp_key), metadata=metadata, metadata_directive=REPLACE)
        else:
            self.client.compose_object(self.bucket, key, [ComposeSource(self.bucket, temp_key)], metadata=metadata)

    def put_file(self, key: str, source: Path) -> FileEntry:
        sha = sha256_file(source)
        size = source.stat().st_size
        temp_key = f"{TEMP_PREFIX}{uuid.uuid4()}"
        try:
            self.client.fput_object(self.bucket, temp_key, str(source))
            self._commit(temp_key, key, sha, size)
        finally:
            self.client.remove_object(self.bucket, temp_key)
        return FileEntry(path=key, size=size, sha256=sha)

    def put_bytes(self, key: str, data: bytes) -> FileEntry:
        import io

        sha = hashlib.sha256(data).hexdigest()
        temp_key = f"{TEMP_PREFIX}{uuid.uuid4()}"
        try:
            self.client.put_object(self.bucket, temp_key, io.BytesIO(data), len(data), content_type="application/json")
            self._commit(temp_key, key, sha, len(data))
        finally:
            self.client.remove_object(self.bucket, temp_key)
        return FileEntry(path=key, size=len(data), sha256=sha)

    def get_bytes(self, key: str) -> bytes:
        from minio.error import S3Error

        try:
            response = self.client.get_object(self.bucket, key)
        except S3Error as err:
            raise StoreError(f"s3://{self.bucket}/{key}: {err.code}") from None
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    def get_file(self, key: str, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        self.client.fget_object(self.bucket, key, str(target))

    def list(self, prefix: str) -> Iterator[str]:
        for obj in self.client.list_objects(self.bucket, prefix=prefix.rstrip("/") + "/", recursive=True):
            yield obj.object_name


def open_uri(value: str, *, s3_client: Any | None = None) -> tuple[Store, str]:
    """The store behind a URI and the key inside it."""
    parsed = urlparse(value)
    if parsed.scheme == "s3":
        key = unquote(parsed.path.lstrip("/"))
        problem = key_problem(key)
        if not parsed.netloc or problem:
            raise StoreError(f"{value}: key {problem or 'missing bucket'}")
        return S3Store(parsed.netloc, s3_client), key
    if parsed.scheme == "file":
        path = unquote(parsed.path)
        if not path.startswith("/"):
            raise StoreError(f"{value}: file URIs must be absolute")
        key = path.lstrip("/")
        problem = key_problem(key)
        if problem:
            raise StoreError(f"{value}: path {problem}")
        return LocalStore(), key
    raise StoreError(f"{value}: unsupported URI scheme (s3:// or file://)")


def write_json(target_uri: str, value: Any, *, s3_client: Any | None = None) -> FileEntry:
    store, key = open_uri(target_uri, s3_client=s3_client)
    return store.put_bytes(key, json.dumps(value, ensure_ascii=False, indent=2).encode())


def read_json(source_uri: str, *, s3_client: Any | None = None) -> Any:
    store, key = open_uri(source_uri, s3_client=s3_client)
    return json.loads(store.get_bytes(key))


def upload_dir(local_dir: Path, prefix_uri: str, metadata: dict[str, Any], *, s3_client: Any | None = None) -> list[FileEntry]:
    """Uploads every file under local_dir below the prefix, then the manifest (last)."""
    store, prefix = open_uri(prefix_uri, s3_client=s3_client)
    prefix = prefix.rstrip("/")
    files: list[FileEntry] = []
    for path in sorted(p for p in local_dir.rglob("*") if p.is_file()):
        relative = str(path.relative_to(local_dir)).replace(os.sep, "/")
        problem = key_problem(relative)
        if problem:
            raise StoreError(f"{relative}: {problem}")
        entry = store.put_file(f"{prefix}/{relative}", path)
        files.append(FileEntry(path=relative, size=entry.size, sha256=entry.sha256))
    manifest = {
        "version": 1,
        "createdAt": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
        "files": [asdict(f) for f in files],
        "totalBytes": sum(f.size for f in files),
        "metadata": metadata,
    }
    store.put_bytes(f"{prefix}/{MANIFEST_NAME}", json.dumps(manifest, ensure_ascii=False, indent=2).encode())
    return files


def download_prefix(prefix_uri: str, local_dir: Path, *, s3_client: Any | None = None) -> dict[str, Any]:
    """Downloads a complete prefix (its manifest must exist) and verifies every file's sha256."""
    store, prefix = open_uri(prefix_uri, s3_client=s3_client)
    prefix = prefix.rstrip("/")
    try:
        manifest = json.loads(store.get_bytes(f"{prefix}/{MANIFEST_NAME}"))
    except StoreError:
        raise StoreError(f"{prefix_uri} has no {MANIFEST_NAME}: it is incomplete or not a model prefix") from None
    for entry in manifest.get("files", []):
        relative = entry["path"]
        problem = key_problem(relative)
        if problem:
            raise StoreError(f"manifest of {prefix_uri} lists {relative!r}, which {problem}")
        target = local_dir / relative
        store.get_file(f"{prefix}/{relative}", target)
        actual = sha256_file(target)
        if actual != entry["sha256"]:
            raise StoreError(f"{prefix_uri}/{relative}: sha256 {actual} does not match the manifest ({entry['sha256']})")
    return manifest
