"""A query budget's figures as a person reads them, for the reports: the EXPLAIN laid out the
way psql prints it, and p50/p95/max of both sides. It runs no query and decides nothing."""

from __future__ import annotations

from typing import Any

from eventgate.checks.budgets import percentile
from eventgate.checks.result import CheckResult

_CONDITIONS = ("Index Cond", "Recheck Cond", "Hash Cond", "Merge Cond", "Join Filter", "Filter",
               "Sort Key", "Group Key", "Presorted Key")
_REMOVED = ("Rows Removed by Index Recheck", "Rows Removed by Join Filter",
            "Rows Removed by Filter")
_BUFFERS = (("Shared Hit Blocks", "shared hit"), ("Shared Read Blocks", "read"),
            ("Shared Dirtied Blocks", "dirtied"), ("Shared Written Blocks", "written"),
            ("Temp Read Blocks", "temp read"), ("Temp Written Blocks", "temp written"))


def _node_label(node: dict[str, Any]) -> str:
    kind = str(node["Node Type"])
    join = node.get("Join Type")
    if join and join != "Inner":
        # How psql names them: "Hash Left Join", "Nested Loop Anti Join".
        kind = (f"{kind} {join} Join" if kind == "Nested Loop"
                else kind.replace(" Join", f" {join} Join"))
    if node.get("Parallel Aware"):
        kind = f"Parallel {kind}"
    if "Index Name" in node:
        # psql: "Bitmap Index Scan on idx", but "Index Scan using idx on table".
        kind += (f" on {node['Index Name']}" if "Relation Name" not in node
                 else f" using {node['Index Name']}")
    if "Relation Name" in node:
        kind += f" on {node['Relation Name']}"
        if node.get("Alias") and node["Alias"] != node["Relation Name"]:
            kind += f" {node['Alias']}"
    if "Total Cost" in node:
        kind += (f"  (cost={node.get('Startup Cost', 0):.2f}..{node['Total Cost']:.2f} "
                 f"rows={node.get('Plan Rows', 0)} width={node.get('Plan Width', 0)})")
    if "Actual Rows" in node:
        timing = (f"time={node['Actual Startup Time']:.3f}..{node['Actual Total Time']:.3f} "
                  if "Actual Total Time" in node else "")
        kind += f" (actual {timing}rows={node['Actual Rows']} loops={node.get('Actual Loops', 1)})"
    return kind


def _node_lines(node: dict[str, Any], depth: int) -> list[str]:
    pad = "" if depth == 0 else "      " * (depth - 1) + "  ->  "
    detail = " " * (len(pad) + 2)
    lines = [pad + _node_label(node)]
    for key in _CONDITIONS:
        if key in node:
            value = node[key]
            lines.append(f"{detail}{key}: "
                         f"{', '.join(map(str, value)) if isinstance(value, list) else value}")
    lines += [f"{detail}{key}: {node[key]}" for key in _REMOVED if node.get(key)]
    buffers = [f"{name}={node[key]}" for key, name in _BUFFERS if node.get(key)]
    if buffers:
        lines.append(f"{detail}Buffers: {' '.join(buffers)}")
    for child in node.get("Plans", []):
        lines += _node_lines(child, depth + 1)
    return lines


def plan_text(explained: dict[str, Any]) -> str:
    """An EXPLAIN (FORMAT JSON) result laid out the way psql prints the text format."""
    lines = _node_lines(explained["Plan"], 0)
    for key in ("Planning Time", "Execution Time"):
        if key in explained:
            lines.append(f"{key}: {explained[key]:.3f} ms")
    return "\n".join(lines)


def budget_statistics(result: CheckResult) -> dict[str, Any]:
    """The figures a person reads for a budget: p50/p95/max of both sides, the rounds, the
    budget and the verdict, from a budget_result()."""
    data = result.data
    stat = str(data["statistic"])

    def summary(times: list[float]) -> dict[str, float]:
        figures = {name: round(percentile(times, name), 3) for name in ("p50", "p95", stat)}
        figures["max"] = round(max(times), 3)
        return figures

    return {
        "budget": result.subject.removeprefix("budget "),
        "verdict": "within budget" if result.passed else "over budget",
        "held_to": f"{data.get('judged_on', 'client')} {stat}",
        "rows": data.get("rows"),
        "bytes": data.get("bytes"),
        "params_choice": data.get("params_choice", ""),
        "budget_ms": data["budget_ms"],
        "statistic": stat,
        "rounds": data["rounds"],
        "client_ms": summary(data["client_ms"]),
        "server_ms": summary(data["server_ms"]),
        "params": data.get("params", {}),
    }
