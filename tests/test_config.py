"""Loading kanri.toml: every invalid file names each problem precisely; valid files load typed."""

from __future__ import annotations

import grp
import os
import pwd
import textwrap
from pathlib import Path

import pytest

from kanri.config import AppConfig, Config, ProxyConfig, load_config
from kanri.config.check import describe_config
from kanri.config.loader import key_path
from kanri.errors import ConfigError, ConfigProblem

APP = '[apps.web]\ncommand = "node server.js"\n'

# The example from DESIGN.md section 2, as a user would paste it (comments included).
DESIGN_EXAMPLE = """\
[proxy]
listen = ["0.0.0.0:8080"]        # one or more addresses; default "127.0.0.1:8080"
workers = 1                      # proxy processes sharing the listen sockets; "auto" = CPU count
client_max_body_size = "1MiB"    # nginx's default; 413 above it
access_log = true                # true (.kanri/logs/access.log), a path, or false
access_log_format = "combined"   # or "json"

[[routes]]                       # longest matching prefix wins (as nginx prefix locations)
path = "/static/"
static = "backend/staticfiles"   # served from disk; the prefix is stripped (nginx `alias`)
cache = "1y"                     # Cache-Control max-age; "immutable" for hashed assets

[[routes]]
path = "/api/"
app = "api"                      # proxied to the ready instances of app "api"

[[routes]]
host = "example.com"             # optional Host match
path = "/"
app = "web"

[apps.api]
command = "gunicorn mysite.wsgi --bind 127.0.0.1:$PORT --workers 2"
cwd = "backend"
instances = 2                    # or "max" (= CPU count)
health = "/api/health/"          # readiness + liveness over HTTP; default: TCP connect to $PORT
drain_timeout = "30s"            # how long a reload waits for in-flight requests
balance = "round_robin"          # or "least_conn"
env = { DJANGO_SETTINGS_MODULE = "mysite.settings" }

[apps.web]
command = "node node_modules/next/dist/bin/next start -p $PORT"
cwd = "frontend"
instances = "max"
max_memory = "512MiB"            # restart (gracefully) above this RSS
depends_on = ["api"]             # start after api is ready
"""


