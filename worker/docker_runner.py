"""The in-container half of DockerRuntime: two busybox `sh` loops and what they are sent.

Each session container gets Debian's static busybox and the two scripts below in an anonymous
volume at `/.herd` (put_archive before start), so the user image needs no shell. An exec costs
~1-2 ms in a container, so the per-datum path is counted in processes: a fork + exec of cpio
(stager), a fork + exec of the user cmd, a tar only when there is something to send back.

RUNNER: the container's own process, as the transform's user, fed over the attached stdin.
- `P <script bytes> <stdin bytes>` + payloads: keeps the session's datum script (`t.sh`: the
  transform env, cwd, PATH lookup, exec of the cmd) and stdin; answers `READY <uid> 1`.
- `R <seq> <timeout|0> <request env as one line of shell>`: waits for the stager's word on
  datum `seq` (the FIFO `w/staged`; `S <seq>` if staging failed), runs t.sh in a subshell with
  stdout/stderr in files; with a timeout, a wrapper reports the status on a second FIFO read
  with `read -t` (no timer process). Then `kill -1` ends every other process of the user's uid
  (stragglers; the kernel spares the caller). Answers `H <seq> <exit> <timed out> <oom> <0|1>`
  (oom: the memory cgroup's oom_kill count rose during the datum, read when user code failed) and,
  when 1, a tar of `.herd/w/o`, `.herd/w/e` and `pfs/out` then `T <tar status> <bytes>` + tar's
  complaint. /pfs/out is emptied after the answer, while the worker unpacks it.
STAGER: exec'd once per session as the stage uid, on its own stream, cwd /pfs.
- `E <count> <seq> <input names>` + that many entries, `d 0 <path>` or `f <size> <path>` + the
  file's bytes, for a datum of a few plainly named entries: a `mkdir` or a `dd` each, forked
  without an exec (~0.1 ms) where cpio's exec costs ~0.6 ms (bench/runtime_docker.py's floors).
  The named inputs' folders left empty by `C` are kept (no `mkdir`); anything else goes first.
- `D <seq>` + a newc cpio of the inputs (cpio stops exactly at its trailer: no length, no
  copy), or `T <bytes> <seq>` + a tar when a file is 4 GiB or more. All three delete leftover
  inputs first, tell the runner, and answer `K <status> <bytes>` + the error text; after a
  failure the stream is out of step, and the worker replaces the container.
- `C`: delete the inputs now, but keep their folders, emptied; no answer (sent after each datum,
  so the next one finds /pfs clean).
Inputs belong to the stage uid: user code (another uid, no capabilities) can neither write,
chmod, delete nor add anything under /pfs but in /pfs/out.

Nothing is printed before the first request, so no byte is lost in the attach's HTTP upgrade.
"""

from __future__ import annotations

import io
import itertools
import os
import re
import shlex
import stat
import tarfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO

from scheduler.spec import is_shell_name
from storage.errors import InvalidArgument, InvalidPath
from storage.streams import ChunkStream
from worker.runtime import UserCode

HERD_DIR = "/.herd"
BUSYBOX = f"{HERD_DIR}/bin/busybox"
RUNNER = f"{HERD_DIR}/bin/runner.sh"
STAGER = f"{HERD_DIR}/bin/stager.sh"
CPIO_MAX_FILE = 0xFFFFFFFF  # newc's size field
READ_CHUNK = 1024 * 1024

