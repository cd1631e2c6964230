"""A run's status and exit code tell the truth: a run whose requests all failed, whose server is gone or whose results
cannot be written is `failed` (exit 3) with the reason; a run above the workload's error limit says so (exit 1); bad
input is one line (exit 2) before any run starts. Faults come from closed ports on loopback, a real file-size limit
(RLIMIT_FSIZE: what a full disk does to a write) and the stub server (a fake, named as such: a real server cannot be
made to crash, truncate a stream or reject every prompt on demand)."""

import asyncio
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from infercost.cli import EXIT_BAD_INPUT, EXIT_NOT_MET, EXIT_OK, EXIT_RUN_FAILED, main
from infercost.engines import create_engine
from infercost.errors import InputError
from infercost.loadgen import LoadGenerator
from infercost.loadgen.stub_server import free_port, stub_server
from infercost.metrics import summarize
from infercost.spec.deployment import OpenAIDeployment
from infercost.spec.workload import Traffic
from infercost.store import load_run
from infercost.workload.requests import Request


def write_workload(tmp_path: Path, n: int = 20, rate: float = 40, extra: str = "") -> Path:
    path = tmp_path / "w.yaml"
    path.write_text("name: w\nprompts: {source: inline, items: [a, b, c]}\n"
                    f"traffic: {{arrival: constant, rate: {rate}, num_requests: {n}}}\n{extra}")
    return path


def write_deployment(tmp_path: Path, url: str, extra: str = "") -> Path:
    path = tmp_path / "d.yaml"
    path.write_text(f"engine: openai\nmodel: stub\nbase_url: {url}\n{extra}")
    return path


def run_cli(capsys, workload: Path, deployment: Path, results: Path, *more: str):
    code = main(["run", str(workload), "-d", str(deployment), "--results-dir", str(results), "-q", *more])
    out = capsys.readouterr()
    return code, out.out, out.err


