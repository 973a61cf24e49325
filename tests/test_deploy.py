"""The deploy files are valid for the tools that will read them: systemd, cron, a container builder and
Kubernetes (offline, against the Kubernetes JSON schemas). Each check also rejects a broken copy
(tests/cases/deploy_breakages.yaml), so none of them can pass vacuously.

tests/test_deploy_run.py then runs feedwatch the way each deploy file starts it.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import deploy_files as d
from tests.conftest import require

BREAKAGES: dict[str, list[dict[str, Any]]] = yaml.safe_load(
    (Path(__file__).parent / "cases" / "deploy_breakages.yaml").read_text(encoding="utf-8"))


def broken_copy(tmp_path: Path, case: dict[str, Any]) -> Path:
    """A copy of deploy/ with one fault put in; returns the copy's root."""
    root = tmp_path / "deploy"
    shutil.copytree(d.DEPLOY, root)
    target = root / case["file"]
    old, new = case["replace"]
    text = target.read_text(encoding="utf-8")
    assert old in text, f"case {case['name']}: {old!r} is not in {case['file']} any more: update the case"
    target.write_text(text.replace(old, new, 1), encoding="utf-8")
    return root


def cases(kind: str) -> Any:
    return pytest.mark.parametrize("case", BREAKAGES[kind], ids=[c["name"] for c in BREAKAGES[kind]])


def assert_rejected(problems: list[str], expect: str) -> None:
    assert problems, "the broken copy passed the check"
    assert any(expect in p for p in problems), f"expected a problem mentioning {expect!r}, got {problems}"


# ------------------------------------------------------------------------------------------------ systemd


def systemd_check(tmp_path: Path) -> Callable[[Path], list[str]]:
    if shutil.which("systemd-analyze") is None:
        require("systemd-analyze", "not installed (Debian: apt-get install systemd)")
    executable = d.feedwatch_executable(tmp_path)
    return lambda unit_dir: d.systemd_problems(unit_dir, executable, tmp_path / "verify")


def test_systemd_units_pass_verify_and_are_hardened(tmp_path: Path) -> None:
    assert sorted(p.name for p in d.SYSTEMD.iterdir()) == [
        "feedwatch-run.service", "feedwatch-run.timer", "feedwatch.service"]
    assert systemd_check(tmp_path)(d.SYSTEMD) == []


@cases("systemd")
def test_systemd_check_rejects_a_broken_unit(tmp_path: Path, case: dict[str, Any]) -> None:
    root = broken_copy(tmp_path, case)
    assert_rejected(systemd_check(tmp_path)(root / "systemd"), case["expect"])


def test_units_keep_the_contract_with_feedwatch() -> None:
    """What feedwatch relies on, and what the issue asks of the units, beyond what systemd can verify."""
    watch = d.read_unit(d.SYSTEMD / "feedwatch.service")
    run = d.read_unit(d.SYSTEMD / "feedwatch-run.service")
    timer = d.read_unit(d.SYSTEMD / "feedwatch-run.timer")
    assert watch.value("Service", "Type") == "notify"          # watch sends READY/WATCHDOG/STOPPING
    assert watch.value("Service", "ExecStart").split()[1:] == ["watch"]
    assert watch.value("Service", "ExecReload") == "/bin/kill -HUP $MAINPID"
    assert watch.value("Service", "Restart") == "on-failure"
    assert d.seconds(watch.value("Service", "WatchdogSec")) == 120
    assert run.value("Service", "Type") == "oneshot"
    assert run.value("Service", "ExecStart").split()[1:] == ["run", "-q"]
    assert timer.value("Timer", "Persistent") == "true"
    assert timer.values("Timer", "RandomizedDelaySec") and timer.values("Timer", "OnCalendar")
    for unit in (watch, run):
        name = unit.path.name
        assert unit.value("Service", "DynamicUser") == "yes", name
        assert unit.value("Service", "StateDirectory") == "feedwatch", name   # -> $STATE_DIRECTORY
        assert unit.value("Service", "ProtectSystem") == "strict", name
        assert unit.value("Service", "CapabilityBoundingSet") == "", name
        assert unit.value("Service", "EnvironmentFile") == "-/etc/feedwatch/feedwatch.env", name
        assert d.unit_environment(unit)["FEEDWATCH_CONFIG"] == "/etc/feedwatch/config.yaml", name


# ------------------------------------------------------------------------------------------------ cron


def test_cron_line_parses_and_uses_flock() -> None:
    from croniter import croniter

    assert d.cron_problems(d.CRON) == []
    tab = d.read_crontab(d.CRON)
    assert tab.command.split()[:2] == ["/usr/bin/flock", "-n"]
    # Every 5 minutes: two consecutive firings are 300 s apart.
    it = croniter(tab.schedule, 0)
    assert it.get_next(float) == 300 and it.get_next(float) == 600


@cases("cron")
def test_cron_check_rejects_a_broken_line(tmp_path: Path, case: dict[str, Any]) -> None:
    root = broken_copy(tmp_path, case)
    assert_rejected(d.cron_problems(root / "cron" / "feedwatch.cron"), case["expect"])


# ------------------------------------------------------------------------------------------------ container


