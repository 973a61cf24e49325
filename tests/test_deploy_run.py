"""feedwatch started the way each deploy file starts it: the command, arguments, environment, working
directory, signals and probes are read from the file itself, and only the install locations
(/opt/feedwatch, /etc/feedwatch, /var/lib/feedwatch) are moved into tmp_path. Feeds come from a real
HTTP server on 127.0.0.1; `watch` runs as a real subprocess.
"""

from __future__ import annotations

import fcntl
import os
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests import deploy_files as d
from tests.helpers import CORPUS, FeedServer
from tests.receivers import free_port

SEED = (CORPUS / "seed-feed.xml").read_bytes()
SECRET = "s3cr3t-t0ken-never-logged"
WAIT = 60.0   # generous: the machine has 2 cores and other suites may be running


class Install:
    """The install locations of the deploy files, moved into a temporary directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.executable = d.feedwatch_executable(root)
        self.etc = root / "etc" / "feedwatch"
        self.state = root / "var" / "lib" / "feedwatch"
        self.etc.mkdir(parents=True)
        self.state.mkdir(parents=True)

    def local(self, text: str) -> str:
        """A path, command or environment value of a deploy file, pointing into this install."""
        return (text.replace(d.VENV_SCRIPT, str(self.executable))
                .replace(str(Path(d.VENV_SCRIPT).parent), str(self.executable.parent))
                .replace(d.ETC, str(self.etc)).replace(d.STATE, str(self.state)))

    def config(self, server: FeedServer, *names: str, targets: str = "") -> Path:
        for name in names:
            server.set(f"/{name}.xml", SEED)
        feeds = "".join(f"  - {{name: {n}, url: '{server.url(f'/{n}.xml')}'}}\n" for n in names)
        path = self.etc / "config.yaml"
        path.write_text(f"defaults:\n  interval: 1h\n{targets}feeds:\n{feeds}", encoding="utf-8")
        return path


def wait_for(condition: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@contextmanager
def daemon(args: list[str], env: dict[str, str], cwd: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A long-running process; killed if the test did not stop it."""
    with log.open("wb") as err:
        proc = subprocess.Popen(args, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def stop(proc: subprocess.Popen[bytes], within: float) -> int:
    """SIGTERM (systemd's and Kubernetes' stop signal), then the exit status within the grace period."""
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=within)


