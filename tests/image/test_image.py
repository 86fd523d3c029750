"""wharfie's own image, run as a GitLab runner runs a job's image, against the fixture registries.

Every built image is read back with skopeo and umoci: nothing of wharfie in
it, nothing of its base missing from it.
"""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import pytest

from fixtures.debian_base import ensure_debian_base
from fixtures.readback import read_back, tree_of
from fixtures.registry import Registry
from fixtures.wharfie_image import BASE_PACKAGES, WharfieImage, run_job

pytestmark = pytest.mark.slow

MAX_COMPRESSED = 60 * 1000 * 1000
OPEN = ["--src-tls-verify=false"]


def _tree(ref: str, where: Path, flags: list[str] = OPEN) -> dict[str, tuple[str, int, int, int, str]]:
    return tree_of(read_back(ref, where, flags).rootfs)


def test_the_image_holds_wharfie_and_nothing_else_and_is_small(wharfie_image: WharfieImage, tmp_path: Path) -> None:
    print(f"\nwharfie image: {wharfie_image.compressed_bytes / 1e6:.1f} MB compressed, "
          f"built in {wharfie_image.build_seconds:.0f} s")
    assert wharfie_image.compressed_bytes <= MAX_COMPRESSED
    image = read_back(wharfie_image.ref, tmp_path / "rb", OPEN)
    tree = tree_of(image.rootfs)
    assert {path for path in tree if "/" not in path} == {"wharfie", "kaniko", "busybox", "tmp"}
    assert tree["busybox"][0] == "link" and tree["busybox"][4] == "wharfie/bin", "GitLab's runner finds /busybox/sh"
    assert tree["tmp"][:2] == ("dir", 0o1777)
    for program in ("kaniko/executor", "wharfie/bin/wharfie", "wharfie/bin/python3", "wharfie/bin/busybox"):
        assert tree[program][0] == "file" and tree[program][1] & 0o111, program
    assert tree["wharfie/bin/sh"] == ("link", 0o777, 0, 0, "busybox")
    assert {"wharfie/etc/ssl/certs/ca-certificates.crt", "wharfie/lib/libc.so.6", "wharfie/lib/libssl.so.3",
            "wharfie/lib/libseccomp.so.2", "wharfie/lib/python3.11/sitecustomize.py",
            "wharfie/lib/python3.11/os.py", "wharfie/lib/python3/dist-packages/builder/__init__.py"} <= set(tree)
    config = image.config["config"]
    assert config["Entrypoint"] == ["/kaniko/executor"]
    assert "PATH=/wharfie/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" in config["Env"]
    assert "DOCKER_CONFIG=/kaniko/.docker" in config["Env"]
    assert "SSL_CERT_DIR=/kaniko/ssl/certs" in config["Env"] and tree["kaniko/ssl/certs"][0] == "dir", \
        "kaniko's CA directory: GitLab's docs have jobs add a private CA there"


