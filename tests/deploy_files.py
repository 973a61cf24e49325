"""Readers and checks of the files under deploy/, shared by tests/test_deploy*.py.

Each ``*_problems`` function returns what is wrong with a deploy file (an empty list when nothing is), so
the tests can show that a check passes on the shipped file *and* fails on a broken copy of it
(tests/cases/deploy_breakages.yaml).
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.helpers import REPO

DEPLOY = REPO / "deploy"
SYSTEMD = DEPLOY / "systemd"
CRON = DEPLOY / "cron" / "feedwatch.cron"
CONTAINERFILE = DEPLOY / "container" / "Containerfile"
KUBERNETES = DEPLOY / "kubernetes"

# The install locations the deploy files name, and what a test puts in their place.
VENV_SCRIPT = "/opt/feedwatch/bin/feedwatch"
ETC = "/etc/feedwatch"
STATE = "/var/lib/feedwatch"

MAX_EXPOSURE = 2.0   # `systemd-analyze security`: 0 is fully locked down, 10 is unprotected; "OK" is below 2


# ------------------------------------------------------------------------------------------------ systemd


@dataclass(frozen=True)
class Unit:
    """A unit file as (section, key, value) entries, in order; keys may repeat (Environment=, ...)."""

    path: Path
    entries: tuple[tuple[str, str, str], ...]

    def values(self, section: str, key: str) -> list[str]:
        return [v for s, k, v in self.entries if s == section and k == key]

    def value(self, section: str, key: str) -> str:
        found = self.values(section, key)
        assert len(found) == 1, f"{self.path.name}: expected one {key}= in [{section}], found {found}"
        return found[0]


def read_unit(path: Path) -> Unit:
    """Parse a unit file the way systemd.syntax(7) describes (comments, sections, Key=Value)."""
    entries: list[tuple[str, str, str]] = []
    section = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not Key=Value: {raw!r}"
        entries.append((section, key.strip(), value.strip()))
    return Unit(path, tuple(entries))


def unit_environment(unit: Unit) -> dict[str, str]:
    """The Environment= assignments of a unit (systemd quoting rules are shell-like for these)."""
    env: dict[str, str] = {}
    for value in unit.values("Service", "Environment"):
        for word in shlex.split(value):
            name, _, val = word.partition("=")
            env[name] = val
    return env


def seconds(span: str) -> float:
    """A systemd time span with one unit (120, 30s, 5min, 1h; systemd.time(7)) in seconds."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(s|sec|min|h)?", span)
    assert m, f"unsupported time span {span!r}"
    return float(m.group(1)) * {None: 1, "s": 1, "sec": 1, "min": 60, "h": 3600}[m.group(2)]


def systemd_problems(unit_dir: Path, executable: Path, work: Path) -> list[str]:
    """`systemd-analyze verify` and `security --offline` of every unit in `unit_dir`.

    verify needs ExecStart's binary to exist, so a copy of the units in `work` points at `executable`.
    verify exits 0 on unknown keys and unparsable values and only prints a warning, so anything it prints
    is a problem too. security's exit status is not meaningful offline; its score line is read instead.
    """
    work.mkdir(parents=True, exist_ok=True)
    units = sorted(unit_dir.glob("*.service")) + sorted(unit_dir.glob("*.timer"))
    copies = []
    for unit in units:
        copy = work / unit.name
        copy.write_text(unit.read_text(encoding="utf-8").replace(VENV_SCRIPT, str(executable)), encoding="utf-8")
        copies.append(copy)
    problems = []
    verify = subprocess.run(["systemd-analyze", "verify", "--man=no", *map(str, copies)], capture_output=True,
                            text=True, cwd=work, timeout=60)
    output = (verify.stdout + verify.stderr).strip()
    if verify.returncode != 0 or output:
        problems.append(f"systemd-analyze verify (exit {verify.returncode}): {output}")
    for copy in copies:
        if copy.suffix != ".service":
            continue
        security = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--no-pager", str(copy)],
                                  capture_output=True, text=True, cwd=work, timeout=60)
        m = re.search(r"Overall exposure level for \S+: ([\d.]+)", security.stdout)
        if m is None:
            problems.append(f"systemd-analyze security {copy.name}: no score: {security.stderr.strip()}")
        elif float(m.group(1)) > MAX_EXPOSURE:
            problems.append(f"{copy.name}: exposure {m.group(1)} > {MAX_EXPOSURE} (systemd-analyze security)")
    return problems


def feedwatch_executable(tmp: Path) -> Path:
    """A real executable to stand in for /opt/feedwatch/bin/feedwatch: this environment's console script."""
    from tests.helpers import feedwatch_cmd

    cmd = feedwatch_cmd()
    if len(cmd) == 1:
        return Path(cmd[0])
    stub = tmp / "feedwatch"
    stub.write_text("#!/bin/sh\nexec " + " ".join(map(shlex.quote, cmd)) + ' "$@"\n', encoding="utf-8")
    stub.chmod(0o755)
    return stub


