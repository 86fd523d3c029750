"""Conformance: each case under cases/ built by wharfie and by buildah from the same base must give the same image.

"The same" is the file tree (type, mode, owner, size, content, link targets,
hardlinks) and the config docker reads; see fixtures/imagecompare.py.  Where
buildah departs from docker, the case's ``case.toml`` states docker's
behaviour with the reference it comes from (see conformance_cases.py), and
that is what wharfie is held to.
"""

from __future__ import annotations

import pytest
from conformance_cases import CASES_DIR, Case, differences, load_cases

CASES = load_cases(CASES_DIR)


def _param(case: Case) -> object:
    marks = [pytest.mark.slow]
    if case.xfail:
        marks.append(pytest.mark.xfail(strict=True, reason=case.xfail))
    return pytest.param(case, id=case.name, marks=marks)


def test_suite_is_large_enough() -> None:
    assert len(CASES) >= 40
    assert all((case.directory / "Dockerfile").is_file() for case in CASES)


@pytest.mark.parametrize("case", [_param(case) for case in CASES])
def test_case(case: Case, conformance_builds) -> None:
    wharfie, buildah = conformance_builds.result(case.name)
    assert wharfie.error is None, f"{case.name}: {wharfie.error}"
    if buildah is not None:
        assert buildah.error is None, f"{case.name}: the peer could not build it: {buildah.error}"
    found = differences(case, wharfie, buildah)
    about = f" ({case.about})" if case.about else ""
    assert not found, f"{case.name}{about}: {len(found)} difference(s):\n  " + "\n  ".join(found)