# Bare applet names: busybox's ash runs its own applets before anything on PATH (the image's
# tools are never used) and forks without exec for the NOEXEC ones (rm, dd, mkdir, chmod).
_COMMON_SH = f"""\
W={HERD_DIR}/w
O=/pfs/out
has_out() {{
  for f in "$O"/* "$O"/.[!.]* "$O"/..?*; do [ -e "$f" ] || [ -L "$f" ] && return 0; done
  return 1
}}
# The container's cgroup counters, read before and after a datum with no fork: `oom_kill`
# (processes the memory cgroup killed: user code went past resource_limits.memory) and the pids
# cgroup's `max` (forks refused at the pids limit). cgroup v2 files first, then v1.
OOM_FILES="/sys/fs/cgroup/memory.events /sys/fs/cgroup/memory/memory.oom_control"
PIDS_FILES="/sys/fs/cgroup/pids.events /sys/fs/cgroup/pids/pids.events"
counter() {{  # key, files...: the key's value in the first readable file, into $n
  n=0; key=$1; shift
  for f in "$@"; do
    [ -r "$f" ] || continue
    while read -r k v; do [ "$k" != "$key" ] || {{ n=$v; return; }}; done <"$f"
  done
}}
counters_before() {{ counter oom_kill $OOM_FILES; oom0=$n; counter max $PIDS_FILES; forks0=$n; }}
counters_after() {{  # exit status; sets $oom; a refused fork is named in the datum's stderr (its logs)
  # OOM kills are read only when user code failed: one that exited 0 survived any kill among its
  # processes, and the worker judges none then (reading the file is ~0.1 ms of a datum's path)
  oom=0; [ "$1" = 0 ] || {{ counter oom_kill $OOM_FILES; [ "$n" = "$oom0" ] || oom=1; }}
  counter max $PIDS_FILES
  [ "$n" = "$forks0" ] || echo "herd: user code reached the container's pids limit (a fork was refused)" >>"$W/e"
}}
answer() {{  # seq, exit, timed out, oom killed
  if [ -s "$W/o" ] || [ -s "$W/e" ] || has_out; then
    printf 'H %s %s %s %s 1\\n' "$1" "$2" "$3" "$4"
    tar -c -f - -C / .herd/w/o .herd/w/e pfs/out 2>"$W/te"; ts=$?
    if [ "$ts" = 0 ]; then printf 'T 0 0\\n'
    else printf 'T %s %s\\n' "$ts" "$(stat -c %s "$W/te")"; cat "$W/te"; fi
  else
    printf 'H %s %s %s %s 0\\n' "$1" "$2" "$3" "$4"
  fi
}}
clean() {{
  if has_out; then
    rm -rf "$O"/* "$O"/.[!.]* "$O"/..?* 2>/dev/null ||
      {{ chmod -R u+rwX "$O"/* "$O"/.[!.]* "$O"/..?*; rm -rf "$O"/* "$O"/.[!.]* "$O"/..?*; }} 2>/dev/null
  fi
  : >"$W/o"; : >"$W/e"
}}
"""

