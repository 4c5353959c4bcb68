"""`herd serve`: herd's HTTP API (what pachd is to pachctl), over the same Python API the CLI uses.

The server holds the storage and broker credentials; a user of the cluster holds only its
address (HERD_ADDRESS, scheduler/remote/). Each route calls one method of the Python API
(scheduler/cli/wiring.py's Herd: pfs, pipelines, jobs), and scheduler/remote/ implements the
same methods over these routes, so a verb prints the same through the server as without it.
FastAPI and uvicorn are imported only here (and by `herd serve`): the `server` extra.
"""
