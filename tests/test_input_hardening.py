"""The input layer (infercost.spec.files and the readers built on it): every file the project reads is bounded in
size, depth and alias expansion, refuses duplicate keys, checks its encoding, and answers a typo with the nearest
valid key. Each bad input ends as one line naming the file and the line or field; exit status 2; no traceback."""

from __future__ import annotations

import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

import fuzz_inputs
from infercost.cli import main
from infercost.api import study_of
from infercost.api import study_workload
from infercost.cost.catalog import load_catalog
from infercost.errors import InputError
from infercost.spec import files
from infercost.spec.files import MAX_YAML_DEPTH, MAX_YAML_NODES, parse_yaml
from infercost.spec.loader import load_deployment, load_workload, read_yaml
from infercost.workload import build_requests

ROOT = Path(__file__).resolve().parents[1]
HEAD = "name: w\nprompts: {source: inline, items: [hi]}\ntraffic: {rate: 1, num_requests: 1}\n"
JSONL_WORKLOAD = "name: w\nprompts: {source: jsonl, path: p.jsonl}\ntraffic: {rate: 1, num_requests: 1}\n"


def _error(fn, *args) -> str:
    with pytest.raises(InputError) as info:
        fn(*args)
    message = str(info.value)
    assert "\n" not in message, message
    return message


def _yaml(tmp_path: Path, text: str | bytes, name: str = "w.yaml") -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def _prompts(tmp_path: Path, data: bytes) -> Path:
    (tmp_path / "p.jsonl").write_bytes(data)
    return _yaml(tmp_path, JSONL_WORKLOAD)


def _validate_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "infercost", "validate", *args], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)


def _one_line_exit_2(proc: subprocess.CompletedProcess, *expected: str) -> None:
    err = proc.stderr.strip()
    assert proc.returncode == 2, (proc.returncode, proc.stdout, err)
    assert err.count("\n") == 0 and "Traceback" not in err, err
    for text in expected:
        assert text in err, err


# ----------------------------------------------------------------------------------------- 1. size and depth


def test_yaml_over_the_size_limit_is_refused_before_parsing(tmp_path):
    # The case: a 2 MB YAML took 31 s and 0.55 GB. It is refused from its size alone.
    path = _yaml(tmp_path, HEAD + "description: |\n" + "  lorem ipsum dolor sit amet\n" * 80_000)
    assert path.stat().st_size > 2_000_000
    started = time.perf_counter()
    message = _error(read_yaml, path)
    assert time.perf_counter() - started < 1
    assert message == f"{path}: 2.2 MiB is over the 1.0 MiB limit for a YAML file"