RUNNER_SH = _COMMON_SH + f"""\
F=$W/status
G=$W/staged
take() {{ dd bs=65536 count="$1" iflag=count_bytes,fullblock of="$2" 2>/dev/null; }}
run_datum() {{
  counters_before
  # The worker sends nothing more before our answer: a read that returns means it is gone (its
  # streams closed): end user code, and this runner with it, so the container goes too. The
  # `kill -1` below ends the watcher before it reads a byte (busybox reads one at a time). It
  # is forked while the stager unpacks, not after.
  {{ read -r _ <&5; kill -s KILL -1; }} 3>&- 4>&- </dev/null >/dev/null 2>&1 &
  # the stager got this datum's inputs together with this request: wait for its word
  while read -r m st <&4; do [ "$m" != "$1" ] || break; done
  if [ "$st" != 0 ]; then kill -s KILL -1 2>/dev/null; wait; printf 'S %s\\n' "$1"; return; fi
  if [ "$2" = 0 ]; then
    ( __herd_env=$3; . "$W/t.sh" ) <"$W/stdin" >"$W/o" 2>"$W/e" 3>&- 4>&- 5<&- &
    wait $!; rc=$?; to=0
  else
    {{ ( __herd_env=$3; . "$W/t.sh" ) <"$W/stdin" >"$W/o" 2>"$W/e" 3>&- 4>&- 5<&-; echo "$1 $?" >&3; }} 4>&- 5<&- &
    to=1
    while read -t "$2" m r <&3; do [ "$m" != "$1" ] || {{ to=0; rc=$r; break; }}; done
    [ "$to" = 0 ] || rc=137
  fi
  kill -s KILL -1 2>/dev/null
  wait
  counters_after "$rc"
  answer "$1" "$rc" "$to" "$oom"
  clean
}}
run_once() {{
  # archive path: the runner loop is alive with our uid, so kill a process group, not -1
  rm -f "$W/timedout"
  counters_before
  setsid sh -c '__herd_env=$0; . "$1"' "$2" "$W/t.sh" <"$W/stdin" >"$W/o" 2>"$W/e" &
  pid=$!; w=
  if [ "$1" != 0 ]; then
    setsid sh -c 'sleep "$0" && : >"$2" && kill -s KILL "-$1"' "$1" "$pid" "$W/timedout" \\
      </dev/null >/dev/null 2>&1 &
    w=$!
  fi
  wait "$pid"; rc=$?
  [ -z "$w" ] || kill -s KILL "-$w" 2>/dev/null
  kill -s KILL "-$pid" 2>/dev/null
  to=0; [ ! -e "$W/timedout" ] || to=1
  counters_after "$rc"
  answer 0 "$rc" "$to" "$oom"
  clean
}}
if [ "$1" = once ]; then run_once "$2" "$3"; exit 0; fi
exec 5<&0  # the worker's stream, for run_datum's watcher
while read -r op a b c; do
  case $op in
  P) take "$a" "$W/t.sh" && take "$b" "$W/stdin" && : >"$W/o" && : >"$W/e" &&
       {{ [ -p "$F" ] || mkfifo "$F"; }} && exec 3<>"$F" &&
       {{ [ -p "$G" ] || mkfifo -m 0622 "$G"; }} && exec 4<>"$G" &&
       printf 'READY %s %s\\n' "$(id -u)" 1 ;;
  R) run_datum "$a" "$b" "$c" ;;
  *) echo "herd runner: unknown request '$op'" >&2; exit 2 ;;
  esac
done
"""

STAGER_SH = f"""\
S={HERD_DIR}/s
cd /pfs || exit 2
clear_inputs() {{  # [names | -]: these inputs' folders (-: every input's) are kept, emptied
  k=" $* "; set --
  for e in /pfs/*; do
    [ "$e" != /pfs/out ] || continue
    if [ -d "$e" ] && [ ! -L "$e" ] && case $k in " - "|*" ${{e#/pfs/}} "*) true ;; *) false ;; esac; then
      for f in "$e"/* "$e"/.[!.]* "$e"/..?*; do {{ [ -e "$f" ] || [ -L "$f" ]; }} && set -- "$@" "$f"; done
    elif [ -e "$e" ] || [ -L "$e" ]; then
      set -- "$@" "$e"
    fi
  done
  [ $# = 0 ] || rm -rf "$@"
}}
reply() {{  # status, seq: to the runner (waiting for it) first, then to the worker
  echo "$2 $1" >&4
  if [ "$1" = 0 ]; then printf 'K 0 0\\n'
  else printf 'K %s %s\\n' "$1" "$(stat -c %s "$S/err")"; cat "$S/err"; fi
}}
if [ "$1" = clear ]; then clear_inputs; exit $?; fi
while read -r op n m; do
  case $op in
  P) exec 4>{HERD_DIR}/w/staged
     printf 'READY %s %s\\n' "$(id -u)" "$([ -w /pfs ] && echo 1 || echo 0)" ;;
  C) clear_inputs - ;;
  E) set -f; set -- $m; set +f; m=$1; shift  # the seq, then the datum's input names
     clear_inputs "$@"; st=0; : >"$S/err"; umask 0222  # files 0444 as cpio makes them (err: made first)
     while [ "$n" -gt 0 ] && read -r k a b; do
       n=$((n - 1))
       if [ "$k" = d ]; then [ -d "$b" ] || mkdir -m 0755 "$b" 2>"$S/err" || {{ st=$?; break; }}
       else dd bs=65536 count="$a" iflag=count_bytes,fullblock of="$b" 2>"$S/err" || {{ st=$?; break; }}; fi
     done
     umask 0022; reply "$st" "$m" ;;
  D) clear_inputs; cpio -i -d -m 2>"$S/err"; reply $? "$n" ;;
  T) clear_inputs
     # tar may stop early on an error: drain the rest so the stream stays in step
     dd bs=65536 count="$n" iflag=count_bytes,fullblock 2>/dev/null |
       {{ tar -x -f - 2>"$S/err" || {{ r=$?; cat >/dev/null; exit $r; }}; }}
     reply $? "$m" ;;
  *) echo "herd stager: unknown request '$op'" >&2; exit 2 ;;
  esac
done
"""

