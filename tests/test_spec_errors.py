"""Bad workload and deployment files: one line naming the file, the field and what was expected; exit 2."""

import subprocess
import sys
import textwrap

import pytest

from infercost.cli import main

GOOD_WORKLOAD = """
name: w
prompts: {source: inline, items: ["hello"]}
traffic: {arrival: poisson, rate: 1, num_requests: 2}
"""

WORKLOAD_CASES = {
    "unknown-field": ("name: w\nprompts: {source: inline, items: [hi]}\ntraffic: {rate: 1, num_requests: 1}\n"
                      "trafic: {}\n", "trafic: unknown field"),
    "negative-rate": ("name: w\nprompts: {source: inline, items: [hi]}\ntraffic: {rate: -1, num_requests: 1}\n",
                      "traffic.rate: Input should be greater than 0 (got -1)"),
    "rate-missing": ("name: w\nprompts: {source: inline, items: [hi]}\ntraffic: {arrival: gamma, num_requests: 1}\n",
                     "traffic: arrival 'gamma' needs 'rate'"),
    "closed-loop-without-users": ("name: w\nprompts: {source: inline, items: [hi]}\n"
                                  "traffic: {arrival: concurrency, num_requests: 1}\n", "needs 'concurrency'"),
    "no-length": ("name: w\nprompts: {source: inline, items: [hi]}\ntraffic: {rate: 1}\n",
                  "give 'num_requests' or 'duration_s'"),
    "slo-not-a-number": ("name: w\nprompts: {source: inline, items: [hi]}\ntraffic: {rate: 1, num_requests: 1}\n"
                         "slo: {ttft_ms: {p95: fast}}\n", "slo.ttft_ms: 'p95' must be a positive number"),
    "slo-bad-stat": ("name: w\nprompts: {source: inline, items: [hi]}\ntraffic: {rate: 1, num_requests: 1}\n"
                     "slo: {e2e_ms: {median: 3}}\n", "slo.e2e_ms: unknown statistic 'median'"),
    "bad-source": ("name: w\nprompts: {source: csv, path: x.csv}\ntraffic: {rate: 1, num_requests: 1}\n",
                   "prompts.source: expected one of 'inline', 'jsonl', 'synthetic', 'dataset', 'sessions', 'trace' (got 'csv')"),
    "uniform-without-bounds": ("name: w\nprompts: {source: synthetic, input_tokens: {dist: uniform}, "
                               "output_tokens: {mean: 4}}\ntraffic: {rate: 1, num_requests: 1}\n",
                               "prompts.input_tokens: 'uniform' needs 'min' and 'max'"),
    "item-without-text": ("name: w\nprompts: {source: inline, items: [{reference: x}]}\n"
                          "traffic: {rate: 1, num_requests: 1}\n", "prompts.items[0]: each prompt needs exactly one"),
    "bad-name": ("name: 'my workload!'\nprompts: {source: inline, items: [hi]}\ntraffic: {rate: 1, num_requests: 1}\n",
                 "name: String should match pattern"),
    "not-yaml": ("name: w\nprompts: [unclosed\n", "line "),
    "top-level-list": ("- a\n- b\n", "expected a mapping at the top level"),
    "jsonl-missing": ("name: w\nprompts: {source: jsonl, path: nowhere.jsonl}\ntraffic: {rate: 1, num_requests: 1}\n",
                      "nowhere.jsonl: prompts.path: file not found"),
}

DEPLOYMENT_CASES = {
    "unknown-engine": ("engine: tgi\nmodel: m\n", "engine: expected one of 'vllm', 'transformers', 'openai' (got 'tgi')"),
    "zero-seqs": ("engine: vllm\nmodel: m\nmax_num_seqs: 0\n", "max_num_seqs: Input should be greater than 0 (got 0)"),
    "memory-share": ("engine: vllm\nmodel: m\ngpu_memory_utilization: 1.5\n", "gpu_memory_utilization: Input should"),
    "vllm-field-on-openai": ("engine: openai\nmodel: m\nbase_url: http://x/v1\nmax_num_seqs: 4\n",
                             "max_num_seqs: unknown field"),
    "key-in-file": ("engine: openai\nmodel: m\nbase_url: http://x/v1\napi_key_env: sk-live-abc123\n",
                    "api_key_env: expected the NAME of an environment variable"),
    "secret-header": ("engine: openai\nmodel: m\nbase_url: http://x/v1\nheaders: {Authorization: Bearer x}\n",
                      "headers: header 'Authorization' would put a secret in a file"),
    "bad-url": ("engine: openai\nmodel: m\nbase_url: localhost:8000\n", "base_url: String should match pattern"),
    "no-model": ("engine: vllm\n", "model: required field is missing"),
    "unknown-quantisation": ("engine: transformers\nmodel: m\nquantization: gguf-q4\n",
                             "quantization: Input should be 'none', 'bnb-int8'"),
}


