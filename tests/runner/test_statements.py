"""Splitting migration files into statements without breaking quoted or dollar-quoted text."""

import pytest

from eventgate.errors import BundleError
from eventgate.migrate.statements import GRAMMAR, split_statements, summary


def test_semicolons_inside_quotes_comments_and_bodies_do_not_split() -> None:
    script = """
    -- a comment; with a semicolon
    CREATE TABLE "odd;name" (note text DEFAULT 'a;b''c');
    /* block; /* nested; */ still comment; */
    INSERT INTO t VALUES (E'x\\';y');
    DO $body$ BEGIN PERFORM 1; PERFORM 2; END $body$;
    CREATE FUNCTION f() RETURNS int LANGUAGE sql RETURN 1;
    SELECT $$;$$, $a$ $$ ; $a$
    """
    statements = split_statements(script)
    assert len(statements) == 5
    assert statements[0].endswith("DEFAULT 'a;b''c')")
    assert statements[1].startswith("/* block") and statements[1].endswith("(E'x\\';y')")
    assert statements[2] == "DO $body$ BEGIN PERFORM 1; PERFORM 2; END $body$"
    assert statements[4] == "SELECT $$;$$, $a$ $$ ; $a$"


def test_a_script_of_comments_only_has_no_statements() -> None:
    assert split_statements("-- nothing\n/* here */\n;\n") == []


def test_sql_standard_function_bodies_stay_whole() -> None:
    script = """
    CREATE FUNCTION f(x int) RETURNS int LANGUAGE sql
    BEGIN ATOMIC
        SELECT CASE WHEN x > 0 THEN 1 ELSE 0 END;
        SELECT 2;
    END;
    SELECT 'end;';
    """
    statements = split_statements(script)
    assert len(statements) == 2
    assert statements[0].endswith("SELECT 2;\n    END")
    assert statements[1] == "SELECT 'end;'"


@pytest.mark.parametrize("script", [
    # A rule's action list holds top-level semicolons in parentheses.
    "CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO a VALUES (1); INSERT INTO b VALUES (2))",
    # A comment may stand between BEGIN and ATOMIC.
    "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN -- why\n ATOMIC SELECT 1; SELECT 2; END",
    # Dollar-quote tags may hold letters beyond ASCII.
    "DO $été$ BEGIN PERFORM 1; END $été$",
])
def test_statements_the_hand_written_splitter_cut_in_two_stay_whole(script: str) -> None:
    assert split_statements(f"{script};\nSELECT 3;") == [script, "SELECT 3"]


def test_a_syntax_error_names_the_file_the_line_and_what_the_parser_said() -> None:
    script = "-- 042: two statements\nSELECT 1;\nINSERT INTO t VALUES (1 2);\n"
    with pytest.raises(BundleError) as refused:
        split_statements(script, "042_broken.sql")
    message = str(refused.value)
    assert message.startswith(f"042_broken.sql is not valid SQL to the {GRAMMAR} parser: "
                              "syntax error at or near \"2\", at line 3, column 25 "
                              "(`INSERT INTO t VALUES (1 2);`); none of it was run"), message


def test_a_summary_is_the_first_line_of_code_after_any_comment() -> None:
    assert summary("-- why\n/* and how */ INSERT INTO t\nSELECT 1") == "INSERT INTO t"
    assert summary("SELECT '" + "x" * 80 + "'").endswith("x…")
