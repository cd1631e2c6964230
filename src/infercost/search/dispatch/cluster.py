"""What a Ray cluster can measure: which accelerators its nodes have, and the Ray resources a trial on one of them
asks for. Ray labels each GPU node `accelerator_type:<family>` (one unit per node, whatever its GPU count) and counts
its GPUs as `GPU`; an operator can also declare the exact name (`ray start --resources
'{"accelerator_type:A100-80GB": 1}'`), which is preferred when present, since Ray's family label does not tell an
A100 40GB from an 80GB or an H100 SXM from a PCIe card."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

PREFIX = "accelerator_type:"

# The family label Ray's GPU detection gives each accelerator of the hardware table, where it differs from the name.
RAY_FAMILY = {"H100-SXM": "H100", "H100-PCIe": "H100", "A100-80GB": "A100", "A100-40GB": "A100",
              "MI300X": "AMD-Instinct-MI300X-OAM"}


def labels(hardware: str) -> list[str]:
    """Ray resource names that mark a node with `hardware`, the exact one first."""
    out = [PREFIX + hardware]
    family = RAY_FAMILY.get(hardware)
    return out + ([PREFIX + family] if family else [])


class ClusterNode(BaseModel):
    node_id: str
    host: str | None = None
    address: str | None = None
    resources: dict[str, float] = Field(default_factory=dict)

    @property
    def gpus(self) -> float:
        return self.resources.get("GPU", 0.0)

    def accelerators(self) -> list[str]:
        return sorted(k.removeprefix(PREFIX) for k in self.resources if k.startswith(PREFIX))


class Placement(BaseModel):
    """The Ray resources of one trial on a placement: the node's accelerator label, whole, so no two trials share a
    node (their measurements would interfere), and its devices as GPUs, so a tensor-parallel deployment gets that
    many GPUs of one node."""

    resource: str
    num_gpus: float
    nodes: int  # nodes that can take it

    def options(self) -> dict[str, Any]:
        return {"resources": {self.resource: 1.0}, "num_gpus": self.num_gpus, "num_cpus": 1}


class Inventory(BaseModel):
    nodes: list[ClusterNode]
    standin: bool = False  # a stand-in deployment measures on nodes without GPUs: GPUs are not asked for

    @classmethod
    def of(cls, ray_nodes: list[dict[str, Any]], standin: bool = False) -> "Inventory":
        """From `ray.nodes()`: the nodes alive now."""
        return cls(nodes=[ClusterNode(node_id=n["NodeID"], host=n.get("NodeManagerHostname"),
                                      address=n.get("NodeManagerAddress"),
                                      resources={k: float(v) for k, v in (n.get("Resources") or {}).items()})
                          for n in ray_nodes if n.get("Alive")], standin=standin)

    def placement(self, hardware: str, devices: int) -> Placement | str:
        """The resources a trial on `devices` x `hardware` asks for, or why no node of the cluster can take it."""
        if hardware == "here":
            return "'here' is the machine the study runs on"
        for label in labels(hardware):
            fits = [n for n in self.nodes if n.resources.get(label, 0) >= 1
                    and (self.standin or n.gpus >= devices)]
            if fits:
                return Placement(resource=label, num_gpus=0 if self.standin else devices, nodes=len(fits))
        having = [n for n in self.nodes if any(n.resources.get(label, 0) >= 1 for label in labels(hardware))]
        if having:
            most = max(int(n.gpus) for n in having)
            return f"no node with {devices}x {hardware} in the cluster (at most {most} on one node)"
        return f"no node with {hardware} in the cluster"

    def measuring_nodes(self) -> int:
        """Nodes with an accelerator label: how many trials can be measured at once."""
        return sum(1 for n in self.nodes if n.accelerators())

    def describe(self) -> str:
        kinds: dict[str, int] = {}
        for n in self.nodes:
            for a in n.accelerators():
                kinds[a] = kinds.get(a, 0) + 1
        listed = ", ".join(f"{v} with {k}" for k, v in sorted(kinds.items())) or "none with an accelerator"
        return f"{len(self.nodes)} node(s): {listed}"