# Finds the user cmd on PATH itself: `exec name` in busybox's sh would run busybox's applet of
# that name instead of the image's program. argv[0] stays the name the spec gave.
_FIND_SH = """\
set -f
__herd_find() {
  case $1 in */*) __herd_p=$1; return 0 ;; esac
  __herd_ifs=$IFS; IFS=:
  for __herd_d in ${PATH:-/usr/local/bin:/usr/bin:/bin}; do
    [ -n "$__herd_d" ] || __herd_d=.
    if [ -f "$__herd_d/$1" ] && [ -x "$__herd_d/$1" ]; then IFS=$__herd_ifs; __herd_p=$__herd_d/$1; return 0; fi
  done
  IFS=$__herd_ifs; return 1
}
"""


def session_script(transform: UserCode) -> bytes:
    """t.sh: sourced in a subshell per datum; transform env, then the request's, then exec."""
    if not transform.cmd:
        raise InvalidArgument("transform.cmd is empty")
    q = shlex.quote
    lines = [_FIND_SH, "set --"]  # "$@": NAME=VALUE pairs a shell cannot export (see env_line)
    for key, value in checked_env(transform.env).items():
        lines.append(f"export {key}={q(value)}" if is_shell_name(key) else f'set -- "$@" {q(f"{key}={value}")}')
    lines.append('eval "$__herd_env"')
    if transform.working_dir:
        lines.append(f"cd {q(transform.working_dir)} || exit 126")
    name = transform.cmd[0]
    lines.append(f"__herd_find {q(name)} || {{ echo {q(f'{name}: command not found')} >&2; exit 127; }}")
    args = " ".join(q(arg) for arg in transform.cmd[1:])
    # busybox env sets any name without '=' (`repo-1`, as Pachyderm allows), then execs.
    lines.append(f'[ $# = 0 ] || exec {BUSYBOX} env "$@" "$__herd_p" {args}')
    lines.append(f'exec -a {q(name)} "$__herd_p" {args}')
    return ("\n".join(lines) + "\n").encode()


def stdin_bytes(transform: UserCode) -> bytes:
    """The user cmd's stdin: the spec's lines, newline-terminated (Pachyderm's behaviour)."""
    return ("\n".join(transform.stdin) + "\n").encode() if transform.stdin else b""


def env_line(env: Mapping[str, str]) -> str:
    """The request env as one line of shell (newlines escaped): `export K=$'v' ...` for names a
    shell can export, `set -- "$@" $'k-1=v'` for the others (t.sh passes those through env)."""
    checked = checked_env(env)
    exported = [f"{key}={_dollar_quote(value)}" for key, value in checked.items() if is_shell_name(key)]
    others = [_dollar_quote(f"{key}={value}") for key, value in checked.items() if not is_shell_name(key)]
    parts = (["export " + " ".join(exported)] if exported else []) + (['set -- "$@" ' + " ".join(others)] if others else [])
    return "; ".join(parts) or ":"


