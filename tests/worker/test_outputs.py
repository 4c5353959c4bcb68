"""collect_outputs uploads /pfs/out without ever following a link out of it; collect_datum_outputs
carries a tiny one in the datum's result instead."""

from __future__ import annotations

import hashlib
import os
import socket
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.blobs import BlobStore
from storage.errors import OutputQuotaExceeded, UnsafeOutput
from storage.layout import FORMAT_KEY, INLINE_FORMAT, blob_key
from storage.local import LocalObjectStore
from storage.model import FileEntry, Manifest
from storage.objects import MemoryObjectStore
from tests.worker.sandboxes import require_root
from worker.outputs import (
    ADOPTED_PACK_MAX,
    INLINE_BYTES,
    Collected,
    collect_datum_outputs,
    collect_output_files,
    collect_outputs,
)


@pytest.fixture
def store() -> MemoryObjectStore:
    return MemoryObjectStore()


@pytest.fixture
def blobs(store: MemoryObjectStore) -> BlobStore:
    return BlobStore(store)


@pytest.fixture
def out(tmp_path: Path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


def test_nested_files_become_a_manifest(blobs: BlobStore, out: Path) -> None:
    # Given nested output, an empty file, an empty directory and a duplicate body
    (out / "a" / "b").mkdir(parents=True)
    (out / "a" / "b" / "c.txt").write_bytes(b"deep")
    (out / "top").write_bytes(b"top")
    (out / "same").write_bytes(b"top")
    (out / "empty").write_bytes(b"")
    (out / "nothing" / "here").mkdir(parents=True)
    # When collected
    manifest = collect_outputs(blobs, out)
    # Then paths are normalised, empty directories dropped, bodies stored once
    assert sorted(manifest.files) == ["/a/b/c.txt", "/empty", "/same", "/top"]
    with blobs.open(manifest.files["/a/b/c.txt"].chunks[0]) as reader:
        assert reader.read() == b"deep"
    assert manifest.files["/same"] == manifest.files["/top"]
    assert manifest.files["/empty"].size == 0
    assert manifest.size == 10


def test_symlink_to_a_host_file_is_refused_and_nothing_uploaded(
    blobs: BlobStore, store: MemoryObjectStore, out: Path
) -> None:
    # Given user code that linked /etc/passwd into its output
    (out / "fine.txt").write_bytes(b"fine")
    (out / "sub").mkdir()
    os.symlink("/etc/passwd", out / "sub" / "passwd")
    # When collected, Then the link is named and nothing at all is uploaded
    with pytest.raises(UnsafeOutput, match=r"'/sub/passwd'.*symbolic link"):
        collect_outputs(blobs, out)
    passwd = hashlib.sha256(Path("/etc/passwd").read_bytes()).hexdigest()
    assert not blobs.exists(passwd)
    assert list(store.list("")) == []


@pytest.mark.parametrize("target", ["/etc", "..", "missing", "fine.txt"])
def test_any_symlink_is_refused(blobs: BlobStore, out: Path, target: str) -> None:
    (out / "fine.txt").write_bytes(b"fine")
    os.symlink(target, out / "link")
    with pytest.raises(UnsafeOutput, match="'/link'"):
        collect_outputs(blobs, out)


@pytest.mark.timeout(10)
def test_fifo_is_refused_without_blocking(blobs: BlobStore, out: Path) -> None:
    os.mkfifo(out / "pipe")
    with pytest.raises(UnsafeOutput, match=r"'/pipe'.*FIFO"):
        collect_outputs(blobs, out)


def test_socket_is_refused(blobs: BlobStore, out: Path) -> None:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(out / "sock"))
        with pytest.raises(UnsafeOutput, match=r"'/sock'.*socket"):
            collect_outputs(blobs, out)


def test_device_is_refused(blobs: BlobStore, out: Path) -> None:
    require_root("mknod of a device")  # skips locally, fails under CI (which runs as root)
    os.mknod(out / "null", 0o600 | 0o020000, os.makedev(1, 3))
    with pytest.raises(UnsafeOutput, match=r"'/null'.*character device"):
        collect_outputs(blobs, out)


