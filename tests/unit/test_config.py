"""Config: INI and YAML agree, CLI wins, mistakes are named with a fix."""

import configparser
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

import orchestrator
from orchestrator.infra.errors import ConfigError
from orchestrator.store.config import (
    SETTINGS,
    Config,
    load_config,
    parse_env_vars,
    parse_mapping,
    write_default_config,
)

REPO = Path(orchestrator.__file__).resolve().parents[1]

INI = """\
# a comment
[general]
check_interval = 12
max_training_process = 2
process_gpu_mapping = process0=0+1,process1=2
auto_continue = false   # inline comment
metric = val_loss
metric_goal = min
default_gpus = 0.5

[wandb]
project = demo

[environment]
env_vars = A=1,B=x=y

[gpu]
enable_gpu_assignment = yes
allow_multi_gpu = true

[ray]
num_gpus = 4
dashboard = off
"""

YAML = """\
general:
  check_interval: 12
  max_training_process: 2
  process_gpu_mapping: process0=0+1,process1=2
  auto_continue: false
  metric: val_loss
  metric_goal: min
  default_gpus: "0.5"
wandb:
  project: demo
environment:
  env_vars: A=1,B=x=y
gpu:
  enable_gpu_assignment: true
  allow_multi_gpu: true
ray:
  num_gpus: 4
  dashboard: false
"""


def values(cfg: Config) -> dict:
    return {k: v for k, v in dataclasses.asdict(cfg).items() if k != "source"}


def config_error(tmp_path, text, name="c.ini") -> str:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value), "the message names the file"
    return str(info.value)


def test_ini_and_yaml_give_the_same_config(tmp_path):
    (tmp_path / "c.ini").write_text(INI)
    (tmp_path / "c.yaml").write_text(YAML)
    ini, yml = load_config(tmp_path / "c.ini"), load_config(tmp_path / "c.yaml")
    assert values(ini) == values(yml)
    assert ini.source == str(tmp_path / "c.ini")
    assert (ini.check_interval, ini.max_training_process, ini.auto_continue) == (12.0, 2, False)
    assert (ini.metric, ini.metric_goal, ini.wandb_project) == ("val_loss", "min", "demo")
    assert (ini.enable_gpu_assignment, ini.num_gpus, ini.dashboard) == (True, 4.0, False)
    assert ini.slots == ((0, 1), (2,)) and ini.gpu_mode == "slots"
    assert ini.env == {"A": "1", "B": "x=y"}
    assert values(ini) != values(Config()), "the file changed something"


def test_cli_overrides_beat_the_file_and_none_is_ignored(tmp_path):
    (tmp_path / "c.ini").write_text(INI)
    cfg = load_config(tmp_path / "c.ini", max_training_process=5, metric=None,
                      auto_continue=True, check_interval=None, watch=True)
    assert cfg.max_training_process == 5 and cfg.auto_continue is True and cfg.watch is True
    assert cfg.metric == "val_loss" and cfg.check_interval == 12.0
    assert load_config(None, metric="acc").metric == "acc"
    assert values(load_config(None)) == values(Config())


def test_unknown_key_lists_valid_keys_and_suggests_the_near_one(tmp_path):
    msg = config_error(tmp_path, "[general]\nmax_training_proces = 2\n")
    assert "max_training_proces" in msg
    assert "did you mean max_training_process?" in msg
    assert "valid keys in [general]:" in msg and "check_interval" in msg and "metric_goal" in msg


def test_unknown_key_in_yaml(tmp_path):
    msg = config_error(tmp_path, "gpu:\n  enable_gpu_asignment: true\n", "c.yaml")
    assert "did you mean enable_gpu_assignment?" in msg


def test_unknown_section(tmp_path):
    msg = config_error(tmp_path, "[genral]\nmetric = acc\n")
    assert "[genral]" in msg and "did you mean [general]?" in msg
    assert "valid sections:" in msg and "environment" in msg


@pytest.mark.parametrize("text,key,value", [
    ("[general]\nauto_continue = maybe\n", "auto_continue", "maybe"),
    ("[ray]\ndashboard = 2\n", "dashboard", "2"),
])
def test_bad_bool(tmp_path, text, key, value):
    msg = config_error(tmp_path, text)
    assert key in msg and repr(value) in msg and "use true or false" in msg


