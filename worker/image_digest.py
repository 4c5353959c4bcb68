"""The exact image a job runs: resolved once per job, recorded in storage, run by every datum.

A tag is a name that can move (`docker tag other:1 pipeline:latest` while a job runs). The first
datum of a job resolves the spec's image to its id (`sha256:...`) on its engine and records it
create-only beside the job's records; every datum then runs that id, never the tag, so one output
commit is never the work of two images. An engine that lacks the recorded id (another host whose
tag names something else) fails the datum naming both ids. A runtime without images (the local
process runtime) records that instead, so `inspect-job` says what ran.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from scheduler.store import PpsStore
from storage.errors import ImageNotFound

LOCAL_RUNTIME = "none (local runtime)"


@runtime_checkable
class ImageResolver(Protocol):
    """What a runtime with images offers (worker/docker_runtime.py)."""

    def image_id(self, image: str) -> str:
        """The id of what `image` names on this engine now (pulling it when missing)."""
        ...

    def has_image(self, image_id: str) -> bool:
        """Whether the engine holds the image with this id."""
        ...


def job_image(records: PpsStore, runtime: object, job_id: str, image: str) -> str:
    """The image id every datum of `job_id` runs: the recorded one, recorded now if none is.

    ImageNotFound naming both ids when this engine lacks the recorded image."""
    recorded = records.read_image(job_id)
    if not isinstance(runtime, ImageResolver):
        return recorded if recorded is not None else records.record_image(job_id, LOCAL_RUNTIME)
    if recorded is None:
        recorded = records.record_image(job_id, runtime.image_id(image))
    if recorded != LOCAL_RUNTIME and runtime.has_image(recorded):
        return recorded
    here = runtime.image_id(image)
    raise ImageNotFound(
        image, f"job {job_id} runs image {recorded}, which this worker's engine does not hold "
        f"('{image}' is {here} here); datums of one job never mix two images",
    )


def runs_image_id(image_id: str) -> bool:
    """Whether a recorded value is an engine's image id (not the local runtime's marker)."""
    return image_id.startswith("sha256:")
