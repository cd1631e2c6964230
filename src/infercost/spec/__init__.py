"""Typed, validated specs (pydantic v2) for workloads and deployments, loaded from YAML."""

from infercost.spec.deployment import Deployment, OpenAIDeployment, TransformersDeployment, VllmDeployment
from infercost.spec.loader import load_deployment, load_workload
from infercost.spec.workload import SLO, Demand, PromptItem, Sampling, Tags, Traffic, Workload

__all__ = [
    "Deployment", "OpenAIDeployment", "TransformersDeployment", "VllmDeployment", "load_deployment", "load_workload",
    "SLO", "Demand", "PromptItem", "Sampling", "Tags", "Traffic", "Workload",
]