# ------------------------------------------------------------------------------------------------ cron


@dataclass(frozen=True)
class CronTab:
    variables: dict[str, str]
    schedule: str                 # the five time fields
    command: str                  # the rest of the line, run by /bin/sh


def read_crontab(path: Path) -> CronTab:
    """A user crontab (crontab(5)): comments, NAME=value lines, and exactly one job line."""
    variables: dict[str, str] = {}
    jobs: list[str] = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if re.match(r"^[A-Za-z_][A-Za-z0-9_]*\s*=", line):
            name, _, value = line.partition("=")
            variables[name.strip()] = value.strip()
        else:
            jobs.append(line)
    assert len(jobs) == 1, f"{path.name}: expected one job line, found {len(jobs)}"
    fields = jobs[0].split(None, 5)
    assert len(fields) == 6, f"{path.name}: a job line is 5 time fields and a command: {jobs[0]!r}"
    return CronTab(variables, " ".join(fields[:5]), fields[5])


def cron_problems(path: Path) -> list[str]:
    """What cron would get wrong: the schedule, pile-ups, relative paths, noise, '%'."""
    from croniter import croniter

    try:
        tab = read_crontab(path)
    except AssertionError as exc:
        return [str(exc)]
    problems = []
    if not croniter.is_valid(tab.schedule):
        problems.append(f"schedule {tab.schedule!r} is not valid cron syntax")
    if "%" in tab.command.replace("\\%", ""):
        problems.append("unescaped '%' in the command: cron turns it into a newline and stdin")
    words = shlex.split(tab.command)
    if words[:2] != [words[0], "-n"] or Path(words[0]).name != "flock":
        problems.append(f"the command does not start with 'flock -n LOCKFILE': {tab.command!r}")
        return problems
    lock, feedwatch, *args = words[2:]
    for what, p in (("flock", words[0]), ("lock file", lock), ("feedwatch", feedwatch)):
        if not p.startswith("/"):
            problems.append(f"{what} path {p!r} is not absolute (cron's PATH and cwd are not yours)")
    if "-q" not in args and "--quiet" not in args:
        problems.append("no -q: cron would mail the INFO log of every run")
    if "--config" not in args or not args[args.index("--config") + 1].startswith("/"):
        problems.append("no --config with an absolute path")
    if "run" not in args:
        problems.append("the command is not `feedwatch run`")
    return problems


# ------------------------------------------------------------------------------------------------ container


@dataclass(frozen=True)
class Stage:
    base: str
    name: str | None
    instructions: tuple[Any, ...]   # dockerfile.Command

    def all(self, cmd: str) -> list[Any]:
        return [i for i in self.instructions if i.cmd == cmd]

    def last(self, cmd: str) -> Any:
        found = self.all(cmd)
        return found[-1] if found else None

    def env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for i in self.all("ENV"):
            env.update(zip(i.value[::2], i.value[1::2], strict=True))
        return env


def read_containerfile(path: Path) -> list[Stage]:
    """Parse with the buildkit parser (the `dockerfile` package wraps moby/buildkit's Go parser)."""
    import dockerfile

    stages: list[Stage] = []
    current: list[Any] = []
    header: tuple[str, str | None] | None = None
    for ins in dockerfile.parse_file(str(path)):
        if ins.cmd == "FROM":
            if header is not None:
                stages.append(Stage(header[0], header[1], tuple(current)))
            value = ins.value
            header = (value[0], value[2] if len(value) == 3 and value[1].upper() == "AS" else None)
            current = []
        elif header is not None:
            current.append(ins)
    assert header is not None, f"{path}: no FROM"
    stages.append(Stage(header[0], header[1], tuple(current)))
    return stages


def container_problems(path: Path) -> list[str]:
    """The essentials of the image: non-root, state volume, `feedwatch watch`, the package installed from
    what was copied in, the health check and the metrics port agreeing."""
    try:
        stages = read_containerfile(path)
    except Exception as exc:   # the parser's own error type is its business; any failure is a problem
        return [f"{path.name}: does not parse: {exc}"]
    final, problems = stages[-1], []
    user = final.last("USER")
    if user is None or user.value[0].split(":")[0] in ("root", "0"):
        problems.append("the final stage does not switch to a non-root USER")
    elif not user.value[0].split(":")[0].isdigit():
        problems.append("USER is not numeric: Kubernetes' runAsNonRoot cannot verify a user name")
    env = final.env()
    volumes = [v for i in final.all("VOLUME") for v in i.value]
    state = env.get("STATE_DIRECTORY") or (env.get("XDG_STATE_HOME", "") + "/feedwatch")
    if state not in volumes:
        problems.append(f"the state directory {state!r} is not a VOLUME (volumes: {volumes})")
    entry = list(final.last("ENTRYPOINT").value) if final.last("ENTRYPOINT") else []
    cmd = final.last("CMD")
    command = entry + (list(cmd.value) if cmd else [])
    if cmd is None or not cmd.json or command[:2] != ["feedwatch", "watch"]:
        problems.append(f"the default command is not `feedwatch watch` in exec form: {command}")
    problems += _install_problems(stages)
    problems += _port_problems(final, command)
    return problems


