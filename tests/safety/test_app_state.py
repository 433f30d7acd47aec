"""`eventgate backup --app-state`: configuration and uploads archived beside the database
backups, read back file by file; a path that is not there, or an archive whose bytes differ
from the files, is refused and nothing is kept."""

from pathlib import Path

import pytest

from eventgate.cli.main import main
from eventgate.errors import BackupError
from eventgate.safety import app_state


def _app(root: Path) -> Path:
    (root / "uploads" / "2026").mkdir(parents=True)
    (root / "uploads" / "2026" / "cover.jpg").write_bytes(b"\xff\xd8 jpeg-ish" * 100)
    (root / ".env.migration").write_text("DB_PASSWORD=s3cr3t-Passw0rd\n")
    return root


def test_the_archive_holds_every_file_and_prints_no_secret(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(_app(tmp_path / "app"))
    assert main(["backup", "--app-state", ".env.migration", "uploads",
                 "--backup-dir", str(tmp_path / "backups")]) == 0
    out = capsys.readouterr().out
    assert "archived 2 files" in out and "s3cr3t" not in out
    [manifest] = (tmp_path / "backups").glob("app_state_*.json")
    assert "s3cr3t" not in manifest.read_text()
    assert '"uploads/2026/cover.jpg"' in manifest.read_text()


def test_a_missing_path_is_refused_and_nothing_archived(tmp_path: Path) -> None:
    with pytest.raises(BackupError, match="no such file or directory; nothing was archived"):
        app_state.back_up_app_state([tmp_path / "gone"], tmp_path / "backups")
    assert not list((tmp_path / "backups").glob("*"))


def test_an_archive_that_does_not_read_back_is_deleted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = _app(tmp_path / "app")
    real = app_state._digest_file
    # The file changes while it is archived: its digest no longer matches the archive's bytes.
    monkeypatch.setattr(app_state, "_digest_file",
                        lambda path: "0" * 64 if path.name == "cover.jpg" else real(path))
    with pytest.raises(BackupError, match=r"cover\.jpg: its bytes in the archive differ"):
        app_state.back_up_app_state([app / "uploads"], tmp_path / "backups")
    assert not list((tmp_path / "backups").glob("app_state_*"))