def write(tmp_path: Path, text: str, name: str = "kanri.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def problems_of(path: Path, env_name: str | None = None) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, env_name)
    found = caught.value.problems
    for problem in found:
        assert problem.file == str(path)
        # Plain words only: no validation-library wording, links or type reprs.
        for jargon in ("Input should", "Value error", "pydantic", "http", "<class", "[type="):
            assert jargon not in problem.message, problem
    return found


def only_problem(tmp_path: Path, text: str, env_name: str | None = None) -> ConfigProblem:
    found = problems_of(write(tmp_path, text), env_name)
    assert len(found) == 1, found
    return found[0]


def cpu_count() -> int:
    return len(os.sched_getaffinity(0))


# -- invalid files: one problem each, at an exact key path ------------------------------------

INVALID = [
    # pytest.param(file, key path, phrase of the message, id=...)
    pytest.param(
        APP + "kill_timeout = 5\n",
        "apps.web.kill_timeout",
        "bare number 5 has no unit",
        id="bare duration",
    ),
    pytest.param(
        APP + 'kill_timeout = "5"\n',
        "apps.web.kill_timeout",
        "'5' is not a duration",
        id="duration no unit",
    ),
    pytest.param(
        APP + 'instances = "lots"\n',
        "apps.web.instances",
        "'lots' is not an instance count",
        id="instances lots",
    ),
    pytest.param(
        APP + "instances = 0\n",
        "apps.web.instances",
        'whole number >= 1 or "max"',
        id="instances zero",
    ),
    pytest.param(
        APP + "port = -1\n",
        "apps.web.port",
        "-1 is out of range; use a whole number from 1 to 65535",
        id="negative port",
    ),
    pytest.param(
        APP + "port = 70000\n",
        "apps.web.port",
        "70000 is out of range; use a whole number from 1 to 65535",
        id="port too big",
    ),
    pytest.param(
        APP + 'port = "80"\n',
        "apps.web.port",
        "expected a whole number, got a string ('80')",
        id="port as string",
    ),
    pytest.param(
        APP + 'max_restarts = "3"\n',
        "apps.web.max_restarts",
        "expected a whole number, got a string ('3')",
        id="int from string",
    ),
    pytest.param(
        APP + "max_restarts = 3.5\n",
        "apps.web.max_restarts",
        "expected a whole number, got a number (3.5)",
        id="int from float",
    ),
    pytest.param(
        APP + "max_restarts = -1\n",
        "apps.web.max_restarts",
        "use a whole number >= 0",
        id="negative count",
    ),
    pytest.param(
        APP + 'max_memory = "lots"\n', "apps.web.max_memory", "'lots' is not a size", id="bad size"
    ),
    pytest.param(
        APP + "max_memory = 512\n",
        "apps.web.max_memory",
        "bare number 512 has no unit",
        id="bare size",
    ),
    pytest.param(
        APP + 'restart = "sometimes"\n',
        "apps.web.restart",
        "'sometimes' is not allowed; use one of: always, on-failure, never",
        id="restart literal",
    ),
    pytest.param(
        APP + 'balance = "random"\n',
        "apps.web.balance",
        "use one of: round_robin, least_conn",
        id="balance literal",
    ),
    pytest.param(
        APP + 'kill_signal = "SIGFOO"\n',
        "apps.web.kill_signal",
        "'SIGFOO' is not a signal",
        id="kill signal",
    ),
    pytest.param(
        APP + 'cron_restart = "every day"\n',
        "apps.web.cron_restart",
        "'every day' is not a cron expression",
        id="cron",
    ),
    pytest.param(
        APP + 'health = "health"\n', "apps.web.health", "is not a URL path", id="health path"
    ),
    pytest.param(
        "[apps.web]\ncommand = 5\n",
        "apps.web.command",
        "expected a string, got a whole number (5)",
        id="command type",
    ),
    pytest.param(
        '[apps.web]\ncommand = ""\n',
        "apps.web.command",
        "an empty string is not allowed",
        id="empty command",
    ),
    pytest.param(
        '[apps.web]\ncwd = "."\n',
        "apps.web.command",
        "`command` is required: the command line that starts the app,"
        ' e.g. command = "node server.js"',
        id="missing command",
    ),
    pytest.param(
        '[apps.web]\nscript = "x"\ncommand = "x"\n',
        "apps.web.script",
        "kanri calls it `command`",
        id="pm2 key",
    ),
    pytest.param(APP + 'name = "web"\n', "apps.web.name", "unknown key `name`", id="name key"),
    pytest.param(
        APP + 'autorestart = "yes"\n',
        "apps.web.autorestart",
        "expected true or false, got a string ('yes')",
        id="autorestart type",
    ),
    pytest.param(
        APP + "env = { PORT = [1] }\n",
        "apps.web.env.PORT",
        "expected a string, number or true/false, got a list ([1])",
        id="env value",
    ),
    pytest.param(
        APP + 'env = "A=1"\n',
        "apps.web.env",
        "expected a table of environment variables",
        id="env not table",
    ),
    pytest.param(
        APP + 'env = { "MY-VAR" = "x" }\n',
        "apps.web.env.MY-VAR",
        "is not an environment variable name",
        id="env var name",
    ),
    pytest.param(
        APP + "[apps.web.env_production]\nPORT = [1]\n",
        "apps.web.env_production.PORT",
        "got a list ([1])",
        id="profile value",
    ),
    pytest.param(
        APP + 'env_production = "x"\n',
        "apps.web.env_production",
        "for `--env production`, got a string ('x')",
        id="profile not table",
    ),
    pytest.param(
        APP + "watch = 5\n",
        "apps.web.watch",
        "expected true, false, or a list of paths",
        id="watch type",
    ),
    pytest.param(
        APP + 'watch = [".", 3]\n',
        "apps.web.watch[1]",
        "expected a path string, got a whole number (3)",
        id="watch item",
    ),
    pytest.param(
        APP + "log_backups = 2000\n", "apps.web.log_backups", "from 0 to 1000", id="log backups"
    ),
    pytest.param(
        '[apps."my app"]\ncommand = "x"\n',
        'apps."my app"',
        "'my app' is not an app name",
        id="invalid app name",
    ),
    pytest.param(
        '[apps]\nweb = "node server.js"\n',
        "apps.web",
        "expected a table ([apps.web]), got a string",
        id="app not table",
    ),
    pytest.param(
        APP + '[[routes]]\npath = "/"\napp = "wbe"\n',
        "routes[0].app",
        "no app named 'wbe'; did you mean 'web'? apps defined: web",
        id="route unknown app",
    ),
    pytest.param(
        APP + '[[routes]]\npath = "/"\napp = "web"\nstatic = "."\n',
        "routes[0]",
        "has both app and static",
        id="route app and static",
    ),
    pytest.param(
        APP + '[[routes]]\npath = "/"\n',
        "routes[0]",
        "has neither app nor static",
        id="route no target",
    ),
    pytest.param(
        APP + '[[routes]]\npath = "api"\napp = "web"\n',
        "routes[0].path",
        'must start with "/"',
        id="route path",
    ),
    pytest.param(
        APP + '[[routes]]\napp = "web"\n',
        "routes[0].path",
        "`path` is required",
        id="route missing path",
    ),
    pytest.param(
        APP + '[[routes]]\npath = "/"\nhost = "a/b"\napp = "web"\n',
        "routes[0].host",
        "is not a host name",
        id="route host",
    ),
    pytest.param(
        APP + '[[routes]]\npath = "/"\nexact = "yes"\napp = "web"\n',
        "routes[0].exact",
        "expected true or false, got a string ('yes')",
        id="route exact type",
    ),
    pytest.param(
        APP + '[[routes]]\npath = "/"\nproxy_pass = "web"\napp = "web"\n',
        "routes[0].proxy_pass",
        "kanri calls it `app`",
        id="route nginx key",
    ),
    pytest.param(
        '[[routes]]\npath = "/"\nstatic = "public"\n',
        "routes[0].static",
        "does not exist",
        id="static root missing",
    ),
    pytest.param(
        APP + '[[routes]]\npath = "/api/"\napp = "web"\n[[routes]]\npath = "/api/"\napp = "web"\n',
        "routes[1]",
        "same path '/api/' as routes[0]",
        id="duplicate routes",
    ),
    pytest.param(
        APP
        + '[[routes]]\nhost = "a.com"\npath = "/"\napp = "web"\n'
        + '[[routes]]\nhost = "A.com"\npath = "/"\napp = "web"\n',
        "routes[1]",
        "same host 'a.com' and path '/'",
        id="duplicate host routes",
    ),
    pytest.param(
        'routes = "x"\n' + APP, "routes", "expected an array of tables", id="routes not array"
    ),
    pytest.param(
        "routes = [1]\n" + APP,
        "routes[0]",
        "expected a table ([[routes]] entry)",
        id="route not table",
    ),
    pytest.param(
        APP + '[proxy]\nlisten = ["nope"]\n',
        "proxy.listen",
        "'nope' is not an address; write \"host:port\"",
        id="bad listen",
    ),
    pytest.param(
        APP + '[proxy]\nlisten = "127.0.0.1:99999"\n',
        "proxy.listen",
        "port 99999 is out of range",
        id="listen port range",
    ),
    pytest.param(
        APP + "[proxy]\nworkers = 0\n",
        "proxy.workers",
        "0 is not a worker count",
        id="proxy workers",
    ),
    pytest.param(
        APP + "[proxy]\nacces_log = true\n",
        "proxy.acces_log",
        "did you mean `access_log`?",
        id="proxy typo",
    ),
    pytest.param("proxy = 1\n" + APP, "proxy", "expected a table ([proxy])", id="proxy not table"),
    pytest.param(
        APP + "[proxy]\naccess_log = 5\n",
        "proxy.access_log",
        "expected true, false, or a file path",
        id="access log type",
    ),
    pytest.param(
        APP + '[proxy]\naccess_log_format = "xml"\n',
        "proxy.access_log_format",
        "use one of: combined, json",
        id="log format",
    ),
    pytest.param(
        APP + "[app]\nx = 1\n",
        "app",
        "unknown key `app`; did you mean `apps`?",
        id="unknown top-level",
    ),
    pytest.param(
        APP + 'depends_on = ["api"]\n',
        "apps.web.depends_on",
        "no app named 'api'",
        id="depends on unknown",
    ),
    pytest.param(
        APP + 'depends_on = "web"\n',
        "apps.web.depends_on",
        "dependency cycle: web -> web",
        id="self dependency",
    ),
    pytest.param(
        APP + "port = 65535\ninstances = 2\n",
        "apps.web.port",
        "need ports 65535-65536, past 65535",
        id="port past 65535",
    ),
    pytest.param(
        APP + 'cwd = "nowhere"\n',
        "apps.web.cwd",
        "does not exist; cwd is relative to the config file's directory",
        id="cwd missing",
    ),
    pytest.param(
        APP + 'watch = ["src"]\n',
        "apps.web.watch[0]",
        "does not exist; watch paths are relative to the app's cwd",
        id="watch missing",
    ),
    pytest.param(
        APP + 'user = "no-such-user-kanri"\n',
        "apps.web.user",
        "no user 'no-such-user-kanri' on this system",
        id="user missing",
    ),
    pytest.param(
        APP + 'group = "no-such-group-kanri"\n',
        "apps.web.group",
        "no group 'no-such-group-kanri' on this system",
        id="group missing",
    ),
    pytest.param("# empty\n", "", "nothing to run", id="nothing to run"),
]


@pytest.mark.parametrize(("text", "path", "phrase"), INVALID)
def test_invalid_file_names_the_key_and_the_fix(
    tmp_path: Path, text: str, path: str, phrase: str
) -> None:
    problem = only_problem(tmp_path, text)
    assert problem.path == path
    assert phrase in problem.message


def test_typo_of_a_required_key_reports_both_the_typo_and_the_missing_key(tmp_path: Path) -> None:
    found = problems_of(write(tmp_path, '[apps.web]\ncomand = "node server.js"\n'))
    by_path = {p.path: p.message for p in found}
    assert by_path == {
        "apps.web.command": by_path["apps.web.command"],
        "apps.web.comand": "unknown key `comand`; did you mean `command`?",
    }
    assert "`command` is required" in by_path["apps.web.command"]


def test_dependency_cycle_reports_the_cycle_path_once(tmp_path: Path) -> None:
    problem = only_problem(
        tmp_path,
        """\
        [apps.api]
        command = "x"
        depends_on = ["worker"]
        [apps.worker]
        command = "x"
        depends_on = ["api"]
        """,
    )
    assert problem.path == "apps.api.depends_on"
    assert "dependency cycle: api -> worker -> api" in problem.message


def test_fixed_port_ranges_that_overlap(tmp_path: Path) -> None:
    problem = only_problem(
        tmp_path,
        """\
        [apps.a]
        command = "x"
        port = 9000
        instances = 3
        [apps.b]
        command = "x"
        port = 9002
        """,
    )
    assert problem.path == "apps.b.port"
    assert "ports 9002 overlap ports 9000-9002 of app 'a'" in problem.message


def test_adjacent_port_ranges_are_fine(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            """\
            [apps.a]
            command = "x"
            port = 9000
            instances = 2
            [apps.b]
            command = "x"
            port = 9002
            """,
        )
    )
    assert [app.port for app in config.apps.values()] == [9000, 9002]