def _install_problems(stages: list[Stage]) -> list[str]:
    import tomllib

    runs = " ".join(i.value[0] for s in stages for i in s.all("RUN"))
    problems = []
    if not re.search(r"pip install [^&;]*['\"]?\.\[postgresql\]", runs):
        problems.append("no `pip install '.[postgresql]'` of the package with its PostgreSQL driver")
    copied = {src.rstrip("/") for s in stages for i in s.all("COPY") if not i.flags for src in i.value[:-1]}
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    wheel = project["tool"]["hatch"]["build"]["targets"]["wheel"]
    needed = {"pyproject.toml", project["project"]["readme"], *wheel["packages"],
              *(src.split("/")[0] for src in wheel.get("force-include", {}))}
    if missing := sorted(needed - copied):
        problems.append(f"the build stage does not COPY what the wheel is built from: {missing}")
    return problems


def _port_problems(final: Stage, command: list[str]) -> list[str]:
    port = command[command.index("--metrics-port") + 1] if "--metrics-port" in command else None
    exposed = [p.split("/")[0] for i in final.all("EXPOSE") for p in i.value]
    health = final.last("HEALTHCHECK")
    problems = []
    if port is not None and port not in exposed:
        problems.append(f"--metrics-port {port} is not EXPOSEd ({exposed})")
    if health is not None and (port is None or f":{port}/" not in " ".join(health.value)):
        problems.append(f"the HEALTHCHECK does not query the metrics port {port}")
    return problems


# ------------------------------------------------------------------------------------------------ kubernetes


def kustomize_resources(directory: Path) -> list[dict[str, Any]]:
    """The objects of a kustomization that only lists `resources` (files or other kustomizations): what
    `kustomize build` gives for it. Anything else in a kustomization is refused, so this stays exact."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text(encoding="utf-8"))
    extra = set(kustomization) - {"apiVersion", "kind", "resources"}
    assert not extra, f"{directory}/kustomization.yaml uses {sorted(extra)}: extend kustomize_resources()"
    objects: list[dict[str, Any]] = []
    for entry in kustomization["resources"]:
        target = (directory / entry).resolve()
        if target.is_dir():
            objects += kustomize_resources(target)
        else:
            objects += [d for d in yaml.safe_load_all(target.read_text(encoding="utf-8")) if d]
    return objects


def kubernetes_versions() -> list[str]:
    """The oldest and the newest Kubernetes versions whose schemas kubernetes-validate ships."""
    from kubernetes_validate.utils import all_versions

    versions = all_versions()
    return [versions[0], versions[-1]]


def schema_problems(objects: list[dict[str, Any]]) -> list[str]:
    """Validate each object against the Kubernetes JSON schemas (strict: unknown fields are errors)."""
    import kubernetes_validate

    problems = []
    for obj in objects:
        for version in kubernetes_versions():
            name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                where = ".".join(str(p) for p in exc.path)
                problems.append(f"{name} (Kubernetes {version}): {where}: {exc.message}")
            except kubernetes_validate.SchemaNotFoundError as exc:
                problems.append(f"{name}: {exc.message}")
    return problems


def pod_specs(objects: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(kind/name, pod spec) of every workload."""
    for obj in objects:
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["kind"] in ("Deployment", "StatefulSet", "Job"):
            yield name, obj["spec"]["template"]["spec"]
        elif obj["kind"] == "CronJob":
            yield name, obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def kubectl() -> str | None:
    return shutil.which("kubectl")


def workload_problems(objects: list[dict[str, Any]]) -> list[str]:
    """What a cluster admin checks before letting a workload in: non-root, read-only, no capabilities,
    requests and limits, a liveness probe on a real port, no overlapping CronJob runs."""
    problems = []
    for name, spec in pod_specs(objects):
        pod_sc = spec.get("securityContext", {})
        if pod_sc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            problems.append(f"{name}: no RuntimeDefault seccomp profile")
        if spec.get("automountServiceAccountToken") is not False:
            problems.append(f"{name}: mounts a service account token it does not need")
        for c in spec["containers"]:
            problems += [f"{name}: {p}" for p in _container_problems(c, pod_sc)]
    for obj in objects:
        if obj["kind"] == "CronJob" and obj["spec"].get("concurrencyPolicy") != "Forbid":
            problems.append(f"CronJob/{obj['metadata']['name']}: concurrencyPolicy is not Forbid")
        if obj["kind"] == "Deployment":
            problems += _probe_problems(obj)
    return problems


