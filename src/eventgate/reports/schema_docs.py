"""docs/schema.md, generated from the bundle so it can never drift from what the gates check."""

from __future__ import annotations

from eventgate.bundle import Bundle, ColumnMapping, SqlFile
from eventgate.migrate.statements import split_statements, without_leading_comments

HEADER = """# Schema and mapping

Generated from the reference bundle by `eventgate docs`; a test fails when this file and the
bundle disagree. Edit `src/eventgate/bundles/fase0/` and regenerate, never this file.
"""


def _destination(mapping: ColumnMapping, target: str) -> str:
    if mapping.kind == "column":
        where = f"`{target}.{mapping.target}`"
    elif mapping.kind == "jsonb":
        where = f"`{target}.{mapping.jsonb_column}` key `{mapping.jsonb_key}`"
    elif mapping.kind == "derived":
        where = (f"derived into `{target}.{mapping.target}` = `{mapping.sql}`; read back as "
                 f"`{mapping.inverse}`")
    else:
        where = f"dropped: {mapping.target}"
    if mapping.also:
        where += f"; also feeds `{target}.{mapping.also}`"
    return where + (f". {mapping.note}" if mapping.note else "")


def _create_tables(files: tuple[SqlFile, ...]) -> list[str]:
    """Every CREATE TABLE of the files, without the comments written before it."""
    code = (without_leading_comments(s) for f in files for s in split_statements(f.sql, f.label))
    return [s for s in code if s.upper().startswith("CREATE TABLE")]


def _change_record(bundle: Bundle) -> list[str]:
    log = bundle.expectations.change_log
    if log is None:
        return ["", "## Change record\n", "None declared: the parity gates count every "
                "difference from the legacy rows as the migration's."]
    return ["", "## Change record\n",
            f"`{log.table}` (expectations.toml `[change_log]`), read by the gates and never "
            "written by them. " + (log.note or ""),
            "",
            "| column | meaning |", "|---|---|",
            "| `relation` | the new table written to |",
            "| `row_key` | the row's key as text; a changed key records both |",
            "| `origin` | `legacy`: the old application, through the compatibility views; "
            "`engine`: a direct write to the new tables |",
            "| `op` | `INSERT`, `UPDATE` or `DELETE` |",
            "| `changed_at` | when |",
            "",
            "Content parity, row-count parity and the views' bag equality leave the recorded "
            "keys out of both sides and report them as changed since the migration, by "
            "origin; every other row is held to its legacy row exactly. The integrity gates "
            "check every row."]


def render(bundle: Bundle) -> str:
    out = [HEADER, "## Migrations\n", "| version | file | rollback |", "|---|---|---|"]
    out += [f"| {m.version:03d} | `{m.label}` | `{m.rollback.label if m.rollback else '-'}` |"
            for m in bundle.migrations]
    if bundle.policy:
        out += ["", "## Value policy\n"]
        out += [f"- **{name.replace('_', ' ')}**: {rule}" for name, rule in bundle.policy.items()]
    out += ["", "## Where every legacy column went\n"]
    for table in bundle.mapping.values():
        heading = f"### `{table.legacy_table}` → `{table.target}`"
        if table.filter:
            heading += f" (rows where `{table.filter}`)"
        out += [heading, ""]
        if table.note:
            out += [table.note, ""]
        if table.backup or table.view:
            out += [f"The legacy table is kept as `{table.backup}`; the view `{table.view}` "
                    "shows the new rows in the legacy shape.", ""]
        out += ["| legacy column | after migration |", "|---|---|"]
        out += [f"| `{c.legacy_column}` | {_destination(c, table.target)} |"
                for c in table.columns.values()]
        if table.new_columns:
            out += ["", "New columns: " + "; ".join(
                f"`{name}` = {what}" for name, what in table.new_columns.items()) + "."]
        out.append("")
    out += ["## Required indexes\n", "| index | table | columns | unique | why |",
            "|---|---|---|---|---|"]
    out += [f"| `{i.name}` | `{i.table}` | {', '.join(i.columns)} | "
            f"{'yes' if i.unique else 'no'} | {i.why} |" for i in bundle.expectations.indexes]
    out += _change_record(bundle)
    out += ["", "## Legacy schema (baseline)\n", "```sql"]
    out += [s + ";\n" for s in _create_tables(bundle.baseline)]
    out += ["```", "", "## Generic schema (after the migrations)\n", "```sql"]
    out += [s + ";\n" for s in _create_tables(bundle.migrations)]
    out += ["```", ""]
    return "\n".join(out)
