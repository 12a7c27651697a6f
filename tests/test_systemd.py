"""The boot unit: rendered for real configs, checked by systemd-analyze, installed; sd_notify."""

from __future__ import annotations

import configparser
import os
import pwd
import shlex
import shutil
import socket
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from kanri.config import Config, load_config
from kanri.errors import KanriError
from kanri.systemd import enable_hint, install_unit, notify, render_unit, unit_name

PY = sys.executable
ME = pwd.getpwuid(os.getuid()).pw_name
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")

# A space and a % in the directory name: the two things unit files quote and escape.
PROJECT_DIR = "my shop 100%"


def write_project(parent: Path, toml: str | None = None) -> Config:
    root = parent / PROJECT_DIR
    root.mkdir(parents=True)
    (root / "kanri.toml").write_text(
        toml
        or f"""
[apps.api]
command = "{PY} -c pass"
kill_timeout = "45s"

[apps.web]
command = "{PY} -c pass"
depends_on = ["api"]
"""
    )
    return load_config(root / "kanri.toml", None)


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.delenv("KANRI_HOME", raising=False)
    monkeypatch.setenv("PATH", "/opt/node 20/bin:/usr/bin:/bin")
    return write_project(tmp_path)


def parse_unit(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(
        strict=False, interpolation=None, delimiters=("=",), comment_prefixes=("#",)
    )
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    return parser


def systemd_words(value: str, *, expand: bool) -> list[str]:
    """Split an ExecStart= (``expand``) or Environment= value as systemd does, for our output.

    Double quotes with \\\\ and \\" escapes split as in a POSIX shell; then %% is a
    specifier escape and, in ExecStart=, $$ a variable escape. A lone % or $ (which
    systemd would expand) fails the test.
    """
    return [unescape(word, "%$" if expand else "%") for word in shlex.split(value)]


def unescape(word: str, specials: str) -> str:
    out, i = [], 0
    while i < len(word):
        char = word[i]
        if char in specials:
            assert word[i + 1 : i + 2] == char, f"unescaped {char} in {word!r}"
            i += 1
        out.append(char)
        i += 1
    return "".join(out)


def lines_starting(text: str, prefix: str) -> list[str]:
    return [line.removeprefix(prefix) for line in text.splitlines() if line.startswith(prefix)]


# -- unit_name -----------------------------------------------------------------------


def test_unit_name_is_a_valid_name_that_tells_projects_apart(tmp_path: Path) -> None:
    first = write_project(tmp_path / "a")
    second = write_project(tmp_path / "b")  # same directory name, another place
    name = unit_name(first)
    assert name.startswith("kanri-my-shop-100-") and name.endswith(".service")
    assert all(c.isascii() and (c.isalnum() or c in "-_.") for c in name)
    assert len(name) <= 255
    assert unit_name(second) != name
    assert unit_name(first) == name


# -- render_unit ---------------------------------------------------------------------


def test_unit_has_every_section_and_setting(config: Config) -> None:
    text = render_unit(config, kanri_argv=[PY, "-m", "kanri"], user=ME)
    unit = parse_unit(text)
    assert unit.sections() == ["Unit", "Service", "Install"]

    assert dict(unit["Unit"]) == {
        "Description": f"kanri stack in {str(config.root).replace('%', '%%')}",
        "After": "network-online.target",
        "Wants": "network-online.target",
    }
    service = unit["Service"]
    assert service["Type"] == "notify"
    assert service["NotifyAccess"] == "main"
    assert service["WorkingDirectory"] == str(config.root).replace("%", "%%")
    assert "100%%" in service["WorkingDirectory"]
    assert service["User"] == ME
    assert "Group" not in service
    assert service["KillMode"] == "mixed"
    assert service["TimeoutStopSec"] == "85"  # the 45s and 10s kill_timeouts + 30s
    assert service["TimeoutStartSec"] == "92"  # two apps x (30s ready_timeout + 1s) + 30s
    assert service["Restart"] == "on-failure"
    assert service["RestartSec"] == "2"
    assert service["LimitNOFILE"] == "65536"
    assert dict(unit["Install"]) == {"WantedBy": "multi-user.target"}

    assert "%%/kanri.toml" in service["ExecStart"]
    assert systemd_words(service["ExecStart"], expand=True) == [
        PY,
        "-m",
        "kanri",
        "up",
        "-c",
        str(config.file),
    ]
    assert lines_starting(text, "Environment=") == ['"PATH=/opt/node 20/bin:/usr/bin:/bin"']

    name = unit_name(config)
    header = lines_starting(text, "# ")
    assert any(name in line and "systemctl enable --now" in line for line in header)
    assert render_unit(config, kanri_argv=[PY, "-m", "kanri"], user=ME) == text


def test_env_group_and_kanri_home_are_carried(
    config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KANRI_HOME", "state 50%")  # relative: made absolute now
    text = render_unit(
        config,
        kanri_argv=[PY, "-m", "kanri"],
        user=ME,
        group="daemon",
        env_name="production",
        environment={"NODE_ENV": "production", "GREETING": 'say "hi" $USER'},
    )
    service = parse_unit(text)["Service"]
    assert service["Group"] == "daemon"
    assert systemd_words(service["ExecStart"], expand=True)[-2:] == ["--env", "production"]
    env = [systemd_words(line, expand=False) for line in lines_starting(text, "Environment=")]
    assert env == [
        [f"KANRI_HOME={tmp_path / 'state 50%'}"],
        ["PATH=/opt/node 20/bin:/usr/bin:/bin"],
        ["NODE_ENV=production"],
        ['GREETING=say "hi" $USER'],  # Environment= does not expand $, so it stays single
    ]


WEIRD_ARGS = ["a b", 'say "hi"', "it's", "$HOME", "${HOME}x", "5%", "%n", "back\\slash", ";", ""]


@pytest.mark.parametrize("arg", WEIRD_ARGS)
def test_exec_start_words_round_trip(config: Config, arg: str) -> None:
    text = render_unit(config, kanri_argv=[PY, "-m", "kanri", arg], user=ME)
    exec_start = parse_unit(text)["Service"]["ExecStart"]
    assert systemd_words(exec_start, expand=True)[:4] == [PY, "-m", "kanri", arg]


def test_config_env_profile_is_the_default(tmp_path: Path) -> None:
    root = tmp_path / "p"
    root.mkdir()
    (root / "kanri.toml").write_text(
        f'[apps.web]\ncommand = "{PY} -c pass"\n[apps.web.env_production]\nX = "1"\n'
    )
    config = load_config(root / "kanri.toml", "production")
    service = parse_unit(render_unit(config, kanri_argv=[PY], user=ME))["Service"]
    assert systemd_words(service["ExecStart"], expand=True)[-2:] == ["--env", "production"]
    assert service["TimeoutStopSec"] == "40"  # the default 10s kill_timeout + 30s


def test_bare_kanri_command_is_resolved_on_path(config: Config) -> None:
    exec_start = parse_unit(render_unit(config, kanri_argv=["sh"], user=ME))["Service"]["ExecStart"]
    assert systemd_words(exec_start, expand=True)[0] == shutil.which("sh")
    with pytest.raises(KanriError, match="cannot find 'no-such-kanri' on PATH"):
        render_unit(config, kanri_argv=["no-such-kanri"], user=ME)


def test_what_a_unit_cannot_say_is_refused(config: Config, tmp_path: Path) -> None:
    with pytest.raises(KanriError, match="may not contain quotes, backslashes or \\$"):
        render_unit(config, kanri_argv=["/opt/$weird/kanri"], user=ME)
    with pytest.raises(KanriError, match="control character"):
        render_unit(config, kanri_argv=[PY, "line\nbreak"], user=ME)
    with pytest.raises(KanriError, match="not an environment variable name"):
        render_unit(config, kanri_argv=[PY], user=ME, environment={"A B": "1"})


def test_app_users_need_kanri_to_run_as_root(tmp_path: Path) -> None:
    config = write_project(tmp_path, f'[apps.web]\ncommand = "{PY} -c pass"\nuser = "daemon"\n')
    daemon_uid = str(pwd.getpwnam("daemon").pw_uid)
    for ok in ("root", "0", "daemon", daemon_uid):
        render_unit(config, kanri_argv=[PY], user=ok)
    with pytest.raises(KanriError, match=r"apps\.web\.user is 'daemon'.*run kanri as root"):
        render_unit(config, kanri_argv=[PY], user="nobody")


# -- systemd-analyze verify ----------------------------------------------------------


def analyze(tmp_path: Path, config: Config, kanri_argv: list[str]) -> list[str]:
    """Run `systemd-analyze verify` on the unit; return its output lines about this unit."""
    assert SYSTEMD_ANALYZE is not None
    name = unit_name(config)
    units = tmp_path / "units"
    units.mkdir(exist_ok=True)
    path = units / name
    path.write_text(render_unit(config, kanri_argv=kanri_argv, user=ME, env_name="production"))
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = (result.stdout + result.stderr).splitlines()
    # Other units on this machine may draw warnings; only lines about ours count.
    return [line for line in output if name in line or str(path) in line]


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_accepts_the_unit(config: Config, tmp_path: Path) -> None:
    # The executable itself under a path with a space and a %, to check its quoting too.
    bin_dir = config.root / "bin dir"
    bin_dir.mkdir()
    (bin_dir / "py 100%").symlink_to(PY)
    argv = [str(bin_dir / "py 100%"), "-m", "kanri", *WEIRD_ARGS]
    assert analyze(tmp_path, config, argv) == []


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_check_can_fail(config: Config, tmp_path: Path) -> None:
    complaints = analyze(tmp_path, config, [str(tmp_path / "no such" / "kanri")])
    assert any("not executable" in line for line in complaints), complaints


# -- install_unit --------------------------------------------------------------------


def test_install_writes_atomically_with_mode_0644(tmp_path: Path) -> None:
    target = tmp_path / "system"
    target.mkdir()
    old = install_unit("[Unit]\nDescription=old\n", "kanri-x.service", target)
    path = install_unit("[Unit]\nDescription=new\n", "kanri-x.service", target)
    assert path == old == target / "kanri-x.service"
    assert path.read_text() == "[Unit]\nDescription=new\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert sorted(p.name for p in target.iterdir()) == ["kanri-x.service"]  # no temp file left


def test_install_into_a_missing_directory_says_what_to_do(tmp_path: Path) -> None:
    target = tmp_path / "missing"
    with pytest.raises(KanriError) as info:
        install_unit("[Unit]\n", "kanri-x.service", target)
    assert str(info.value) == (
        f"cannot write {target / 'kanri-x.service'}: no such file or directory; run with sudo,"
        " or print the unit with `kanri startup` and install it yourself"
    )


def test_install_without_permission_says_what_to_do(tmp_path: Path) -> None:
    target = tmp_path / "read-only"
    target.mkdir()
    target.chmod(0o500)
    try:
        probe = target / "probe"
        try:
            probe.touch()
        except PermissionError:
            pass
        else:  # root ignores the mode bits
            probe.unlink()
            pytest.skip("this user can write into a 0o500 directory")
        with pytest.raises(KanriError) as info:
            install_unit("[Unit]\n", "kanri-x.service", target)
        assert str(info.value) == (
            f"cannot write {target / 'kanri-x.service'}: permission denied; run with sudo,"
            " or print the unit with `kanri startup` and install it yourself"
        )
        assert list(target.iterdir()) == []
    finally:
        target.chmod(0o700)


def test_install_refuses_a_name_that_is_not_a_service(tmp_path: Path) -> None:
    for bad in ("../evil.service", "kanri.timer"):
        with pytest.raises(KanriError, match="not a service unit name"):
            install_unit("", bad, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_enable_hint_names_the_unit() -> None:
    hint = enable_hint("kanri-x.service")
    assert hint.splitlines()[0] == (
        "systemctl daemon-reload && systemctl enable --now kanri-x.service"
    )
    assert "journalctl -u kanri-x.service" in hint


# -- notify --------------------------------------------------------------------------


def receive(sock: socket.socket) -> bytes:
    sock.settimeout(5)
    return sock.recv(4096)


def test_notify_sends_one_datagram_to_a_socket_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        assert notify("READY=1") is True
        assert notify("STATUS=2 apps ready\nMAINPID=1") is True
        assert receive(sock) == b"READY=1"
        assert receive(sock) == b"STATUS=2 apps ready\nMAINPID=1"


def test_notify_sends_to_an_abstract_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"kanri-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert notify("READY=1") is True
        assert receive(sock) == b"READY=1"


def test_notify_is_false_without_systemd_or_a_listener(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify("READY=1") is False
    for target in (str(tmp_path / "nobody-listens.sock"), "@kanri-nobody-listens", "relative"):
        monkeypatch.setenv("NOTIFY_SOCKET", target)
        assert notify("READY=1") is False