def _container_problems(c: dict[str, Any], pod_sc: dict[str, Any]) -> list[str]:
    sc, problems = c.get("securityContext", {}), []
    if not (sc.get("runAsNonRoot") or pod_sc.get("runAsNonRoot")):
        problems.append("runAsNonRoot is not set")
    if sc.get("readOnlyRootFilesystem") is not True:
        problems.append("the root filesystem is writable")
    if sc.get("allowPrivilegeEscalation") is not False:
        problems.append("allowPrivilegeEscalation is not false")
    if "ALL" not in sc.get("capabilities", {}).get("drop", []):
        problems.append("capabilities are not dropped (drop: [ALL])")
    res = c.get("resources", {})
    for kind, keys in (("requests", ("cpu", "memory")), ("limits", ("memory",))):
        if missing := [k for k in keys if k not in res.get(kind, {})]:
            problems.append(f"no {kind} for {missing}")
    return problems


def _probe_problems(deployment: dict[str, Any]) -> list[str]:
    name = f"Deployment/{deployment['metadata']['name']}"
    c = deployment["spec"]["template"]["spec"]["containers"][0]
    args = c.get("args", [])
    if args[:1] != ["watch"]:
        return [f"{name}: does not run `feedwatch watch` (args {args})"]
    probe = c.get("livenessProbe", {}).get("httpGet")
    if probe is None:
        return [f"{name}: no HTTP liveness probe"]
    ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
    port = ports.get(probe["port"], probe["port"])
    metrics = int(args[args.index("--metrics-port") + 1]) if "--metrics-port" in args else None
    if port != metrics:
        return [f"{name}: the liveness probe asks port {port}, but watch serves metrics on {metrics}"]
    return []


def config_of(objects: list[dict[str, Any]], workload: str) -> tuple[str, dict[str, str]]:
    """The feedwatch config text a workload's container reads, and the environment it gets, following
    FEEDWATCH_CONFIG to its volume mount and ConfigMap, and env + envFrom to their Secrets/ConfigMaps."""
    spec = dict(pod_specs(objects))[workload]
    c = spec["containers"][0]
    env: dict[str, str] = {}
    for source in c.get("envFrom", []):
        ref = source.get("secretRef") or source.get("configMapRef")
        kind = "Secret" if "secretRef" in source else "ConfigMap"
        obj = next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == ref["name"])
        env.update(obj.get("stringData") or obj.get("data") or {})
    env.update({e["name"]: e["value"] for e in c.get("env", []) if "value" in e})   # env wins over envFrom
    path = Path(env["FEEDWATCH_CONFIG"])
    mounts = {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
    volume = next(v for v in spec["volumes"] if mounts.get(v["name"]) == str(path.parent) and "configMap" in v)
    config_map = next(o for o in objects if o["kind"] == "ConfigMap"
                      and o["metadata"]["name"] == volume["configMap"]["name"])
    return config_map["data"][path.name], env


def kustomizations(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob("kustomization.yaml"))


def kubernetes_problems(root: Path) -> list[str]:
    """Every kustomization under `root`: schemas, workload hygiene, and the config each workload reads."""
    problems = []
    for directory in kustomizations(root):
        objects = kustomize_resources(directory)
        where = directory.relative_to(root).as_posix() or "."
        problems += [f"{where}: {p}" for p in schema_problems(objects) + workload_problems(objects)
                     + wiring_problems(objects)]
    return sorted(set(problems))


def wiring_problems(objects: list[dict[str, Any]]) -> list[str]:
    """The config a workload reads must load with the environment it gets, and a SQLite database must
    live on a persistent volume."""
    from monitor.config import loads
    from monitor.errors import ConfigError

    problems = []
    for name, spec in pod_specs(objects):
        try:
            text, env = config_of(objects, name)
            settings = loads(text, source="config.yaml", base_dir=Path("/"), env=env)
        except (ConfigError, StopIteration, KeyError) as exc:
            problems.append(f"{name}: the config does not load in the container: {type(exc).__name__}: {exc}")
            continue
        url = settings.database_url
        if url.startswith("sqlite:///"):
            claims = {v["name"] for v in spec["volumes"] if "persistentVolumeClaim" in v}
            mounts = {m["mountPath"] for m in spec["containers"][0].get("volumeMounts", []) if m["name"] in claims}
            if str(Path(url.removeprefix("sqlite:///")).parent) not in mounts:
                problems.append(f"{name}: the SQLite database {url} is not on a persistent volume ({mounts})")
    return problems