def test_hard_link_to_a_file_outside_is_refused(blobs: BlobStore, out: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"host secret")
    os.link(secret, out / "copy")
    with pytest.raises(UnsafeOutput, match=r"'/copy'.*hard link"):
        collect_outputs(blobs, out)
    assert not blobs.exists(hashlib.sha256(b"host secret").hexdigest())


def test_hard_links_within_out_are_fine(blobs: BlobStore, out: Path) -> None:
    (out / "a").write_bytes(b"shared")
    os.link(out / "a", out / "b")
    manifest = collect_outputs(blobs, out)
    assert manifest.files["/a"] == manifest.files["/b"]


def test_out_itself_as_a_symlink_is_refused(blobs: BlobStore, tmp_path: Path) -> None:
    os.symlink("/etc", tmp_path / "out")
    with pytest.raises(UnsafeOutput, match="not a directory"):
        collect_outputs(blobs, tmp_path / "out")


def test_missing_out_is_no_output(blobs: BlobStore, tmp_path: Path) -> None:
    assert collect_outputs(blobs, tmp_path / "gone").files == {}


def test_quota(blobs: BlobStore, out: Path) -> None:
    (out / "a").write_bytes(b"x" * 600)
    (out / "b").write_bytes(b"y" * 400)
    assert collect_outputs(blobs, out, quota_bytes=1000).size == 1000
    with pytest.raises(OutputQuotaExceeded, match=r"quota of 999 bytes \(HERD_OUTPUT_QUOTA\) \(1000 bytes\)"):
        collect_outputs(blobs, out, quota_bytes=999)


def test_non_utf8_name_is_refused(blobs: BlobStore, out: Path) -> None:
    with open(os.path.join(os.fsencode(out), b"bad\xff"), "wb") as handle:
        handle.write(b"x")
    with pytest.raises(UnsafeOutput, match="UTF-8"):
        collect_outputs(blobs, out)


# The local store adopts an output file as its blob (linked, not copied) when user code has
# ended and the file is plainly herd's to take: one name, no extended attributes.


@pytest.fixture
def local(tmp_path: Path) -> tuple[LocalObjectStore, BlobStore]:
    store = LocalObjectStore(tmp_path / "store")
    return store, BlobStore(store)


def blob_path(store: LocalObjectStore, digest: str) -> Path:
    path = store.local_path(blob_key(digest))
    assert path is not None
    return path


def test_an_output_file_becomes_its_blob_owned_by_herd_and_without_special_bits(
    local: tuple[LocalObjectStore, BlobStore], out: Path,
) -> None:
    store, blobs = local
    (out / "result").write_bytes(b"computed")
    (out / "result").chmod(0o4777)  # setuid and world-writable, as hostile user code may leave it
    made = os.stat(out / "result")
    manifest = collect_outputs(blobs, out)
    digest = manifest.files["/result"].chunks[0]
    stored = os.stat(blob_path(store, digest))
    assert digest == hashlib.sha256(b"computed").hexdigest() and manifest.files["/result"].size == 8
    assert stored.st_ino == made.st_ino  # no copy
    assert stat.S_IMODE(stored.st_mode) == 0o644 and (stored.st_uid, stored.st_gid) == (os.geteuid(), os.getegid())
    assert blobs.verify(digest) == 8


def test_a_file_with_attributes_or_two_names_is_copied(local: tuple[LocalObjectStore, BlobStore], out: Path) -> None:
    store, blobs = local
    (out / "tagged").write_bytes(b"tagged")
    os.setxattr(out / "tagged", "user.herd-test", b"planted")
    (out / "twice").write_bytes(b"twice")
    os.link(out / "twice", out / "twice-again")
    manifest = collect_outputs(blobs, out)
    for name in ("tagged", "twice", "twice-again"):
        digest = manifest.files[f"/{name}"].chunks[0]
        assert os.stat(blob_path(store, digest)).st_ino != os.stat(out / name).st_ino
        assert os.listxattr(blob_path(store, digest)) == []
    assert manifest.files["/twice"] == manifest.files["/twice-again"]


