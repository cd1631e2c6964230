"""infercost agrees with vLLM's own benchmark client (`vllm bench serve`) on one server and one workload: the medians
of TTFT within 10 %, TPOT within 5 %, request throughput within 5 %, or within the run-to-run spread measured here
when that is wider."""

from __future__ import annotations

import time

import pytest

from infercost.cli.main import build_parser, main
from infercost.crosscheck import (CrosscheckResult, Figures, Settings, ToolSummary, compare, cpu_list,
                                  crosscheck, figures_from_vllm, summarize_tool, vllm_bench_command)


def _figures(tool, round_, ttft, tpot, rps):
    return Figures(tool=tool, round=round_, seed=round_, requests=40, completed=40, failed=0, duration_s=20.0,
                   ttft_p50_ms=ttft, ttft_p99_ms=ttft * 1.2, tpot_p50_ms=tpot, tpot_p99_ms=tpot * 1.1,
                   request_throughput_rps=rps, mean_input_tokens=128, mean_output_tokens=32, wall_s=20.0)


def test_cpu_list_names_ranges_as_vllm_reads_them():
    assert cpu_list({0, 1}) == "0-1"
    assert cpu_list({3}) == "3"
    assert cpu_list({0, 1, 2, 5, 7, 8, 9}) == "0-2,5,7-9"
    assert cpu_list()  # this process's own affinity


def test_vllm_bench_gets_the_same_workload_and_constant_arrivals(tmp_path):
    cmd = vllm_bench_command("http://127.0.0.1:9/v1", "smollm2", "/tok", Settings(), 2.5, 7, tmp_path, "r.json")
    args = dict(zip(cmd, cmd[1:]))
    assert cmd[3:5] == ["bench", "serve"]
    assert args["--base-url"] == "http://127.0.0.1:9"  # vLLM appends the endpoint itself
    assert args["--endpoint"] == "/v1/completions"
    assert (args["--random-input-len"], args["--random-output-len"], args["--num-prompts"]) == ("128", "32", "48")
    assert (args["--request-rate"], args["--burstiness"], args["--seed"]) == ("2.5", "inf", "7")
    assert (args["--temperature"], args["--top-p"]) == ("0", "1")
    assert "--ignore-eos" in cmd and "--save-result" in cmd


def test_vllm_throughput_is_also_counted_from_its_first_send():
    result = {"completed": 2, "failed": 0, "duration": 4.5, "median_ttft_ms": 100.0, "p99_ttft_ms": 120.0,
              "median_tpot_ms": 50.0, "p99_tpot_ms": 55.0, "request_throughput": 2 / 4.5, "total_input_tokens": 256,
              "total_output_tokens": 64, "start_times": [10.5, 11.5], "latencies": [1.5, 2.5], "errors": ["", ""]}
    f = figures_from_vllm(result, 0, 1, 9.0)
    assert f.request_throughput_rps == pytest.approx(2 / 4.5)
    assert f.request_throughput_from_first_send_rps == pytest.approx(2 / 3.5)
    assert (f.mean_input_tokens, f.mean_output_tokens) == (128, 32)


def test_the_bound_is_the_tolerance_or_a_wider_spread():
    runs = [_figures("infercost", 0, 105, 50, 2.0), _figures("vllm", 0, 100, 50, 2.0),
            _figures("infercost", 1, 105, 50, 2.0), _figures("vllm", 1, 100, 60, 2.0)]
    tools = {t: summarize_tool(t, runs) for t in ("infercost", "vllm")}
    assert isinstance(tools["vllm"], ToolSummary) and tools["vllm"].spread["tpot_p50_ms"] == pytest.approx(10 / 55)
    by = {c.metric: c for c in compare(tools)}
    assert by["ttft_p50_ms"].bound_source == "tolerance" and by["ttft_p50_ms"].agree
    assert by["ttft_p50_ms"].difference == pytest.approx(0.05)
    tpot = by["tpot_p50_ms"]  # -9 %: beyond 5 %, within vLLM's own 18 % spread
    assert tpot.bound_source == "spread" and tpot.bound == pytest.approx(10 / 55) and tpot.agree
    assert by["ttft_p99_ms"].agree is None  # shown, not judged


def test_command_line_checks_its_options(capsys):
    args = build_parser().parse_args(["crosscheck", "--rate", "2", "--requests", "40", "--json"])
    assert (args.rate, args.requests, args.json, args.rounds) == (2.0, 40, True, 3)
    assert main(["crosscheck", "--requests", "10"]) == 2
    assert "--requests" in capsys.readouterr().err
    assert main(["crosscheck", "--rounds", "1"]) == 2


@pytest.mark.engine
def test_infercost_agrees_with_vllm_bench_serve(vllm_server, smollm2_dir, tmp_path):
    from infercost.errors import RunFailed

    t0 = time.monotonic()
    try:
        result = crosscheck(vllm_server, served_model="smollm2", tokenizer=str(smollm2_dir),
                            settings=Settings(num_requests=40, rounds=3, probe_requests=32), workdir=tmp_path)
    except RunFailed as exc:  # the reference tool itself cannot run on this CPU (seen on an AMD EPYC without
        if "SIGILL" in str(exc):  # AVX-512): nothing to compare with here; any other failure fails the test
            pytest.skip(str(exc))
        raise
    elapsed = time.monotonic() - t0
    assert isinstance(result, CrosscheckResult)
    assert [(r.tool, r.round) for r in result.runs] == [(t, i) for i in range(3) for t in ("infercost", "vllm")]
    for r in result.runs:
        assert (r.completed, r.failed) == (40, 0), r
        assert r.mean_input_tokens == 128 and r.mean_output_tokens == 32, r  # the same workload on both sides
    lines = [f"rate {result.rate_rps} req/s (sustained {result.sustained_rps:.2f}); {elapsed:.0f} s"]
    lines += [f"{c.metric}: infercost {c.infercost:.3f}, vLLM {c.vllm:.3f}, difference {c.difference:+.1%}"
              + ("" if c.bound is None else f", bound ±{c.bound:.1%} ({c.bound_source})") for c in result.comparisons]
    print("\n" + "\n".join(lines))
    for c in result.comparisons:
        if c.agree is None:
            continue
        assert c.agree, (f"{c.metric}: infercost {c.infercost:.3f} vs vLLM {c.vllm:.3f} differ by {c.difference:+.1%}, "
                         f"beyond the {c.bound_source} bound ±{c.bound:.1%} (tolerance {c.tolerance:.0%}, "
                         f"run-to-run spread {c.spread:.1%})\n" + "\n".join(lines))
    assert result.agree
