"""cluster.yaml: Ray's own config check, offline, and what a security reviewer looks for.

`ray up` loads the YAML, merges the provider's defaults (``prepare_config``), asks AWS to
fill in missing node resources, then calls ``validate_config`` (``ray-schema.json`` plus
a few cross-field rules). The AWS step is the only one that needs credentials or the
network; every node type here lists its resources, so the two offline steps are the
whole check, and they run with sockets blocked below.
"""

import copy
import re
import shlex
import socket

try:
    import tomllib  # novermin - tomli below before 3.11
except ModuleNotFoundError:   # Python 3.10
    import tomli as tomllib
from pathlib import Path

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_YAML = ROOT / "cluster.yaml"
START_LISTS = ("head_start_ray_commands", "worker_start_ray_commands")
EXPORTS_TOKEN_MODE = re.compile(r"(^|[;&|(]\s*)export\s+([^;&|]*\s)?RAY_AUTH_MODE=token(\s|;|$)")


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """Any attempt to reach the network fails the test."""

    def refuse(self, *args, **kwargs):
        raise AssertionError(f"cluster.yaml check tried to open a connection: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)


@pytest.fixture(scope="module")
def text() -> str:
    return CLUSTER_YAML.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def raw(text) -> dict:
    return yaml.safe_load(text)


def launcher_check(config: dict) -> dict:
    """What `ray up` runs on the config before it calls AWS; returns the merged config."""
    merged = prepare_config(copy.deepcopy(config))
    validate_config(merged)
    return merged


def all_commands(config: dict) -> list[str]:
    out = []
    for key, value in config.items():
        if key.endswith("_commands"):
            out += value
    for node_type in config.get("available_node_types", {}).values():
        for key, value in node_type.items():
            if key.endswith("_commands"):
                out += value
    return out


def gpu_worker_types(config: dict) -> dict:
    return {
        name: t
        for name, t in config["available_node_types"].items()
        if name != config["head_node_type"]
    }


# ------------------------------------------------------------------ Ray's own check
def test_ray_launcher_validates_cluster_yaml(raw):
    merged = launcher_check(raw)
    assert merged["provider"]["type"] == "aws"
    assert merged["provider"]["region"]
    assert merged["auth"]["ssh_user"]


def _broken(raw, edit):
    config = copy.deepcopy(raw)
    edit(config)
    return config


def _set(path, value):
    def edit(config):
        node = config
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return edit


@pytest.mark.parametrize(
    "edit, error",
    [
        (_set(["max_workers"], "six"), jsonschema.ValidationError),
        (_set(["idle_timeout_minutes"], -1), jsonschema.ValidationError),
        (_set(["auth", "ssh_password"], "hunter2"), jsonschema.ValidationError),
        (_set(["head_start_ray_commands"], "ray start --head"), jsonschema.ValidationError),
        (_set(["dashboard_host"], "127.0.0.1"), jsonschema.ValidationError),
        (
            _set(["available_node_types", "ray.worker.g5-1gpu", "resources", "GPU"], 0.5),
            jsonschema.ValidationError,
        ),
        (
            _set(["available_node_types", "ray.worker.g5-1gpu", "min_workers"], "0"),
            jsonschema.ValidationError,
        ),
        (_set(["head_node_type"], "ray.head.missing"), ValueError),
        (_set(["available_node_types", "ray.worker.g5-1gpu", "min_workers"], 100), ValueError),
    ],
    ids=[
        "max_workers-str",
        "negative-timeout",
        "unknown-auth-key",
        "commands-not-a-list",
        "unknown-top-level-key",
        "fractional-node-gpu",
        "min_workers-str",
        "unknown-head-type",
        "min-over-max",
    ],
)
def test_the_check_catches_a_broken_config(raw, edit, error):
    with pytest.raises(error):
        launcher_check(_broken(raw, edit))


# ------------------------------------------------------------------ node types
def test_cpu_head_and_autoscaling_gpu_workers(raw):
    head = raw["available_node_types"][raw["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0
    workers = gpu_worker_types(raw)
    assert workers
    for name, node_type in workers.items():
        assert node_type["resources"]["GPU"] >= 1, name
        assert node_type["min_workers"] == 0, name
        assert node_type["max_workers"] >= 1, name
        assert node_type["node_config"]["InstanceType"].startswith("g5."), name
    assert raw["max_workers"] >= max(t["max_workers"] for t in workers.values())


# ------------------------------------------------------------------ security
def test_every_start_command_exports_token_auth(raw):
    for key in START_LISTS:
        assert raw[key], key
        for command in raw[key]:
            assert EXPORTS_TOKEN_MODE.search(command), f"{key}: {command!r}"
    starts = {c for c in all_commands(raw) if re.search(r"\bray start\b", c)}
    assert starts and starts <= {c for key in START_LISTS for c in raw[key]}
    assert any("--head" in c for c in raw["head_start_ray_commands"])


def test_login_shells_on_the_cluster_use_token_auth(raw):
    assert any(
        "export RAY_AUTH_MODE=token" in c and ".bashrc" in c for c in raw["initialization_commands"]
    )


def test_the_token_reaches_every_node(raw):
    remote = [
        r
        for r, local in raw["file_mounts"].items()
        if r.endswith("/.ray/auth_token") and local == "~/.ray/auth_token"
    ]
    assert remote, "the token file is not mounted on the nodes"


def test_auth_is_never_turned_off(text):
    assert not re.search(r"RAY_AUTH_MODE\s*[=:]\s*['\"]?disabled", text, re.IGNORECASE)
    assert not re.search(r"disable[-_]usage", text, re.IGNORECASE)


def test_dashboard_is_not_exposed(text, raw):
    assert not re.search(r"dashboard[-_]host[\s=:'\"]*(0\.0\.0\.0|::|\[::\])", text, re.IGNORECASE)
    for command in raw["head_start_ray_commands"]:
        for host in re.findall(r"--dashboard-host[=\s]+(\S+)", command):
            assert host in ("127.0.0.1", "localhost"), command


# ------------------------------------------------------------------ install
def _pins() -> dict[str, str]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    out = {}
    extras = deps["project"]["optional-dependencies"]
    for dep in [*deps["project"]["dependencies"], *extras["ddp"], *extras["hf"],
                *extras["yolo"]]:
        if "python_version <" in dep:   # the older pins of Python 3.10
            continue
        name, _, version = dep.split(";")[0].partition("==")
        out[name.split("[")[0].strip().lower()] = version.strip()
    return out


def test_setup_installs_the_project_with_torch_pinned_in_the_same_command(raw):
    pins = _pins()
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"
    project = next(r for r, local in raw["file_mounts"].items() if local in (".", "./"))
    installs = [c for c in raw["setup_commands"] if "pip install" in c and project in c]
    assert len(installs) == 1, installs
    words = set(shlex.split(installs[0]))
    assert f"{project}[all]" in words, "a node may run a row of any kind: every extra"
    assert {
        "torch==2.14.1",
        "torchvision==0.29.1",
        f"ray[default,train,tune]=={pins['ray']}",
    } <= words
    assert pins["ray"] == "2.60.0"
    for command in all_commands(raw):  # no other command installs another torch
        for word in shlex.split(command):
            if re.match(r"^(torch|torchvision)\b", word):
                assert word in ("torch==2.14.1", "torchvision==0.29.1"), command


def test_shared_state_dir_is_a_filesystem_path(raw):
    assert any("mount -t nfs4" in c and "/shared" in c for c in raw["setup_commands"])
    assert any("/shared/runs" in c for c in raw["head_setup_commands"])
    assert "s3://" not in "".join(all_commands(raw)), "s3:// state dirs are not implemented"