def checked_env(env: Mapping[str, str]) -> dict[str, str]:
    """Names execve takes (any but empty, '=' or NUL), values without NUL (as ProcessRuntime)."""
    for key, value in env.items():
        if not key or "=" in key or "\x00" in key:
            raise InvalidArgument(f"invalid environment variable name {key!r}")
        if "\x00" in value:
            raise InvalidArgument(f"environment variable '{key}' contains a NUL byte")
    return dict(env)


def _dollar_quote(value: str) -> str:
    """$'...' with every byte outside printable ASCII (and ' and \\) as \\xHH: one line, exact."""
    out = []
    for byte in value.encode("utf-8", "surrogateescape"):
        char = chr(byte)
        out.append(char if 32 <= byte < 127 and char not in "'\\" else f"\\x{byte:02x}")
    return "$'" + "".join(out) + "'"


# A few entries with plain names go as `E` (see the module doc): at ~0.1 ms an entry, past four
# cpio's one exec is as cheap. Names of these characters need no quoting on a request line.
SHELL_STAGE_ENTRIES = 4
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.,+=@%~-]*")


class FolderInputs:
    """A datum's inputs laid out under its host folder (worker.staging.stage_datum), read as sent."""

    def __init__(self, pfs_dir: Path) -> None:
        self.pfs_dir = Path(pfs_dir)

    def walk(self) -> Iterator[tuple[str, str, int]]:
        """(relative path, 'dir' | 'file', size) of every input entry, parents first, sorted."""
        for name in sorted(os.listdir(self.pfs_dir)):
            if name != "out" and not name.startswith("."):  # input names never start with a dot
                yield from _walk(self.pfs_dir, name)

    def chunks(self, rel: str, size: int) -> Iterator[bytes]:
        return _file_chunks(self.pfs_dir / rel, size)


class MemoryInputs:
    """A datum's inputs read into memory (worker.staging.read_datum: folders None), in walk order."""

    def __init__(self, entries: Sequence[tuple[str, bytes | None]]) -> None:
        self.entries = entries
        self._files = {rel: body for rel, body in entries if body is not None}

    def walk(self) -> Iterator[tuple[str, str, int]]:
        for rel, body in self.entries:
            yield (rel, "dir", 0) if body is None else (rel, "file", len(body))

    def chunks(self, rel: str, size: int) -> Iterator[bytes]:
        body = self._files[rel]
        assert len(body) == size
        if body:
            yield body


InputTree = FolderInputs | MemoryInputs


def plain_entries(inputs: InputTree) -> list[tuple[str, str, int]] | None:
    """The input entries when they may go as `E`: at most SHELL_STAGE_ENTRIES, every name plain."""
    entries = list(itertools.islice(inputs.walk(), SHELL_STAGE_ENTRIES + 1))
    if len(entries) > SHELL_STAGE_ENTRIES:
        return None
    if not all(_PLAIN_NAME.fullmatch(name) for rel, _, _ in entries for name in rel.split("/")):
        return None
    return entries


def entry_chunks(inputs: InputTree, entries: list[tuple[str, str, int]]) -> Iterator[bytes]:
    """The `E` payload: each entry's line, a file's exact bytes after its line."""
    for rel, kind, size in entries:
        if kind == "dir":
            yield f"d 0 {rel}\n".encode()
        else:
            yield f"f {size} {rel}\n".encode()
            yield from inputs.chunks(rel, size)


def needs_tar(inputs: InputTree) -> bool:
    """Whether an input file is too big for newc cpio (the stager then takes a tar)."""
    return any(size > CPIO_MAX_FILE for _, kind, size in inputs.walk() if kind == "file")


