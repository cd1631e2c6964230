"""Quality gate on real answers: SmolLM2 on vLLM-CPU in fp32 and bf16, scored against references and against each
other; answers cached per key; early stop."""

import json

import numpy as np
import pytest

from conftest import WORKLOADS
from infercost.cli import main
from infercost.loadgen.stub_server import stub_server
from infercost.quality import evaluate_sync
from infercost.quality.evaluate import bootstrap_ci
from infercost.quality.scorers import get_scorer
from infercost.spec import OpenAIDeployment, load_deployment, load_workload
from infercost.store import RunStore, load_run

BF16 = ("{engine: vllm, model: smollm2-135m-instruct, name: smollm2-bf16, dtype: bfloat16, "
        "max_model_len: 2048, max_num_seqs: 16}")


def no_engine(deployment):
    raise AssertionError(f"an engine was started for {deployment.label()}")


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, smollm2_dir):
    """fp32 and bf16 evaluated once each (two real engine starts); everything after reads the cache."""
    root = tmp_path_factory.mktemp("quality")
    cache, store = root / "cache", RunStore(root / "results")
    workload = load_workload(WORKLOADS / "chat-support.yaml")
    fp32 = load_deployment(WORKLOADS / "deployments/smollm2-vllm-cpu.yaml")
    bf16 = load_deployment(WORKLOADS / "deployments/smollm2-vllm-cpu.yaml", ["dtype=bfloat16", "name=smollm2-bf16"])
    results = {"fp32": evaluate_sync(workload, fp32, cache_dir=cache, store=store),
               "bf16": evaluate_sync(workload, bf16, cache_dir=cache, store=store)}
    return {"cache": cache, "store": store, "fp32_deployment": fp32, **results}


pytestmark = pytest.mark.engine


def test_both_precisions_are_scored_with_confidence_intervals(evaluated):
    for name in ("fp32", "bf16"):
        result = evaluated[name]
        s = result.summary
        assert s.prompts == s.evaluated == 20 and not s.cache_hit and s.engine_startup_s > 0
        lo, hi = s.mean_score_ci95
        assert 0 <= lo <= s.mean_score <= hi <= 1 and hi - lo > 0
        assert s.target_met == (s.pass_rate >= 0.5)
        # stored per prompt, with the answers
        run = load_run(result.run_dir)
        assert run.manifest["kind"] == "quality"
        rows = [json.loads(line) for line in (result.run_dir / "quality.jsonl").read_text().splitlines()]
        assert len(rows) == 20 and {"id", "prompt", "answer", "reference", "score"} <= set(rows[0])
        assert (result.run_dir / "quality.parquet").is_file()
        assert json.loads((result.run_dir / "quality.json").read_text())["mean_score"] == pytest.approx(s.mean_score)
    # The sanity prompt, if sampled, is answered correctly in both precisions
    for name in ("fp32", "bf16"):
        answers = evaluated[name].answers
        if "cs-001" in answers:
            assert "Paris" in answers["cs-001"]


def test_second_evaluation_of_the_same_key_starts_no_engine(evaluated):
    workload = load_workload(WORKLOADS / "chat-support.yaml")
    # max_num_seqs and prefix caching do not change answers: same key
    again = load_deployment(WORKLOADS / "deployments/smollm2-vllm-cpu.yaml",
                            ["max_num_seqs=2", "enable_prefix_caching=false"])
    result = evaluate_sync(workload, again, cache_dir=evaluated["cache"], engine_factory=no_engine)
    assert result.summary.cache_hit and result.summary.engine_startup_s is None
    assert result.summary.mean_score == pytest.approx(evaluated["fp32"].summary.mean_score)


def _relative(agreement):
    return load_workload(WORKLOADS / "chat-support.yaml",
                         [f"quality.target={{baseline: {BF16}, agreement: {agreement}, threshold: 0.9}}"])


