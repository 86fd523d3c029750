"""The benchmark's own inputs, checked without running a build (the bench itself is never timed in tests).

Every bench Dockerfile must parse with wharfie's parser into the instructions
dockerfile-parse (the parser's oracle) finds, so a bench run cannot fail on its
first line; the profile reader must cut a stamped ``-v debug`` log into phases.
"""

from __future__ import annotations

import io

import pytest
from dockerfile_parse import DockerfileParser  # type: ignore[import-untyped]

from bench.wharfie_profile import parse_profile
from bench.workloads import DEBIAN_BUILDS, W1, Workload
from builder.frontend.plan import parse_dockerfile

BASE = "registry.example/bench/base:1"


@pytest.mark.parametrize("workload", (W1, *DEBIAN_BUILDS), ids=lambda w: w.name)
def test_bench_dockerfile_parses_into_the_oracles_instructions(workload: Workload) -> None:
    plan = parse_dockerfile(workload.dockerfile, build_args={"BASE": BASE})
    (stage,) = plan.stages
    assert stage.base == BASE
    oracle = DockerfileParser(fileobj=io.BytesIO(workload.dockerfile.encode())).structure
    expected = [item["instruction"] for item in oracle if item["instruction"] not in ("ARG", "FROM")]
    assert [type(instruction).__name__ for instruction in stage.instructions] == expected


def test_profile_cuts_a_stamped_debug_log_into_phases() -> None:
    lines = [(0.30, "isolation: sandbox, RUN snapshots: overlay; namespaces available"),
             (0.50, "stage 0"), (0.50, "FROM reg/base:1"), (0.70, "resolved reg/base:1 to sha256:aa (linux/amd64)"),
             (0.70, "RUN make"), (0.70, "  cache key 11"), (0.75, "extracting 0123456789ab"),
             (2.70, "layer sha256:bb: 3 entries, tar 3072 bytes, blob 200 bytes"), (2.70, "  layer bb (3 changes)"),
             (2.80, "CMD [\"sh\"]"), (2.90, "  cache key 22"), (3.00, "pushed bb to reg/app (200 B)"),
             (3.40, "pushed reg/app:1@sha256:cc")]
    profile = parse_profile(lines, total=4.0)
    phases = [(phase.name, round(phase.seconds, 2)) for phase in profile.phases]
    assert phases == [("start-up (imports, probes) to the first stage", 0.5), ("FROM reg/base:1", 0.2),
                      ("RUN make", 2.1), ('CMD ["sh"]', 0.1),
                      ("push (after the last step) to the printed result", 0.5),
                      ("exit after the result (work tree removal, interpreter exit)", 0.6)]
    run = profile.phases[2]
    assert run.notes == ("+0.05 s extracting 0123456789ab",
                         "+2.00 s layer sha256:bb: 3 entries, tar 3072 bytes, blob 200 bytes")