def base_env(**extra: str) -> dict[str, str]:
    """The parent environment without anything that would point feedwatch elsewhere."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("FEEDWATCH_CONFIG", "STATE_DIRECTORY", "XDG_STATE_HOME", "XDG_CONFIG_HOME", "NOTIFY_SOCKET",
                        "WATCHDOG_USEC", "WATCHDOG_PID")}
    return {**env, **extra}


# ------------------------------------------------------------------------------------------------ systemd


def service_env(unit: d.Unit, install: Install) -> dict[str, str]:
    """What systemd gives the service: Environment=, EnvironmentFile= and $STATE_DIRECTORY."""
    env = {k: install.local(v) for k, v in d.unit_environment(unit).items()}
    for value in unit.values("Service", "EnvironmentFile"):
        path = Path(install.local(value.lstrip("-")))
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip() and not line.startswith("#"):
                    name, _, val = line.partition("=")
                    env[name.strip()] = val.strip()
    assert unit.value("Service", "StateDirectory") == "feedwatch"
    env["STATE_DIRECTORY"] = str(install.state)
    return base_env(**env)


def notify_socket(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(WAIT)
    return sock


def expect_notification(sock: socket.socket, field: str) -> list[str]:
    """Read sd_notify datagrams until one carries `field` (e.g. READY=1); returns all fields seen."""
    seen: list[str] = []
    while field not in seen:
        seen += sock.recv(4096).decode().splitlines()
    return seen


def test_watch_service_runs_as_the_unit_says(tmp_path: Path, server: FeedServer) -> None:
    """Type=notify: READY and WATCHDOG arrive; state lands in $STATE_DIRECTORY; the secret comes from the
    EnvironmentFile and is never logged; ExecReload re-reads the config; SIGTERM stops it within
    TimeoutStopSec with STOPPING=1 and exit 0."""
    unit = d.read_unit(d.SYSTEMD / "feedwatch.service")
    install = Install(tmp_path)
    targets = "targets:\n  chat:\n    urls: ['json://127.0.0.1:9/hook?token=${FEEDWATCH_TEST_TOKEN}']\n"
    install.config(server, "alpha", targets=targets)
    (install.etc / "feedwatch.env").write_text(f"# secrets\nFEEDWATCH_TEST_TOKEN={SECRET}\n", encoding="utf-8")
    env = service_env(unit, install) | {
        "NOTIFY_SOCKET": str(tmp_path / "notify"),
        "WATCHDOG_USEC": str(int(d.seconds(unit.value("Service", "WatchdogSec")) * 1e6)),
    }
    command = shlex.split(install.local(unit.value("Service", "ExecStart")))
    with notify_socket(tmp_path / "notify") as sock, daemon(command, env, Path("/"), tmp_path / "stderr") as proc:
        expect_notification(sock, "READY=1")
        expect_notification(sock, "WATCHDOG=1")
        assert server.count("/alpha.xml") == 1
        assert (install.state / "feedwatch.db").exists()

        install.config(server, "alpha", "beta", targets=targets)
        reload = shlex.split(unit.value("Service", "ExecReload").replace("$MAINPID", str(proc.pid)))
        subprocess.run(reload, check=True, timeout=10)
        wait_for(lambda: server.count("/beta.xml") == 1, "the feed added to the config before the reload")

        assert stop(proc, within=d.seconds(unit.value("Service", "TimeoutStopSec"))) == 0
        assert "STOPPING=1" in expect_notification(sock, "STOPPING=1")
    log = (tmp_path / "stderr").read_text(encoding="utf-8")
    assert SECRET not in log
    assert server.count("/alpha.xml") == 1            # polled once: the reload did not reset its schedule


def test_timer_service_runs_one_quiet_cycle(tmp_path: Path, server: FeedServer) -> None:
    unit = d.read_unit(d.SYSTEMD / "feedwatch-run.service")
    install = Install(tmp_path)
    install.config(server, "alpha")
    command = shlex.split(install.local(unit.value("Service", "ExecStart")))
    result = subprocess.run(command, env=service_env(unit, install), cwd="/", capture_output=True, text=True,
                            timeout=WAIT)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""                        # -q: nothing for the journal when all went well
    assert "alpha: first poll: 4 documents recorded" in result.stdout   # the run's news, on stdout
    assert server.count("/alpha.xml") == 1 and (install.state / "feedwatch.db").exists()


# ------------------------------------------------------------------------------------------------ cron


def test_cron_line_runs_quietly_and_skips_while_a_run_holds_the_lock(tmp_path: Path, server: FeedServer) -> None:
    tab = d.read_crontab(d.CRON)
    install = Install(tmp_path)
    config = install.config(server, "alpha")
    config.write_text(config.read_text(encoding="utf-8").replace("interval: 1h", "interval: 1s"), encoding="utf-8")
    home = tmp_path / "home"
    home.mkdir()
    # cron's environment: a minimal PATH, HOME and SHELL, plus the crontab's own NAME=value lines.
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "SHELL": "/bin/sh", "LOGNAME": "feedwatch",
           **{k: install.local(v) for k, v in tab.variables.items()}}
    command = install.local(tab.command)

    def cron_fires() -> subprocess.CompletedProcess[str]:
        return subprocess.run(["/bin/sh", "-c", command], env=env, cwd=home, capture_output=True, text=True,
                              timeout=WAIT)

    first = cron_fires()
    assert first.returncode == 0 and first.stderr == "", first.stderr
    assert server.count("/alpha.xml") == 1 and (install.state / "feedwatch.db").exists()
    time.sleep(2)                                     # the feed (interval 1s) is due again
    lock = words_after_flock(command)
    with open(lock, "a") as held:                     # a previous run is still going
        fcntl.flock(held, fcntl.LOCK_EX)
        skipped = cron_fires()
        fcntl.flock(held, fcntl.LOCK_UN)
    assert (skipped.returncode, skipped.stdout, skipped.stderr) == (1, "", "")   # no mail from cron
    assert server.count("/alpha.xml") == 1
    again = cron_fires()
    assert again.returncode == 0, again.stderr
    assert server.count("/alpha.xml") == 2


def words_after_flock(command: str) -> str:
    words = shlex.split(command)
    assert words[1] == "-n"
    return words[2]


# ------------------------------------------------------------------------------------------------ container


def test_container_default_command_serves_its_health_check(tmp_path: Path, server: FeedServer) -> None:
    """ENTRYPOINT + CMD with the image's ENV and WORKDIR: `watch` writes its database into the VOLUME and
    the HEALTHCHECK command succeeds against it; SIGTERM stops it with exit 0."""
    final = d.read_containerfile(d.CONTAINERFILE)[-1]
    install = Install(tmp_path)
    install.config(server, "alpha")
    port = str(free_port())
    env = {k: install.local(v).replace("$PATH", os.environ["PATH"]) for k, v in final.env().items()}
    env = base_env(**env)
    command = [w.replace("9464", port) for w in [*final.last("ENTRYPOINT").value, *final.last("CMD").value]]
    health = [w.replace(":9464/", f":{port}/") for w in final.last("HEALTHCHECK").value[1:]]   # after "CMD"
    workdir = Path(install.local(final.last("WORKDIR").value[0]))

    def healthy() -> bool:
        return subprocess.run(health, env=env, capture_output=True, timeout=30).returncode == 0

    assert not healthy()                              # the check fails when nothing serves
    with daemon(command, env, workdir, tmp_path / "stderr") as proc:
        wait_for(healthy, "the HEALTHCHECK command to succeed")
        wait_for(lambda: server.count("/alpha.xml") == 1, "the first poll")
        volume = install.local(final.last("VOLUME").value[0])
        assert (Path(volume) / "feedwatch.db").exists()
        assert stop(proc, within=30) == 0


# ------------------------------------------------------------------------------------------------ kubernetes


def cluster_config(objects: list[dict[str, Any]], workload: str, install: Install, server: FeedServer,
                   extra_feeds: int = 0) -> tuple[dict[str, str], list[str]]:
    """The workload's config (from its ConfigMap) at its mount path with the feed served locally, and its
    environment with the Secret's placeholders replaced by local stand-ins; returns (env, feed paths)."""
    text, env = d.config_of(objects, workload)
    server.set("/community.xml", SEED)
    text = text.replace("https://www.kubernetes.dev/community/index.xml", server.url("/community.xml"))
    paths = ["/community.xml"]
    for i in range(extra_feeds):            # the feeds list ends the config: more feeds for more workers
        paths.append(f"/extra-{i}.xml")
        text += f"  - {{name: extra-{i}, url: '{server.set(paths[-1], SEED)}'}}\n"
    config = Path(install.local(env["FEEDWATCH_CONFIG"]))
    config.write_text(text, encoding="utf-8")
    env = {k: install.local(v) for k, v in env.items()} | {
        "FEEDWATCH_CHAT_URL": f"json://127.0.0.1:9/chat?token={SECRET}",
        "FEEDWATCH_MAIL_URL": "mailto://bot:pw@127.0.0.1:9?to=steering@example.org",
    }
    return base_env(**env), paths


