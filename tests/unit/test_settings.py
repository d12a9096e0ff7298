"""Settings: defaults, validation that names the key, `.env` support, and `.env.example`."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from orchestrator.errors import ConfigError
from orchestrator.settings import (
    SECRET_FIELDS,
    Settings,
    ensure_home,
    env_key,
    home_problem,
    load_settings,
)

ROOT = Path(__file__).resolve().parents[2]
SECTION_7_KEYS = [
    "ORCH_HOME",
    "ORCH_DB_URL",
    "ORCH_HOST",
    "ORCH_PORT",
    "ORCH_API_TOKEN",
    "ORCH_MAX_PARALLEL_JOBS",
    "ORCH_MAX_DEV_RETRIES",
    "ORCH_AGENT_BACKEND",
    "ORCH_AGENT_COMMAND",
    "ORCH_AGENT_TIMEOUT_S",
    "ORCH_AGENT_RETRIES",
    "ORCH_TEST_RUNNER_ENABLED",
    "ORCH_TEST_RUNNER_REPOS",
    "ORCH_TEST_RUNNER_TIMEOUT_S",
    "ORCH_TEST_RUNNER_INFRA_RETRIES",
    "ORCH_TEST_RUNNER_SMOKE_URL",
    "ORCH_STAGING_RUNNER_ENABLED",
    "ORCH_STAGING_RUNNER_REPOS",
    "ORCH_STAGING_RUNNER_TIMEOUT_S",
    "ORCH_STAGING_RUNNER_INFRA_RETRIES",
    "ORCH_DEFER_BACKOFF_S",
    "ORCH_DEFER_BACKOFF_MAX_S",
    "ORCH_MONITOR_WINDOW_S",
    "ORCH_MONITOR_INTERVAL_S",
    "ORCH_ALERT_WEBHOOK_URL",
]


def test_every_spec_key_is_a_setting() -> None:
    keys = {env_key(name) for name in Settings.model_fields}
    assert set(SECTION_7_KEYS) <= keys


def test_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ORCH_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    settings = load_settings()
    assert settings.home == tmp_path / ".orch"
    assert settings.database_url == f"sqlite:///{tmp_path / '.orch' / 'orch.db'}"
    assert (settings.host, settings.port, settings.token) == ("127.0.0.1", 8765, None)
    assert (settings.max_parallel_jobs, settings.max_dev_retries, settings.agent_retries) == (
        4,
        3,
        2,
    )
    assert settings.test_runner_enabled and settings.staging_runner_enabled
    assert settings.test_runner_repos == settings.staging_runner_repos == frozenset({"*"})
    assert settings.deploy_finalizer_enabled and settings.post_deploy_monitor_enabled
    assert (settings.defer_backoff_s, settings.defer_backoff_max_s) == (30.0, 600.0)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("ORCH_MAX_PARALLEL_JOBS", "abc"),
        ("ORCH_MAX_PARALLEL_JOBS", "0"),
        ("ORCH_PORT", "70000"),
        ("ORCH_AGENT_BACKEND", "gpt"),
        ("ORCH_AGENT_TIMEOUT_S", "-1"),
        ("ORCH_TEST_RUNNER_ENABLED", "maybe"),
        ("ORCH_STAGING_RUNNER_REPOS", " , "),
        ("ORCH_DB_URL", "mysql://db/x"),
        ("ORCH_ALERT_WEBHOOK_URL", "hooks.example/x"),
        ("ORCH_TEST_RUNNER_SMOKE_URL", "localhost:8765"),
    ],
)
def test_bad_value_is_one_line_naming_the_key(
    monkeypatch: pytest.MonkeyPatch, key: str, value: str
) -> None:
    monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith(f"{key}: ") and "\n" not in message


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "0.0.0.0", "::", "::1", "localhost", "orch-1.internal", "WORKER7."]
)
def test_host_takes_a_hostname_or_an_ip(monkeypatch: pytest.MonkeyPatch, host: str) -> None:
    monkeypatch.setenv("ORCH_HOST", host)
    assert load_settings().host == host


@pytest.mark.parametrize(
    "host",
    [" ", "http://example.com", "example.com:8765", "[::1]", "a b", "-leading", "x_y.example",
     "a" * 64, "999.1.1.1", "10.0.0.256", ("a." * 127) + "a"],
)  # fmt: skip
def test_host_that_is_no_hostname_nor_ip_is_refused(
    monkeypatch: pytest.MonkeyPatch, host: str
) -> None:
    monkeypatch.setenv("ORCH_HOST", host)
    with pytest.raises(ConfigError, match=r"^ORCH_HOST: ") as caught:
        load_settings()
    assert "\n" not in str(caught.value)


def test_home_is_a_folder_we_may_write_in_or_create(tmp_path: Path) -> None:
    plain = tmp_path / "plain-file"
    plain.write_text("x")
    assert home_problem(tmp_path) is None
    assert home_problem(tmp_path / "new" / "deeper") is None
    assert home_problem(plain) == f"{plain} is not a folder"
    assert (
        home_problem(plain / "home") == f"cannot create {plain / 'home'}: {plain} is not a folder"
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write in any folder")
def test_home_in_a_read_only_folder_is_refused(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    assert home_problem(locked) == f"{locked} is not writable"
    assert (
        home_problem(locked / "home")
        == f"cannot create {locked / 'home'}: {locked} is not writable"
    )


def test_bad_home_is_one_line_naming_the_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    plain = tmp_path / "plain-file"
    plain.write_text("x")
    monkeypatch.setenv("ORCH_HOME", str(plain))
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value) == f"ORCH_HOME: {plain} is not a folder"


def test_ensure_home_makes_the_folder_or_names_the_key(tmp_path: Path) -> None:
    made = ensure_home(load_settings(home=tmp_path / "a" / "b"))
    assert made == tmp_path / "a" / "b" and made.is_dir()
    unmakeable = load_settings(home=Path("/proc/orch-test-home"))  # passes the shape check
    with pytest.raises(ConfigError, match=r"^ORCH_HOME: cannot create /proc/orch-test-home: "):
        ensure_home(unmakeable)


def test_command_backend_needs_a_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_AGENT_BACKEND", "command")
    with pytest.raises(ConfigError, match=r"^ORCH_AGENT_COMMAND: required"):
        load_settings()


def test_backoff_cap_below_first_backoff_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_DEFER_BACKOFF_S", "60")
    monkeypatch.setenv("ORCH_DEFER_BACKOFF_MAX_S", "10")
    with pytest.raises(ConfigError, match=r"^ORCH_DEFER_BACKOFF_MAX_S: "):
        load_settings()


def test_secret_values_are_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_DB_URL", "mysql://user:hunter2@db/x")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "hunter2" not in str(caught.value)
    assert {"api_token", "db_url", "alert_webhook_url"} <= SECRET_FIELDS


def test_durations_take_fractions_and_scopes_take_csv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_MONITOR_INTERVAL_S", "0.2")
    monkeypatch.setenv("ORCH_TEST_RUNNER_REPOS", "shop, billing")
    settings = load_settings()
    assert settings.monitor_interval_s == 0.2
    assert settings.test_runner_repos == frozenset({"shop", "billing"})


def test_plain_postgres_url_selects_psycopg(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_DB_URL", "postgresql://u@h/db")
    assert load_settings().database_url == "postgresql+psycopg://u@h/db"


def test_empty_token_means_no_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_API_TOKEN", "")
    assert load_settings().token is None


def test_dotenv_in_current_folder_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("ORCH_MAX_PARALLEL_JOBS=7\nOTHER_TOOL=x\n")
    assert load_settings().max_parallel_jobs == 7
    monkeypatch.setenv("ORCH_MAX_PARALLEL_JOBS", "9")  # the environment wins over .env
    assert load_settings().max_parallel_jobs == 9


def _env_example() -> dict[str, str]:
    text = (ROOT / ".env.example").read_text()
    return dict(re.findall(r"^(ORCH_[A-Z0-9_]+)=(.*)$", text, flags=re.MULTILINE))


def test_env_example_drift_documents_every_setting_and_nothing_else() -> None:
    assert set(_env_example()) == {env_key(name) for name in Settings.model_fields}


def test_env_example_drift_defaults_are_the_real_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ORCH_HOME")
    defaults = load_settings()
    for key, value in _env_example().items():
        monkeypatch.setenv(key, value)
    assert load_settings() == defaults
