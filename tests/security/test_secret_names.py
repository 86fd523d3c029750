"""ARG/ENV names that look like secrets are warned about with file:line, as BuildKit's SecretsUsedInArgOrEnv."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.frontend.plan import parse_dockerfile
from builder.frontend.secret_names import looks_like_secret
from fixtures.readback import run_wharfie

# Names from BuildKit's rule documentation and its tests, with the verdict BuildKit gives.
FLAGGED = ["AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN", "api_key", "DATABASE_PASSWORD", "secret_MESSAGE", "AUTH",
           "npm_auth_token", "DB_PASSWD", "my_credentials", "Password", "APIKEY"]
NOT_FLAGGED = ["MONKEY", "TOKENIZER", "MYPASSWORDHERE", "PUBLIC_KEY", "GPG_PUBLIC_KEY", "SSH_KEY_FILE",
               "TOKEN_VERSION", "NODE_VERSION", "PATH", "KEYBOARD", "passwords_count"]


@pytest.mark.parametrize("name", FLAGGED)
def test_secret_looking_names_are_flagged(name: str) -> None:
    assert looks_like_secret(name)


@pytest.mark.parametrize("name", NOT_FLAGGED)
def test_other_names_are_not(name: str) -> None:
    assert not looks_like_secret(name)


def test_only_the_stages_the_build_runs_are_checked() -> None:
    plan = parse_dockerfile("ARG GLOBAL_TOKEN\nFROM scratch AS unused\nARG UNUSED_TOKEN\n"
                            "FROM scratch\nARG BUILD_VERSION\nENV NPM_TOKEN=x API_KEY=y\nARG public_key\n",
                            filename="Containerfile")
    flagged = [w for w in plan.warnings if "SecretsUsedInArgOrEnv" in w]
    assert [w.split(":")[1] for w in flagged] == ["6", "6"]
    assert all(w.startswith("Containerfile:6: ") for w in flagged)
    assert '(ENV "NPM_TOKEN")' in flagged[0] and '(ENV "API_KEY")' in flagged[1]


def test_a_build_warns_on_stderr_and_points_to_secret(tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM scratch\n\nARG GITHUB_TOKEN\nENV DB_PASSWORD=hunter2 PORT=80\n")
    result = run_wharfie("build", str(context), "--no-push", "--cache-dir", str(tmp_path / "cache"),
                         "--build-arg", "GITHUB_TOKEN=ghp_notreal")
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if "SecretsUsedInArgOrEnv" in line]
    assert lines == [
        ('warning: Dockerfile:3: SecretsUsedInArgOrEnv: Do not use ARG or ENV instructions for sensitive data '
         '(ARG "GITHUB_TOKEN"): its value is kept in the image history; pass a secret with '
         "--secret id=GITHUB_TOKEN,env=GITHUB_TOKEN and read it in RUN --mount=type=secret,id=GITHUB_TOKEN"),
        ('warning: Dockerfile:4: SecretsUsedInArgOrEnv: Do not use ARG or ENV instructions for sensitive data '
         '(ENV "DB_PASSWORD"): its value is kept in the image config; pass a secret with '
         "--secret id=DB_PASSWORD,env=DB_PASSWORD and read it in RUN --mount=type=secret,id=DB_PASSWORD"),
    ]
    assert "ghp_notreal" not in result.stderr  # the value itself is never logged