def test_yaml_just_under_the_size_limit_loads_quickly(tmp_path):
    # Long inline prompts up to the limit are fine, and libyaml's parser keeps them fast.
    item = "  - " + "word " * 200 + "\n"
    items = item * (files.MAX_YAML_BYTES // len(item) - 1)
    path = _yaml(tmp_path, "name: w\nprompts:\n  source: inline\n  items:\n" + items
                 + "traffic: {rate: 1, num_requests: 1}\n")
    started = time.perf_counter()
    assert len(load_workload(path).prompts.items) > 1000
    assert time.perf_counter() - started < 10


@pytest.mark.parametrize("text", [
    "a: " + "[" * 3000 + "]" * 3000 + "\n",  # the 6 KB file that raised RecursionError
    "a: " + "{b: " * 1500 + "1" + "}" * 1500 + "\n",
    "".join(" " * i + f"k{i}:\n" for i in range(200)) + " " * 200 + "v: 1\n",
    "- " * 3000 + "x\n",
], ids=["flow-lists", "flow-maps", "block-maps", "block-lists"])
def test_deep_nesting_is_one_line_not_recursion_error(tmp_path, text):
    path = _yaml(tmp_path, text)
    message = _error(read_yaml, path)
    assert message.startswith(f"{path}: line ")
    assert f"nested more than {MAX_YAML_DEPTH} levels deep" in message or "nesting depth" in message, message


def test_nesting_up_to_the_limit_is_allowed():
    value = parse_yaml("a: " + "[" * (MAX_YAML_DEPTH - 1) + "]" * (MAX_YAML_DEPTH - 1), "s")["a"]  # 64 levels
    for _ in range(MAX_YAML_DEPTH - 2):
        value = value[0]
    assert value == []
    with pytest.raises(InputError, match="line 1: nested more than 64 levels deep"):
        parse_yaml("a: " + "[" * MAX_YAML_DEPTH + "]" * MAX_YAML_DEPTH, "s")


def test_prompt_line_over_the_limit_is_refused(tmp_path):
    workload = _prompts(tmp_path, b'{"prompt": "ok"}\n{"prompt": "' + b"x" * files.MAX_JSONL_LINE_BYTES + b'"}\n')
    message = _error(build_requests, load_workload(workload))
    assert message == f"{tmp_path / 'p.jsonl'}: line 2: line longer than the 8.0 MiB limit"


def test_prompt_count_limit_and_prompts_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "MAX_PROMPTS", 3)  # the limit's value, not the code path, is what is replaced
    workload = _prompts(tmp_path, b'{"prompt": "a"}\n' * 5)
    message = _error(build_requests, load_workload(workload))
    assert message == f"{tmp_path / 'p.jsonl'}: line 4: more than 3 prompts (set prompts.limit to use the first ones)"
    assert len(build_requests(load_workload(workload, ["prompts.limit=2"]))) == 2


def test_prompt_file_over_the_byte_limit_needs_prompts_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "MAX_JSONL_BYTES", 100)
    workload = _prompts(tmp_path, b'{"prompt": "abcdefghij"}\n' * 10)
    message = _error(build_requests, load_workload(workload))
    assert "over the 100 bytes limit for a prompts file (set prompts.limit" in message
    assert len(build_requests(load_workload(workload, ["prompts.limit=2"]))) == 2  # streamed: stops early


def test_synthetic_prompts_are_bounded(tmp_path):
    # A few lines of YAML must not make `validate` generate gigabytes of text.
    base = "name: w\ntraffic: {rate: 1, num_requests: 1}\nprompts: {source: synthetic, output_tokens: {mean: 4}, "
    message = _error(load_workload, _yaml(tmp_path, base + "count: 100000, input_tokens: {mean: 100000}}\n"))
    assert "prompts: asks for about 10,000,000,000 tokens of synthetic text" in message
    message = _error(load_workload, _yaml(tmp_path, base + "count: 1, prefix_groups: 999999999, "
                                          "input_tokens: {mean: 1}}\n"))
    assert "prompts.prefix_groups: Input should be less than or equal to 200000" in message
    assert len(build_requests(load_workload(_yaml(tmp_path, base + "count: 3, input_tokens: {mean: 5}}\n")))) == 3


# ------------------------------------------------------------------------------------------------ 2. aliases