def test_relative_target_against_bf16_is_evaluated_correctly(evaluated):
    strict = evaluate_sync(_relative(0.999), evaluated["fp32_deployment"], cache_dir=evaluated["cache"],
                           engine_factory=no_engine).summary
    # recompute the agreement independently from both deployments' cached answers
    fp32, bf16 = evaluated["fp32"].answers, evaluated["bf16"].answers
    rouge = get_scorer("rouge_l").fn
    expected = np.mean([rouge(fp32[k], bf16[k]) for k in fp32])
    assert strict.mean_score == pytest.approx(expected)
    assert strict.relative_to == "smollm2-bf16"
    # Greedy fp32 and bf16 answers diverge on this engine (measured: mean ROUGE-L agreement ~0.74 over 20 prompts),
    # so the deliberately strict target must fail, naming the prompts that disagree.
    assert expected < 0.999
    assert strict.target_met is False and strict.binding == "agreement"
    assert strict.failing and all(f.score < 0.9 for f in strict.failing)
    assert {f.id for f in strict.failing} == {k for k in fp32 if rouge(fp32[k], bf16[k]) < 0.9}
    assert all(f.reference == bf16[f.id] for f in strict.failing)  # the baseline's answer is the reference
    lenient = evaluate_sync(_relative(round(expected - 0.05, 3)), evaluated["fp32_deployment"], cache_dir=evaluated["cache"],
                            engine_factory=no_engine).summary
    assert lenient.target_met is True and lenient.failing == strict.failing


def test_quality_cli_lists_failing_prompts_and_exits_1_when_the_target_fails(evaluated, capsys, tmp_path):
    import shutil

    results = tmp_path / "results"
    shutil.copytree(evaluated["cache"], results / "quality-cache")
    code = main(["quality", str(WORKLOADS / "chat-support.yaml"), "-d",
                 str(WORKLOADS / "deployments/smollm2-vllm-cpu.yaml"), "--results-dir", str(results),
                 "-w", "quality.target.pass_rate=1.0", "--worst", "3"])
    out = " ".join(capsys.readouterr().out.split())  # rich wraps at the terminal width
    assert code == 1
    assert "answers from cache, no engine started" in out and "NOT met" in out and "worst answers (3 of" in out


def test_early_stop_when_the_target_is_out_of_reach(tmp_path):
    """The stub (a calibration fake) answers " t0 t1 ..." to everything, so no answer can contain its keyword:
    after the first batch, a 90% pass rate is out of reach and the rest is never generated."""
    workload = load_workload(WORKLOADS / "chat-support.yaml",
                             ["quality.sample_size=20", "quality.batch_size=4", "quality.target.pass_rate=0.9"])
    with stub_server(tokens=4) as url:
        deployment = OpenAIDeployment(engine="openai", model="stub", base_url=url)
        s = evaluate_sync(workload, deployment, cache_dir=tmp_path).summary
    assert s.stopped_early and s.evaluated == 4 and s.prompts == 20
    assert s.target_met is False and s.binding == "pass_rate"


def test_bootstrap_interval_covers_the_mean_and_shrinks_with_n():
    rng = np.random.default_rng(1)
    small, large = rng.random(20), rng.random(2000)
    lo, hi = bootstrap_ci(small)
    assert lo < small.mean() < hi
    lo2, hi2 = bootstrap_ci(large)
    assert (hi2 - lo2) < (hi - lo) / 5
    assert bootstrap_ci(np.array([])) is None


def test_quality_spec_errors_are_one_line(tmp_path, capsys):
    path = tmp_path / "w.yaml"
    path.write_text("name: w\nprompts: {source: inline, items: [hi]}\ntraffic: {rate: 1, num_requests: 1}\n"
                    "quality: {target: {baseline: b.yaml}}\n")
    assert main(["validate", str(path)]) == 2
    assert "quality.target: a baseline needs 'agreement'" in capsys.readouterr().err
