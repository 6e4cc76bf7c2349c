"""The "Bound Services" view of a scenario (seed 002), ``edge graph``: who calls whom, through
which binding, and how each split service shares its traffic; as text, or as Graphviz DOT
(``--dot``, rendered by ``dot`` in the tests). Read from the resolved scenario alone: nothing is built."""

from __future__ import annotations

from edge.scenario.resolved import ResolvedScenario, ResolvedService
from edge.scenario.values import EnvironmentKey


def text(scenario: ResolvedScenario) -> str:
    """Each service with its routes (or public, private), its environments' own routes, every
    binding of every environment, and the split."""
    lines = []
    for service in scenario.services.values():
        exposure = ", ".join(map(str, service.routes)) if service.routes else "public" if service.public else "private"
        lines.append(f"{service.name}  [{exposure}]")
        for env in service.environments.values():
            if env.preview is not None:
                lines.append(f"  {env.name}  [{', '.join(map(str, env.routes))}]")
        for env in service.environments.values():
            for name, target in env.bindings.items():
                lines.append(f"  {env.name}: {name} -> {target}")
        if service.split is not None:
            split = ", ".join(f"{k} {v:g}%" for k, v in service.split.weights.items())
            retry = service.split.retry
            lines.append(f"  split: {split}" + (f"; retry 5xx {'/'.join(retry.methods)} on {retry.to}" if retry else ""))
    return "\n".join(lines) + "\n"


def dot(scenario: ResolvedScenario) -> str:
    """Graphviz: a cluster per service with a node per environment, an edge per binding (labelled
    with its name), the ingress pointing at public services, split weights on the router edges."""

    def q(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    def node(service: str, environment: str) -> str:
        return q(str(EnvironmentKey(service, environment)))

    # The graph's name is quoted: `edge` is a DOT keyword, and `digraph edge {` does not parse.
    out = ['digraph "edge" {', "  rankdir=LR;", '  node [shape=box, style=rounded, fontname="Helvetica"];',
           '  ingress [shape=oval, label="ingress"];']
    for service in scenario.services.values():
        out.append(f"  subgraph {q('cluster_' + service.name)} {{")
        out.append(f"    label={q(service.name + ('  ' + ', '.join(map(str, service.routes)) if service.routes else '' if service.public else '  (private)'))};")
        for env_name in service.environments:
            out.append(f"    {node(service.name, env_name)} [label={q(env_name)}];")
        out.append("  }")
        if service.routes:
            for env_name, weight in _weights(service).items():
                out.append(f"  ingress -> {node(service.name, env_name)} [label={q(f'{weight:g}%')}, style=dashed];")
        for env in service.environments.values():
            if env.own_routes:
                out.append(f"  ingress -> {node(service.name, env.name)} [label={q(', '.join(map(str, env.own_routes)))}, style=dashed];")
            for binding, target in env.bindings.items():
                targets = {target.environment: 100.0} if target.environment else _weights(scenario.services[target.service])
                for target_env, weight in targets.items():
                    label = binding if weight == 100 else f"{binding} {weight:g}%"
                    out.append(f"  {node(service.name, env.name)} -> {node(target.service, target_env)} [label={q(label)}];")
    out.append("}")
    return "\n".join(out) + "\n"


def _weights(service: ResolvedService) -> dict[str, float]:
    """How the service's own traffic is shared: its split, else all to its serving environment."""
    return dict(service.split.weights) if service.split is not None else {name: 100.0 for name in service.serving}
