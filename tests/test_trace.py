"""Trace replay: the Azure, Mooncake and plain-CSV layouts read into a window of requests at their traced offsets,
with exact input lengths (the bundled model's tokenizer), exact output lengths, identical hash blocks as identical
text, one-line errors with the line of a malformed row; sent at the traced offsets by the load generator (against
the stub server, a fake that answers at once so only the sender's timing is measured); probed for capacity by
compressing time, not by switching to Poisson; and no prompt silently cycled."""

import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
import yaml

from infercost.cli.main import main
from infercost.errors import InputError
from infercost.spec.workload import Workload
from infercost.workload.requests import build_requests
from infercost.workload.trace import read_trace, timestamp_s

from conftest import replay

AZURE = """TIMESTAMP,ContextTokens,GeneratedTokens
2023-11-16 18:15:46.6805900,374,44
2023-11-16 18:15:47.1805900,396,109
2023-11-16 18:15:49.6805900,879,22
2023-11-16 18:15:52.6805900,91,7
2023-11-16 18:15:56.6805900,120,0
"""


def workload(trace: dict, **extra) -> Workload:
    return Workload.model_validate({"name": "tr", "api": "completion", **extra,
                                    "traffic": {"arrival": "trace", "trace": trace}})


def test_azure_timestamps_window_and_speed(tmp_path):
    (tmp_path / "a.csv").write_text(AZURE)
    assert timestamp_s("2023-11-16 18:15:46.6805900") == pytest.approx(
        datetime(2023, 11, 16, 18, 15, 46, tzinfo=timezone.utc).timestamp() + 0.68059)
    w = workload({"path": str(tmp_path / "a.csv"), "format": "azure", "start_s": 0.4, "duration_s": 9.0,
                  "speed": 2.0})
    trace = read_trace(w.traffic.trace)
    # rows at 0, 0.5, 3, 6 and 10 s after the first; the window [0.4, 9.4) keeps 0.5, 3 and 6, shifted by 0.4 and
    # halved by the speed-up
    assert trace.offsets_s.tolist() == pytest.approx([0.05, 1.3, 2.8])
    assert trace.input_tokens == [396, 879, 91] and trace.output_tokens == [109, 22, 7]
    requests = build_requests(w)
    assert [r.max_tokens for r in requests] == [109, 22, 7] and all(r.ignore_eos for r in requests)
    assert [r.meta["offset_s"] for r in requests] == pytest.approx([0.05, 1.3, 2.8])


def test_a_traced_row_with_no_output_is_served_one_token(tmp_path):
    (tmp_path / "a.csv").write_text(AZURE)
    trace = read_trace(workload({"path": str(tmp_path / "a.csv"), "format": "azure"}).traffic.trace)
    assert trace.output_tokens[-1] == 1 and len(trace) == 5


def test_mooncake_hash_blocks_become_identical_text_and_lengths_are_exact(tmp_path, smollm2_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(smollm2_dir))
    count = lambda text: len(tok(text, add_special_tokens=False).input_ids)  # noqa: E731
    rows = [{"timestamp": 0, "input_length": 1100, "output_length": 9, "hash_ids": [7, 8, 9]},
            {"timestamp": 250, "input_length": 700, "output_length": 3, "hash_ids": [7, 8]},
            {"timestamp": 900, "input_length": 600, "output_length": 5, "hash_ids": [1, 2]}]
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    w = workload({"path": str(tmp_path / "m.jsonl"), "format": "mooncake", "block_tokens": 512})
    requests = build_requests(w, count)
    assert [count(r.prompt) for r in requests] == [1100, 700, 600]
    assert [r.meta["offset_s"] for r in requests] == pytest.approx([0.0, 0.25, 0.9])
    words = [r.prompt.split() for r in requests]
    # blocks 7 and 8 are the same 1,024 words in the first two requests; block 1 of the third is different
    assert words[0][:512] == words[1][:512] and words[0][512:700] == words[1][512:700]
    assert words[2][:50] != words[0][:50]


