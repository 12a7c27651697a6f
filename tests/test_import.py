"""`kanri import`: PM2 ecosystem files and nginx configs become a kanri.toml that loads.

The corpus in tests/import_corpus/ holds realistic files; the .js ones are run by
the real `node`. Each generated file is loaded with load_config after the test
creates the directories it names (static roots, cwd, watch paths) under tmp_path.
"""

from __future__ import annotations

import json
import os
import shutil
import tomllib
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from kanri.config import Config, load_config
from kanri.importers import OutputExistsError, SourceError, import_group
from kanri.importers.pm2_values import PLACEHOLDER
from kanri.importers.units import nginx_size, nginx_time, pm2_duration, pm2_memory
from kanri.importers.yaml_subset import load_yaml

CORPUS = Path(__file__).parent / "import_corpus"
CPUS = len(os.sched_getaffinity(0)) or 1
MiB = 1024 * 1024

needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """A copy of the corpus in tmp_path, so generated relative paths point inside it."""
    target = tmp_path / "project"
    shutil.copytree(CORPUS, target)
    return target


def run(*args: str) -> Result:
    return CliRunner().invoke(import_group, list(args))


def imported(*args: str) -> str:
    result = run(*args)
    assert result.exception is None, result.output
    assert result.exit_code == 0
    return result.stdout


def materialize(text: str, where: Path) -> Config:
    """Write the TOML next to ``where``, create what it names, fill placeholders, and load it."""
    srv = where / "srv"
    text = text.replace('"/srv/', f'"{srv}/').replace(PLACEHOLDER, "python3 -m http.server $PORT")
    data = tomllib.loads(text)
    for route in data.get("routes", []):
        if "static" in route:
            static = where / route["static"]
            static.mkdir(parents=True, exist_ok=True)
            if "fallback" in route:
                (static / route["fallback"].lstrip("/")).touch()
    for app in data.get("apps", {}).values():
        cwd = where / app.get("cwd", ".")
        cwd.mkdir(parents=True, exist_ok=True)
        for path in app.get("watch", []) if isinstance(app.get("watch"), list) else []:
            (cwd / path).mkdir(parents=True, exist_ok=True)
    file = where / "kanri.toml"
    file.write_text(text)
    return load_config(file)


def dropped(text: str) -> str:
    """The "not carried over" comment lines of a generated file."""
    return "\n".join(line for line in text.splitlines() if line.startswith("# not carried over:"))


# -- PM2 ------------------------------------------------------------------------------------


