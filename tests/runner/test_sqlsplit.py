"""Splitting migration files into statements without breaking quoted or dollar-quoted text."""

from eventgate.migrate.sqlsplit import split_statements


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