def test_static_root_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "public").write_text("")
    problem = only_problem(tmp_path, '[[routes]]\npath = "/"\nstatic = "public"\n')
    assert problem.path == "routes[0].static"
    assert "is not a directory" in problem.message


@pytest.mark.parametrize(
    ("fallback", "phrase"),
    [("missing.html", "no file 'missing.html'"), ("../secret.txt", "is outside the static root")],
)
def test_fallback_must_be_a_file_inside_the_static_root(
    tmp_path: Path, fallback: str, phrase: str
) -> None:
    (tmp_path / "public").mkdir()
    (tmp_path / "secret.txt").write_text("")
    problem = only_problem(
        tmp_path, f'[[routes]]\npath = "/"\nstatic = "public"\nfallback = "{fallback}"\n'
    )
    assert problem.path == "routes[0].fallback"
    assert phrase in problem.message


def test_toml_syntax_error_gives_line_and_column(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, '[apps.web]\ncommand = "x"\ncwd "backend"\n')
    assert problem.path == ""
    assert "TOML syntax error at line 3, column 5" in problem.message
    assert "expected '=' after a key" in problem.message


def test_toml_error_at_the_end_of_the_file(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, '[apps.web]\ncommand = "x"\nargs = ["a",\n')
    assert "at the end of the file (line 3)" in problem.message


