"""`-v debug` says what a step gets (mounts and their flags, network mode), and that is what the step has.

Each `sandbox: mount TARGET ... FLAGS` line is checked against the step's own
/proc/mounts, and docker's default flags for the mounts it shares with
docker are checked to be there (wharfie's may be stricter: its /dev and
rootfs are nodev too). The capability and seccomp lines are checked in
test_capabilities.py and test_kernel_surface.py.
"""

from __future__ import annotations

from attack import Attacker

# moby oci/defaults.go (DefaultLinuxSpec mounts), flags only.
DOCKER_FLAGS = {"/proc": {"nosuid", "nodev", "noexec"}, "/dev": {"nosuid"}, "/dev/pts": {"nosuid", "noexec"},
                "/dev/shm": {"nosuid", "nodev", "noexec"}}


def test_debug_report_matches_the_steps_mounts(attacker: Attacker, busybox_ref: str) -> None:
    dockerfile = (f"FROM {busybox_ref}\n"
                  "RUN --mount=type=cache,target=/c --mount=type=tmpfs,target=/t --mount=type=bind,target=/ctx "
                  "sed 's/^/mounted /' /proc/mounts\n")
    result = attacker.build(attacker.context(dockerfile), "-v", "debug")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    mounted: dict[str, set[str]] = {}
    for line in lines:
        if line.startswith("mounted "):
            fields = line.split()
            mounted[fields[2]] = set(fields[4].split(","))
    reported = {}
    for line in lines:
        if "sandbox: mount " in line and " -> " not in line:
            fields = line.split("sandbox: mount ", 1)[1].split()
            reported[fields[0]] = set() if fields[2] == "-" else set(fields[2].split(","))
    assert {"/", "/proc", "/dev", "/dev/null", "/c", "/t", "/ctx", "/etc/hosts"} <= reported.keys()
    for target, flags in reported.items():
        if target in mounted:
            wanted = {"ro" if flag == "ro" else flag for flag in flags}
            assert wanted <= mounted[target], f"{target}: reported {flags}, mounted {mounted[target]}"
        else:
            assert target.startswith("/proc/"), f"{target} reported but not mounted"  # a masked path absent here
    for target, flags in DOCKER_FLAGS.items():
        assert flags <= mounted[target], f"{target}: docker has {flags}, the step {mounted[target]}"
    for target in ("/", "/c", "/t", "/ctx"):
        assert {"nosuid", "nodev"} <= mounted[target], target
    assert "ro" in mounted["/ctx"]
    # The mode itself is the network namespace's business (its own tests); here: that it is reported.
    assert any("sandbox: network: " in line for line in lines)