def _alias_bomb(levels: int = 9) -> str:
    lines = ['  a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"  {cur}: &{cur} [" + ", ".join([f"*{prev}"] * 9) + "]")
    return HEAD + "tags:\n" + "\n".join(lines) + "\n"


def test_alias_bomb_is_refused_without_expanding(tmp_path):
    path = _yaml(tmp_path, _alias_bomb())
    assert path.stat().st_size < 1024  # the 1 KB file that expands to 9^9 values
    tracemalloc.start()
    try:
        message = _error(load_workload, path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert message.startswith(f"{path}: line ")
    assert f"more than {MAX_YAML_NODES:,} values once aliases are expanded" in message
    assert peak < 20 << 20


def test_alias_bomb_through_the_cli_is_exit_2_one_line(tmp_path):
    path = _yaml(tmp_path, _alias_bomb())
    _one_line_exit_2(_validate_cli(str(path)), f"infercost: error: {path}: line ", "aliases are expanded")


def test_cyclic_alias_is_refused(tmp_path):
    path = _yaml(tmp_path, "name: w\nprompts: &p {source: inline, items: [*p]}\ntraffic: {rate: 1, num_requests: 1}\n")
    assert _error(read_yaml, path) == f"{path}: line 2: alias *p is inside the node it names (a cycle)"


def test_small_aliases_and_merge_keys_still_work(tmp_path):
    path = _yaml(tmp_path, "name: w\nprompts: {source: inline, items: [&q hello, *q]}\n"
                 "traffic:\n  <<: &t {rate: 1, num_requests: 3}\n  rate: 2\n")
    workload = load_workload(path)
    assert workload.prompts.items == ["hello", "hello"]
    assert (workload.traffic.rate, workload.traffic.num_requests) == (2, 3)  # a merge key is overridden, not a dup


# -------------------------------------------------------------------------------------------- 3. duplicate keys


def test_duplicate_top_level_key_names_key_and_both_lines(tmp_path):
    path = _yaml(tmp_path, "name: w\n" + HEAD.replace("name: w", "name: v"))
    assert _error(read_yaml, path) == (f"{path}: line 2: duplicate key 'name' (first on line 1); "
                                       "each key may appear once")


def test_duplicate_nested_key_in_a_deployment(tmp_path):
    path = _yaml(tmp_path, "engine: vllm\nmodel: m\nmax_num_seqs: 4\nlimits:\n  a: 1\n  a: 2\n", "d.yaml")
    assert _error(load_deployment, path) == (f"{path}: line 6: duplicate key 'a' (first on line 5); "
                                             "each key may appear once")


def test_duplicate_key_in_a_flow_mapping_through_the_cli(tmp_path):
    path = _yaml(tmp_path, "name: w\nprompts: {source: inline, items: [hi]}\n"
                 "traffic: {rate: 1, num_requests: 1, rate: 5}\n")
    _one_line_exit_2(_validate_cli(str(path)), f"{path}: line 3: duplicate key 'rate' (first on line 3)")


# ------------------------------------------------------------------------------------------------ 4. encodings


def test_prompts_file_not_utf8_names_file_line_and_encoding(tmp_path):
    workload = _prompts(tmp_path, '{"prompt": "ok"}\n{"prompt": "café"}\n'.encode("latin-1"))
    proc = _validate_cli(str(workload))
    _one_line_exit_2(proc, f"{tmp_path / 'p.jsonl'}: line 2: expected UTF-8 text (byte 0xe9 at column 16 is not "
                           "UTF-8)")


def test_lone_surrogate_prompt_names_file_line_and_field(tmp_path):
    # JSON "\ud83d" is the first half of an emoji's UTF-16 pair; on its own it cannot be sent as UTF-8.
    workload = _prompts(tmp_path, b'{"prompt": "ok \\ud83d\\ude00"}\n{"prompt": "half \\ud83d"}\n')
    proc = _validate_cli(str(workload))
    _one_line_exit_2(proc, f"{tmp_path / 'p.jsonl'}: line 2: prompt: \\ud83d is half of a character (a lone UTF-16 "
                           "surrogate); expected UTF-8 text")


def test_lone_surrogate_in_chat_messages(tmp_path):
    workload = _prompts(tmp_path, b'{"messages": [{"role": "user", "content": "\\udc00x"}]}\n')
    assert _error(build_requests, load_workload(workload)) == (
        f"{tmp_path / 'p.jsonl'}: line 1: messages[0].content: \\udc00 is half of a character (a lone UTF-16 "
        "surrogate); expected UTF-8 text")


def test_whole_emoji_and_byte_order_mark_are_fine(tmp_path):
    workload = _prompts(tmp_path, b'\xef\xbb\xbf{"prompt": "ok \\ud83d\\ude00"}\n{"prompt": "\xf0\x9f\x98\x80"}\n')
    assert [r.text() for r in build_requests(load_workload(workload))] == ["ok \U0001F600", "\U0001F600"]


def test_yaml_not_utf8_and_control_characters(tmp_path):
    path = _yaml(tmp_path, b"name: w\ndescription: caf\xe9\n")
    assert _error(read_yaml, path) == f"{path}: line 2: expected UTF-8 text (byte 0xe9 at column 17 is not UTF-8)"
    path = _yaml(tmp_path, b"name: w\n\nsystem_prompt: a\x1b[31mb\n")
    assert _error(read_yaml, path) == f"{path}: line 3: character U+001B is not allowed in YAML (a control character)"


def test_yaml_surrogate_escape_is_refused(tmp_path):
    path = _yaml(tmp_path, 'name: w\nsystem_prompt: "half \\ud83d"\n')
    message = _error(read_yaml, path)
    assert message.startswith(f"{path}: line 2: ")  # libyaml refuses the escape; PyYAML's own reader builds it
    assert "surrogate" in message or "invalid Unicode character escape" in message


def test_catalog_not_utf8_and_oversized_field(tmp_path):
    path = tmp_path / "prices.csv"
    path.write_bytes(b"provider,model,input_per_1m,output_per_1m,source,as_of\nacme,m\xe9,1,2,x,2025-01-01\n")
    assert _error(load_catalog, [path]) == f"{path}: line 2: expected UTF-8 text (byte 0xe9 at column 7 is not UTF-8)"
    path.write_text("provider,model,input_per_1m,output_per_1m,source,as_of\nacme,m,1,2," + "x" * 200_000
                    + ",2025-01-01\n")
    assert _error(load_catalog, [path]) == (f"{path}: row 2: not valid CSV (field larger than field limit (131072))")


def test_values_yaml_cannot_convert_name_their_line(tmp_path):
    path = _yaml(tmp_path, "name: w\nseed: " + "1" * 5000 + "\n")
    assert _error(read_yaml, path) == (f"{path}: line 2: cannot read this value (Exceeds the limit (4300 digits) for "
                                       "integer string conversion)")
    path = _yaml(tmp_path, "name: w\n\nwhen: 2020-13-45\n")
    assert _error(read_yaml, path) == f"{path}: line 3: cannot read this value (month must be in 1..12)"


# -------------------------------------------------------------------------------------------- 5. did you mean


def test_misspelt_top_level_key_gets_did_you_mean(tmp_path):
    # Was: "name: required field is missing (+1 more)".
    path = _yaml(tmp_path, HEAD.replace("name:", "nmae:"))
    _one_line_exit_2(_validate_cli(str(path)), f"infercost: error: {path}: nmae: unknown field; did you mean 'name'?")
    assert not _validate_cli(str(path)).stderr.rstrip().endswith("more)")  # one mistake, not two


def test_misspelt_nested_keys_get_did_you_mean(tmp_path):
    path = _yaml(tmp_path, HEAD.replace("rate: 1", "rat: 1"))
    assert _error(load_workload, path) == f"{path}: traffic.rat: unknown field; did you mean 'rate'?"
    path = _yaml(tmp_path, HEAD.replace("items: [hi]", "itmes: [hi]"))
    assert _error(load_workload, path) == f"{path}: prompts.itmes: unknown field; did you mean 'items'?"
    path = _yaml(tmp_path, HEAD.replace("items: [hi]", "items: [{promt: hi}]"))
    assert _error(load_workload, path) == f"{path}: prompts.items[0].promt: unknown field; did you mean 'prompt'?"


def test_misspelt_deployment_and_study_keys(tmp_path):
    path = _yaml(tmp_path, "engine: vllm\nmodel: m\nmax_num_seq: 4\n", "d.yaml")
    assert _error(load_deployment, path) == f"{path}: max_num_seq: unknown field; did you mean 'max_num_seqs'?"
    study = (ROOT / "workloads/studies/demo.yaml").read_text().replace("n_trials:", "n_trails:")
    path = _yaml(tmp_path, study, "s.yaml")
    assert _error(study_of, str(path)) == f"{path}: n_trails: unknown field; did you mean 'n_trials'?"


def test_unknown_key_with_no_near_match_lists_the_fields(tmp_path):
    path = _yaml(tmp_path, HEAD.replace("traffic: {rate: 1", "traffic: {zzz: 1, rate: 1"))
    assert _error(load_workload, path) == (
        f"{path}: traffic.zzz: unknown field; expected one of: arrival, burstiness, concurrency, duration_s, "
        "num_requests, phases, rate, request_timeout_s, seed, trace, warmup_requests")


# ------------------------------------------------------------------------------------------ 6. prompt lines


def test_jsonl_line_without_prompt_or_messages_says_what_was_expected(tmp_path):
    workload = _prompts(tmp_path, b'{"prompt": "ok"}\n\n{"reference": "x", "id": "3"}\n')
    _one_line_exit_2(_validate_cli(str(workload)),
                     f"{tmp_path / 'p.jsonl'}: line 3: expected a JSON object with 'prompt' (text) or 'messages' "
                     "(chat); found 'reference', 'id'")


@pytest.mark.parametrize("line, expected", [
    (b'{"promt": "hi"}', "line 1: expected a JSON object with 'prompt' (text) or 'messages' (chat) (did you mean "
                         "'prompt'?); found 'promt'"),
    (b'{}', "line 1: expected a JSON object with 'prompt' (text) or 'messages' (chat); found an empty object"),
    (b'["hi"]', "line 1: expected a JSON object with 'prompt' (text) or 'messages' (chat), got list"),
    (b'{"prompt": "hi", "refrence": "x"}', "line 1: refrence: unknown field; did you mean 'reference'?"),
    (b'{"messages": [{"role": "robot", "content": "x"}]}', "line 1: messages[0].role: Input should be 'system', "
                                                           "'user' or 'assistant'"),
    (b'{"prompt": "hi"', "line 1: not valid JSON (Expecting ',' delimiter at column 16)"),
    (b'[' * 100_000, "line 1: not valid JSON (nested too deeply)"),
    (b'{"prompt": "hi", "max_tokens": ' + b"9" * 5000 + b"}", "line 1: not valid JSON (Exceeds the limit"),
])
def test_bad_jsonl_lines(tmp_path, line, expected):
    workload = _prompts(tmp_path, line + b"\n")
    message = _error(build_requests, load_workload(workload))
    assert message.startswith(f"{tmp_path / 'p.jsonl'}: {expected}"), message


def test_prompts_path_that_is_a_directory(tmp_path):
    (tmp_path / "p.jsonl").mkdir()
    workload = _yaml(tmp_path, JSONL_WORKLOAD)
    assert _error(build_requests, load_workload(workload)) == (
        f"{tmp_path / 'p.jsonl'}: prompts.path: expected a prompts file, found a directory")


# ------------------------------------------------------------------------------------ 7. study workload path


def test_study_with_missing_workload_names_the_study_and_field(tmp_path):
    study = (ROOT / "workloads/studies/demo.yaml").read_text()
    path = _yaml(tmp_path, study, "s.yaml")  # its `workload: ../chat-support.yaml` leads nowhere from tmp_path
    spec = study_of(str(path))
    message = _error(study_workload, spec, str(path))
    assert message == (f"{path}: workload: workload file not found: {tmp_path / '../chat-support.yaml'} "
                       "(a relative path is read from the study file's folder)")
    proc = subprocess.run([sys.executable, "-m", "infercost", "optimize", str(path), "--results-dir",
                           str(tmp_path / "results")], capture_output=True, text=True, timeout=120, cwd=ROOT)
    _one_line_exit_2(proc, f"infercost: error: {path}: workload: workload file not found")
    assert not (tmp_path / "results").exists()  # refused before any storage was made


# ------------------------------------------------------------------------------------------------ 8. --set


def test_bad_set_blames_the_option_not_the_file(tmp_path, capsys):
    workload = _yaml(tmp_path, HEAD)
    deployment = ROOT / "workloads/deployments/smollm2-vllm-cpu.yaml"
    cases = {
        ("--set", "max_num_seqs"): "--set: expected KEY=VALUE, e.g. --set max_num_seqs=8 ('max_num_seqs' has no '=')",
        ("--set", "=8"): "--set: expected KEY=VALUE with a key like a.b.c, e.g. --set max_num_seqs=8 (the key has an "
                         "empty part)",
        ("--set", "model.name=x"): "--set model.name: cannot set it: 'model' is a str, not a mapping",
        ("--set", "max_num_seq=8"): "--set max_num_seq: unknown field; did you mean 'max_num_seqs'?",
        ("--set", "max_num_seqs=many"): "--set max_num_seqs: Input should be a valid integer",
        ("-w", "traffic.rate=-1"): "--workload-set traffic.rate: Input should be greater than 0 (got -1)",
        ("-w", "name.first=x"): "--workload-set name.first: cannot set it: 'name' is a str, not a mapping",
    }
    for (flag, value), expected in cases.items():
        assert main(["run", str(workload), "-d", str(deployment), "--results-dir", str(tmp_path / "r"), flag,
                     value]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"infercost: error: {expected}"), err
        assert str(deployment) not in err and "\n" not in err
    assert not (tmp_path / "r").exists()  # nothing ran


def test_set_without_equals_does_not_echo_what_may_be_a_key(tmp_path):
    message = _error(load_deployment, None, ["sk-live-0123456789abcdef"])
    assert message == "--set: expected KEY=VALUE, e.g. --set max_num_seqs=8 (an argument has no '=')"


def test_error_in_the_file_itself_still_blames_the_file(tmp_path):
    path = _yaml(tmp_path, "engine: vllm\nmodel: m\nmax_num_seqs: 0\n", "d.yaml")
    assert _error(load_deployment, path, ["dtype=float32"]).startswith(f"{path}: max_num_seqs: ")


# ------------------------------------------------------------------------------------------------ 9. fuzz


@pytest.fixture(scope="module")
def fuzz_root(tmp_path_factory):
    return fuzz_inputs.copy_workloads(tmp_path_factory.mktemp("fuzz"))


@pytest.mark.timeout(120)  # a hang fails the test instead of stalling the suite
@settings(max_examples=60, deadline=5000, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=fuzz_inputs.mutated(fuzz_inputs.ALL_FILES))
def test_fuzzed_inputs_end_in_a_spec_or_one_input_error(fuzz_root, case):
    fuzz_inputs.check(fuzz_root, *case)


def test_fuzz_harness_loads_every_shipped_file_unchanged(fuzz_root):
    # The property above only means something if the unmutated files load: each shipped file is "ok".
    for rel in fuzz_inputs.ALL_FILES:
        assert fuzz_inputs.check(fuzz_root, rel, (fuzz_inputs.WORKLOADS / rel).read_bytes()) == "ok", rel


@pytest.mark.parametrize("traffic", ["{arrival: poisson, rate: 1, num_requests: 100000000000}",
                                     "{arrival: poisson, rate: 1000000000, duration_s: 3600}",
                                     "{arrival: concurrency, concurrency: 2, duration_s: 1.0e12}"])
def test_a_tiny_file_cannot_plan_a_schedule_that_fills_the_machine(tmp_path, traffic):
    from infercost.errors import InputError
    from infercost.spec import load_workload

    path = tmp_path / "w.yaml"
    path.write_text(f"name: w\nprompts: {{source: inline, items: [a]}}\ntraffic: {traffic}\n")
    with pytest.raises(InputError) as err:
        load_workload(path)
    assert str(err.value).startswith(f"{path}: traffic") and "\n" not in str(err.value)