def test_duplicate_toml_key(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, '[apps.web]\ncommand = "x"\ncommand = "y"\n')
    assert "TOML syntax error" in problem.message
    assert "cannot overwrite a value" in problem.message


def test_missing_file(tmp_path: Path) -> None:
    found = problems_of(tmp_path / "nope.toml")
    assert len(found) == 1
    assert found[0].path == ""
    assert "file not found" in found[0].message
    assert str(tmp_path / "nope.toml") in str(found[0])


def test_directory_instead_of_a_file(tmp_path: Path) -> None:
    found = problems_of(tmp_path)
    assert [p.message for p in found] == ["this is a directory; give the path of a kanri.toml file"]


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "kanri.toml"
    path.write_bytes(b'[apps.web]\ncommand = "caf\xe9"\n')
    assert "not UTF-8 text (bad byte at line 2)" in problems_of(path)[0].message


def test_unknown_env_profile(tmp_path: Path) -> None:
    text = APP + "[apps.web.env_production]\nDEBUG = false\n"
    problem = only_problem(tmp_path, text, env_name="staging")
    assert problem.path == ""
    assert problem.message == (
        "no app has an [apps.NAME.env_staging] table; profiles defined: production"
    )


def test_every_problem_of_a_file_is_reported_together(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        nginx = true

        [proxy]
        listen = ["nope"]

        [[routes]]
        path = "/api/"
        app = "apy"

        [[routes]]
        path = "/"
        static = "missing"

        [apps.api]
        command = "gunicorn"
        instances = "lots"
        kill_timeout = 5
        restart = "sometimes"
        max_memory = "lots"

        [apps.worker]
        comand = "celery"
        port = 70000
        kill_signal = "SIGFOO"
        cron_restart = "every day"

        [apps.a]
        command = "x"
        depends_on = ["b"]

        [apps.b]
        command = "x"
        depends_on = ["a"]
        """,
    )
    found = problems_of(path, env_name="production")
    assert sorted(p.path for p in found) == sorted(
        [
            "",  # --env production, which no app defines
            "nginx",
            "proxy.listen",
            "routes[0].app",
            "routes[1].static",
            "apps.api.instances",
            "apps.api.kill_timeout",
            "apps.api.restart",
            "apps.api.max_memory",
            "apps.worker.comand",
            "apps.worker.command",
            "apps.worker.port",
            "apps.worker.kill_signal",
            "apps.worker.cron_restart",
            "apps.a.depends_on",
        ]
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert message.startswith("14 problems in the config; nothing was started:")
    assert f"  {path}: apps.api.instances: 'lots' is not an instance count" in message


def test_cross_checks_skip_apps_that_did_not_validate(tmp_path: Path) -> None:
    # "api" is defined but invalid: the route to it is not also reported as unknown.
    problem = only_problem(
        tmp_path,
        '[[routes]]\npath = "/"\napp = "api"\n[apps.api]\ncommand = "x"\nport = 0\n',
    )
    assert problem.path == "apps.api.port"


# -- valid files -------------------------------------------------------------------------------


def test_design_example_loads(tmp_path: Path) -> None:
    for directory in ("backend/staticfiles", "frontend"):
        (tmp_path / directory).mkdir(parents=True)
    config = load_config(write(tmp_path, DESIGN_EXAMPLE))

    assert config.file == tmp_path / "kanri.toml"
    assert config.root == tmp_path
    assert config.env_name is None
    assert config.proxy is not None
    assert config.proxy.listen == ("0.0.0.0:8080",)
    assert config.proxy.client_max_body_size == 1024 * 1024
    assert config.proxy.access_log is True

    static, api_route, web_route = config.routes
    assert static.static == (tmp_path / "backend/staticfiles").resolve()
    assert static.cache_control == "public, max-age=31536000"
    assert (api_route.path, api_route.app, api_route.host) == ("/api/", "api", None)
    assert (web_route.host, web_route.app) == ("example.com", "web")

    assert list(config.apps) == ["api", "web"]
    api, web = config.apps["api"], config.apps["web"]
    assert api.name == "api"
    assert api.cwd == (tmp_path / "backend").resolve()
    assert api.instances == 2
    assert api.health == "/api/health/"
    assert api.drain_timeout == 30.0
    assert api.env == {"DJANGO_SETTINGS_MODULE": "mysite.settings"}
    assert web.instances == cpu_count()
    assert web.max_memory == 512 * 1024 * 1024
    assert web.depends_on == ("api",)
    assert config.app_order() == ["api", "web"]


def test_env_profile_is_merged_with_env(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        [apps.web]
        command = "node server.js"
        env = { NODE_ENV = "development", LOG = "info" }

        [apps.web.env_production]
        NODE_ENV = "production"
        WORKERS = 4
        SECURE = true

        [apps.other]
        command = "x"
        env = { A = "1" }
        """,
    )
    plain = load_config(path)
    assert plain.env_name is None
    assert plain.apps["web"].env == {"NODE_ENV": "development", "LOG": "info"}
    assert plain.apps["web"].env_profiles == {
        "production": {"NODE_ENV": "production", "WORKERS": "4", "SECURE": "true"}
    }

    production = load_config(path, env_name="production")
    assert production.env_name == "production"
    assert production.apps["web"].env == {
        "NODE_ENV": "production",
        "LOG": "info",
        "WORKERS": "4",
        "SECURE": "true",
    }
    assert production.apps["other"].env == {"A": "1"}