def test_containerfile_has_the_essentials() -> None:
    assert d.container_problems(d.CONTAINERFILE) == []
    final = d.read_containerfile(d.CONTAINERFILE)[-1]
    assert final.base.startswith("python:") and final.base.endswith("-slim")
    env = final.env()
    assert env["FEEDWATCH_CONFIG"] == "/etc/feedwatch/config.yaml"
    assert any(i.value[-1] == env["FEEDWATCH_CONFIG"] for i in final.all("COPY")), "no default config"
    labels = dict(zip(final.last("LABEL").value[::2], final.last("LABEL").value[1::2], strict=True))
    assert "org.opencontainers.image.title" in labels


@cases("container")
def test_container_check_rejects_a_broken_file(tmp_path: Path, case: dict[str, Any]) -> None:
    root = broken_copy(tmp_path, case)
    assert_rejected(d.container_problems(root / "container" / "Containerfile"), case["expect"])


def test_build_context_leaves_out_local_state() -> None:
    ignored = (d.DEPLOY.parent / ".dockerignore").read_text(encoding="utf-8").split()
    assert {".git", ".venv", "*.db"} <= set(ignored)


@pytest.mark.slow
def test_container_image_builds(tmp_path: Path) -> None:
    """Builds the image where a container engine runs (docker build, as deploy/README.md says)."""
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "info"], capture_output=True, timeout=30).returncode != 0:
        # Not require(): no engine runs on this project's machines or in its CI, so this could only fail there.
        pytest.skip("no container engine is running (docker info failed); the Containerfile was checked "
                    "structurally by test_containerfile_has_the_essentials")
    tag = "feedwatch-test:deploy"
    build = subprocess.run([docker, "build", "-f", str(d.CONTAINERFILE), "-t", tag, str(d.DEPLOY.parent)],
                           capture_output=True, text=True, timeout=1800)
    assert build.returncode == 0, build.stderr[-3000:]
    try:
        version = subprocess.run([docker, "run", "--rm", tag, "--version"], capture_output=True, text=True,
                                 timeout=120)
        assert version.stdout.startswith("feedwatch "), version.stderr
        user = subprocess.run([docker, "run", "--rm", "--entrypoint", "id", tag, "-u"], capture_output=True,
                              text=True, timeout=120)
        assert user.stdout.strip() == "10001"
    finally:
        subprocess.run([docker, "rmi", "-f", tag], capture_output=True, timeout=120)


# ------------------------------------------------------------------------------------------------ kubernetes


def test_kubernetes_manifests_validate_offline() -> None:
    """kubernetes-validate (schemas shipped in the package, strict: unknown fields fail) for the oldest and
    the newest Kubernetes versions it knows, plus workload hygiene and the config each workload reads."""
    assert d.kubernetes_problems(d.KUBERNETES) == []
    kinds = {str(p.relative_to(d.KUBERNETES)): sorted(o["kind"] for o in d.kustomize_resources(p))
             for p in d.kustomizations(d.KUBERNETES)}
    assert kinds == {
        ".": ["ConfigMap", "Deployment", "Secret"],
        "base": ["ConfigMap", "Secret"],
        "cron": ["ConfigMap", "CronJob", "PersistentVolumeClaim", "Secret"],
        "watch": ["ConfigMap", "Deployment", "Secret"],
    }


@cases("kubernetes")
def test_kubernetes_check_rejects_a_broken_manifest(tmp_path: Path, case: dict[str, Any]) -> None:
    root = broken_copy(tmp_path, case)
    assert_rejected(d.kubernetes_problems(root / "kubernetes"), case["expect"])


def test_kustomize_builds_what_the_check_validated() -> None:
    """`kubectl kustomize` (kustomize proper) accepts every kustomization and yields the objects that
    test_kubernetes_manifests_validate_offline checked."""
    kubectl = d.kubectl()
    if kubectl is None:
        require("kubectl", "not installed (kustomize is built into kubectl)")
    for directory in d.kustomizations(d.KUBERNETES):
        built = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=60)
        assert built.returncode == 0, built.stderr
        objects = [o for o in yaml.safe_load_all(built.stdout) if o]
        assert sorted(objects, key=_identity) == sorted(d.kustomize_resources(directory), key=_identity), directory
        assert d.schema_problems(objects) == []


def _identity(obj: dict[str, Any]) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


def test_deployment_scales_and_cronjob_stays_single() -> None:
    watch = d.by_kind(d.kustomize_resources(d.KUBERNETES / "watch"), "Deployment")
    cron = d.kustomize_resources(d.KUBERNETES / "cron")
    assert watch["spec"]["replicas"] > 1          # workers share PostgreSQL through leases
    text, env = d.config_of(d.kustomize_resources(d.KUBERNETES / "watch"), "Deployment/feedwatch")
    assert "database: ${FEEDWATCH_DATABASE}" in text and env["FEEDWATCH_DATABASE"].startswith("postgresql+psycopg://")
    assert "https://www.kubernetes.dev/community/index.xml" in text
    cronjob = d.by_kind(cron, "CronJob")
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    assert d.by_kind(cron, "PersistentVolumeClaim")["spec"]["accessModes"] == ["ReadWriteOnce"]
