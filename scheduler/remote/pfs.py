"""storage.repos.Pfs's methods the CLI calls, over `herd serve` (scheduler/server/routes_pfs.py).

Same names, arguments and return types as Pfs: the records come back as its pydantic models.
What only storage itself can do (fsck, garbage-collect: `objects`) is refused naming the fix.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

from pydantic import BaseModel

from scheduler.remote import files
from scheduler.remote.client import ApiClient
from storage.errors import InvalidArgument
from storage.files import folder_below
from storage.model import Branch, BranchRef, Commit, CommitRef, FileDiff, FileInfo, Repo, RepoInfo

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

    from storage.files import Source
    from storage.split import SplitMode

M = TypeVar("M", bound=BaseModel)


def one(model: type[M], data: Any) -> M:
    return model.model_validate(data)


def many(model: type[M], data: Any) -> list[M]:
    return [model.model_validate(item) for item in data]


class RemotePfs:
    def __init__(self, client: ApiClient) -> None:
        self.client = client

    @property
    def objects(self) -> Any:
        raise InvalidArgument(
            f"this verb works on storage itself, which the herd server at {self.client.address} holds: "
            "run it on the server's host (HERD_STORAGE set, HERD_ADDRESS unset)")

    # ---- repos ---------------------------------------------------------------------------

    def list_repos(self) -> list[RepoInfo]:
        return many(RepoInfo, self.client.call("GET", "/repos"))

    def create_repo(self, name: str, description: str = "") -> Repo:
        return one(Repo, self.client.call("POST", "/repos", json={"name": name, "description": description}))

    def inspect_repo(self, name: str) -> RepoInfo:
        return one(RepoInfo, self.client.call("GET", f"/repos/{_segment(name, 'repo')}"))

    def delete_repo(self, name: str, force: bool = False) -> None:
        self.client.call("DELETE", f"/repos/{_segment(name, 'repo')}", params={"force": force})

    # ---- branches ------------------------------------------------------------------------

    def list_branches(self, repo: str) -> list[Branch]:
        return many(Branch, self.client.call("GET", f"/repos/{_segment(repo, 'repo')}/branches"))

    def create_branch(
        self, repo: str, name: str, head: str | None = None, provenance: Sequence[BranchRef] = ()
    ) -> Branch:
        body = {"name": name, "head": head, "provenance": [ref.model_dump(mode="json") for ref in provenance]}
        return one(Branch, self.client.call("POST", f"/repos/{_segment(repo, 'repo')}/branches", json=body))

    def inspect_branch(self, repo: str, name: str) -> Branch:
        return one(Branch, self.client.call("GET", _branch_path(repo, name)))

    def set_branch(self, repo: str, commit: str, name: str) -> Branch:
        return one(Branch, self.client.call("PUT", _branch_path(repo, name), json={"commit": commit}))

    def delete_branch(self, repo: str, name: str, force: bool = False) -> None:
        self.client.call("DELETE", _branch_path(repo, name), params={"force": force})

    # ---- commits -------------------------------------------------------------------------

    def list_commits(
        self, repo: str, branch: str | None = None, limit: int | None = None, since: str | None = None,
    ) -> list[Commit]:
        params = {"branch": branch, "limit": limit, "since": since}
        return many(Commit, self.client.call("GET", f"/repos/{_segment(repo, 'repo')}/commits", params=params))

    def start_commit(
        self, repo: str, branch: str = "master", parent: str | None = None, description: str = "",
        provenance: Sequence[CommitRef] = (),
    ) -> Commit:
        body = {"branch": branch, "parent": parent, "description": description,
                "provenance": [ref.model_dump(mode="json") for ref in provenance]}
        return one(Commit, self.client.call("POST", f"/repos/{_segment(repo, 'repo')}/commits", json=body))

    def inspect_commit(self, repo: str, ref: str) -> Commit:
        return one(Commit, self.client.call("GET", f"/repos/{_segment(repo, 'repo')}/commit", params={"ref": ref}))

    def finish_commit(self, repo: str, commit: str, description: str | None = None) -> Commit:
        return one(Commit, self.client.call("POST", f"/repos/{_segment(repo, 'repo')}/commit/finish",
                                            params={"ref": commit}, json={"description": description}))

    def delete_commit(self, repo: str, ref: str) -> Commit:
        return one(Commit, self.client.call("DELETE", f"/repos/{_segment(repo, 'repo')}/commit", params={"ref": ref}))

    def commits_after(self, repo: str, branch: str, seen: str | None) -> tuple[str | None, list[Commit]]:
        answer = self.client.call("GET", _branch_path(repo, branch) + "/commits-after", params={"seen": seen})
        return answer["head"], many(Commit, answer["commits"])

    # ---- files (scheduler/server/routes_files.py; bodies streamed: scheduler/remote/files.py) --

    def put_file(self, repo: str, ref: str, path: str, source: Source, append: bool = False) -> Commit:
        return self.put_files(repo, ref, [(path, source)], append=append)

    def put_files(self, repo: str, ref: str, items: Iterable[tuple[str, Source]], append: bool = False) -> Commit:
        """One file as the request body, or many as one tar stream: one commit either way."""
        from storage.files import check_source
        from storage.paths import normalize_path

        pairs = [(normalize_path(path), source) for path, source in items]  # refused as Pfs refuses them
        if not pairs:
            raise InvalidArgument(f"no files given to put into repo '{repo}'")
        for _, source in pairs:
            check_source(source)
        repo_path = f"/repos/{_segment(repo, 'repo')}"
        if len(pairs) == 1:
            path, source = pairs[0]
            return one(Commit, self._send("PUT", repo_path + "/file", {"ref": ref, "path": path, "append": append},
                                          files.source_blocks(source)))
        with ExitStack() as spooled:
            members = [(path, *files.sized(source, spooled)) for path, source in pairs]
            return one(Commit, self._send("POST", repo_path + "/files", {"ref": ref, "append": append},
                                          files.tar_stream(members), tar=True))

    def put_split(
        self, repo: str, ref: str, items: Sequence[tuple[str, BinaryIO, str]], mode: SplitMode,
        target_datums: int = 0, target_bytes: int = 0, append: bool = False,
    ) -> Commit:
        from storage.paths import normalize_path

        if not items:
            raise InvalidArgument(f"no files given to put into repo '{repo}'")
        paths = [normalize_path(path) for path, _, _ in items]
        params = {"ref": ref, "mode": mode, "target_file_datums": target_datums,
                  "target_file_bytes": target_bytes, "append": append, "source": [name for _, _, name in items]}
        with ExitStack() as spooled:
            members = [(path, *files.sized(stream, spooled)) for path, (_, stream, _) in zip(paths, items)]
            return one(Commit, self._send("POST", f"/repos/{_segment(repo, 'repo')}/files/split", params,
                                          files.tar_stream(members), tar=True))

    def _send(self, method: str, path: str, params: dict[str, Any], body: Iterator[bytes], tar: bool = False) -> Any:
        kind = "application/x-tar" if tar else "application/octet-stream"
        with self.client.stream(method, path, params=params, content=body, headers={"content-type": kind}) as answer:
            answer.read()
            return answer.json()

    def copy_file(
        self, src_repo: str, src_ref: str, src_path: str,
        dst_repo: str, dst_ref: str, dst_path: str, overwrite: bool = False,
    ) -> Commit:
        body = {"src_repo": src_repo, "src_ref": src_ref, "src_path": src_path, "dst_ref": dst_ref,
                "dst_path": dst_path, "overwrite": overwrite}
        return one(Commit, self.client.call("POST", f"/repos/{_segment(dst_repo, 'repo')}/copy-file", json=body))

    def delete_file(self, repo: str, ref: str, path: str) -> Commit:
        return one(Commit, self.client.call("DELETE", f"/repos/{_segment(repo, 'repo')}/file",
                                            params={"ref": ref, "path": path}))

    def get_file(
        self, repo: str, ref: str, path: str, dest: Path | SupportsWrite[bytes], recursive: bool = False,
        progress: Callable[[int], object] | None = None,
    ) -> None:
        """As Pfs.get_file: every file of one commit, checked as it arrives (DataCorrupted,
        exit 8, on a short body or a wrong hash; a local file is then not left behind)."""
        from storage.files import local_parts
        from storage.paths import dir_prefix, normalize_dir

        found = self.walk_file(repo, ref, path)
        top = normalize_dir(path)
        if not (len(found) == 1 and found[0].path == top):  # a directory
            if not recursive or not isinstance(dest, Path):
                raise InvalidArgument(f"'{top}' in repo '{repo}' is a directory: use recursive with a local folder")
        if len(found) == 1 and found[0].path == top:
            with self._download(repo, found[0]) as answer:
                if isinstance(dest, Path):
                    files.receive_file(answer, dest, repo, top, self.client.address, progress)
                else:
                    files.receive(answer, dest, repo, top, self.client.address, progress)
            return
        assert isinstance(dest, Path)
        prefix = dir_prefix(top)
        planned = [(info, local_parts(info.path, info.path[len(prefix):], dest)) for info in found]
        dest.mkdir(parents=True, exist_ok=True)
        root_fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for info, parts in planned:
                folder_fd = folder_below(root_fd, dest, parts, info.path, repo)
                try:
                    with self._download(repo, info) as answer:
                        files.receive_file(answer, dest.joinpath(*parts), repo, info.path, self.client.address,
                                           None, dir_fd=folder_fd)
                finally:
                    if folder_fd != root_fd:
                        os.close(folder_fd)
                if progress is not None:
                    progress(info.size)
        finally:
            os.close(root_fd)

    def open_file(self, repo: str, ref: str, path: str) -> BinaryIO:
        """As Pfs.open_file: a streaming reader, checked as it is read (DataCorrupted at the end
        of a short or wrong body); refused at once when the server refuses (FileNotFound ...)."""
        from storage.paths import normalize_path
        from storage.streams import ChunkStream

        normal = normalize_path(path)
        address = self.client.address

        def blocks() -> Generator[bytes, None, None]:
            with self.client.stream("GET", f"/repos/{_segment(repo, 'repo')}/file",
                                    params={"ref": ref, "path": normal}) as answer:
                yield b""  # the request is answered: refusals were raised before this
                yield from files.checked_blocks(answer, repo, normal, address)

        body = blocks()
        next(body)
        return io.BufferedReader(ChunkStream(body))  # closing it closes the answer

    def _download(self, repo: str, info: FileInfo) -> AbstractContextManager[files.Answer]:
        return self.client.stream("GET", f"/repos/{_segment(repo, 'repo')}/file",
                                  params={"ref": info.commit, "path": info.path})

    def walk_file(self, repo: str, ref: str, path: str) -> list[FileInfo]:
        return many(FileInfo, self.client.call("GET", f"/repos/{_segment(repo, 'repo')}/file/walk",
                                               params={"ref": ref, "path": path}))

    def list_file(self, repo: str, ref: str, path: str = "/") -> list[FileInfo]:
        return many(FileInfo, self.client.call("GET", f"/repos/{_segment(repo, 'repo')}/files",
                                               params={"ref": ref, "path": path}))

    def inspect_file(self, repo: str, ref: str, path: str) -> FileInfo:
        return one(FileInfo, self.client.call("GET", f"/repos/{_segment(repo, 'repo')}/file/info",
                                              params={"ref": ref, "path": path}))

    def glob_file(self, repo: str, ref: str, pattern: str) -> list[FileInfo]:
        return many(FileInfo, self.client.call("GET", f"/repos/{_segment(repo, 'repo')}/glob",
                                               params={"ref": ref, "pattern": pattern}))

    def diff_file(self, repo: str, ref: str, old_ref: str | None = None, path: str = "/") -> FileDiff:
        return one(FileDiff, self.client.call("GET", f"/repos/{_segment(repo, 'repo')}/diff",
                                              params={"ref": ref, "old_ref": old_ref, "path": path}))

    def diff_paths(self, repo: str, ref: str, path: str, old_repo: str, old_ref: str, old_path: str) -> FileDiff:
        params = {"ref": ref, "path": path, "old_repo": old_repo, "old_ref": old_ref, "old_path": old_path}
        return one(FileDiff, self.client.call("GET", f"/repos/{_segment(repo, 'repo')}/diff-paths", params=params))


def _branch_path(repo: str, branch: str) -> str:
    return f"/repos/{_segment(repo, 'repo')}/branches/{_segment(branch, 'branch')}"


def _segment(name: str, what: str) -> str:
    """A repo or branch name as a path segment; a name that could not be one is refused here,
    as the server would refuse it, rather than sent as another URL."""
    from storage.paths import validate_name

    validate_name(name, what)
    return name
