"""Scratch copies of migrated databases of several shapes, for the proofs that one read answers
as the gates do alone on data the suite did not shape for them."""

from collections.abc import Callable, Iterator

import pytest

from eventgate.bundle import Bundle
from eventgate.migrate.runner import Runner
from eventgate.pg.databases import Database, Databases
from eventgate.seed.load import build_legacy
from eventgate.seed.profiles import profile


@pytest.fixture(scope="session")
def _migrated_shapes() -> dict[str, Database]:
    return {}


@pytest.fixture
def shape_copy(_migrated_shapes: dict[str, Database], migrated_template: Database,
               databases: Databases, bundle: Bundle) -> Iterator[Callable[[str], Database]]:
    """A copy of a migrated database of the named shape, dropped after the test: "session" the
    session's own seed, else a seed profile (eventgate.seed.profiles), each built once."""
    made: list[Database] = []

    def copy(shape: str) -> Database:
        if shape == "session":
            source = migrated_template
        else:
            if shape not in _migrated_shapes:
                built = databases.create(f"shape_{shape.replace('-', '_')}")
                with built.connect() as conn:
                    build_legacy(conn, bundle, profile(shape))
                    Runner(conn, bundle).execute()
                _migrated_shapes[shape] = built
            source = _migrated_shapes[shape]
        made.append(databases.create("shape_copy", template=source.name))
        return made[-1]

    yield copy
    for db in made:
        databases.drop(db)
