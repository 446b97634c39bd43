"""The container image recipe and the commands it runs (no Docker engine: the file is read).

Checks the Dockerfile's shape (pinned base, builder stage, non-root, exec-form `flowyard`
entrypoint) and that every `flowyard` command the manifests, probes and Procfile use exists in
the installed console script, answers --help, and accepts the options given to it.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import tomllib
from dataclasses import dataclass
from typing import Any

import pytest

from tests.deploy.conftest import DEPLOY, FLOWYARD, REPO, Rendered, containers

DOCKERFILE = DEPLOY / "Dockerfile"


@dataclass(frozen=True)
class Instruction:
    stage: int
    keyword: str
    value: str


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Instruction]]:
    """Global ARG defaults and the instructions of each stage (line continuations joined)."""
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    args: dict[str, str] = {}
    instructions: list[Instruction] = []
    stage = -1
    for line in logical:
        keyword, _, value = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        if keyword == "ARG" and stage == -1 and "=" in value:
            name, _, default = value.partition("=")
            args[name.strip()] = default.strip()
        instructions.append(Instruction(stage, keyword, value.strip()))
    return args, instructions


@pytest.fixture(scope="module")
def dockerfile() -> tuple[dict[str, str], list[Instruction]]:
    return parse_dockerfile(DOCKERFILE.read_text())


def _final(instructions: list[Instruction], keyword: str) -> Instruction:
    last_stage = max(i.stage for i in instructions)
    found = [i for i in instructions if i.stage == last_stage and i.keyword == keyword]
    assert found, f"the final stage has no {keyword}"
    return found[-1]


def test_base_image_is_pinned(dockerfile: tuple[dict[str, str], list[Instruction]]) -> None:
    args, instructions = dockerfile
    froms = [i.value for i in instructions if i.keyword == "FROM"]
    assert len(froms) >= 2, "a builder stage and a runtime stage"
    for value in froms:
        image = value.split()[0]
        image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)
        pinned = "@sha256:" in image or re.search(r":3\.\d+\.\d+-slim-\w+$", image)
        assert pinned, f"{image} is not pinned to a patch release or digest"


def test_wheels_are_built_in_a_builder_stage(
    dockerfile: tuple[dict[str, str], list[Instruction]],
) -> None:
    _, instructions = dockerfile
    builder = [i for i in instructions if i.stage == 0]
    assert " AS builder" in builder[0].value
    assert any(i.keyword == "RUN" and "pip wheel" in i.value for i in builder)
    runtime = [i for i in instructions if i.stage == max(i.stage for i in instructions)]
    install = [i.value for i in runtime if i.keyword == "RUN" and "pip install" in i.value]
    assert install and "--no-index" in install[0] and "from=builder" in install[0]
    assert not any(i.keyword == "COPY" and "--from" not in i.value for i in runtime), (
        "the runtime stage copies no source tree; it installs wheels only"
    )


def test_builder_copies_every_packaged_folder(
    dockerfile: tuple[dict[str, str], list[Instruction]],
) -> None:
    _, instructions = dockerfile
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    include = project["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {pattern.rstrip("*") for pattern in include}
    copied = {
        source
        for i in instructions if i.stage == 0 and i.keyword == "COPY"
        for source in [word for word in i.value.split() if not word.startswith("--")][:-1]
    }
    assert packages <= copied, f"not copied into the builder: {packages - copied}"
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    for package in packages:
        assert f"!{package}/" in ignore, f"{package}/ is excluded from the build context"
    readme = project["project"].get("readme")
    assert readme in copied and f"!{readme}" in ignore


def test_runs_as_non_root_with_flowyard_as_exec_form_entrypoint(
    dockerfile: tuple[dict[str, str], list[Instruction]], rendered: dict[str, Rendered],
) -> None:
    _, instructions = dockerfile
    user = _final(instructions, "USER").value
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "numeric non-root USER (runAsNonRoot can verify it)"
    assert json.loads(_final(instructions, "ENTRYPOINT").value) == ["flowyard"]
    assert isinstance(json.loads(_final(instructions, "CMD").value), list), "CMD in exec form"
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "flowyard" in project["project"]["scripts"]
    for overlay in rendered.values():
        for workload in overlay.workloads():
            context = workload["spec"]["template"]["spec"]["securityContext"]
            assert str(context["runAsUser"]) == uid, workload["metadata"]["name"]


# --- the commands ---------------------------------------------------------------------------


def _command_lines(rendered: dict[str, Rendered]) -> set[tuple[str, ...]]:
    """Every argv given to `flowyard`: container args, exec probes and the Procfile."""
    lines: set[tuple[str, ...]] = set()
    for overlay in rendered.values():
        for workload in overlay.workloads():
            for container in containers(workload):
                lines.add(tuple(container["args"]))
                for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                    command = container.get(probe, {}).get("exec", {}).get("command")
                    if command:
                        assert command[0] == "flowyard", command
                        lines.add(tuple(command[1:]))
    for raw in (DEPLOY / "Procfile").read_text().splitlines():
        if raw.strip() and not raw.lstrip().startswith("#"):
            argv = shlex.split(raw.partition(":")[2])
            assert argv[0] == "flowyard", raw
            lines.add(tuple(arg for arg in argv[1:] if "$" not in arg))
    return lines


def _split(argv: tuple[str, ...]) -> tuple[tuple[str, ...], list[str]]:
    """(sub-command path, option names) of one argv."""
    path: list[str] = []
    for arg in argv:
        if arg.startswith("-"):
            break
        path.append(arg)
    options = [arg.split("=")[0] for arg in argv[len(path):] if arg.startswith("-")]
    return tuple(path), options


def _help(path: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([FLOWYARD, *path, "--help"], capture_output=True, text=True,
                          timeout=120)


def test_every_command_the_deployment_uses_exists_and_takes_its_options(
    rendered: dict[str, Rendered],
) -> None:
    used: dict[tuple[str, ...], set[str]] = {}
    for argv in _command_lines(rendered):
        path, options = _split(argv)
        used.setdefault(path, set()).update(options)
    # The manifests must run each process the platform consists of.
    assert {("api",), ("worker",), ("scheduler",), ("flower",), ("db", "upgrade"),
            ("worker-health",)} <= set(used)
    problems: list[str] = []
    for path, options in sorted(used.items()):
        result = _help(path)
        if result.returncode != 0:
            problems.append(f"`flowyard {' '.join(path)} --help` exited {result.returncode}: "
                            f"{(result.stderr or result.stdout).strip()[-300:]}")
            continue
        for option in sorted(options):
            if not re.search(rf"(^|[\s,]){re.escape(option)}([\s,=]|$)", result.stdout, re.M):
                problems.append(f"`flowyard {' '.join(path)}` has no option {option}")
    assert not problems, "\n".join(problems)


def test_a_missing_command_is_reported() -> None:
    assert _help(("no-such-command",)).returncode != 0


def _env_names(container: dict[str, Any]) -> set[str]:
    return {v["name"] for v in container.get("env", [])}


def test_worker_queue_flags_match_the_procfile(rendered: dict[str, Rendered]) -> None:
    procfile_queues = set()
    for raw in (DEPLOY / "Procfile").read_text().splitlines():
        argv = shlex.split(raw.partition(":")[2]) if ":" in raw and not raw.startswith("#") else []
        if argv[1:2] == ["worker"]:
            procfile_queues.add(argv[argv.index("-Q") + 1])
    for overlay in rendered.values():
        manifest_queues = {
            w["spec"]["template"]["spec"]["containers"][0]["args"][2] for w in overlay.workers()
        }
        assert manifest_queues == procfile_queues, overlay.overlay