@needs_node
def test_pm2_js_carries_every_key_over(corpus: Path) -> None:
    out = corpus / "kanri.toml"
    result = run("pm2", str(corpus / "ecosystem.config.js"), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "wrote" in result.stderr
    text = out.read_text()
    config = materialize(text, corpus)
    web, api, worker, mailer = (config.apps[n] for n in ("web", "api", "worker", "mailer"))

    assert web.command == "node node_modules/next/dist/bin/next start -p $PORT"
    assert web.cwd == corpus / "frontend"
    assert web.instances == CPUS  # "max"
    assert web.port == 3000
    assert web.max_memory == 300 * MiB
    assert (web.kill_timeout, web.ready_timeout) == (5.0, 10.0)
    assert web.env == {"NODE_ENV": "production", "NEXT_TELEMETRY_DISABLED": "1"}
    assert "PM2 cluster mode" in text and "must listen on $PORT" in text

    assert api.command == (
        "venv/bin/gunicorn mysite.wsgi:application --bind 127.0.0.1:$PORT --workers 3"
    )
    assert api.interpreter is None
    assert api.port == 8000
    assert api.env_profiles == {
        "production": {"DJANGO_DEBUG": "0", "ALLOWED_HOSTS": "example.com,www.example.com"}
    }
    assert (api.max_restarts, api.min_uptime, api.restart_delay) == (10, 10.0, 0.1)
    assert api.backoff == "exponential"
    assert api.out_file == corpus / "logs" / "api-out.log"  # PM2: relative to the app's cwd
    assert api.error_file == corpus / "logs" / "api-err.log"

    assert worker.command == "python3 manage.py process_tasks --sleep 5"
    assert worker.instances == 2
    assert worker.cron_restart == "0 3 * * *"
    assert worker.max_memory == 200 * MiB  # 209715200 bytes
    assert worker.watch == (corpus / "backend" / "tasks", corpus / "backend" / "mysite")
    assert worker.ignore_watch == ("node_modules", "*.pyc", "media")
    assert (worker.restart_delay, worker.backoff, worker.min_uptime) == (3.0, "fixed", 2.0)
    assert "increment_var 'WORKER_SLOT'" in text and "KANRI_INSTANCE" in text

    assert mailer.command == "node --max-old-space-size=256 mailer.js"
    assert mailer.instances == max(1, CPUS - 1)
    assert f"{CPUS} CPUs" in text
    assert mailer.port == 4000
    assert mailer.restart == "never"
    assert "apps.web: PM2 cluster mode shared port 3000 between instances" in text

    notes = dropped(text)
    for what in (
        'apps[0].log_date_format "YYYY-MM-DD HH:mm Z": kanri\'s log line format is fixed',
        "apps[0].merge_logs true",
        "apps[2].increment_var",
        "apps[2].watch_delay",
        "apps[3].wait_ready true",
        "apps[3].vizion false",
        "deploy: kanri does not deploy",
    ):
        assert what in notes
    assert "env_production" not in notes


@needs_node
def test_json_and_yaml_give_the_same_file_as_js(corpus: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(corpus)
    outputs = {
        name: imported("pm2", name).replace(name, "FILE")  # notes name their source file
        for name in ("ecosystem.config.js", "ecosystem.config.json", "ecosystem.config.yaml")
    }
    assert outputs["ecosystem.config.json"] == outputs["ecosystem.config.js"]
    assert outputs["ecosystem.config.yaml"] == outputs["ecosystem.config.js"]


def pm2_json(tmp_path: Path, *apps: dict[str, Any]) -> str:
    file = tmp_path / "ecosystem.json"
    file.write_text(json.dumps({"apps": list(apps)}))
    out = tmp_path / "kanri.toml"
    result = run("pm2", str(file), "-o", str(out), "--force")
    assert result.exit_code == 0, result.output
    return out.read_text()


def test_pm2_instances_timings_and_sizes(tmp_path: Path) -> None:
    text = pm2_json(
        tmp_path,
        {"name": "zero", "script": "a.js", "instances": 0},
        {"name": "minus", "script": "a.js", "instances": "-1"},
        {"name": "four", "script": "a.js", "instances": 4, "max_memory_restart": "1G"},
        {"name": "bytes", "script": "a.py", "max_memory_restart": 1536, "min_uptime": 1500},
        {"name": "kb", "script": "a.sh", "max_memory_restart": "512K", "kill_timeout": 1600},
        {"name": "bin", "script": "./server", "interpreter": "none", "args": "--port=9000"},
        {"name": "bun", "script": "index.ts", "interpreter": "bun", "interpreter_args": "--smol"},
        {"name": "npm", "script": "npm", "args": "run start:prod", "autorestart": True},
        {"name": "never", "script": "a.js", "stop_exit_codes": [0]},
        {"name": "cron6", "script": "a.js", "cron_restart": "0 30 4 * * *", "watch": True},
        {"name": "badcron", "script": "a.js", "cron_restart": "every day", "foo": 1},
    )
    config = materialize(text, tmp_path)
    apps = config.apps
    assert apps["zero"].instances == CPUS
    assert apps["minus"].instances == max(1, CPUS - 1)
    assert apps["four"].instances == 4 and apps["four"].max_memory == 1024**3
    assert apps["bytes"].command == "python3 a.py"
    assert (apps["bytes"].max_memory, apps["bytes"].min_uptime) == (1536, 1.5)
    assert apps["kb"].command == "bash a.sh"
    assert (apps["kb"].max_memory, apps["kb"].kill_timeout) == (512 * 1024, 1.6)
    assert apps["bin"].command == "./server --port=$PORT" and apps["bin"].port == 9000
    assert (apps["bun"].command, apps["bun"].interpreter) == ("index.ts", "bun --smol")
    assert apps["npm"].command == "npm run start:prod" and apps["npm"].restart == "always"
    assert apps["never"].restart == "on-failure"
    assert apps["cron6"].cron_restart == "30 4 * * *" and apps["cron6"].watch is True
    assert apps["badcron"].cron_restart is None
    notes = dropped(text)
    assert 'apps[10].cron_restart "every day"' in notes
    assert "apps[10].foo 1: not a PM2 option kanri knows" in notes


def test_pm2_odd_names_and_env_still_give_valid_toml(tmp_path: Path) -> None:
    text = pm2_json(
        tmp_path,
        {
            "name": "My App (v2)",
            "script": "server.js",
            "args": ["--title", 'say "hi"', "naïve"],
            "env": {"QUOTE": 'a "b" \\ c', "BAD-NAME": "x", "NESTED": {"a": 1}, "ON": True},
            "env_staging": {"PORT": 5000, "LEVEL": 3},
        },
        {"name": "My App (v2)", "script": "server.js"},
    )
    config = materialize(text, tmp_path)
    assert set(config.apps) == {"My-App-v2", "My-App-v2-2"}
    app = config.apps["My-App-v2"]
    assert app.command == "node server.js --title 'say \"hi\"' naïve"
    assert app.env == {"QUOTE": 'a "b" \\ c', "ON": "true"}
    assert app.env_profiles == {"staging": {"LEVEL": "3"}}
    notes = dropped(text)
    assert "apps[0].env.BAD-NAME: not a variable name" in notes
    assert "apps[0].env_staging.PORT 5000: kanri sets PORT for every instance" in notes
    assert "name 'My App (v2)' is 'My-App-v2' in kanri" in text


@needs_node
def test_a_js_file_that_throws_gives_node_error_and_no_output(corpus: Path) -> None:
    out = corpus / "kanri.toml"
    result = run("pm2", str(corpus / "broken" / "throws.config.js"), "-o", str(out))
    assert isinstance(result.exception, SourceError)
    message = str(result.exception)
    assert "node could not evaluate the file" in message
    assert "Error: API_URL is not set" in message
    assert "throws.config.js:3" in message  # node's frame names the line that threw
    assert not out.exists()

    result = run("pm2", str(corpus / "broken" / "syntax.config.js"))
    assert isinstance(result.exception, SourceError)
    assert "syntax.config.js:3" in str(result.exception)
    assert "SyntaxError" in str(result.exception)


def test_without_node_a_js_file_is_refused_with_what_to_do(corpus: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("PATH", str(corpus / "no-bin-here"))
    result = run("pm2", str(corpus / "ecosystem.config.js"))
    assert isinstance(result.exception, SourceError)
    assert "`node` was not found on PATH" in str(result.exception)
    assert "ecosystem.json" in str(result.exception)


@pytest.mark.parametrize(
    ("name", "where", "what"),
    [
        ("bad_indent.yaml", "bad_indent.yaml:4", "unexpected indentation"),
        ("anchor.yaml", "anchor.yaml:1", "anchors are not supported"),
        ("missing_comma.json", "missing_comma.json:4", "JSON syntax error"),
    ],
)
def test_malformed_pm2_files_name_the_line(name: str, where: str, what: str) -> None:
    result = run("pm2", str(CORPUS / "broken" / name))
    assert isinstance(result.exception, SourceError)
    assert where in str(result.exception) and what in str(result.exception)


def test_missing_input_and_existing_output(tmp_path: Path) -> None:
    result = run("nginx", str(tmp_path / "nope.conf"))
    assert isinstance(result.exception, SourceError)
    assert "does not exist" in str(result.exception)

    out = tmp_path / "kanri.toml"
    out.write_text("# mine\n")
    conf = CORPUS / "classic" / "nginx.conf"
    result = run("nginx", str(conf), "-o", str(out))
    assert isinstance(result.exception, OutputExistsError)
    assert "--force" in str(result.exception)
    assert out.read_text() == "# mine\n"
    assert run("nginx", str(conf), "-o", str(out), "--force").exit_code == 0
    assert out.read_text().startswith("# kanri.toml written by `kanri import`")


# -- nginx ----------------------------------------------------------------------------------


def routes_by(config: Config) -> dict[tuple[str | None, str, bool], Any]:
    return {(r.host, r.path, r.exact): r for r in config.routes}


def test_nginx_classic_nextjs_django_layout(tmp_path: Path) -> None:
    text = imported("nginx", str(CORPUS / "nginx" / "nginx.conf"))
    config = materialize(text, tmp_path)
    srv = tmp_path / "srv"

    proxy = config.proxy
    assert proxy is not None
    assert proxy.listen == ("0.0.0.0:80", "[::]:80", "0.0.0.0:8081")
    assert proxy.client_max_body_size == 20 * MiB
    assert (proxy.read_timeout, proxy.connect_timeout) == (120.0, 5.0)
    assert (proxy.keepalive_timeout, proxy.client_header_timeout) == (65.0, 30.0)
    assert proxy.max_connections == 1024
    assert proxy.upstream_keepalive == 512  # nginx's `keepalive 64` is below kanri's default
    assert proxy.workers == CPUS and proxy.server is None

    routes = routes_by(config)
    for host in ("example.com", "www.example.com"):  # one route per server_name
        static = routes[(host, "/static/", False)]
        assert static.static == srv / "mysite/backend/staticfiles" and static.cache == "30d"
        assert routes[(host, "/_next/static/", False)].cache == "immutable"
        assert routes[(host, "/media/", False)].cache is None
        assert routes[(host, "/api/health/", True)].app == "api"
        assert routes[(host, "/api/", False)].app == "api"
        assert routes[(host, "/admin/", False)].app == "api"
        assert routes[(host, "/", False)].app == "nextjs"
    spa = routes[("app.example.com", "/", False)]
    assert (spa.static, spa.fallback) == (srv / "spa/dist", "/index.html")
    assets = routes[("app.example.com", "/assets/", False)]
    assert (assets.static, assets.cache) == (srv / "spa/dist/assets", "1y")  # root + location
    assert len(config.routes) == 16

    # each upstream or address became one placeholder, with the original servers in a comment
    assert set(config.apps) == {"api", "nextjs"}
    assert config.apps["nextjs"].instances == 2
    assert "to 127.0.0.1:3000, 127.0.0.1:3001" in text
    assert text.count(f'command = "{PLACEHOLDER}"') == 2
    assert "apps.nextjs.command: the app nginx reached at 127.0.0.1:3000, 127.0.0.1:3001" in text

    notes = dropped(text)
    for line in (
        "conf.d/mysite.conf:16: listen 443 ssl http2: kanri serves plain HTTP; terminate TLS",
        "conf.d/mysite.conf:20: ssl_certificate /etc/letsencrypt",
        "nginx/nginx.conf:28: gzip on: kanri does not compress responses on the fly",
        "conf.d/mysite.conf:62: location ~* \\.(?:ico|png|svg|webmanifest)$: kanri routes match"
        " path prefixes, not regular expressions",
        "conf.d/mysite.conf:12: return 301 https://$host$request_uri: kanri has no rewrites",
        'conf.d/mysite.conf:58: auth_basic "Staff only": kanri has no authentication',
        "conf.d/mysite.conf:49: limit_req zone=api burst=20 nodelay",
        "conf.d/mysite.conf:23: add_header Strict-Transport-Security",
        "conf.d/mysite.conf:30,44: access_log off",  # one line for both places
    ):
        assert line in notes, line
    assert "conf.d/mysite.conf:5: keepalive 64: kanri's `upstream_keepalive` default keeps" in text
    assert "snippets/proxy.conf:1: proxy_set_header Host $host" in text  # handled, not dropped
    assert "proxy_set_header" not in notes
    assert "nginx also listened with TLS on 0.0.0.0:443, [::]:443" in text


def nginx_conf(tmp_path: Path, body: str) -> str:
    conf = tmp_path / "site.conf"
    conf.write_text(body)
    return imported("nginx", str(conf))


def test_nginx_proxy_pass_uri_and_root_semantics(tmp_path: Path) -> None:
    text = nginx_conf(
        tmp_path,
        """
        server {
            listen 127.0.0.1:8080;
            server_name .example.org;
            root /srv/www;
            location /v1/ { proxy_pass http://127.0.0.1:9000/; }
            location /v2/ { proxy_pass http://127.0.0.1:9000/v2/; }
            location /v3/ { proxy_pass http://127.0.0.1:9000/other/; }
            location ^~ /assets/ { expires 12M; }
            location /docs/ { index start.html; try_files $uri $uri/ /docs/404.html; }
            location = /robots.txt { }
            location @fallback { proxy_pass http://127.0.0.1:9000; }
        }
        """,
    )
    config = materialize(text, tmp_path)
    srv = tmp_path / "srv"
    routes = routes_by(config)
    for host in ("example.org", "*.example.org"):  # ".example.org" is both
        assert routes[(host, "/v1/", False)].strip_prefix is True
        assert routes[(host, "/v2/", False)].strip_prefix is False
        assert routes[(host, "/v3/", False)].strip_prefix is False
        assets = routes[(host, "/assets/", False)]
        assert assets.static == srv / "www/assets" and assets.cache == "360d"  # 12 months
        docs = routes[(host, "/docs/", False)]
        assert (docs.static, docs.index, docs.fallback) == (
            srv / "www/docs",
            "start.html",
            "/404.html",
        )
        assert routes[(host, "/", False)].static == srv / "www"  # the server's root
    assert config.proxy is not None and config.proxy.listen == ("127.0.0.1:8080",)
    assert len(config.apps) == 1  # one address, one placeholder
    notes = dropped(text)
    assert "kanri can only strip the prefix (strip_prefix), not replace /v3/ with /other/" in notes
    assert "location = /robots.txt" in notes
    assert "location @fallback: kanri has no named locations" in notes


def test_nginx_keepalive_above_kanris_default_is_kept(tmp_path: Path) -> None:
    body = """
        upstream app { server 127.0.0.1:9000; keepalive %d; }
        server { listen 127.0.0.1:8080; location / { proxy_pass http://app; } }
    """
    big = materialize(nginx_conf(tmp_path, body % 2048), tmp_path / "big")
    assert big.proxy is not None and big.proxy.upstream_keepalive == 2048
    text = nginx_conf(tmp_path, body % 16)
    small = materialize(text, tmp_path / "small")
    assert small.proxy is not None and small.proxy.upstream_keepalive == 512
    (note,) = [line for line in text.splitlines() if "keepalive 16" in line]
    assert note.startswith("# done by kanri without configuration: ")
    assert "site.conf:2: keepalive 16: kanri's `upstream_keepalive` default keeps up to 512" in note


@pytest.mark.parametrize(
    ("name", "where", "what"),
    [
        ("unclosed.conf", "unclosed.conf:6", 'a block is missing its "}"'),
        ("missing_semicolon.conf", "missing_semicolon.conf:6", '"proxy_pass" needs a ";"'),
        ("stray_brace.conf", "stray_brace.conf:4", 'unexpected "}"'),
        ("unclosed_quote.conf", "unclosed_quote.conf:3", 'unclosed " quote'),
        ("location_without_block.conf", "block.conf:3", 'directive "location" has no opening'),
        ("only_regex.conf", "only_regex.conf", "nothing to import: no server block has a location"),
    ],
)
def test_nginx_syntax_errors_name_the_line(
    tmp_path: Path, name: str, where: str, what: str
) -> None:
    out = tmp_path / "kanri.toml"
    result = run("nginx", str(CORPUS / "broken" / name), "-o", str(out))
    assert isinstance(result.exception, SourceError)
    assert where in str(result.exception) and what in str(result.exception)
    if ":" in where:
        assert result.exception.line == int(where.rsplit(":", 1)[1])
    assert not out.exists()


def test_nginx_errors_inside_an_included_file_name_that_file(tmp_path: Path) -> None:
    (tmp_path / "sites").mkdir()
    (tmp_path / "sites" / "a.conf").write_text("server {\n  listen 80;\n  location / {\n}\n")
    (tmp_path / "nginx.conf").write_text("http {\n  include sites/*.conf;\n}\n")
    result = run("nginx", str(tmp_path / "nginx.conf"))
    assert isinstance(result.exception, SourceError)
    assert str(result.exception).startswith("sites/a.conf:4:")


# -- both at once ---------------------------------------------------------------------------


@needs_node
def test_joined_import_matches_nginx_targets_to_pm2_apps_by_port(corpus: Path) -> None:
    out = corpus / "kanri.toml"
    nginx = corpus / "nginx" / "nginx.conf"
    result = run("pm2", str(corpus / "ecosystem.config.js"), "--nginx", str(nginx), "-o", str(out))
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert PLACEHOLDER not in text  # every backend was a PM2 app
    config = materialize(text, corpus)
    routes = routes_by(config)
    assert routes[("example.com", "/", False)].app == "web"  # upstream 3000/3001 -> web on 3000
    assert routes[("example.com", "/api/", False)].app == "api"  # 127.0.0.1:8000 -> --bind :8000
    assert routes[("www.example.com", "/api/health/", True)].app == "api"
    assert set(config.apps) == {"web", "api", "worker", "mailer"}
    # behind the proxy, kanri chooses the ports; the args use $PORT
    assert config.apps["web"].port is None and config.apps["api"].port is None
    assert config.apps["api"].command.endswith("--bind 127.0.0.1:$PORT --workers 3")
    assert config.apps["mailer"].port == 4000  # not behind nginx: keeps its port
    assert text.count("the proxy listens where nginx did") == 2
    assert "upstream nextjs also listed 127.0.0.1:3001, where no PM2 app listened" in text


@needs_node
def test_joined_upstream_of_instances_with_increment_var(corpus: Path) -> None:
    joined = corpus / "joined"
    text = imported(
        "pm2", str(joined / "ecosystem.config.js"), "--nginx", str(joined / "nginx.conf")
    )
    config = materialize(text.replace('"tests/', '"'), corpus)
    frontend = config.apps["frontend"]
    assert (frontend.command, frontend.instances, frontend.port) == ("npm start", 2, None)
    assert frontend.balance == "least_conn"
    assert config.apps["django"].command == "gunicorn mysite.wsgi -b 127.0.0.1:$PORT --workers 2"
    routes = routes_by(config)
    assert routes[(None, "/", False)].app == "frontend"  # server_name _ -> no host
    assert routes[(None, "/api/", False)].app == "django"  # localhost:8000
    assert routes[(None, "/static/", False)].static == corpus / "srv/mysite/backend/static"
    assert config.proxy is not None
    assert (config.proxy.max_fails, config.proxy.fail_timeout) == (3, 30.0)
    assert config.proxy.write_timeout == 90.0  # nginx "90" is seconds
    assert "To check" not in text and PLACEHOLDER not in text


@needs_node
def test_the_classic_files_pass_kanri_check(corpus: Path) -> None:
    from kanri.cli import main

    classic = corpus / "classic"
    out = classic / "kanri.toml"
    result = run(
        "pm2",
        str(classic / "ecosystem.config.js"),
        "--nginx",
        str(classic / "nginx.conf"),
        "-o",
        str(out),
    )
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert 'command = "node node_modules/next/dist/bin/next start"' in text
    assert "next listens on port 3000 unless PORT is set" in text
    out.write_text(text.replace(PLACEHOLDER, "gunicorn mysite.wsgi --bind 127.0.0.1:$PORT"))
    check = CliRunner().invoke(main, ["check", "-c", str(out)])
    assert check.exit_code == 0, check.output
    config = load_config(out)
    routes = routes_by(config)
    assert routes[("example.com", "/", False)].app == "next-app"
    assert routes[("example.com", "/api/", False)].app == "api"
    assert config.apps["next-app"].instances == CPUS


# -- units and the YAML reader --------------------------------------------------------------


def test_unit_conversions() -> None:
    assert [nginx_time(t) for t in ("60", "60s", "1m", "1h30m", "500ms", "1M", "1y")] == [
        60,
        60,
        60,
        5400,
        0.5,
        30 * 86400,
        365 * 86400,
    ]
    assert [nginx_size(s) for s in ("20m", "20M", "512k", "1g", "1024")] == [
        20 * MiB,
        20 * MiB,
        512 * 1024,
        1024**3,
        1024,
    ]
    assert [pm2_duration(v) for v in (1000, 1500, 60000, "5s", "2000", 0.5)] == [
        "1s",
        "1500ms",
        "1m",
        "5s",
        "2s",
        "0.5ms",
    ]
    assert [pm2_memory(v) for v in ("300M", "1G", "1.5G", 1048576, "100")] == [
        "300MiB",
        "1GiB",
        "1536MiB",
        "1MiB",
        "100B",
    ]
    for bad in ("", "1x", "m"):
        with pytest.raises(ValueError):
            nginx_time(bad)


def test_yaml_subset_reads_the_shapes_pm2_files_use() -> None:
    text = """\
---
# comment
apps:
- name: "web # not a comment"
  args: [start, '-p', "3000"]   # flow list
  env: {A: 1, B: 'it''s', C: "tab\\there", D: ~, E: 1.5, F: yes}
  watch:
    - src
  description: |
    two
    lines
  empty:
- name: worker
  instances: -1
  nested:
    - - a
      - b
"""
    assert load_yaml(text, "x.yaml") == {
        "apps": [
            {
                "name": "web # not a comment",
                "args": ["start", "-p", "3000"],
                "env": {"A": 1, "B": "it's", "C": "tab\there", "D": None, "E": 1.5, "F": "yes"},
                "watch": ["src"],
                "description": "two\nlines\n",
                "empty": None,
            },
            {"name": "worker", "instances": -1, "nested": [["a", "b"]]},
        ]
    }