def test_an_existing_blob_is_kept_and_the_output_not_linked(
    local: tuple[LocalObjectStore, BlobStore], out: Path,
) -> None:
    store, blobs = local
    digest, _ = blobs.put_bytes(b"known")
    before = os.stat(blob_path(store, digest))
    (out / "again").write_bytes(b"known")
    assert collect_outputs(blobs, out).files["/again"].chunks == (digest,)
    after = os.stat(blob_path(store, digest))
    assert (after.st_ino, after.st_nlink) == (before.st_ino, 1) and os.stat(out / "again").st_nlink == 1


def test_outputs_on_another_file_system_are_copied(tmp_path: Path) -> None:
    # /dev/shm is a tmpfs: a link from it into a store on the disk fails with EXDEV
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("no second file system here")
    with tempfile.TemporaryDirectory(dir=shm) as folder:
        out = Path(folder)
        (out / "far").write_bytes(b"far away")
        store = LocalObjectStore(tmp_path / "store")
        manifest = collect_outputs(BlobStore(store), out)
        digest = manifest.files["/far"].chunks[0]
        assert blob_path(store, digest).read_bytes() == b"far away"


# ---- many small outputs on a store that cannot link: packed ---------------------------------


def test_many_small_outputs_are_packed_where_files_cannot_become_blobs(
    store: MemoryObjectStore, blobs: BlobStore, out: Path
) -> None:
    from storage.layout import PACK_PREFIX
    from storage.packs import PACK_MIN_CHUNKS

    (out / "sub").mkdir()
    expected = {}
    for index in range(PACK_MIN_CHUNKS + 2):
        name = f"/sub/part-{index:03}" if index % 2 else f"/part-{index:03}"
        data = f"row {index}\n".encode() * 3
        (out / name.lstrip("/")).write_bytes(data)
        expected[name] = data
    (out / "big.bin").write_bytes(b"z" * (2 * 1024 * 1024))  # over 1 MiB: a loose blob
    manifest = collect_outputs(blobs, out)
    assert len(list(store.list(PACK_PREFIX))) == 1
    for name, data in expected.items():
        entry = manifest.files[name]
        ((digest, where),) = entry.slices()
        assert where is not None and blobs.read_slice(digest, where) == data
    assert manifest.files["/big.bin"].packed == ()


def test_on_the_local_store_many_small_outputs_are_packed_and_a_larger_one_is_adopted(
    out: Path, tmp_path: Path,
) -> None:
    from storage.layout import PACK_PREFIX
    from storage.packs import PACK_MIN_CHUNKS

    # Given many small outputs and one just past the bound for packing on a store that links
    for index in range(PACK_MIN_CHUNKS + 2):
        (out / f"part-{index:03}").write_bytes(b"x%d" % index)
    larger = os.urandom(ADOPTED_PACK_MAX + 1)
    (out / "larger.bin").write_bytes(larger)
    inode = os.stat(out / "larger.bin").st_ino
    local = LocalObjectStore(tmp_path / "store")
    # When they are collected
    manifest = collect_outputs(BlobStore(local), out)
    # Then the small ones lie in one pack, and the larger one became its blob as it was: linked
    assert len(list(local.list(PACK_PREFIX))) == 1
    assert all(manifest.files[f"/part-{index:03}"].packed for index in range(PACK_MIN_CHUNKS + 2))
    entry = manifest.files["/larger.bin"]
    assert entry.packed == () and entry.hash == hashlib.sha256(larger).hexdigest()
    assert os.stat(local.root / blob_key(entry.hash)).st_ino == inode
    # And every byte reads back, verified
    blobs = BlobStore(local)
    for path, stored in manifest.files.items():
        read = b"".join(blobs.open_chunk(digest, where).read() for digest, where in stored.slices())
        assert read == (out / path.lstrip("/")).read_bytes()


