"""Just enough of GitLab CI to run the example pipelines' jobs: YAML in, jobs of a pipeline out, scripts run.

What the examples use, read as GitLab documents it (docs.gitlab.com/ci/yaml):
`stages` and `stage`, `extends` (a hidden job's keys merged in, the job's own
winning), `variables` (global, then the job's, then a `parallel:matrix`
entry's), `rules` with `if:` expressions (``$VAR``, ``$A == $B``,
``$A == "text"``, ``!=``, ``=~ /regex/``; the first rule that matches adds the
job, none: the job is not in the pipeline), and `script` lines run in order in
one shell that stops at the first failing line (runners.py). Anything else in an `if:` is an
error here, so an example cannot drift into syntax these tests do not check.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = ["Job", "jobs_of", "rule_matches"]

_KEYWORDS = {"stages", "variables", "default", "workflow", "include", "image", "services", "before_script",
             "after_script", "cache"}
_COMPARISON = re.compile(r"^(\$\w+)\s*(==|!=|=~|!~)\s*(\$\w+|\"[^\"]*\"|'[^']*'|/.*/)$")


@dataclass(frozen=True)
class Job:
    name: str  # with the matrix values, as GitLab names it: "build: [arm64]"
    stage: str
    script: tuple[str, ...]
    variables: Mapping[str, str] = field(default_factory=dict)


def _merge(base: Mapping[str, Any], own: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in own.items():
        merged[key] = _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) \
            else value
    return merged


def _resolve(name: str, definitions: Mapping[str, Any]) -> dict[str, Any]:
    job = definitions[name]
    parents = job.get("extends", [])
    merged: dict[str, Any] = {}
    for parent in [parents] if isinstance(parents, str) else parents:
        merged = _merge(merged, _resolve(parent, definitions))
    return _merge(merged, {k: v for k, v in job.items() if k != "extends"})


def _value(token: str, env: Mapping[str, str]) -> str | None:
    if token.startswith("$"):
        return env.get(token[1:]) or None  # GitLab: an empty variable is as good as undefined here
    return token[1:-1]


def rule_matches(expression: str, env: Mapping[str, str]) -> bool:
    """One `if:` expression of the forms the examples use (see the module docstring)."""
    text = expression.strip()
    if re.fullmatch(r"\$\w+", text):
        return _value(text, env) is not None
    match = _COMPARISON.match(text)
    if match is None:
        raise ValueError(f"rules:if {expression!r} is beyond what these tests evaluate")
    left, operator, right = match.groups()
    value = _value(left, env)
    if operator in ("=~", "!~"):
        found = value is not None and re.search(right[1:-1], value) is not None
        return found if operator == "=~" else not found
    equal = value == _value(right, env)
    return equal if operator == "==" else not equal


def _in_pipeline(job: Mapping[str, Any], env: Mapping[str, str]) -> bool:
    rules = job.get("rules")
    if rules is None:
        return True
    for rule in rules:
        if "if" not in rule or rule_matches(rule["if"], env):
            return rule.get("when", "on_success") != "never"
    return False


def _matrix(job: Mapping[str, Any]) -> list[dict[str, str]]:
    entries = job.get("parallel", {}).get("matrix") if isinstance(job.get("parallel"), dict) else None
    if not entries:
        return [{}]
    out = []
    for entry in entries:
        names = list(entry)
        values = [entry[n] if isinstance(entry[n], list) else [entry[n]] for n in names]
        out += [dict(zip(names, map(str, combination))) for combination in itertools.product(*values)]
    return out


def jobs_of(path: Path, pipeline: Mapping[str, str]) -> list[Job]:
    """The jobs a pipeline with variables `pipeline` runs, stage by stage in the file's stage order."""
    document = yaml.safe_load(path.read_text())
    stages = document.get("stages", ["build", "test", "deploy"])
    global_variables = {k: str(v) for k, v in (document.get("variables") or {}).items()}
    jobs = []
    for name in document:
        if name in _KEYWORDS or name.startswith("."):
            continue
        job = _resolve(name, document)
        for entry in _matrix(job):
            variables = {**global_variables, **{k: str(v) for k, v in (job.get("variables") or {}).items()}, **entry}
            if not _in_pipeline(job, {**pipeline, **variables}):
                continue
            label = f"{name}: [{', '.join(entry.values())}]" if entry else name
            script = job["script"] if isinstance(job["script"], list) else [job["script"]]
            jobs.append(Job(label, job.get("stage", "test"), tuple(script), variables))
    return sorted(jobs, key=lambda j: stages.index(j.stage))
