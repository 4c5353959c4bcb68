"""Every verb through the server against every role (none, reader, writer, owner, admin): the
verb runs when the role covers what its route needs, and is refused (exit 11, naming the repo
and the role) when not; lists show only what the user may read."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from scheduler.auth.rules import OWNER, READER, ROLES, WRITER
from scheduler.cli import cli
from tests.fixtures.server import HerdServer, start_server, stop_server

USERS = ("nobody", READER, WRITER, OWNER, "admin")  # nobody holds no role; admin is the admin

SPEC = {"pipeline": {"name": "pipe"}, "transform": {"cmd": ["sh", "-c", "echo hi; cp -r /pfs/data/* /pfs/out/"]},
        "input": {"pfs": {"repo": "data", "glob": "/*"}}}


class Cluster:
    def __init__(self, server: HerdServer, folder: Path) -> None:
        self.server, self.folder = server, folder
        self.tokens: dict[str, str] = {}
        self.job = ""

    def run(self, user: str | None, *args: str, input: str | None = None) -> Result:
        env = {"HERD_ADDRESS": self.server.url, "HERD_CONFIG_DIR": str(self.folder / (user or "setup")),
               "HERD_TOKEN": self.tokens.get(user or "admin"), "HERD_STORAGE": f"file://{self.folder / 'unused'}"}
        return CliRunner().invoke(cli, list(args), env=env, input=input, catch_exceptions=False)

    def ok(self, user: str | None, *args: str, input: str | None = None) -> str:
        result = self.run(user, *args, input=input)
        assert result.exit_code == 0, f"{user} {args}: {result.output}{result.stderr}"
        return result.stdout


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    folder = tmp_path_factory.mktemp("roles")
    server = start_server(folder)
    c = Cluster(server, folder)
    try:
        c.ok(None, "create-repo", "data")
        c.ok(None, "put-file", "data", "master", "/a.txt", "-f", "-", input="alpha\n")
        (folder / "spec.json").write_text(json.dumps(SPEC))
        c.ok(None, "create-pipeline", "-f", str(folder / "spec.json"))
        c.tokens["admin"] = c.ok(None, "auth", "activate").strip()
        for user in USERS[:-1]:
            c.tokens[user] = c.ok("admin", "auth", "create-token", user).strip()
        for role in ROLES:
            for repo in ("data", "pipe"):
                c.ok("admin", "auth", "set-role", repo, role, role)
        for user in USERS:  # a repo each may try to delete
            c.ok("admin", "create-repo", f"gone-{user}")
            if user in ROLES:
                c.ok("admin", "auth", "set-role", f"gone-{user}", user, user)
        c.job = json.loads(c.ok("admin", "list-job", "-p", "pipe", "--json").splitlines()[0])["job"]["id"]
        yield c
    finally:
        stop_server(server)


# (verb words, the role its route needs on the repo it names, that repo); {user} and {job} filled in
VERBS: list[tuple[tuple[str, ...], str, str]] = [
    (("inspect-repo", "data"), READER, "data"),
    (("list-branch", "data"), READER, "data"),
    (("list-commit", "data"), READER, "data"),
    (("inspect-commit", "data@master"), READER, "data"),
    (("list-file", "data@master:/"), READER, "data"),
    (("get-file", "data@master:/a.txt"), READER, "data"),
    (("inspect-file", "data@master:/a.txt"), READER, "data"),
    (("glob-file", "data@master:/*"), READER, "data"),
    (("diff-file", "data@master:/"), READER, "data"),
    (("inspect-pipeline", "pipe"), READER, "pipe"),
    (("inspect-job", "{job}"), READER, "pipe"),
    (("list-datum", "{job}"), READER, "pipe"),
    (("get-logs", "--job", "{job}"), READER, "pipe"),
    (("flush-commit", "data@master"), READER, "data"),
    (("auth", "get-roles", "data"), READER, "data"),
    (("put-file", "data", "master", "/by-{user}.txt", "-f", "-"), WRITER, "data"),
    (("create-branch", "data", "b-{user}", "--head", "master"), WRITER, "data"),
    (("copy-file", "data", "master", "/a.txt", "data", "master", "/copy-{user}.txt"), WRITER, "data"),
    (("start-commit", "data", "side-{user}"), WRITER, "data"),
    (("stop-pipeline", "pipe"), WRITER, "pipe"),
    (("start-pipeline", "pipe"), WRITER, "pipe"),
    (("auth", "set-role", "data", "someone", "reader"), OWNER, "data"),
    (("delete-repo", "gone-{user}", "--force"), OWNER, "gone-{user}"),
]


def allowed(user: str, needed: str) -> bool:
    return user == "admin" or (user in ROLES and ROLES.index(user) >= ROLES.index(needed))


@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize(("words", "needed", "repo"), VERBS, ids=[" ".join(v[0][:2]) for v in VERBS])
def test_a_verb_runs_exactly_for_the_roles_that_cover_it(
    cluster: Cluster, user: str, words: tuple[str, ...], needed: str, repo: str,
) -> None:
    args = [word.format(user=user, job=cluster.job) for word in words]
    result = cluster.run(user, *args, input="from the table test\n")
    if allowed(user, needed):
        assert result.exit_code == 0, f"{user} {args}: {result.output}{result.stderr}"
    else:
        assert result.exit_code == 11, f"{user} {args}: {result.output}{result.stderr}"
        # (copy-file checks its source first: nobody lacks even the reader role there)
        assert re.search(rf"needs the (reader|{needed}) role on repo '{repo.format(user=user)}'", result.stderr)


@pytest.mark.parametrize("user", USERS)
def test_lists_show_only_what_the_user_may_read(cluster: Cluster, user: str) -> None:
    repos = {json.loads(line)["repo"]["name"] for line in cluster.ok(user, "list-repo", "--json").splitlines()}
    pipelines = {json.loads(line)["pipeline"]["name"] for line in cluster.ok(user, "list-pipeline", "--json").splitlines()}
    jobs = {json.loads(line)["pipeline"]["name"] for line in cluster.ok(user, "list-job", "--json").splitlines()}
    sees = user != "nobody"
    assert ("data" in repos, "pipe" in repos, "pipe" in pipelines, "pipe" in jobs) == (sees,) * 4
    assert ("gone-nobody" in repos) == (user == "admin")


def test_no_token_ever_reaches_the_servers_log(cluster: Cluster) -> None:
    log = cluster.server.log_text()
    assert not [user for user, token in cluster.tokens.items() if token in log]
    assert "alpha" not in log  # nor file content


def test_a_deleted_repos_roles_go_with_it(cluster: Cluster) -> None:
    # Given a repo the writer user held a role on, deleted by the admin
    cluster.ok("admin", "create-repo", "reborn")
    cluster.ok("admin", "auth", "set-role", "reborn", WRITER, WRITER)
    cluster.ok("admin", "delete-repo", "reborn", "--force")
    # When a repo of that name is made again, nobody holds a role on it but its new creator
    cluster.ok("admin", "create-repo", "reborn")
    assert cluster.ok("admin", "auth", "get-roles", "reborn").split() == ["USER", "ROLE", "admin", "owner"]
    assert cluster.run(WRITER, "inspect-repo", "reborn").exit_code == 11