def _check(capsys, argv, path, expected):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.count("\n") == 0, err
    assert err.startswith(f"infercost: error: {path}"), err
    assert expected in err, err
    assert "Traceback" not in err


@pytest.mark.parametrize("case", sorted(WORKLOAD_CASES))
def test_bad_workload(case, tmp_path, capsys):
    text, expected = WORKLOAD_CASES[case]
    path = tmp_path / f"{case}.yaml"
    path.write_text(text)
    shown = str(tmp_path / "nowhere.jsonl") if case == "jsonl-missing" else str(path)
    _check(capsys, ["validate", str(path)], shown, expected)


@pytest.mark.parametrize("case", sorted(DEPLOYMENT_CASES))
def test_bad_deployment(case, tmp_path, capsys):
    text, expected = DEPLOYMENT_CASES[case]
    workload = tmp_path / "w.yaml"
    workload.write_text(GOOD_WORKLOAD)
    path = tmp_path / f"{case}.yaml"
    path.write_text(text)
    code = main(["validate", str(workload), "--deployment", str(path)])
    out = capsys.readouterr()
    assert code == 2
    err = out.err.strip()
    assert err.count("\n") == 0 and err.startswith(f"infercost: error: {path}: ") and expected in err, err


def test_bad_jsonl_line_names_file_and_line(tmp_path, capsys):
    (tmp_path / "p.jsonl").write_text('{"prompt": "ok"}\n{"prompt": "ok", "messages": []}\n')
    (tmp_path / "w.yaml").write_text("name: w\nprompts: {source: jsonl, path: p.jsonl}\n"
                                     "traffic: {rate: 1, num_requests: 1}\n")
    _check(capsys, ["validate", str(tmp_path / "w.yaml")], f"{tmp_path / 'p.jsonl'}: line 2", "exactly one of")


def test_missing_file_and_bad_override(tmp_path, capsys):
    _check(capsys, ["validate", str(tmp_path / "absent.yaml")], str(tmp_path / "absent.yaml"), "file not found")
    (tmp_path / "w.yaml").write_text(GOOD_WORKLOAD)
    assert main(["run", str(tmp_path / "w.yaml"), "--set", "max_num_seqs"]) == 2
    assert "--set: expected KEY=VALUE, e.g. --set max_num_seqs=8 ('max_num_seqs' has no '=')" in capsys.readouterr().err
    assert main(["run", str(tmp_path / "w.yaml"), "--set", "max_num_seqs=-3"]) == 2
    # A bad value given on the command line blames the option, not the (default) deployment.
    assert "error: --set max_num_seqs: Input should be greater than 0" in capsys.readouterr().err


def test_missing_api_key_variable_is_an_input_error(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("INFERCOST_TEST_KEY", raising=False)
    (tmp_path / "w.yaml").write_text(GOOD_WORKLOAD)
    (tmp_path / "d.yaml").write_text("engine: openai\nmodel: m\nbase_url: http://127.0.0.1:9/v1\n"
                                     "api_key_env: INFERCOST_TEST_KEY\n")
    code = main(["run", str(tmp_path / "w.yaml"), "-d", str(tmp_path / "d.yaml"), "--results-dir",
                 str(tmp_path / "res"), "-q"])
    assert code == 2
    assert "api_key_env: environment variable INFERCOST_TEST_KEY is not set" in capsys.readouterr().err


def test_process_exit_status_and_no_traceback(tmp_path):
    """The real console entry point, as a user runs it."""
    path = tmp_path / "w.yaml"
    path.write_text(textwrap.dedent(WORKLOAD_CASES["negative-rate"][0]))
    proc = subprocess.run([sys.executable, "-m", "infercost", "run", str(path)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"infercost: error: {path}: traffic.rate: Input should be greater than 0 (got -1)"
    assert proc.stdout == ""


def test_schema_export_lists_fields(capsys):
    import json

    assert main(["schema", "workload"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert {"name", "prompts", "traffic", "slo", "demand", "tags"} <= set(schema["properties"])
    assert main(["schema", "deployment"]) == 0
    assert "VllmDeployment" in capsys.readouterr().out
