"""What fails without an engine fails before one starts: `validate` makes every check that needs no engine, and
`run`, `capacity`, `quality` and `optimize` make the same ones first, with the same one line (file, field, what
was expected; exit 2) and nothing recorded. Also the traffic fields that conflict, and a study's inputs: empty
candidate lists and --n-trials."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from infercost.cli import main
from infercost.errors import InputError
from infercost.preflight import (check_tensor_parallel, preflight, visible_gpus, vllm_on_cpu,
                                 vllm_quantization_methods)
from infercost.spec import load_deployment, load_workload

from conftest import ROOT, WORKLOADS

WORKLOAD = ("name: w\nprompts: {source: inline, items: [hello]}\nsampling: {max_tokens: 8}\n"
            "traffic: {rate: 1, num_requests: 1}\n")


def _write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def _one_line(capsys, argv: list[str], starts: str, *expected: str) -> str:
    code = main(argv)
    out = capsys.readouterr()
    err = out.err.strip()
    assert code == 2, (out.out, err)
    assert err.count("\n") == 0 and "Traceback" not in err, err
    assert err.startswith(f"infercost: error: {starts}"), err
    for text in expected:
        assert text in err, err
    return err


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """An HF-style directory with a real tokenizer (one token per word, a chat template adding <s> and </s>) and a
    64-token context, so lengths are checked exactly without a model download."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    directory = tmp_path_factory.mktemp("tiny-model")
    tok = Tokenizer(models.WordLevel({"[UNK]": 0, "<s>": 1, "</s>": 2, "hello": 3}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", bos_token="<s>", eos_token="</s>")
    fast.chat_template = "{% for m in messages %}<s> {{ m['content'] }} </s>{% endfor %}"
    fast.save_pretrained(directory)
    (directory / "config.json").write_text(json.dumps({"model_type": "llama", "max_position_embeddings": 64}))
    return directory


@pytest.fixture()
def no_converted_models(tmp_path, monkeypatch):
    """A cache where no bundled alias has been converted yet (a fresh machine)."""
    monkeypatch.setenv("INFERCOST_CACHE", str(tmp_path / "cache"))


# -------------------------------------------------------------------------------------------------- the model


def test_unknown_alias_fails_validate_and_every_engine_command_before_anything_starts(tmp_path, capsys):
    w = _write(tmp_path / "w.yaml", WORKLOAD)
    d = _write(tmp_path / "d.yaml", "engine: vllm\nmodel: smolm2-135m-instruct\n")
    expected = ("unknown model 'smolm2-135m-instruct' (did you mean 'smollm2-135m-instruct'?): expected a bundled "
                "alias (smollm2-135m-instruct, gemma3-270m), an HF-style directory with config.json")
    line = _one_line(capsys, ["validate", str(w), "-d", str(d)], f"{d}: model: ", expected)
    res = tmp_path / "res"
    for command in ("run", "capacity", "quality"):
        assert _one_line(capsys, [command, str(w), "-d", str(d), "--results-dir", str(res)], f"{d}: model: ") == line
    assert not res.exists()  # nothing started, nothing recorded


def test_transformers_deployment_needs_a_model_that_exists_too(tmp_path, capsys):
    w = _write(tmp_path / "w.yaml", WORKLOAD)
    d = _write(tmp_path / "d.yaml", "engine: transformers\nmodel: Qwen/Qwen9-0.1B\n")
    _one_line(capsys, ["validate", str(w), "-d", str(d)], f"{d}: model: ", "unknown model 'Qwen/Qwen9-0.1B'",
              "HF_HUB_OFFLINE=1")


def test_model_directory_must_be_hf_style(tmp_path, capsys, tiny_model):
    w = _write(tmp_path / "w.yaml", WORKLOAD)
    empty = tmp_path / "weights"
    empty.mkdir()
    d = _write(tmp_path / "d.yaml", f"engine: vllm\nmodel: {empty}\n")
    _one_line(capsys, ["validate", str(w), "-d", str(d)], f"{d}: model: ", f"{empty} has no config.json")
    d = _write(tmp_path / "d.yaml", f"engine: vllm\nmodel: {tmp_path / 'absent'}\n")
    _one_line(capsys, ["validate", str(w), "-d", str(d)], f"{d}: model: ", f"directory {tmp_path / 'absent'} not found")
    d = _write(tmp_path / "d.yaml", f"engine: vllm\nmodel: {tiny_model}\n")
    assert main(["validate", str(w), "-d", str(d)]) == 0


def test_openai_served_name_is_not_checked_but_its_tokenizer_is(tmp_path, capsys):
    w = _write(tmp_path / "w.yaml", WORKLOAD)
    d = _write(tmp_path / "d.yaml", "engine: openai\nmodel: anything-served\nbase_url: http://127.0.0.1:9/v1\n")
    assert main(["validate", str(w), "-d", str(d)]) == 0
    out = capsys.readouterr().out
    assert "note: model 'anything-served' is a served name: the server is not asked here" in out
    assert "note: prompt lengths not checked: the server's max_model_len is known only once it answers" in out
    d = _write(tmp_path / "d.yaml", "engine: openai\nmodel: m\nbase_url: http://127.0.0.1:9/v1\n"
                                    "tokenizer: smollm2-135m-instuct\n")
    _one_line(capsys, ["validate", str(w), "-d", str(d)], f"{d}: tokenizer: ",
              "unknown model 'smollm2-135m-instuct' (did you mean 'smollm2-135m-instruct'?)")


# ------------------------------------------------------------------------------------------------ the devices


def test_tensor_parallel_beyond_any_machine_is_refused(tmp_path, capsys):
    w = _write(tmp_path / "w.yaml", WORKLOAD)
    d = _write(tmp_path / "d.yaml", "engine: vllm\nmodel: smollm2-135m-instruct\ntensor_parallel_size: 4096\n")
    _one_line(capsys, ["validate", str(w), "-d", str(d)], f"{d}: tensor_parallel_size: 4096 ", "expected")
    d = _write(tmp_path / "d.yaml", "engine: vllm\nmodel: smollm2-135m-instruct\n"
                                    "engine_args: {tensor_parallel_size: 4096}\n")
    _one_line(capsys, ["validate", str(w), "-d", str(d)], f"{d}: engine_args.tensor_parallel_size: 4096 ")
    d = _write(tmp_path / "d.yaml", "engine: vllm\nmodel: smollm2-135m-instruct\n"
                                    "engine_args: {tensor_parallel_size: two}\n")  # engine_args are not typed
    _one_line(capsys, ["validate", str(w), "-d", str(d)], f"{d}: engine_args.tensor_parallel_size: expected a whole "
              "number of at least 1 (got 'two')")


@pytest.mark.skipif(not vllm_on_cpu(visible_gpus()), reason="vLLM runs on GPUs here")
def test_cpu_backend_needs_one_cpu_list_per_rank(monkeypatch):
    monkeypatch.setenv("VLLM_CPU_OMP_THREADS_BIND", "0|1")
    check_tensor_parallel(2, "d.yaml")
    with pytest.raises(InputError) as info:
        check_tensor_parallel(3, "d.yaml")
    assert str(info.value) == ("d.yaml: tensor_parallel_size: 3 on vLLM's CPU backend needs 3 CPU lists in its "
                               "thread binding (one per rank), and VLLM_CPU_OMP_THREADS_BIND has 2 ('0|1'): "
                               "expected 2, or VLLM_CPU_OMP_THREADS_BIND set to one CPU list per rank separated by "
                               "'|' (e.g. 0-3|4-7 for 2)")
    monkeypatch.setenv("VLLM_CPU_OMP_THREADS_BIND", "nobind")  # the user binds threads: vLLM asks nothing
    check_tensor_parallel(3, "d.yaml")


@pytest.mark.skipif(vllm_on_cpu(visible_gpus()), reason="no GPU for vLLM here")
def test_gpu_count_bounds_tensor_parallel():
    gpus = visible_gpus()
    check_tensor_parallel(gpus, "d.yaml")
    with pytest.raises(InputError, match=f"{gpus + 1} GPUs asked for, {gpus} visible here"):
        check_tensor_parallel(gpus + 1, "d.yaml")


def test_visible_gpus_reads_nvidia_smi_narrowed_by_cuda_visible_devices(tmp_path, monkeypatch):
    """With an nvidia-smi that lists two GPUs (a stand-in for the driver, which this machine may lack)."""
    smi = tmp_path / "bin" / "nvidia-smi"
    smi.parent.mkdir()
    smi.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H100 (UUID: GPU-a)'\necho 'GPU 1: NVIDIA H100 (UUID: GPU-b)'\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{smi.parent}{os.pathsep}{os.environ['PATH']}")
    for mask, expected in ((None, 2), ("1", 1), ("0,1,2", 2), ("", 0), ("-1", 0), ("1,-1,0", 1)):
        if mask is None:
            monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
        else:
            monkeypatch.setenv("CUDA_VISIBLE_DEVICES", mask)
        assert visible_gpus() == expected, mask


def test_transformers_device_must_be_present(tmp_path, capsys):
    w = _write(tmp_path / "w.yaml", WORKLOAD)
    gpus = visible_gpus()
    d = _write(tmp_path / "d.yaml", f"engine: transformers\nmodel: smollm2-135m-instruct\ndevice: cuda:{gpus}\n")
    _one_line(capsys, ["validate", str(w), "-d", str(d)], f"{d}: device: 'cuda:{gpus}' asked for, {gpus} GPU")
    d = _write(tmp_path / "d.yaml", "engine: transformers\nmodel: smollm2-135m-instruct\ndevice: tpu\n")
    _one_line(capsys, ["validate", str(w), "-d", str(d)], f"{d}: device: unknown device 'tpu'")


# ------------------------------------------------------------------------------------------- quantisation


@pytest.mark.skipif(vllm_quantization_methods() is None, reason="vLLM is not installed")
def test_unknown_vllm_quantisation_is_refused_from_vllms_own_list(tmp_path, capsys):
    w = _write(tmp_path / "w.yaml", WORKLOAD)
    d = _write(tmp_path / "d.yaml", "engine: vllm\nmodel: smollm2-135m-instruct\nquantization: fp9\n")
    err = _one_line(capsys, ["validate", str(w), "-d", str(d)], f"{d}: quantization: unknown quantization method "
                    "'fp9' (did you mean 'fp8'?): expected one of vLLM ")
    assert ", awq, " in err or "awq," in err
    for known in ("fp8", "awq", "gptq"):
        d = _write(tmp_path / "d.yaml", f"engine: vllm\nmodel: smollm2-135m-instruct\nquantization: {known}\n")
        assert main(["validate", str(w), "-d", str(d)]) == 0, capsys.readouterr().err


@pytest.mark.skipif(vllm_quantization_methods() is None, reason="vLLM is not installed")
def test_quantisation_list_is_vllms_and_is_read_without_importing_vllm():
    code = ("import sys; from infercost.preflight import vllm_quantization_methods as m; "
            "print(len(m()), 'vllm' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.split()[1:] == ["False", "False"], out
    from vllm.model_executor.layers.quantization import QUANTIZATION_METHODS

    assert list(vllm_quantization_methods()) == list(QUANTIZATION_METHODS)


# ------------------------------------------------------------------------------------------------- lengths


def _synthetic(tmp_path, prefix: int, inp: int, out: int, api: str = "completion") -> Path:
    return _write(tmp_path / "w.yaml", f"""\
        name: w
        api: {api}
        prompts: {{source: synthetic, count: 4, input_tokens: {{mean: {inp}}}, output_tokens: {{mean: {out}}},
                   shared_prefix_tokens: {prefix}}}
        traffic: {{rate: 1, num_requests: 4}}
        """)


def test_synthetic_lengths_against_max_model_len(tmp_path, capsys, tiny_model):
    d = _write(tmp_path / "d.yaml", f"engine: vllm\nmodel: {tiny_model}\n")
    w = _synthetic(tmp_path, 64, 4, 4)
    _one_line(capsys, ["validate", str(w), "-d", str(d)], f"{w}: prompts.shared_prefix_tokens: shared_prefix_tokens "
              f"64 alone fills the model's max_position_embeddings 64 ({tiny_model} config.json)")
    w = _synthetic(tmp_path, 10, 40, 20)
    _one_line(capsys, ["validate", str(w), "-d", str(d)], f"{w}: prompts: 4 of 4 synthetic requests are longer than "
              "the model's max_position_embeddings 64", "shared_prefix_tokens 10 + input 40 + output 20 tokens = 70; "
              "expected at most 64 tokens per request")
    w = _synthetic(tmp_path, 10, 30, 20, api="chat")  # 60 tokens, and the chat template adds <s> and </s>
    assert main(["validate", str(w), "-d", str(d)]) == 0, capsys.readouterr().err  # 62 <= 64
    d = _write(tmp_path / "d.yaml", f"engine: vllm\nmodel: {tiny_model}\nmax_model_len: 61\n")
    _one_line(capsys, ["validate", str(w), "-d", str(d)], f"{w}: prompts: 4 of 4 synthetic requests are longer than "
              f"max_model_len 61 ({d})", "output 20 tokens + 2 of chat template = 62")
    d = _write(tmp_path / "d.yaml", f"engine: vllm\nmodel: {tiny_model}\nmax_model_len: 62\n")
    assert main(["validate", str(w), "-d", str(d)]) == 0, capsys.readouterr().err


def test_prompt_text_is_counted_with_the_models_tokenizer(tmp_path, capsys, tiny_model):
    d = _write(tmp_path / "d.yaml", f"engine: transformers\nmodel: {tiny_model}\n")
    long_prompt = " ".join(["hello"] * 70)
    w = _write(tmp_path / "w.yaml", f"name: w\napi: completion\nprompts: {{source: inline, items: [hi, "
               f"{{id: long, prompt: '{long_prompt}'}}]}}\nsampling: {{max_tokens: 8}}\n"
               "traffic: {rate: 1, num_requests: 1}\n")
    _one_line(capsys, ["validate", str(w), "-d", str(d)], f"{w}: prompts: 1 of 2 prompts are too long for the "
              "model's max_position_embeddings 64", "'long', has 70 prompt tokens (the prompt alone fills it)")
    w = _write(tmp_path / "w.yaml", "name: w\napi: completion\nprompts: {source: inline, items: [hello hello]}\n"
               "sampling: {max_tokens: 63}\ntraffic: {rate: 1, num_requests: 1}\n")
    _one_line(capsys, ["validate", str(w), "-d", str(d)], f"{w}: prompts: ", "has 2 prompt tokens (+ max_tokens 63 = "
              "65); expected prompt + max_tokens <= 64")
    w = _write(tmp_path / "w.yaml", "name: w\napi: completion\nprompts: {source: inline, items: [hello hello]}\n"
               "sampling: {max_tokens: 62}\ntraffic: {rate: 1, num_requests: 1}\n")
    assert main(["validate", str(w), "-d", str(d)]) == 0, capsys.readouterr().err


def test_chat_workload_on_a_model_without_chat_template(tmp_path, capsys, tiny_model):
    import shutil

    plain = tmp_path / "plain"
    shutil.copytree(tiny_model, plain)
    (plain / "chat_template.jinja").unlink()
    d = _write(tmp_path / "d.yaml", f"engine: vllm\nmodel: {plain}\n")
    w = _write(tmp_path / "w.yaml", WORKLOAD)  # api: chat by default
    _one_line(capsys, ["validate", str(w), "-d", str(d)], f"{w}: api: model '{plain}' has no chat template: expected "
              "api: completion")
    d = _write(tmp_path / "d.yaml", "engine: vllm\nmodel: gemma3-270m\n")  # a base model, known without converting
    _one_line(capsys, ["validate", str(w), "-d", str(d)], f"{w}: api: model 'gemma3-270m' has no chat template")


def test_what_cannot_be_checked_before_conversion_is_said(tmp_path, capsys, no_converted_models):
    w = _write(tmp_path / "w.yaml", WORKLOAD)
    d = _write(tmp_path / "d.yaml", "engine: vllm\nmodel: smollm2-135m-instruct\n")
    assert main(["validate", str(w), "-d", str(d)]) == 0
    out = capsys.readouterr().out
    assert "note: model 'smollm2-135m-instruct' (bundled alias) is converted on first use" in out
    assert "note: prompt lengths not checked: max_model_len is not set and the model's config.json is not on disk" \
           in out
    d = _write(tmp_path / "d.yaml", "engine: vllm\nmodel: smollm2-135m-instruct\nmax_model_len: 32\n")
    w = _synthetic(tmp_path, 0, 30, 8)  # designed lengths need no tokenizer
    _one_line(capsys, ["validate", str(w), "-d", str(d)], f"{w}: prompts: 4 of 4 synthetic requests are longer than "
              f"max_model_len 32 ({d})")


def test_bundled_workloads_pass_on_the_bundled_deployments(capsys):
    for workload in ("chat-support", "rag-shared-prefix", "batch-summarisation", "calibration-cpu"):
        for deployment in ("smollm2-vllm-cpu", "smollm2-transformers-cpu", "openai-local"):
            w, d = WORKLOADS / f"{workload}.yaml", WORKLOADS / "deployments" / f"{deployment}.yaml"
            assert preflight(load_workload(w), load_deployment(d), str(w), str(d)) is not None


# ------------------------------------------------------------------------------------------------- traffic


TRAFFIC_CASES = {
    "both-ends": ("{rate: 1, num_requests: 5, duration_s: 10}",
                  "traffic: give 'num_requests' (how many requests) or 'duration_s' (how long), not both"),
    "rate-on-closed-loop": ("{arrival: concurrency, concurrency: 2, rate: 3, num_requests: 5}",
                            "traffic: 'rate' is for open-loop arrivals"),
    "users-on-open-loop": ("{arrival: poisson, rate: 2, concurrency: 4, num_requests: 5}",
                           "traffic: 'concurrency' is for arrival 'concurrency' (closed loop)"),
    "burstiness-not-gamma": ("{arrival: poisson, rate: 2, burstiness: 0.5, num_requests: 5}",
                             "traffic: 'burstiness' shapes arrival 'gamma' only"),
    "duration-at-infinite-rate": ("{rate: .inf, duration_s: 10}",
                                  "traffic: rate .inf sends every request at once, so there is no duration to fill"),
}


@pytest.mark.parametrize("case", sorted(TRAFFIC_CASES))
def test_conflicting_traffic_fields(case, tmp_path, capsys):
    traffic, expected = TRAFFIC_CASES[case]
    w = _write(tmp_path / "w.yaml", f"name: w\nprompts: {{source: inline, items: [hi]}}\ntraffic: {traffic}\n")
    _one_line(capsys, ["validate", str(w)], f"{w}: {expected}")


def test_traffic_that_does_not_conflict(tmp_path, capsys):
    for traffic in ("{arrival: gamma, rate: 2, burstiness: 0.5, num_requests: 5}",
                    "{arrival: concurrency, concurrency: 2, duration_s: 5}", "{rate: 2, duration_s: 5}",
                    "{rate: .inf, num_requests: 5}", "{arrival: constant, rate: 2, burstiness: 1.0, num_requests: 5}"):
        w = _write(tmp_path / "w.yaml", f"name: w\nprompts: {{source: inline, items: [hi]}}\ntraffic: {traffic}\n")
        assert main(["validate", str(w)]) == 0, (traffic, capsys.readouterr().err)


# --------------------------------------------------------------------------------------------------- studies


def _study(tmp_path, **space) -> Path:
    from test_search import STUDY

    data = json.loads(json.dumps(STUDY))
    data["space"].update(space)
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


STUDY_CASES = {
    "precisions": ({"precisions": {"vllm": []}}, "space: precisions.vllm: expected at least one of bfloat16, float32, "
                   "float16, fp8, awq, gptq (leave 'vllm' out for its default, bfloat16)"),
    "models": ({"models": []}, "space.models: expected at least one model (a projection preset, bundled alias or "
               "model directory)"),
    "max_num_seqs": ({"max_num_seqs": []}, "space.max_num_seqs: expected at least one candidate (leave "
                     "'max_num_seqs' out for its default)"),
    "enable_prefix_caching": ({"enable_prefix_caching": []}, "space.enable_prefix_caching: expected at least one"),
    "kv_cache_dtype": ({"kv_cache_dtype": []}, "space.kv_cache_dtype: expected at least one"),
    "max_num_batched_tokens": ({"max_num_batched_tokens": []}, "space.max_num_batched_tokens: expected at least one"),
    "engines": ({"engines": []}, "space.engines: expected at least one"),
    "providers": ({"placements": {"hardware": ["L4"], "providers": []}},
                  "space.placements.providers: expected at least one candidate (leave 'providers' out for any)"),
    "precisions-for-an-engine-not-searched": ({"precisions": {"vllm": ["bfloat16"], "transformers": ["none"]}},
                                              "space: precisions.transformers: 'transformers' is not in engines"),
    "unknown-model": ({"models": ["llama-3.1-8b", "lama-3.1-70b"]}, "space.models[1]: unknown model 'lama-3.1-70b' "
                      "(did you mean 'llama-3.1-70b'?): expected a projection preset"),
}


@pytest.mark.parametrize("case", sorted(STUDY_CASES))
def test_bad_study_space_is_one_line(case, tmp_path, capsys):
    space, expected = STUDY_CASES[case]
    path = _study(tmp_path, **space)
    _one_line(capsys, ["optimize", str(path), "--results-dir", str(tmp_path / "res"), "-q"], f"{path}: {expected}")
    assert not (tmp_path / "res" / "studies").exists() or not any((tmp_path / "res" / "studies").glob("*.db"))


@pytest.mark.parametrize("value", ["-3", "0", "many", "2.5"])
def test_n_trials_must_be_a_positive_whole_number(value, tmp_path, capsys):
    path = _study(tmp_path)
    _one_line(capsys, ["optimize", str(path), f"--n-trials={value}", "--results-dir", str(tmp_path / "res")],
              f"--n-trials: expected a whole number of at least 1 (got '{value}')")
    assert not (tmp_path / "res").exists()


def test_measured_study_checks_what_run_checks(tmp_path, capsys):
    study = yaml.safe_load((WORKLOADS / "studies" / "demo.yaml").read_text())
    study["workload"] = str(WORKLOADS / "rag-shared-prefix.yaml")
    study["fixed"]["max_model_len"] = 256  # shorter than the workload's shared prefix alone
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    _one_line(capsys, ["optimize", str(path), "--results-dir", str(tmp_path / "res"), "-q"],
              f"{WORKLOADS / 'rag-shared-prefix.yaml'}: prompts.shared_prefix_tokens: ",
              f"alone fills max_model_len 256 ({path}: fixed)")


def test_storage_that_cannot_be_opened_is_one_line(tmp_path, capsys):
    _one_line(capsys, ["trials", "--storage", "nosuchdb://x/y"], "nosuchdb://x/y: cannot open the study storage")
    _one_line(capsys, ["trials", "--storage", f"sqlite:///{tmp_path}/absent/dir/s.db"],
              f"sqlite:///{tmp_path}/absent/dir/s.db: cannot open the study storage (OperationalError: unable to "
              "open database file)")
