"""The "Bound Services" view of a scenario (seed 002), ``edge graph``: who calls whom, through
which binding, and how each split service shares its traffic; as text, or as Graphviz DOT
(``--dot``, rendered by ``dot`` in the tests). Read from the scenario alone: nothing is built."""

from __future__ import annotations

from edge.scenario import config


def text(spec: config.Scenario) -> str:
    """Each service with its routes (or public, private), its environments' own routes, every
    binding of every environment, and the split."""
    lines = []
    for service in spec.services:
        exposure = ", ".join(map(str, service.routes)) if service.routes else "public" if config.is_public(service) else "private"
        lines.append(f"{service.name}  [{exposure}]")
        for env_name, routes in config.environment_routes(spec.scenario, service).items():
            lines.append(f"  {env_name}  [{', '.join(map(str, routes))}]")
        for env_name, env in config.environments_of(service).items():
            for name, target in {**service.bindings, **env.bindings}.items():
                lines.append(f"  {env_name}: {name} -> {target}")
        if service.split is not None:
            split = ", ".join(f"{k} {v:g}%" for k, v in service.split.weights.items())
            retry = service.split.retry
            lines.append(f"  split: {split}" + (f"; retry 5xx {'/'.join(retry.methods)} on {retry.to}" if retry else ""))
    return "\n".join(lines) + "\n"


def dot(spec: config.Scenario) -> str:
    """Graphviz: a cluster per service with a node per environment, an edge per binding (labelled
    with its name), the ingress pointing at public services, split weights on the router edges."""

    def q(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    # The graph's name is quoted: `edge` is a DOT keyword, and `digraph edge {` does not parse.
    out = ['digraph "edge" {', "  rankdir=LR;", '  node [shape=box, style=rounded, fontname="Helvetica"];',
           '  ingress [shape=oval, label="ingress"];']
    by_service = {s.name: s for s in spec.services}
    for service in spec.services:
        envs = config.environments_of(service)
        out.append(f"  subgraph {q('cluster_' + service.name)} {{")
        out.append(f"    label={q(service.name + ('  ' + ', '.join(map(str, service.routes)) if service.routes else '' if config.is_public(service) else '  (private)'))};")
        for env_name in envs:
            out.append(f"    {q(service.name + '@' + env_name)} [label={q(env_name)}];")
        out.append("  }")
        weights = service.split.weights if service.split is not None else {name: 100 for name in config.serving_environments(service)}
        if service.routes:
            for env_name, weight in weights.items():
                out.append(f"  ingress -> {q(service.name + '@' + env_name)} [label={q(f'{weight:g}%')}, style=dashed];")
        for env_name, env in envs.items():
            if env.routes:
                out.append(f"  ingress -> {q(service.name + '@' + env_name)} [label={q(', '.join(map(str, env.routes)))}, style=dashed];")
            for binding, target in {**service.bindings, **env.bindings}.items():
                target_service, pinned = target.service, target.environment
                target_split = by_service[target_service].split
                targets = {pinned: 100} if pinned else (
                    target_split.weights if target_split is not None
                    else {name: 100 for name in config.serving_environments(by_service[target_service])}
                )
                for target_env, weight in targets.items():
                    label = binding if weight == 100 else f"{binding} {weight:g}%"
                    out.append(f"  {q(service.name + '@' + env_name)} -> {q(target_service + '@' + target_env)} [label={q(label)}];")
    out.append("}")
    return "\n".join(out) + "\n"