def test_instances_max_is_the_cpus_this_process_may_use(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, APP + 'instances = "max"\n'))
    assert config.apps["web"].instances == len(os.sched_getaffinity(0))


def test_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, APP))
    web = config.apps["web"]
    assert web == AppConfig(name="web", command="node server.js")
    assert web.kill_timeout == 10.0
    assert web.kill_signal == "SIGTERM"
    assert web.ready_timeout == 30.0
    assert web.restart == "always"
    assert web.instances == 1
    assert web.port is None
    assert web.cwd is None
    assert web.watch is False
    assert web.log_max_size == 10 * 1024 * 1024
    assert config.proxy is None  # no routes, no [proxy]: nothing to serve
    assert config.routes == ()


def test_routes_without_proxy_table_get_proxy_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, APP + '[[routes]]\npath = "/"\napp = "web"\n'))
    assert config.proxy == ProxyConfig()
    assert config.proxy.listen == ("127.0.0.1:8080",)


def test_relative_paths_resolve_against_the_config_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    (project / "backend" / "src").mkdir(parents=True)
    (project / "public").mkdir()
    (project / "public" / "index.html").write_text("")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    path = write(
        project,
        """\
        [apps.api]
        command = "x"
        cwd = "backend"
        watch = ["src"]
        out_file = "logs/api.out"

        [[routes]]
        path = "/"
        static = "public"
        fallback = "/index.html"
        """,
    )
    config = load_config(os.path.relpath(path))
    api = config.apps["api"]
    assert api.cwd == (project / "backend").resolve()
    assert api.watch == ((project / "backend" / "src").resolve(),)
    assert api.out_file == (project / "logs" / "api.out").resolve()
    assert config.routes[0].static == (project / "public").resolve()
    assert config.file == path
    assert config.root == project