@pytest.mark.parametrize("text,needle", [
    ("[general]\ncheck_interval = soon\n", "use a number"),
    ("[general]\nmax_training_process = 1.5\n", "whole number"),
    ("[general]\nmax_training_process = -1\n", "0 (no cap)"),
    ("[general]\nmetric_goal = avg\n", "use max or min"),
    ("[general]\ndefault_gpus = 1.5\n", "a fraction <= 1"),
    ("[general]\ndefault_gpus = lots\n", "use auto or a number"),
    ("[gpu]\ngpu_list = 0,a\n", "gpu_list"),
    ("[environment]\nuse_conda = true\n", "use_conda = true needs conda_env"),
    ("[environment]\nenv_vars = JUSTANAME\n", "is not NAME=value"),
    ("[general\nmetric = x\n", "fix the INI syntax"),
    ("[retry]\non_oom = more_gpus\n", "did you mean more_gpu?"),
    ("[retry]\nlost = -1\n", "[retry] lost"),
    ("[retry]\ntime_limit = soon\n", "write seconds (3600) or 90m"),
    ("[retry]\nstall_timeout = -5\n", "use a number >= 0"),
])
def test_bad_values(tmp_path, text, needle):
    assert needle in config_error(tmp_path, text)


@pytest.mark.parametrize("name,text", [
    ("c.ini", "[retry]\non_oom = more_gpu\noom = 2\nstall_timeout = 5\nstalled = 0\n"
              "time_limit = 1h30m\ntimeout = 1\nlost = 4\n"),
    ("c.yaml", "retry:\n  on_oom: more_gpu\n  oom: 2\n  stall_timeout: 5\n  stalled: 0\n"
               "  time_limit: 1h30m\n  timeout: 1\n  lost: 4\n"),
])
def test_the_retry_section_sets_the_policy_by_failure_kind(tmp_path, name, text):
    (tmp_path / name).write_text(text)
    policy = load_config(tmp_path / name).retry
    assert (policy.on_oom, policy.oom, policy.stall_timeout, policy.stalled, policy.time_limit,
            policy.timeout, policy.lost) == ("more_gpu", 2, 5.0, 0, 5400.0, 1, 4)
    default = load_config(None).retry
    assert (default.on_oom, default.stall_timeout, default.time_limit) == ("fail", 0.0, 0.0)


@pytest.mark.parametrize("text,goal", [
    ("[general]\nmetric = val_loss\n", "min"), ("[general]\nmetric = accuracy\n", "max"),
    ("[general]\nmetric = val_loss\nmetric_goal = max\n", "max"),   # what is written wins
    ("[general]\ncheck_interval = 2\n", "max"),
])
def test_the_goal_follows_the_metrics_name_unless_written(tmp_path, text, goal):
    (tmp_path / "c.ini").write_text(text)
    assert load_config(tmp_path / "c.ini").goal == goal


def test_bad_yaml(tmp_path):
    assert "fix the YAML syntax" in config_error(tmp_path, "general: [\n", "c.yml")
    assert "must map section names" in config_error(tmp_path, "- a\n- b\n", "c.yml")


def test_missing_config_file_says_how_to_create_one(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "none.ini")
    assert "--create_config" in str(info.value) and "none.ini" in str(info.value)


@pytest.mark.parametrize("mapping", ["process0=0+x", "gpu0=1", "process0"])
def test_bad_mapping_is_named(tmp_path, mapping):
    msg = config_error(tmp_path, f"[general]\nprocess_gpu_mapping = {mapping}\n")
    assert mapping in msg and "process_gpu_mapping" in msg
    assert "process0=0+1" in msg, "the message shows the right form"


def test_mapping_slot_without_gpu(tmp_path):
    msg = config_error(tmp_path, "[general]\nprocess_gpu_mapping = process0=0,process1=\n")
    assert "'process1=' names no GPU" in msg


def test_mapping_parse():
    assert parse_mapping("process0=0+1,process1=2") == ((0, 1), (2,))
    assert parse_mapping("process1=3, process0=0") == ((0,), (3,)), "ordered by process number"
    assert parse_mapping("") == ()