def only_run(results: Path):
    runs = [p for p in results.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return load_run(runs[0])


def one_line(err: str, prefix: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(prefix) and "Traceback" not in err, err
    return lines[0]


def test_a_closed_port_is_a_failed_run_that_stops_sending(tmp_path, capsys):
    port = free_port()  # bound and released: nothing listens there
    workload = write_workload(tmp_path, n=200, rate=20)  # 10 s of load if it were all sent
    code, out, err = run_cli(capsys, workload, write_deployment(tmp_path, f"http://127.0.0.1:{port}/v1"),
                             tmp_path / "res")
    assert code == EXIT_RUN_FAILED == 3
    line = one_line(err, "infercost: run failed: server unreachable: 5 requests in a row could not connect")
    assert "ClientConnectorError" in line
    run = only_run(tmp_path / "res")
    assert run.manifest["status"] == "failed" and run.manifest["reason"].startswith("server unreachable")
    assert len(run.measured) < 20  # the load stopped once the server was known to be gone
    assert set(run.measured["error_kind"]) <= {"connect", "cancelled"}
    assert run.summary["completed"] == 0


def test_a_server_killed_mid_run_fails_the_run_and_keeps_what_was_measured(tmp_path, capsys):
    with stub_server(tokens=3, die_after=6) as url:
        code, out, err = run_cli(capsys, write_workload(tmp_path, n=200, rate=20), write_deployment(tmp_path, url),
                                 tmp_path / "res")
    assert code == EXIT_RUN_FAILED
    one_line(err, "infercost: run failed: server unreachable")
    run = only_run(tmp_path / "res")
    assert run.manifest["status"] == "failed"
    assert 0 < run.summary["completed"] <= 6 and run.measured["error"].isna().sum() == run.summary["completed"]
    assert (run.directory / "requests.parquet").is_file() and len(run.measured) < 40
    assert run.manifest["error_limit"]["exceeded"] is True


def test_an_engine_that_rejects_every_prompt_is_a_failed_run(tmp_path, capsys):
    with stub_server(tokens=3, fail_every=1) as url:
        code, out, err = run_cli(capsys, write_workload(tmp_path, n=6), write_deployment(tmp_path, url),
                                 tmp_path / "res", "--json")
    assert code == EXIT_RUN_FAILED
    line = one_line(err, "infercost: run failed: all 6 requests failed (6 × HTTP 500:")
    assert "injected failure" in line
    assert json.loads(out)["failed"] == 6  # --json still prints what was measured
    run = only_run(tmp_path / "res")
    assert run.manifest["status"] == "failed" and run.manifest["reason"].startswith("all 6 requests failed")
    assert set(run.measured["error_kind"]) == {"http"} and set(run.measured["http_status"]) == {500}


def test_a_run_above_the_error_limit_says_so_and_exits_1(tmp_path, capsys):
    with stub_server(tokens=3, fail_every=4) as url:
        deployment = write_deployment(tmp_path, url)
        code, out, err = run_cli(capsys, write_workload(tmp_path, n=8, extra="slo: {max_error_rate: 0.1}\n"),
                                 deployment, tmp_path / "strict")
        assert code == EXIT_NOT_MET == 1
        one_line(err, "infercost: error limit not met: 2 of 8 requests failed, error rate 25.0% > "
                      "slo.max_error_rate 10.0%")
        run = only_run(tmp_path / "strict")
        assert run.manifest["status"] == "completed"
        assert run.manifest["error_limit"] == {"max_error_rate": 0.1, "error_rate": 0.25, "exceeded": True}

        code, out, err = run_cli(capsys, write_workload(tmp_path, n=8, extra="slo: {max_error_rate: 0.5}\n"),
                                 deployment, tmp_path / "lenient")
    assert code == EXIT_OK and err.strip() == ""
    assert only_run(tmp_path / "lenient").manifest["error_limit"]["exceeded"] is False


def test_a_stream_that_ends_without_finish_reason_is_an_error_of_its_own_kind(tmp_path, capsys):
    requests = [Request(id=f"q{i}", prompt=f"question {i}", max_tokens=8) for i in range(4)]

    async def go(url):
        engine = create_engine(OpenAIDeployment(engine="openai", model="stub", base_url=url))
        await engine.start()
        try:
            return await LoadGenerator(engine, requests, Traffic(arrival="constant", rate=50, num_requests=8)).run()
        finally:
            await engine.stop()

    with stub_server(tokens=8, truncate_every=2) as url:
        records = asyncio.run(go(url))
    cut = [r for r in records if not r.ok]
    assert len(cut) == 4
    assert all(r.error == "stream ended without finish_reason" and r.error_kind == "truncated" for r in cut)
    assert all(r.output_text and r.output_tokens is None for r in cut)  # it did stream part of an answer
    s = summarize(records)
    assert s.error_rate == 0.5 and s.mean_output_tokens == 8  # short answers do not lower the mean
    assert s.errors == {"stream ended without finish_reason": 4}


@pytest.mark.parametrize("url, expected", [
    ("http://127.0.0.1:99999/v1", "Port out of range"),
    ("http://127.0.0.1:abc/v1", "could not be cast to integer"),
    ("http://127.0.0.1:0/v1", "got port 0"),
    ("http://:8000/v1", "the host is missing"),
])
def test_a_malformed_port_is_one_line_before_any_run(tmp_path, capsys, url, expected):
    deployment = write_deployment(tmp_path, url)
    code, out, err = run_cli(capsys, write_workload(tmp_path), deployment, tmp_path / "res")
    assert code == EXIT_BAD_INPUT
    line = one_line(err, f"infercost: error: {deployment}: base_url: expected http(s)://HOST[:PORT]/PATH")
    assert expected in line
    assert not (tmp_path / "res").exists()  # no run was started, so none is left `running`


SYNTHETIC = ("name: syn\nprompts: {source: synthetic, count: 4, input_tokens: {mean: 16}, output_tokens: {mean: 4}}\n"
             "traffic: {arrival: constant, rate: 20, num_requests: 4}\n")


def test_a_synthetic_workload_on_openai_without_a_tokenizer_is_one_line(tmp_path, capsys):
    (tmp_path / "w.yaml").write_text(SYNTHETIC)
    deployment = write_deployment(tmp_path, f"http://127.0.0.1:{free_port()}/v1")
    for command in ("run", "capacity"):
        code = main([command, str(tmp_path / "w.yaml"), "-d", str(deployment), "--results-dir",
                     str(tmp_path / "res"), "-q"])
        err = capsys.readouterr().err
        assert code == EXIT_BAD_INPUT
        one_line(err, f"infercost: error: {deployment}: tokenizer: workload 'syn' has synthetic prompts, sized in "
                      "tokens: expected a tokenizer")
    assert not (tmp_path / "res").exists()


def test_an_engine_without_a_tokenizer_fails_the_run_and_is_always_stopped(tmp_path, monkeypatch):
    """Past the preflight (an engine other than openai may lack a tokenizer too): the run is `failed` with the
    reason, not left `running`, and the engine's HTTP session is closed."""
    from infercost import measure as measure_module
    from infercost.spec import load_deployment, load_workload
    from infercost.store import RunStore

    (tmp_path / "w.yaml").write_text(SYNTHETIC)
    started = []
    real_create = measure_module.create_engine

    def spy(deployment):
        engine = real_create(deployment)
        started.append(engine)
        return engine

    monkeypatch.setattr(measure_module, "check_runnable", lambda *a, **k: None)
    monkeypatch.setattr(measure_module, "create_engine", spy)
    with stub_server(tokens=2) as url:
        workload = load_workload(tmp_path / "w.yaml")
        deployment = load_deployment(write_deployment(tmp_path, url))
        with pytest.raises(InputError, match="tokenizer: .*no tokenizer to count them"):
            asyncio.run(measure_module.measure(workload, deployment, RunStore(tmp_path / "res")))
    assert started and started[0]._session is None  # stopped: the session was closed
    run = only_run(tmp_path / "res")
    assert run.manifest["status"] == "failed" and "no tokenizer" in run.manifest["reason"]


def read_only_dir(tmp_path: Path) -> Path:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    if os.access(ro, os.W_OK):  # root ignores the mode: use a directory the kernel refuses to write instead
        ro = Path("/sys/infercost-results")
        try:
            ro.mkdir()
        except OSError:
            return ro
        ro.rmdir()
        pytest.skip("no read-only directory available here")
    return ro / "results"


def test_a_read_only_results_directory_is_one_line_exit_2(tmp_path, capsys):
    results = read_only_dir(tmp_path)
    with stub_server(tokens=2) as url:
        code, out, err = run_cli(capsys, write_workload(tmp_path, n=2), write_deployment(tmp_path, url), results)
    assert code == EXIT_BAD_INPUT
    line = one_line(err, "infercost: error: ")
    assert str(results) in line and "expected a writable directory" in line


def _limit_file_size():  # what a full disk does to a write, for this process only: EFBIG (Python ignores SIGXFSZ)
    resource.setrlimit(resource.RLIMIT_FSIZE, (40_000, 40_000))


def test_results_that_cannot_be_written_stop_the_load_and_fail_the_run(tmp_path):
    results = tmp_path / "res"
    workload = write_workload(tmp_path, n=500, rate=50, extra="sampling: {max_tokens: 40}\n")  # 10 s planned
    with stub_server(tokens=40) as url:
        proc = subprocess.run([sys.executable, "-m", "infercost", "run", str(workload), "-d",
                               str(write_deployment(tmp_path, url)), "--results-dir", str(results), "-q"],
                              capture_output=True, text=True, timeout=120, preexec_fn=_limit_file_size)
    assert proc.returncode == EXIT_RUN_FAILED, proc.stderr
    line = one_line(proc.stderr, "infercost: run failed: writing results failed:")
    assert "requests.jsonl" in line and "File too large" in line
    run = only_run(results)
    assert run.manifest["status"] == "failed" and "writing results failed" in run.manifest["reason"]
    kept = (run.directory / "requests.jsonl").read_text().splitlines()
    assert len(kept) > 10 and len(run.measured) >= len(kept) - 1  # what was written is kept and readable
    assert run.summary["requests"] < 250  # the load stopped at once, not at the end of its plan
    assert not list(run.directory.glob("*.tmp"))


def test_process_exit_codes_without_traceback(tmp_path):
    """The real console entry point: a failed run is exit 3, one line, no traceback."""
    workload = write_workload(tmp_path, n=3)
    proc = subprocess.run([sys.executable, "-m", "infercost", "run", str(workload), "-d",
                           str(write_deployment(tmp_path, f"http://127.0.0.1:{free_port()}/v1")), "--results-dir",
                           str(tmp_path / "res"), "-q", "--json"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == EXIT_RUN_FAILED
    one_line(proc.stderr, "infercost: run failed: all 3 requests failed (3 × ClientConnectorError")
    assert json.loads(proc.stdout)["completed"] == 0


def test_a_capacity_search_against_a_closed_port_fails_rather_than_reading_as_below_min(tmp_path, capsys):
    """A probe whose run failed ends the search as `failed` (exit 3) with the reason: a dead server must not read as
    "the SLO fails even at the lowest load"."""
    from infercost.capacity.result import load_capacity

    port = free_port()
    workload = write_workload(tmp_path, n=20, rate=5, extra="slo: {ttft_ms: {p95: 2000}}\n")
    code = main(["capacity", str(workload), "-d", str(write_deployment(tmp_path, f"http://127.0.0.1:{port}/v1")),
                 "--results-dir", str(tmp_path / "res"), "-q", "--max-probes", "4"])
    err = capsys.readouterr().err
    assert code == EXIT_RUN_FAILED
    one_line(err, "infercost: capacity search failed: probe 0 at")
    result = load_capacity(only_run(tmp_path / "res").directory)
    assert result.status == "failed" and "server unreachable" in result.reason
    assert len(result.probes) == 1 and not result.probes[0].passed


def test_answers_the_server_failed_stop_quality_in_one_line_and_are_not_cached(tmp_path, capsys):
    """Quality is not scored on the answers that came back when others failed, and a failed answer is never cached
    as an empty one."""
    items = ", ".join(f"{{prompt: 'q{i}', reference: 'r{i}'}}" for i in range(6))
    workload = tmp_path / "q.yaml"
    workload.write_text(f"name: q\nprompts: {{source: inline, items: [{items}]}}\n"
                        "traffic: {arrival: constant, rate: 10, num_requests: 6}\n"
                        "quality: {scorers: [{name: rouge_l}], sample_size: 6}\n")
    with stub_server(tokens=3, fail_every=2) as url:  # every second request gets an HTTP 500
        code = main(["quality", str(workload), "-d", str(write_deployment(tmp_path, url)),
                     "--results-dir", str(tmp_path / "res")])
    err = capsys.readouterr().err
    assert code == EXIT_RUN_FAILED
    line = one_line(err, "infercost: failed: 3 of 6 answers failed")
    assert "500" in line and "injected failure" in line
    cached = [json.loads(p.read_text()) for p in (tmp_path / "res" / "quality-cache").glob("*.json")]
    assert cached and all(len(c["answers"]) == 3 for c in cached)  # only the answers that came back


def test_run_repeats_replays_on_one_engine_and_pools_them(tmp_path, capsys):
    """`run --repeats 3` against the stub server: one parent run holding each replay under replays/, a summary
    pooling every replay's records, and each replay's figures with their spread; `show` reads the parent."""
    with stub_server(tokens=3, ttft_ms=5) as url:
        code, out, err = run_cli(capsys, write_workload(tmp_path, n=10, rate=50, extra="slo: {ttft_ms: {p50: 5000}}\n"),
                                 write_deployment(tmp_path, url), tmp_path / "res", "--repeats", "3")
    assert code == EXIT_OK, err
    run = only_run(tmp_path / "res")  # one parent run; the replays are inside it
    assert run.manifest["status"] == "completed" and run.manifest["repeats"] == 3
    replays = sorted((run.directory / "replays").iterdir())
    assert len(replays) == 3 and run.manifest["replays"] == [f"replays/{p.name}" for p in replays]
    singles = [load_run(p) for p in replays]
    assert all(r.manifest["status"] == "completed" and r.summary["requests"] == 10 for r in singles)
    assert [r.manifest["workload"]["traffic"]["seed"] for r in singles] == [0, 1, 2]  # a different draw each
    s = run.summary
    assert s["requests"] == 30 and s["latency"]["ttft_ms"]["count"] == 30 and s["slo_met"] is True
    throughputs = [r.summary["request_throughput_rps"] for r in singles]
    assert s["request_throughput_rps"] == pytest.approx(sum(throughputs) / 3)
    assert s["duration_s"] == pytest.approx(sum(r.summary["duration_s"] for r in singles))  # end to end
    rep = s["repeats"]
    assert rep["n"] == 3 and [r["run_dir"] for r in rep["runs"]] == run.manifest["replays"]
    assert [r["request_throughput_rps"] for r in rep["runs"]] == pytest.approx(throughputs)
    assert rep["spread"]["request_throughput_rps"]["n"] == 3
    assert rep["spread"]["ttft_ms.p95"]["min"] <= rep["spread"]["ttft_ms.p95"]["max"]
    assert len(run.measured) == 30 and set(run.measured["replay"]) == {1, 2, 3}
    assert "3 replays on one engine" in out and "│ cv │" in out
    assert main(["show", str(run.directory)]) == EXIT_OK
    assert "3 replays on one engine" in capsys.readouterr().out

    code, out, err = run_cli(capsys, write_workload(tmp_path), write_deployment(tmp_path, "http://127.0.0.1:9/v1"),
                             tmp_path / "bad", "--repeats", "11")
    assert code == EXIT_BAD_INPUT and "repeats" in err and not (tmp_path / "bad").exists()
