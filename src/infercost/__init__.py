"""infercost: the cheapest way to serve an LLM workload within its latency and quality targets."""

__version__ = "0.1.0"
