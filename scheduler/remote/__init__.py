"""The CLI's side of `herd serve`: the Python API's methods over HTTP (HERD_ADDRESS).

RemoteHerd has the `pfs`, `pipelines` and `jobs` the CLI calls, with the signatures and return
types of the local ones (storage.repos.Pfs, scheduler.pipelines.Pipelines,
scheduler.queries.JobQueries); the records come back as the same pydantic models, so every
verb renders them as it does locally. httpx is imported only in client.py.
"""