def cpio_chunks(inputs: InputTree, uid: int) -> Iterator[bytes]:
    """A newc cpio of every input (all but out/), streamed: files 0444, dirs 0755."""
    now = int(time.time())
    for ino, (rel, kind, size) in enumerate(inputs.walk(), start=1):
        mode = stat.S_IFDIR | 0o755 if kind == "dir" else stat.S_IFREG | 0o444
        yield _cpio_header(rel, mode, uid, size, ino, now)
        if kind == "file":
            yield from inputs.chunks(rel, size)
            yield b"\0" * (-size % 4)
    yield _cpio_header("TRAILER!!!", 0, 0, 0, 0, 0)


def _cpio_header(name: str, mode: int, uid: int, size: int, ino: int, mtime: int) -> bytes:
    encoded = os.fsencode(name) + b"\0"
    fields = (ino, mode, uid, uid, 1, mtime, size, 0, 0, 0, 0, len(encoded), 0)
    header = b"070701" + b"".join(b"%08X" % field for field in fields) + encoded
    return header + b"\0" * (-len(header) % 4)


def _file_chunks(path: Path, size: int) -> Iterator[bytes]:
    """Exactly `size` bytes of a file opened without following links (a swapped file fails)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as handle:
        left = size
        while left:
            chunk = handle.read(min(left, READ_CHUNK))
            if not chunk:
                raise InvalidPath(f"input file '{path}' shrank while it was sent")
            left -= len(chunk)
            yield chunk


def _walk(root: Path, rel: str) -> Iterator[tuple[str, str, int]]:
    info = os.lstat(root / rel)
    if stat.S_ISDIR(info.st_mode):
        yield rel, "dir", 0
        for name in sorted(os.listdir(root / rel)):
            yield from _walk(root, f"{rel}/{name}")
    elif stat.S_ISREG(info.st_mode):
        yield rel, "file", info.st_size
    else:
        raise InvalidPath(f"'{root / rel}' is not a regular file or directory; herd stages only those")


def write_inputs_tar(inputs: InputTree, out: IO[bytes], *, uid: int) -> None:
    """A tar of the inputs (all but out/): owned by `uid`, files 0444, dirs 0755."""
    now = int(time.time())
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for rel, kind, size in inputs.walk():
            is_dir = kind == "dir"
            info = _info(rel, tarfile.DIRTYPE if is_dir else tarfile.REGTYPE, 0o755 if is_dir else 0o444, uid)
            info.mtime, info.size = now, size
            tar.addfile(info, ChunkStream(inputs.chunks(rel, size)) if kind == "file" else None)


def _info(name: str, kind: bytes, mode: int, uid: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.uid, info.gid = kind, mode, uid, uid
    return info


def tools_tar(busybox: Path, stage_uid: int) -> bytes:
    """The /.herd volume: busybox and scripts owned by the stage uid (user code can neither
    chmod nor replace them), the stager's scratch, a sticky work folder for the runner."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        # "/" is the volume's root itself: the engine applies owner and mode to it.
        for name, mode, uid in (("/", 0o755, stage_uid), ("bin", 0o555, stage_uid), ("s", 0o700, stage_uid),
                                ("w", 0o1777, 0)):
            tar.addfile(_info(name, tarfile.DIRTYPE, mode, uid))
        with open(busybox, "rb") as handle:
            info = _info("bin/busybox", tarfile.REGTYPE, 0o555, stage_uid)
            info.size = os.fstat(handle.fileno()).st_size
            tar.addfile(info, handle)
        for name, text in (("bin/runner.sh", RUNNER_SH), ("bin/stager.sh", STAGER_SH)):
            info = _info(name, tarfile.REGTYPE, 0o444, stage_uid)
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    return buffer.getvalue()


def pfs_tar(stage_uid: int) -> bytes:
    """The /pfs volume: its root owned by the stage uid, `out/` writable by anyone."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(_info("/", tarfile.DIRTYPE, 0o755, stage_uid))
        tar.addfile(_info("out", tarfile.DIRTYPE, 0o777, stage_uid))
    return buffer.getvalue()