def test_pm2_spellings_that_are_accepted(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, APP + 'autorestart = false\nargs = "--port 3000 --verbose"\n')
    )
    web = config.apps["web"]
    assert web.restart == "never"
    assert web.args == ("--port", "3000", "--verbose")


def test_existing_user_and_group_are_accepted(tmp_path: Path) -> None:
    user = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    config = load_config(write(tmp_path, APP + f'user = "{user}"\ngroup = "{group}"\n'))
    assert (config.apps["web"].user, config.apps["web"].group) == (user, group)


def test_static_only_config_needs_no_apps(tmp_path: Path) -> None:
    (tmp_path / "public").mkdir()
    config = load_config(write(tmp_path, '[[routes]]\npath = "/"\nstatic = "public"\n'))
    assert config.apps == {}
    assert config.proxy == ProxyConfig()


def test_same_path_on_different_hosts_is_not_a_duplicate(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            APP
            + '[[routes]]\npath = "/"\napp = "web"\n'
            + '[[routes]]\nhost = "a.com"\npath = "/"\napp = "web"\n'
            + '[[routes]]\npath = "/"\nexact = true\napp = "web"\n',
        )
    )
    assert len(config.routes) == 3


def test_key_path() -> None:
    assert key_path("apps", "web", "instances") == "apps.web.instances"
    assert key_path("routes", 2, "path") == "routes[2].path"
    assert key_path("apps", "web.v2", "port") == 'apps."web.v2".port'
    assert key_path() == ""


