"""No secret leaves the process. A key is planted in the environment and in a URL's credentials and query string;
runs, a capacity search, `show` and a priced FOCUS report are made against the stub server (a fake, named as such:
it answers some requests with a 401 whose body echoes the key it was sent, as some hosted APIs do, which a real
local server cannot be made to do), and every file they write and everything they print is searched for it."""

import base64
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from infercost.cli import main
from infercost.loadgen.stub_server import free_port, stub_server
from infercost.redact import looks_like_secret, redact_text, redact_url, redacted_command
from infercost.spec.loader import deployment_adapter, validate

WORKLOAD = ("name: w\nprompts: {source: inline, items: [a, b, c]}\n"
            "traffic: {arrival: constant, rate: 40, num_requests: 12}\nslo: {max_error_rate: 1.0}\n")


def infercost(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "infercost", *args], capture_output=True, text=True, timeout=300,
                          env=env)


def texts_under(root: Path):
    """Every file's bytes as text, and every parquet's values (compressed columns would hide a plain grep)."""
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        yield path, path.read_bytes().decode("utf-8", "replace")
        if path.suffix == ".parquet":
            yield path, pd.read_parquet(path).to_csv()


def test_a_planted_key_reaches_no_output(tmp_path):
    key = "sk-planted-" + secrets.token_hex(16)
    user, password, query = "planteduser", "pw" + secrets.token_hex(8), "qk" + secrets.token_hex(8)
    basic = base64.b64encode(f"{user}:{password}".encode()).decode()
    planted = [key, password, query, basic]
    env = dict(os.environ, INFERCOST_PLANTED_KEY=key, COLUMNS="300")
    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    (inputs / "w.yaml").write_text(WORKLOAD)
    terminal = []
    with stub_server(tokens=4, echo_key_every=3, truncate_every=5) as url:
        host = url.removeprefix("http://")
        (inputs / "key.yaml").write_text(f"engine: openai\nmodel: stub\nbase_url: {url}?api-key={query}\n"
                                         "api_key_env: INFERCOST_PLANTED_KEY\n")
        (inputs / "userinfo.yaml").write_text(f"engine: openai\nmodel: stub\nbase_url: http://{user}:{password}@"
                                              f"{host}?api-key={query}\n")
        runs = [
            ["run", str(inputs / "w.yaml"), "-d", str(inputs / "key.yaml"), "--results-dir", str(out / "runs"), "-q"],
            ["run", str(inputs / "w.yaml"), "-d", str(inputs / "key.yaml"), "--results-dir", str(out / "runs"), "-q",
             "--json"],
            ["run", str(inputs / "w.yaml"), "-d", str(inputs / "userinfo.yaml"), "--results-dir", str(out / "runs"),
             "-q"],
            # the URL with its credentials given on the command line: the manifest records the command
            ["run", str(inputs / "w.yaml"), "-d", str(inputs / "key.yaml"), "--set",
             f"base_url=http://{host}?api-key={query}", "--results-dir", str(out / "runs"), "-q"],
            ["capacity", str(inputs / "w.yaml"), "-d", str(inputs / "key.yaml"), "--mode", "concurrency", "--start",
             "2", "--max-probes", "2", "--max-load", "4", "--requests", "6", "--results-dir", str(out / "capacity"),
             "-q"],
        ]
        for args in runs:
            proc = infercost(*args, env=env)
            assert "Traceback" not in proc.stderr, proc.stderr
            terminal.append((args, proc.stdout + proc.stderr))
    run_dirs = sorted((out / "runs").iterdir())
    capacity_dir = next((out / "capacity").iterdir())
    assert len(run_dirs) == 4
    for args in (["show", str(run_dirs[0])],
                 ["cost", str(capacity_dir), "--api", "openai/gpt-4o-mini", "--top", "1", "--focus",
                  str(out / "focus.csv")],
                 ["cost", str(capacity_dir), "--top", "1", "--json"]):
        proc = infercost(*args, env=env)
        assert proc.returncode == 0, proc.stderr
        terminal.append((args, proc.stdout + proc.stderr))

    for args, text in terminal:
        for secret in planted:
            assert secret not in text, (args, text)
    files = list(texts_under(out))
    assert any(p.name == "requests.parquet" for p, _ in files) and (out / "focus.csv").is_file()
    for path, text in files:
        for secret in planted:
            assert secret not in text, path
    # the 401 bodies that echoed the key were recorded, redacted
    echoed = [t for p, t in files if p.name == "summary.json" and "Incorrect API key provided: <redacted>" in t]
    assert echoed
    assert any("Incorrect API key provided: Basic <redacted>" in t for _, t in files)
    manifest = (run_dirs[0] / "manifest.json").read_text()
    assert f'"base_url": "{url}"' in manifest


