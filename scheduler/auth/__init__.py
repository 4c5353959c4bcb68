"""Auth of `herd serve`: tokens and per-repo roles, off until `herd auth activate`.

rules.py is the pure part (roles, who may do what, names); records.py the stored records;
store.py reads and writes them in the object store (auth/ keys, storage/layout.py). Only the
server uses them: the CLI sends a token (HERD_TOKEN, or `herd auth login`'s file) and nothing else.
"""