# -- a datum's tiny output rides in its result (collect_datum_outputs) -----------------------
@pytest.mark.parametrize("kind", ["memory", "local"])
def test_a_tiny_output_is_read_into_the_result_and_nothing_is_stored(kind: str, out: Path, tmp_path: Path) -> None:
    # Given a datum's output of a few small files (one nested, one empty, two alike)
    objects = MemoryObjectStore() if kind == "memory" else LocalObjectStore(tmp_path / "store")
    (out / "d").mkdir()
    (out / "d" / "a.txt").write_bytes(b"alpha\n")
    (out / "b.txt").write_bytes(b"alpha\n")
    (out / "empty").write_bytes(b"")
    # When collected for a datum
    collected = collect_datum_outputs(BlobStore(objects), out)
    # Then every entry names a chunk whose bytes are carried, each its own SHA-256
    files = collected.manifest.files
    assert sorted(files) == ["/b.txt", "/d/a.txt", "/empty"]
    assert files["/b.txt"] == files["/d/a.txt"] == FileEntry(chunks=(hashlib.sha256(b"alpha\n").hexdigest(),), size=6)
    assert collected.inline == {hashlib.sha256(data).hexdigest(): data for data in (b"alpha\n", b"")}
    # And no blob or pack was stored: only the format marker, at 3 or later first
    assert [key for key in objects.list("") if not key.startswith("_herd/")] == []
    assert int(objects.get(FORMAT_KEY)) >= INLINE_FORMAT


def test_a_format_2_store_is_raised_to_3_before_a_result_can_carry_bytes(store: MemoryObjectStore, out: Path) -> None:
    # Given a store an older herd made (format 2: packs, but no inline outputs)
    store.put(FORMAT_KEY, b"2\n")
    (out / "a").write_bytes(b"a")
    # When a datum's tiny output is collected
    collect_datum_outputs(BlobStore(store), out)
    # Then the marker says 3 first: a format-2 herd refuses the store rather than commit entries
    # that name chunks only a result holds
    assert store.get(FORMAT_KEY) == b"3\n"