def test_describe_config(tmp_path: Path) -> None:
    for directory in ("backend/staticfiles", "frontend"):
        (tmp_path / directory).mkdir(parents=True)
    text = DESIGN_EXAMPLE.replace('depends_on = ["api"]', 'depends_on = ["api"]\nport = 3000')
    config = load_config(write(tmp_path, text))
    summary = describe_config(config)
    n = cpu_count()
    web_ports = "port 3000" if n == 1 else f"ports 3000-{3000 + n - 1}"
    web_count = f"{n} instance{'s' if n != 1 else ''}"
    assert summary.splitlines() == [
        f"{tmp_path / 'kanri.toml'}: OK",
        "",
        "proxy: listening on 0.0.0.0:8080 (1 worker)",
        "routes (3):",
        "  * /static/    -> static backend/staticfiles",
        "  * /api/       -> app api",
        "  example.com / -> app web",
        "apps (2, in start order):",
        "  api  2 instances, ports auto, cwd backend",
        f"  web  {web_count}, {web_ports}, cwd frontend, after api",
    ]


def test_describe_config_without_proxy() -> None:
    config = Config(apps={"job": AppConfig(name="job", command="x")}, env_name="production")
    assert describe_config(config).splitlines() == [
        "kanri.toml (env: production): OK",
        "",
        "proxy: off (no [[routes]])",
        "apps (1, in start order):",
        "  job  1 instance, port auto",
    ]


def test_a_worker_without_a_port_cannot_be_routed_to(tmp_path: Path) -> None:
    config = tmp_path / "kanri.toml"
    config.write_text(
        '[apps.queue]\ncommand = "python worker.py"\nready = "started"\nhealth = "/health"\n'
        '[[routes]]\npath = "/"\napp = "queue"\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    by_path = {p.path: p.message for p in caught.value.problems}
    assert "drop one of them" in by_path["apps.queue"]
    config.write_text(
        '[apps.queue]\ncommand = "python worker.py"\nready = "started"\n'
        '[apps.web]\ncommand = "node s.js"\n'
        '[[routes]]\npath = "/"\napp = "queue"\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert "serves no port" in {p.path: p.message for p in caught.value.problems}["routes[0].app"]
