"""transform.secrets on a worker: values read from the files the worker holds, never shown.

Pachyderm's secrets are Kubernetes secrets; a herd worker holds each one as a folder of files,
`<HERD_SECRETS_DIR>/<name>/<key>` (what mounting a Kubernetes secret there gives, `..data`
links included). Errors name the secret and key, never a value; values live only in the
environment or the files handed to user code (repr of SecretMount hides them).
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from scheduler.spec import Secret
from storage.errors import SecretNotFound

MAX_SECRET_BYTES = 1024 * 1024  # Kubernetes' own limit on a secret


@dataclass(frozen=True)
class SecretMount:
    """A `mount_path` secret: every key of it, as files of one read-only folder."""

    name: str
    path: str
    files: dict[str, bytes] = field(repr=False)


def secret_env(secrets: Sequence[Secret], folder: str | None) -> dict[str, str]:
    """The variables of `env_var` secrets, {env_var: value}."""
    env: dict[str, str] = {}
    for secret in secrets:
        if secret.env_var is None or secret.key is None:
            continue
        value = _read(folder, secret.name, secret.key)
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            raise SecretNotFound(f"secret '{secret.name}' key '{secret.key}' is not UTF-8 text: "
                                 f"it cannot be the variable '{secret.env_var}'") from None
        if "\x00" in text:
            raise SecretNotFound(f"secret '{secret.name}' key '{secret.key}' holds a NUL byte: "
                                 f"it cannot be the variable '{secret.env_var}'")
        env[secret.env_var] = text
    return env


def secret_mounts(secrets: Sequence[Secret], folder: str | None) -> tuple[SecretMount, ...]:
    """The `mount_path` secrets with their files (a `key`, when given, picks that one file)."""
    mounts = []
    for secret in secrets:
        if secret.mount_path is None:
            continue
        keys = [secret.key] if secret.key else _keys(folder, secret.name)
        mounts.append(SecretMount(secret.name, secret.mount_path, {key: _read(folder, secret.name, key) for key in keys}))
    return tuple(mounts)


def _home(folder: str | None, name: str) -> Path:
    if folder is None:
        raise SecretNotFound(f"secret '{name}' is not held by this worker: HERD_SECRETS_DIR is not set")
    home = Path(folder) / name
    if not home.is_dir():
        raise SecretNotFound(f"secret '{name}' is not held by this worker (no folder '{home}')")
    return home


def _keys(folder: str | None, name: str) -> list[str]:
    home = _home(folder, name)
    # Kubernetes' mount holds `..data` and `..<timestamp>` next to the keys (links into them).
    keys = sorted(e.name for e in home.iterdir() if not e.name.startswith("..") and e.is_file())
    if not keys:
        raise SecretNotFound(f"secret '{name}' has no key on this worker (folder '{home}' is empty)")
    return keys


def _read(folder: str | None, name: str, key: str) -> bytes:
    path = _home(folder, name) / key
    try:
        with open(path, "rb") as handle:  # links followed: a Kubernetes mount's keys are links
            if not os.path.isfile(path):
                raise IsADirectoryError(path)
            value = handle.read(MAX_SECRET_BYTES + 1)
    except OSError as exc:
        raise SecretNotFound(f"secret '{name}' key '{key}' is not held by this worker ({exc.strerror or 'unreadable'}: "
                             f"'{path}')") from None
    if len(value) > MAX_SECRET_BYTES:
        raise SecretNotFound(f"secret '{name}' key '{key}' is larger than {MAX_SECRET_BYTES} bytes")
    return value


def secret_tar(mount: SecretMount, uid: int) -> bytes:
    """A mount_path secret as a tar for the root of its own volume: the folder 0555 and files
    0444, owned by `uid` (herd's stage uid), so user code (no capabilities) can read them but
    neither change, add nor remove any."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, mode, data in [("/", tarfile.DIRTYPE, 0o555, b""),
                                       *((key, tarfile.REGTYPE, 0o444, value) for key, value in mount.files.items())]:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.uid, info.gid, info.size = kind, mode, uid, uid, len(data)
            tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    return buffer.getvalue()