def container_command(spec: dict[str, Any], install: Install) -> list[str]:
    """The pod's command: its `command` or else the image's ENTRYPOINT, then its `args`."""
    container = spec["containers"][0]
    entrypoint = container.get("command") or list(d.read_containerfile(d.CONTAINERFILE)[-1].last("ENTRYPOINT").value)
    assert entrypoint == ["feedwatch"], entrypoint
    return [str(install.executable), *(install.local(w) for w in container.get("args", []))]


def test_kubernetes_cronjob_keeps_its_database_on_the_volume(tmp_path: Path, server: FeedServer) -> None:
    objects = d.kustomize_resources(d.KUBERNETES / "cron")
    install = Install(tmp_path)
    env, paths = cluster_config(objects, "CronJob/feedwatch-run", install, server)
    spec = dict(d.pod_specs(objects))["CronJob/feedwatch-run"]
    result = subprocess.run(container_command(spec, install), env=env, cwd="/", capture_output=True, text=True,
                            timeout=WAIT)
    assert result.returncode == 0, result.stderr
    assert server.count(paths[0]) == 1
    claim = next(m["mountPath"] for m in spec["containers"][0]["volumeMounts"] if m["name"] == "state")
    assert (Path(install.local(claim)) / "feedwatch.db").exists()
    assert SECRET not in result.stdout + result.stderr


@pytest.mark.slow
@pytest.mark.postgres
def test_kubernetes_deployment_replicas_share_postgresql(tmp_path: Path, server: FeedServer,
                                                         postgres_url: str) -> None:
    """Two `watch` workers as the Deployment runs them, one PostgreSQL database: their liveness probes
    answer, every feed is fetched exactly once between them, and both stop cleanly on SIGTERM."""
    objects = d.kustomize_resources(d.KUBERNETES / "watch")
    deployment = d.by_kind(objects, "Deployment")
    spec = deployment["spec"]["template"]["spec"]
    install = Install(tmp_path)
    env, paths = cluster_config(objects, "Deployment/feedwatch", install, server, extra_feeds=5)
    env["FEEDWATCH_DATABASE"] = postgres_url
    container = spec["containers"][0]
    probe = container["livenessProbe"]["httpGet"]
    named = {p["name"]: str(p["containerPort"]) for p in container["ports"]}
    metrics = named[probe["port"]]
    with replicas(deployment["spec"]["replicas"], spec, install, env, metrics) as workers:
        for _, port in workers:
            wait_for(lambda port=port: probe_ok(port, probe["path"]), f"the liveness probe on :{port}")
        wait_for(lambda: all(server.count(p) >= 1 for p in paths), "every feed to be polled")
        time.sleep(2)                                 # both workers have had their cycle
        assert {p: server.count(p) for p in paths} == dict.fromkeys(paths, 1)
        grace = spec["terminationGracePeriodSeconds"]
        assert [stop(proc, within=grace) for proc, _ in workers] == [0] * len(workers)


@contextmanager
def replicas(count: int, spec: dict[str, Any], install: Install, env: dict[str, str],
                        metrics: str) -> Iterator[list[tuple[subprocess.Popen[bytes], int]]]:
    """`count` workers started as the Deployment's container, each with its own metrics port."""
    assert count >= 2
    procs: list[tuple[subprocess.Popen[bytes], int]] = []
    try:
        for i in range(count):
            port = free_port()
            command = [w.replace(metrics, str(port)) for w in container_command(spec, install)]
            with (install.root / f"worker-{i}.log").open("wb") as err:
                procs.append((subprocess.Popen(command, env=env, cwd="/", stdout=subprocess.DEVNULL, stderr=err),
                              port))
        yield procs
    finally:
        for proc, _ in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def probe_ok(port: int, path: str) -> bool:
    """What the kubelet's httpGet probe does: a GET that answers 2xx/3xx."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return 200 <= int(response.status) < 400
    except (urllib.error.URLError, OSError):
        return False