def test_plain_csv_with_a_column_mapping_in_milliseconds(tmp_path):
    (tmp_path / "c.csv").write_text("t_ms,prompt_len,completion_len,conversation\n0,10,5,a\n1500,20,6,b\n"
                                    "3000,30,7,a\n")
    w = workload({"path": str(tmp_path / "c.csv"), "format": "csv", "columns": {
        "arrival": "t_ms", "input_tokens": "prompt_len", "output_tokens": "completion_len",
        "session_id": "conversation", "time_unit": "ms"}})
    trace = read_trace(w.traffic.trace)
    assert trace.offsets_s.tolist() == pytest.approx([0.0, 1.5, 3.0]) and trace.sessions == ["a", "b", "a"]
    assert trace.mean_rate() == pytest.approx(2 / 3.0)


@pytest.mark.parametrize("fmt, text, line, expected", [
    ("azure", AZURE.replace("2023-11-16 18:15:49.6805900", "yesterday"), 4, "expected seconds or a date-time"),
    ("azure", AZURE.replace(",879,", ",-3,"), 4, "ContextTokens: expected a whole number of tokens from 0"),
    ("azure", AZURE.replace(",91,7", ",91"), 5, "2 cells, the header has 3"),
    ("azure", "TIMESTAMP,Context\n1,2\n", 1, "no column 'ContextTokens'"),
    ("azure", AZURE.replace("18:15:52", "18:10:52"), 5, "before the trace's first row: expected rows in time order"),
    ("mooncake", '{"timestamp": 0, "input_length": 5, "output_length": 1}\n{"timestamp": 1, "input_length": 5\n',
     2, "not valid JSON"),
    ("mooncake", '{"timestamp": 0, "input_length": 5, "output_length": 1}\n[1, 2]\n', 2, "expected a JSON object"),
    ("mooncake", '{"timestamp": 0, "input_length": 5}\n', 1, "missing output_length"),
    ("mooncake", '{"timestamp": 0, "input_length": 5, "output_length": 1, "hash_ids": ["a"]}\n', 1,
     "hash_ids: expected a list of whole numbers"),
])
def test_a_malformed_row_is_one_line_with_its_line_number(tmp_path, capsys, fmt, text, line, expected):
    trace = tmp_path / ("t.jsonl" if fmt == "mooncake" else "t.csv")
    trace.write_text(text)
    path = tmp_path / "w.yaml"
    path.write_text(yaml.safe_dump({"name": "tr", "api": "completion", "traffic": {
        "arrival": "trace", "trace": {"path": trace.name, "format": fmt}}}))
    with pytest.raises(InputError) as exc:
        build_requests(Workload.model_validate({**yaml.safe_load(path.read_text()), "traffic": {
            "arrival": "trace", "trace": {"path": str(trace), "format": fmt}}}))
    assert exc.value.field == f"line {line}" and expected in str(exc.value), str(exc.value)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(trace) in err and f"line {line}" in err and expected in err, err


@pytest.mark.parametrize("traffic, expected", [
    ({"arrival": "trace", "trace": {"path": "t.csv", "format": "azure"}, "rate": 4},
     "'rate' does not apply to arrival 'trace'"),
    ({"arrival": "trace"}, "arrival 'trace' needs 'trace'"),
    ({"arrival": "poisson", "rate": 1, "num_requests": 3, "trace": {"path": "t.csv", "format": "azure"}},
     "'trace' is for arrival 'trace'"),
    ({"arrival": "trace", "trace": {"path": "t.csv", "format": "csv"}}, "format 'csv' needs 'columns'"),
])
def test_trace_settings_that_cannot_apply_are_refused(traffic, expected):
    with pytest.raises(Exception) as exc:
        Workload.model_validate({"name": "tr", "traffic": traffic})
    assert expected in str(exc.value)