def test_in_place_builds_twice_and_the_job_shell_goes_on(wharfie_image: WharfieImage, registry_open: Registry,
                                                       busybox_ref: str, tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    # The image built first leaves a loader, a libc and a loader cache of its own in / (unusable ones):
    # wharfie and its shell, started after it, must not care.
    (context / "Dockerfile").write_text(
        f"FROM {busybox_ref}\nRUN echo built > /built && mkdir -p /lib64 /lib/x86_64-linux-gnu && "
        "for f in /lib64/ld-linux-x86-64.so.2 /lib/x86_64-linux-gnu/libc.so.6 /lib/x86_64-linux-gnu/libssl.so.3 "
        "/etc/ld.so.cache; do echo not-elf > $f; done\n")
    (context / "Dockerfile.scratch").write_text("FROM scratch\nCOPY hello.txt /hello.txt\n")
    (context / "hello.txt").write_text("hello\n")
    host = registry_open.host
    first, second = f"{host}/inplace/busybox:1", f"{host}/inplace/scratch:1"
    flags = f"--isolation in-place --insecure-registry {host}"
    done = run_job(wharfie_image, f"wharfie build {flags} --context dir:///ctx -f /ctx/Dockerfile -d {first} && "
                                  f"wharfie build {flags} --context /ctx -f /ctx/Dockerfile.scratch -d {second} && "
                                  "echo next && wharfie --version && ls /", volumes=[(context, "/ctx")])
    assert done.returncode == 0, done.stderr
    after = done.stdout.splitlines()
    assert "next" in after, "the job's shell went on after two builds replaced /"
    assert "hello.txt" in after and "wharfie" in after, "/ is the scratch image's, wharfie's own tree kept"

    base = _tree(busybox_ref, tmp_path / "base")
    built = _tree(first, tmp_path / "first")
    assert set(base) <= set(built), f"missing from the image: {sorted(set(base) - set(built))[:10]}"
    planted = {"built", "lib64", "lib64/ld-linux-x86-64.so.2", "lib", "lib/x86_64-linux-gnu",
               "lib/x86_64-linux-gnu/libc.so.6", "lib/x86_64-linux-gnu/libssl.so.3", "etc/ld.so.cache"}
    assert set(built) - set(base) == planted, "nothing of wharfie, the job or the context in the image"
    assert built["built"][4] == "built\n"
    assert _tree(second, tmp_path / "second") == {"hello.txt": ("file", 0o644, 0, 0, "hello\n")}


def test_wharfie_refuses_a_preload_file_left_in_place(wharfie_image: WharfieImage, registry_open: Registry,
                                                       busybox_ref: str, tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {busybox_ref}\nRUN echo /lib/evil.so > /etc/ld.so.preload\n")
    done = run_job(wharfie_image, f"wharfie build --isolation in-place --insecure-registry {registry_open.host} "
                                  f"--context /ctx -d {registry_open.host}/inplace/preload:1 && echo built && "
                                  "wharfie --version", volumes=[(context, "/ctx")])
    assert done.returncode == 126 and "built" in done.stdout.splitlines()
    assert "refusing to start python3.11: /etc/ld.so.preload" in done.stderr


def test_a_debian_image_keeps_its_own_python_when_built_in_place(wharfie_image: WharfieImage,
                                                                 registry_open: Registry, debian_python_ref: str,
                                                                 tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(
        f"FROM {debian_python_ref}\nRUN python3 -c 'import json, ssl, sqlite3; print(\"python ok\")' > /python-ok\n")
    ref = f"{registry_open.host}/inplace/debian:1"
    done = run_job(wharfie_image, f"wharfie build --isolation in-place --insecure-registry {registry_open.host} "
                                  f"--context /ctx -d {ref}", volumes=[(context, "/ctx")])
    assert done.returncode == 0, done.stderr
    tree = _tree(ref, tmp_path / "rb")
    assert tree["python-ok"][4] == "python ok\n", "the image's own python3 ran, with its own standard library"
    stdlib = ensure_debian_base(BASE_PACKAGES).rootfs / "usr/lib/python3.11"
    expected = {str(p.relative_to(stdlib.parents[2])) for p in stdlib.rglob("*")}
    assert expected <= set(tree), f"missing: {sorted(expected - set(tree))[:10]}"
    assert not [path for path in tree if path.startswith(("wharfie", "kaniko", "busybox"))]


def test_a_volume_at_a_non_ascii_path_survives_in_place_and_stays_out(wharfie_image: WharfieImage,
                                                                     registry_open: Registry, busybox_ref: str,
                                                                     tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {busybox_ref}\n"
                                        "RUN cat '/srv/café/résumé.txt' > /seen && echo step > '/srv/café/from-step'\n")
    volume = tmp_path / "café"
    (volume / "sub dir").mkdir(parents=True)
    (volume / "résumé.txt").write_text("kept\n")
    (volume / "sub dir" / "f").write_text("f\n")
    ref = f"{registry_open.host}/inplace/volume:1"
    done = run_job(wharfie_image, f"wharfie build --isolation in-place --insecure-registry {registry_open.host} "
                                  f"--context /ctx -d {ref}", volumes=[(context, "/ctx"), (volume, "/srv/café")])
    assert done.returncode == 0, done.stderr
    assert sorted(str(p.relative_to(volume)) for p in volume.rglob("*")) == [
        "from-step", "résumé.txt", "sub dir", "sub dir/f"], "neither emptied nor replaced"
    assert (volume / "résumé.txt").read_text() == "kept\n" and (volume / "sub dir" / "f").read_text() == "f\n"
    tree = _tree(ref, tmp_path / "rb")
    assert tree["seen"][4] == "kept\n", "the step saw the volume"
    assert not [path for path in tree if path.startswith("srv")], "nothing of the volume in the image"


def _config_json(registry: Registry) -> str:
    assert registry.username is not None and registry.password is not None
    auth = base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode()
    return json.dumps({"auths": {registry.host: {"auth": auth}}})


def test_kaniko_executor_with_kanikos_flags_and_config(wharfie_image: WharfieImage, registry_htpasswd: Registry,
                                                      busybox_ref: str, tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    (workspace / "Dockerfile").write_text(f"FROM {busybox_ref}\nRUN echo kaniko-style > /made\n")
    host = registry_htpasswd.host
    ref = f"{host}/kaniko/app:1"
    # A kaniko job's script, unchanged: the credentials in /kaniko/.docker/config.json, then the executor.
    script = ('echo "$DOCKER_AUTH_CONFIG" > /kaniko/.docker/config.json && which wharfie sh && '
              f"/kaniko/executor --context dir:///workspace --dockerfile /workspace/Dockerfile --destination {ref} "
              f"--insecure-registry {host} --verbosity=debug")
    done = run_job(wharfie_image, script, volumes=[(workspace, "/workspace")],
                   env={"DOCKER_AUTH_CONFIG": _config_json(registry_htpasswd)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[:2] == ["/wharfie/bin/wharfie", "/wharfie/bin/sh"]
    assert "isolation: sandbox, rootless (uid 0 as 0, subordinate ids 1-65535 as 1-65535)" in done.stderr
    assert "user namespace of its own" in done.stderr, "-v debug says why the sandbox, and how"
    tree = _tree(ref, tmp_path / "rb", registry_htpasswd.skopeo_flags("src"))
    assert tree["made"][4] == "kaniko-style\n"
    assert set(tree) - set(_tree(busybox_ref, tmp_path / "base")) == {"made"}, "the sandbox left nothing behind"


@pytest.mark.parametrize("isolation", ["in-place", "auto"])
def test_steps_cannot_read_the_jobs_credentials(isolation: str, wharfie_image: WharfieImage,
                                                registry_htpasswd: Registry, busybox_ref: str,
                                                tmp_path: Path) -> None:
    assert registry_htpasswd.password is not None
    secret = registry_htpasswd.password
    pattern = secret[:-1] + f"[{secret[-1]}]"  # matches the secret, not the command line that holds the pattern
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(
        f"FROM {busybox_ref}\n"
        f"RUN environ=$(for f in /proc/[0-9]*/environ; do cat \"$f\" 2>/dev/null; done | tr '\\0' '\\n' "
        f"| grep -c -e '{pattern}'); "
        f"files=$(find / \\( -path /proc -o -path /sys -o -path /dev \\) -prune -o -type f -print 2>/dev/null "
        f"| xargs grep -l -e '{pattern}' 2>/dev/null | wc -l); "
        f"echo \"environ:$environ files:$files\" > /report\n")
    ref = f"{registry_htpasswd.host}/guard/{isolation}:1"
    job_env = {"CI_REGISTRY": registry_htpasswd.host, "CI_REGISTRY_USER": str(registry_htpasswd.username),
               "CI_REGISTRY_PASSWORD": secret}
    scan = f"for f in /proc/[0-9]*/environ; do cat $f 2>/dev/null; done | tr '\\0' '\\n' | grep -c -e '{pattern}'"
    done = run_job(wharfie_image, f"wharfie build --isolation {isolation} --insecure-registry "
                                  f"{registry_htpasswd.host} --context /ctx -d {ref} && echo control:$({scan})",
                   volumes=[(context, "/ctx")], env=job_env)
    assert done.returncode == 0, done.stderr
    assert secret not in done.stdout + done.stderr
    control = int(done.stdout.split("control:")[1].split()[0])
    assert control >= 1, "the same scan, run by the job's shell, finds the secret: the step's scan could have"
    tree = _tree(ref, tmp_path / "rb", registry_htpasswd.skopeo_flags("src"))  # pushed with the job's credentials
    assert tree["report"][4] == "environ:0 files:0\n"


def test_a_step_in_place_cannot_plant_a_credential_helper(wharfie_image: WharfieImage, registry_htpasswd: Registry,
                                                          busybox_ref: str, tmp_path: Path) -> None:
    # In place, a RUN is root on the job's own /: it can rewrite docker's config.json to name a credential
    # helper and put that helper on PATH (in /wharfie/bin, which outlives the stage). A registry first
    # contacted after the step (here the second stage's base, in a registry needing a password) would make
    # wharfie run the step's program with the job's environment, unless credentials are found up front.
    private_base = f"{registry_htpasswd.host}/private/busybox:1"
    subprocess.run(["skopeo", "copy", "--quiet", "--src-tls-verify=false", *registry_htpasswd.skopeo_flags("dest"),
                    f"docker://{busybox_ref}", f"docker://{private_base}"], check=True, capture_output=True)
    out = tmp_path / "out"
    out.mkdir()
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(
        f"FROM {busybox_ref}\n"
        "RUN printf '#!/bin/sh\\nenv > /out/stolen\\necho {}\\n' > /wharfie/bin/docker-credential-evil "
        "&& chmod +x /wharfie/bin/docker-credential-evil "
        "&& echo '{\"credsStore\": \"evil\"}' > /kaniko/.docker/config.json && echo first > /first\n"
        f"FROM {private_base}\n"
        "COPY --from=0 /first /first\n")
    ref = f"{registry_htpasswd.host}/guard/helper:1"
    done = run_job(wharfie_image, 'echo "$DOCKER_AUTH_CONFIG" > /kaniko/.docker/config.json && '
                                  f"wharfie build --isolation in-place --insecure-registry {registry_htpasswd.host} "
                                  f"--context /ctx -d {ref}",
                   volumes=[(context, "/ctx"), (out, "/out")],
                   env={"DOCKER_AUTH_CONFIG": _config_json(registry_htpasswd), "CI_JOB_TOKEN": "job-token-secret"})
    assert not (out / "stolen").exists(), "the planted helper ran with the job's environment"
    assert done.returncode == 0, done.stderr
    assert "job-token-secret" not in done.stdout + done.stderr
    assert _tree(ref, tmp_path / "rb", registry_htpasswd.skopeo_flags("src"))["first"][4] == "first\n"