def test_an_output_over_the_inline_bound_is_stored_as_before(store: MemoryObjectStore, blobs: BlobStore, out: Path) -> None:
    # Given two files one byte over the bound together
    (out / "a").write_bytes(b"x" * (INLINE_BYTES // 2))
    (out / "b").write_bytes(b"y" * (INLINE_BYTES // 2 + 1))
    # When collected for a datum
    collected = collect_datum_outputs(blobs, out)
    # Then nothing is carried and both are blobs, as collect_outputs stores them
    assert collected.inline == {}
    for entry in collected.manifest.files.values():
        assert store.exists(blob_key(entry.chunks[0]))
    assert collected.manifest == collect_outputs(blobs, out)


def test_no_output_raises_no_format(store: MemoryObjectStore, blobs: BlobStore, out: Path) -> None:
    (out / "only" / "folders").mkdir(parents=True)
    assert collect_datum_outputs(blobs, out) == Collected(Manifest(), {})
    assert not store.exists(FORMAT_KEY)


def test_a_tiny_output_is_checked_as_any_other(blobs: BlobStore, out: Path, tmp_path: Path) -> None:
    # Given a tiny output holding a link to a host file, then one over the quota
    (tmp_path / "secret").write_bytes(b"s")
    (out / "leak").symlink_to(tmp_path / "secret")
    with pytest.raises(UnsafeOutput, match="symbolic link"):
        collect_datum_outputs(blobs, out)
    (out / "leak").unlink()
    (out / "big").write_bytes(b"12345")
    with pytest.raises(OutputQuotaExceeded):
        collect_datum_outputs(blobs, out, quota_bytes=4)


# -- outputs a runtime read into memory (RunResult.outputs: Docker's small archives) ---------------

_SEGMENT = st.text(alphabet="ab-_", min_size=1, max_size=3)
_FILES = st.dictionaries(
    st.lists(_SEGMENT, min_size=1, max_size=3).map("/".join),
    st.one_of(st.binary(max_size=40), st.binary(min_size=300, max_size=2000)),
    max_size=40,
).map(lambda files: {path: data for path, data in files.items()
                     if not any(other.startswith(path + "/") for other in files)})


@settings(max_examples=60, deadline=None)
@given(files=_FILES, inline_bytes=st.sampled_from([-1, INLINE_BYTES]))
def test_outputs_in_memory_are_collected_as_the_same_files_on_disk_are(files: dict[str, bytes], inline_bytes: int) -> None:
    # Given the same outputs as a folder and as the map a runtime read into memory
    on_disk, in_memory = MemoryObjectStore(), MemoryObjectStore()
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        for path, data in files.items():
            (out / path).parent.mkdir(parents=True, exist_ok=True)
            (out / path).write_bytes(data)
        expected = collect_datum_outputs(BlobStore(on_disk), out, inline_bytes=inline_bytes)
    # When both are collected, Then the manifests, the inline bytes and the stored objects agree
    got = collect_output_files(BlobStore(in_memory), files, inline_bytes=inline_bytes)
    assert got == expected
    assert {key: in_memory.get(key) for key in in_memory.list("")} == {key: on_disk.get(key) for key in on_disk.list("")}


@pytest.mark.parametrize(
    ("name", "why"),
    [("a\x01b", "control character"), ("dir/\udcff", "not valid UTF-8"), ("x" * 5000, "longer than"),
     ("new\nline", "control character")],
)
def test_an_output_name_in_memory_is_refused_as_on_disk(store: MemoryObjectStore, blobs: BlobStore, name: str, why: str) -> None:
    files = {"fine": b"f" * 1000, name: b"x" * 1000}
    with pytest.raises(UnsafeOutput, match=why):
        collect_output_files(blobs, files)
    assert list(store.list("")) == []  # every name is checked before a byte is stored


def test_outputs_in_memory_keep_to_the_quota(store: MemoryObjectStore, blobs: BlobStore) -> None:
    files = {"a": b"1" * 600, "b/c": b"2" * 400}
    with pytest.raises(OutputQuotaExceeded):
        collect_output_files(blobs, files, quota_bytes=999)
    assert list(store.list("")) == []
    assert collect_output_files(blobs, files, quota_bytes=1000).manifest.size == 1000


def test_outputs_in_memory_on_the_local_store_are_stored_verified(tmp_path: Path) -> None:
    from storage.packs import PACK_MIN_CHUNKS

    blobs = BlobStore(LocalObjectStore(tmp_path / "store"))
    files = {f"part-{i:03}": f"row {i}\n".encode() * 40 for i in range(PACK_MIN_CHUNKS)}
    files["big"] = os.urandom(2 * 1024 * 1024)
    collected = collect_output_files(blobs, files)
    assert collected.inline == {}
    for name, data in files.items():
        entry = collected.manifest.files[f"/{name}"]
        ((digest, where),) = entry.slices()
        assert (blobs.read_slice(digest, where) if where is not None else blobs.open(digest).read()) == data


def _grow(path: Path) -> None:
    path.write_bytes(path.read_bytes() + b"more")


def _shrink(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-1])


def _replace(path: Path) -> None:
    # made before the old one goes, so it cannot reuse its inode number
    path.with_name("new").write_bytes(b"same size, other")
    os.replace(path.with_name("new"), path)


def _fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def _link_out(path: Path) -> None:
    path.unlink()
    path.symlink_to("/etc/hostname")


@pytest.mark.parametrize(("change", "why"), [
    (_grow, "changed size while herd read it (16 -> "),
    (_shrink, "changed size while herd read it (16 -> 15 bytes)"),
    (lambda path: path.unlink(), "changed while herd read /pfs/out (No such file or directory)"),
    (_replace, "changed while herd read /pfs/out"),
    (_fifo, "changed while herd read /pfs/out"),
    (_link_out, "changed while herd read /pfs/out"),
])
@pytest.mark.parametrize("packed", [True, False])
def test_an_output_changed_between_its_check_and_its_read_is_refused(
    blobs: BlobStore, out: Path, change: Callable[[Path], None], why: str, packed: bool
) -> None:
    from storage.packs import PACK_MIN_CHUNKS
    from worker.outputs import _checked, _open_root, _stored

    # Given outputs checked (small ones: read into a pack; or one: stored alone), then one of
    # them changed before it is read, as a process user code left behind could do
    count = PACK_MIN_CHUNKS + 1 if packed else 1
    for index in range(count):
        (out / f"f{index:02}").write_bytes(b"sixteen bytes!\n\n")
    root = _open_root(out)
    assert root is not None
    try:
        found = _checked(root, None)
        change(out / "f00")
        # Then the read refuses it, naming the file and what changed
        with pytest.raises(UnsafeOutput) as refused:
            _stored(blobs, root, found)
    finally:
        os.close(root)
    assert "/f00" in str(refused.value) and why in str(refused.value)