def test_inline_prompts_with_a_trace_are_refused():
    with pytest.raises(Exception) as exc:
        Workload.model_validate({"name": "tr", "prompts": {"source": "inline", "items": ["hi"]},
                                 "traffic": {"arrival": "trace", "trace": {"path": "t.csv", "format": "azure"}}})
    assert "prompts must be {source: trace}" in str(exc.value)


def test_requests_go_out_at_their_traced_offsets(tmp_path):
    from infercost.loadgen.stub_server import stub_server

    (tmp_path / "a.csv").write_text(AZURE)
    w = workload({"path": str(tmp_path / "a.csv"), "format": "azure", "speed": 4.0})
    with stub_server(tokens=2) as url:
        _, records = replay(url, w)
    records = sorted(records, key=lambda r: r.index)
    assert [r.scheduled_s for r in records] == pytest.approx([0, 0.125, 0.75, 1.5, 2.5])
    lag = [r.sent_s - r.scheduled_s for r in records]
    assert all(0 <= x < 0.05 for x in lag), lag  # the sender is on time (a loose bound: shared machines)
    assert all(r.ok for r in records)


def test_prompts_are_not_silently_cycled(tmp_path):
    from infercost.loadgen.stub_server import stub_server

    w = Workload.model_validate({"name": "few", "api": "completion",
                                 "prompts": {"source": "inline", "items": [f"prompt {i}" for i in range(4)]},
                                 "traffic": {"arrival": "constant", "rate": 200, "num_requests": 10}})
    with stub_server(tokens=1) as url:
        gen, records = replay(url, w)
    ids = [r.request_id for r in sorted(records, key=lambda r: r.index)]
    passes = [ids[0:4], ids[4:8], ids[8:]]
    assert all(sorted(p) == sorted(set(p)) for p in passes)  # each prompt once per pass
    # passes after the first go in a new order, seeded from the traffic's seed and the pass
    assert passes[1] == [ids[j] for j in np.random.default_rng([0, 1]).permutation(4)]
    assert passes[2] == [ids[j] for j in np.random.default_rng([0, 2]).permutation(4)][:2]
    assert gen.prompt_reuse() == {"prompts": 4, "requests": 10, "passes": 3, "order": gen.prompt_reuse()["order"]}


def test_a_capacity_probe_compresses_the_trace_in_time(tmp_path):
    from infercost.capacity.measured import traced_probe
    from infercost.capacity.result import CapacityOptions

    (tmp_path / "a.csv").write_text(AZURE)
    w = workload({"path": str(tmp_path / "a.csv"), "format": "azure"})  # 5 rows over 10 s: 0.4 req/s
    spec = traced_probe(w, 2.0, 4, CapacityOptions(min_duration_s=1))
    assert spec.speed == pytest.approx(5.0) and spec.duration_s == pytest.approx(10.0)  # 4 requests' worth
    probe = w.model_copy(update={"traffic": w.traffic.model_copy(update={"trace": spec})})
    offsets = [r.meta["offset_s"] for r in build_requests(probe)]
    assert offsets == pytest.approx([0, 0.1, 0.6, 1.2])  # the same bursts and lulls, five times as fast


def test_projection_replays_the_trace(tmp_path):
    from infercost.projection.project import traced_rate, workload_lengths

    (tmp_path / "a.csv").write_text(AZURE)
    w = workload({"path": str(tmp_path / "a.csv"), "format": "azure"})
    lengths = workload_lengths(w)
    assert lengths.prompt == [374, 396, 879, 91, 120] and lengths.arrivals == pytest.approx([0, 0.5, 3, 6, 10])
    assert traced_rate(lengths) == pytest.approx(0.4)
    assert np.allclose(np.asarray(lengths.arrivals) * (traced_rate(lengths) / 0.8), [0, 0.25, 1.5, 3, 5])