@pytest.mark.parametrize("value", ["sk-proj-AbCdEfGh0123456789XyZ", "hf_AbCdEfGhIjKlMnOpQrStUv",
                                   "0123456789abcdef0123456789abcdef", "Bearer abcdefgh12345678"])
def test_a_key_written_as_api_key_env_is_refused_without_echo(tmp_path, capsys, value):
    (tmp_path / "w.yaml").write_text(WORKLOAD)
    (tmp_path / "d.yaml").write_text(f"engine: openai\nmodel: m\nbase_url: http://127.0.0.1:{free_port()}/v1\n"
                                     f"api_key_env: '{value}'\n")
    for args in (["validate", str(tmp_path / "w.yaml"), "-d", str(tmp_path / "d.yaml")],
                 ["run", str(tmp_path / "w.yaml"), "-d", str(tmp_path / "d.yaml"), "--results-dir",
                  str(tmp_path / "res"), "-q"],
                 ["run", str(tmp_path / "w.yaml"), "-d", str(tmp_path / "d.yaml"), "--set", f"api_key_env={value}",
                  "--results-dir", str(tmp_path / "res"), "-q"]):
        assert main(args) == 2
        out = capsys.readouterr()
        assert value not in out.out + out.err and value.split()[-1] not in out.out + out.err
        err = out.err.strip().splitlines()[-1]
        assert err.startswith("infercost: error: ") and " api_key_env: " in err and "NAME" in err, err
    assert not (tmp_path / "res").exists()  # nothing started, nothing recorded


def test_bad_values_near_secrets_are_not_echoed():
    cases = {
        # a wrong type for the variable name: not echoed at all
        "api_key_env": {"engine": "openai", "model": "m", "base_url": "http://h/v1", "api_key_env": "MY-KEY"},
        # a URL with credentials that fails validation: echoed without them
        "base_url": {"engine": "openai", "model": "m", "base_url": "http://u:hunter2pw@h:99999/v1?api-key=qk9876"},
    }
    for field, data in cases.items():
        with pytest.raises(Exception) as info:
            validate(deployment_adapter(), data, "d.yaml")
        message = str(info.value)
        assert f"d.yaml: {field}: " in message
        for secret in ("MY-KEY", "hunter2pw", "qk9876"):
            assert secret not in message, message


def test_a_recorded_deployment_has_no_url_credentials():
    d = validate(deployment_adapter(), {"engine": "openai", "model": "m", "headers": {"X-Trace": "abc",
                 "X-Other": "sk-abcdefghijklmnopqrstu"},
                 "base_url": "https://u:pw@api.example.com:8443/v1?api-key=qk9876#frag"}, "d.yaml")
    for dumped in (d.model_dump(), d.model_dump(mode="json"), d.model_dump_json()):
        text = str(dumped)
        assert "qk9876" not in text and "u:pw" not in text and "sk-abcdef" not in text
    assert d.model_dump()["base_url"] == "https://api.example.com:8443/v1"
    assert d.model_dump()["headers"] == {"X-Trace": "abc", "X-Other": "<redacted>"}
    assert d.base_url.startswith("https://u:pw@")  # the engine itself still uses them


def test_redaction_rules():
    assert redact_url("http://u:p@[::1]:8000/v1?k=v") == "http://[::1]:8000/v1"
    assert redact_url("http://u:p@h:99999/v1?k=v") == "http://h:99999/v1"  # unparseable port: redacted as text
    text = ('HTTP 401: {"message": "Incorrect API key provided: sk-live-0123456789abcdefXYZ", '
            '"hint": "Authorization: Bearer tok_0123456789", "url": "http://a:b@h/v1?api-key=zz12", '
            '"api_key": "plainsecret"} configured-secret-value')
    red = redact_text(text, ["configured-secret-value"])
    for secret in ("sk-live-0123456789abcdefXYZ", "tok_0123456789", "a:b@", "zz12", "plainsecret",
                   "configured-secret-value"):
        assert secret not in red, red
    assert redact_text("stream ended without finish_reason") == "stream ended without finish_reason"
    assert redact_text("token expired; basic usage; key: value") == "token expired; basic usage; key: value"
    for name in ("OPENAI_API_KEY", "INFERCOST_TEST_API_KEY", "AZURE_OPENAI_KEY_EASTUS2", "Meta-Llama-3.1-8B-Instruct",
                 "smollm2-135m-instruct", "http://127.0.0.1:8000/v1"):
        assert not looks_like_secret(name), name
    for key in ("sk-abcdef1234567890", "hf_AbCdEfGhIjKlMnOp", "AKIAABCDEFGHIJKLMNOP", "AbCdEf1234567890XyZwvu"):
        assert looks_like_secret(key), key
    assert redacted_command(["infercost", "run", "--set", "base_url=http://u:pw@h/v1?k=1", "-s",
                             "api_key_env=sk-abc1234567890abcdef"]) == (
        "infercost run --set base_url=http://<redacted>@h/v1?<redacted> -s api_key_env=<redacted>")