def test_gpu_mode():
    assert Config().gpu_mode == "ray" and load_config().gpu_mode == "ray"
    assert load_config(process_gpu_mapping="process0=0").gpu_mode == "ray", "needs enable"
    mapped = load_config(enable_gpu_assignment=True, process_gpu_mapping="process0=0+1,process1=2")
    assert mapped.gpu_mode == "slots" and mapped.slots == ((0, 1), (2,))
    listed = load_config(enable_gpu_assignment=True, gpu_list="0,1,3")
    assert listed.gpu_mode == "slots" and listed.slots == ((0,), (1,), (3,))
    by_id = load_config(enable_gpu_assignment=True, use_process_order=False, gpu_list="0,1")
    assert by_id.gpu_mode == "gpu_id"


def test_allow_multi_gpu_false_rejects_a_multi_gpu_slot(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(enable_gpu_assignment=True, allow_multi_gpu=False,
                    process_gpu_mapping="process0=0,process1=1+2")
    assert "allow_multi_gpu = false" in str(info.value)
    ok = load_config(enable_gpu_assignment=True, allow_multi_gpu=False,
                     process_gpu_mapping="process0=0,process1=1")
    assert ok.slots == ((0,), (1,))


def test_env_vars():
    assert Config(env_vars="A=1,B=x=y").env == {"A": "1", "B": "x=y"}
    assert parse_env_vars("PYTHONPATH=/a,/b;TOKENIZERS_PARALLELISM=false") == {
        "PYTHONPATH": "/a,/b", "TOKENIZERS_PARALLELISM": "false"}
    assert parse_env_vars(" ") == {}
    assert parse_env_vars("A = 1\nB=2,") == {"A": "1", "B": "2"}


def test_default_config_file_reads_back_to_the_defaults(tmp_path):
    path = write_default_config(tmp_path / "sub" / "orch.ini")
    assert path.exists()
    loaded = load_config(path)
    assert values(loaded) == values(Config())
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=("#", ";"))
    parser.read(path)
    for s in SETTINGS:
        assert parser.has_option(s.section, s.key), f"[{s.section}] {s.key} is missing"
    assert parser.has_section("email") and parser.has_section("notify")


def test_every_setting_is_one_field_and_the_reference_is_current():
    """A setting is declared once (a ``Config`` field); docs/settings.md is generated
    from those fields and must be regenerated when one changes."""
    fields = {f.name for f in dataclasses.fields(Config)}
    assert {s.field for s in SETTINGS} <= fields
    assert len({(s.section, s.key) for s in SETTINGS}) == len(SETTINGS)
    assert all(s.help for s in SETTINGS)
    done = subprocess.run([sys.executable, str(REPO / "tools" / "settings_reference.py"),
                           "--check"], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    reference = (REPO / "docs" / "settings.md").read_text(encoding="utf-8")
    assert all(f"| `{s.key}` |" in reference for s in SETTINGS)
    from orchestrator.core.spec import cell_columns

    assert all(f"| `{column}` |" in reference for column, *_ in cell_columns())


@pytest.mark.parametrize("text, expected", [
    ("[general]\nmax_training_process = 1e1\n", {"max_training_process": 10}),
    ("[general]\nmax_training_process = 2.0\n", {"max_training_process": 2}),
    ("[ray]\ndashboard = off\nnum_gpus = 0.5\n", {"dashboard": False, "num_gpus": 0.5}),
    ("[general]\nauto_continue = yes\n", {"auto_continue": True}),
    ("[general]\nmax_training_process = 2.5\n",
     "[general] max_training_process='2.5' — use a whole number"),
    ("[ray]\ndashboard = maybe\n", "[ray] dashboard='maybe' — use true or false"),
    ("[general]\nretry_backoff = soon\n", "[general] retry_backoff='soon' — use a number "
     "(seconds before the first retry"),
])
def test_values_are_parsed_as_the_file_writes_them(tmp_path, text, expected):
    path = tmp_path / "c.ini"
    path.write_text(text, encoding="utf-8")
    if isinstance(expected, dict):
        config = load_config(path)
        assert {k: getattr(config, k) for k in expected} == expected
        return
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert expected in str(raised.value), str(raised.value)


def test_seed_email_section_is_accepted(tmp_path):
    path = tmp_path / "seed.ini"
    path.write_text("[general]\nmetric = acc\n[email]\nsmtp_server = smtp.example.com\n"
                    "smtp_port = 587\nusername = me\nfrom_addr = a@x.org\nto_addr = b@x.org\n"
                    "[notify]\nurl = mailto://x\n")
    cfg = load_config(path)
    assert (cfg.smtp_server, cfg.smtp_port, cfg.email_username, cfg.from_addr, cfg.to_addr) == \
        ("smtp.example.com", 587, "me", "a@x.org", "b@x.org")
    assert cfg.notify_url == "mailto://x"


def test_a_misspelled_email_key_is_said_not_ignored(tmp_path):
    path = tmp_path / "seed.ini"
    path.write_text("[email]\nsmtp_sever = smtp.example.com\n")
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert "[email] smtp_sever" in str(raised.value)
    assert "did you mean smtp_server?" in str(raised.value)


def test_the_smtp_password_stays_out_of_the_configs_repr(tmp_path):
    path = tmp_path / "seed.ini"
    path.write_text("[email]\nsmtp_server = h\npassword = S3cr3tPW\n")
    cfg = load_config(path)
    assert cfg.email_password == "S3cr3tPW" and "S3cr3tPW" not in repr(cfg)


@pytest.mark.parametrize("name", ["manager.ini", "manager.yaml", "seed-pinned.ini"])
def test_shipped_example_configs_load(name):
    path = REPO / "configs" / name
    if not path.exists():
        pytest.skip(f"{path} is not in this checkout")
    assert load_config(path).source == str(path)


@pytest.mark.parametrize("data,needle", [
    (b"\xf0\xb3\x00\xff[general]\n", "not UTF-8 text: save it as UTF-8"),
    (b"\x00\x00[general]\n", "not a text file (binary data)"),
    ("[general]\r\ncheck_interval = \uc0bc\n".encode("cp949"), "line 2"),
])
def test_a_binary_or_non_utf8_config_is_refused_with_line_and_fix(tmp_path, data, needle):
    path = tmp_path / "manager.ini"
    path.write_bytes(data)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}: line ") and needle in str(info.value)


