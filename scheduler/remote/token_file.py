"""The CLI's stored token (`herd auth login`): `<HERD_CONFIG_DIR>/token`, readable by its owner only.

Written to a temp file created with mode 0600 and renamed over the old one, in a folder of mode
0700, so the token is never readable by others, not even for a moment, and never half-written.
"""

from __future__ import annotations

import os
from pathlib import Path

from storage.errors import InvalidArgument

TOKEN_FILE = "token"


def config_dir(setting: str | None) -> Path:
    return Path(setting) if setting else Path("~/.config/herd").expanduser()


def read_token(folder: Path) -> str | None:
    path = folder / TOKEN_FILE
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InvalidArgument(f"cannot read the stored token '{path}': {exc.strerror}") from None
    return text or None


def write_token(folder: Path, token: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / TOKEN_FILE
    temp = folder / f".{TOKEN_FILE}.{os.getpid()}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(token + "\n")
        os.chmod(temp, 0o600)  # whatever the umask did
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return path


def forget_token(folder: Path) -> bool:
    path = folder / TOKEN_FILE
    existed = path.exists()
    path.unlink(missing_ok=True)
    return existed
