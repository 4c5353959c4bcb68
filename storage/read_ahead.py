"""One big object read as parts fetched ahead in parallel and handed out in order.

A single GET streams through one connection; boto3's `download_file` keeps several ranged GETs
in flight and so outruns it. A verified read cannot write parts out of order (the hash runs
over the bytes in order), so this keeps the first part streaming while the next `ahead` parts
are fetched on threads, and yields every part in order. At most `ahead` parts are held.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from storage.errors import StorageUnavailable
from storage.streams import BLOCK, Reader


def read_ahead(
    first: Reader,
    first_length: int,
    size: int,
    fetch: Callable[[int, int], bytes],
    *,
    part: int,
    ahead: int,
    where: str,
) -> Iterator[bytes]:
    """The `size` bytes of one object: `first` (its first `first_length` bytes, streamed) then
    `fetch(offset, length)` of each later part, `ahead` of them in flight.

    A part of the wrong length raises StorageUnavailable naming `where`. Closing the generator
    early cancels the parts not started; those in flight end on their own, unread.
    """
    pool = ThreadPoolExecutor(ahead, thread_name_prefix="herd-read-ahead")
    pending: deque[tuple[int, int, Future[bytes]]] = deque()
    next_offset = first_length

    def fill() -> None:
        nonlocal next_offset
        while len(pending) < ahead and next_offset < size:
            length = min(part, size - next_offset)
            pending.append((next_offset, length, pool.submit(fetch, next_offset, length)))
            next_offset += length

    try:
        fill()
        got = 0
        while block := first.read(BLOCK):
            got += len(block)
            yield block
        if got != first_length:
            raise StorageUnavailable(f"{where}: its first {first_length} bytes came back as {got}")
        while pending:
            offset, length, future = pending.popleft()
            data = future.result()
            if len(data) != length:
                raise StorageUnavailable(
                    f"{where}: bytes {offset}-{offset + length - 1} came back as {len(data)} bytes"
                )
            fill()
            yield data
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        first.close()