def test_a_folder_given_as_the_config_is_refused_not_a_traceback(tmp_path):
    with pytest.raises(ConfigError, match="cannot be read .*Is a directory"):
        load_config(tmp_path)


def test_a_utf16_config_with_its_bom_is_read(tmp_path):
    """Windows Notepad's 'Unicode' is UTF-16 with a BOM."""
    path = tmp_path / "manager.ini"
    path.write_bytes("[general]\ncheck_interval = 3\nmetric = 정확도\n".encode("utf-16"))
    config = load_config(path)
    assert config.check_interval == 3.0 and config.metric == "정확도"


def test_a_mapping_to_a_gpu_gpu_list_lacks_is_refused(tmp_path):
    msg = config_error(tmp_path, "[general]\nprocess_gpu_mapping = process0=9,process1=1\n"
                       "[gpu]\nenable_gpu_assignment = true\ngpu_list = 0,1\n")
    assert "process_gpu_mapping='process0=9,process1=1'" in msg
    assert "names GPU 9, which gpu_list = 0,1 does not list" in msg


def test_what_this_machine_lacks_is_refused_before_any_row_runs(tmp_path, monkeypatch):
    from orchestrator.store.config import check_here

    pinned = load_config(None, process_gpu_mapping="process0=0,process1=3",
                         enable_gpu_assignment=True)
    check_here(pinned, tmp_path, gpus_here=4)
    with pytest.raises(ConfigError, match="names GPU 3 but this machine has GPUs 0-1"):
        check_here(pinned, tmp_path, gpus_here=2)
    with pytest.raises(ConfigError, match=r"setup_script='env\.sh'.*no such file"):
        check_here(load_config(None, setup_script="env.sh"), tmp_path)
    (tmp_path / "env.sh").write_text("export A=1\n")
    check_here(load_config(None, setup_script="env.sh"), tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))   # no conda on it
    conda = load_config(None, use_conda=True, conda_env="torch")
    with pytest.raises(ConfigError, match="conda is not on PATH here"):
        check_here(conda, tmp_path)
    check_here(conda.replace(setup_script="env.sh"), tmp_path)  # its setup may bring conda
