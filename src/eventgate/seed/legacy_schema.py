"""The legacy schema the seeder fills: the reference bundle's legacy tables, each with the
columns of the rows eventgate.seed.generator makes for it, and one plan's rows table by table.

The generator makes wedding-domain rows (tenants, weddings, guests, sections); this module is
the one place in the seeder that says which table each kind of row goes to. The loader
(eventgate.seed.load) names no table: it fills the bundle's legacy tables (mapping.toml), which
must be these, in the order the database's foreign keys demand."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from eventgate.seed import generator as gen
from eventgate.seed.generator import Row, SeedPlan, WeddingStub


class Generation:
    """One plan's rows, table by table, in whatever order they are asked for. Each table's rows
    come from a random stream of their own, so the order changes no row. A table whose rows
    draw on another's (a wedding's tenant, a guest's wedding) gets those from here: tenants
    kept whole, weddings as stubs, recorded while the weddings stream out (or, asked for
    before, generated once more: the same rows)."""

    def __init__(self, plan: SeedPlan) -> None:
        self.plan = plan
        self._tenants: list[Row] | None = None
        self._stubs: list[WeddingStub] | None = None

    @property
    def tenant_rows(self) -> list[Row]:
        if self._tenants is None:
            self._tenants = gen.tenants(self.plan)
        return self._tenants

    @property
    def stubs(self) -> list[WeddingStub]:
        if self._stubs is None:
            self._stubs = [gen.stub(row) for row in gen.weddings(self.plan, self.tenant_rows)]
        return self._stubs

    def tenants(self) -> Iterator[Row]:
        return iter(self.tenant_rows)

    def weddings(self) -> Iterator[Row]:
        stubs = []
        for row in gen.weddings(self.plan, self.tenant_rows):
            stubs.append(gen.stub(row))
            yield row
        self._stubs = stubs

    def invitations(self) -> Iterator[Row]:
        return gen.invitations(self.plan, self.stubs)

    def sections(self) -> Iterator[Row]:
        return gen.sections(self.plan, self.stubs)


@dataclass(frozen=True)
class LegacyTable:
    name: str
    columns: tuple[str, ...]  # the fields of its generated rows, in order: COPY's column list
    counted_as: str  # the field of eventgate.seed.load.SeedCounts that counts its rows
    rows: Callable[[Generation], Iterator[Row]]


# In the order the generator makes them: a table drawing on another's rows comes after it.
SCHEMA: dict[str, LegacyTable] = {table.name: table for table in (
    LegacyTable("tenants", gen.TENANTS_COLUMNS, "tenants", Generation.tenants),
    LegacyTable("wedding_events", gen.WEDDING_COLUMNS, "weddings", Generation.weddings),
    LegacyTable("wedding_invitations", gen.INVITATION_COLUMNS, "invitations",
                Generation.invitations),
    LegacyTable("wedding_sections", gen.SECTION_COLUMNS, "sections", Generation.sections),
)}
LEGACY_TABLES = tuple(SCHEMA)
