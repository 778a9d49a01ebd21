"""Records → Import CSV: upload, preview, per-line errors, the import and its progress; bad files refused.

Run on SQLite and PostgreSQL, through the real pages with CSRF on. Files up to
IMPORT_INLINE_MAX_BYTES import in the request; the queued path on a real RQ
worker is tested in tests/integration/test_record_import_rq.py.
"""

from __future__ import annotations

import io

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditEntry, Contact, Lead, Organization, RecordImport
from app.services import record_imports
from app.services.records_import import ImportFailed, RunOptions, import_records
from tests import factories

GOOD = ("First Name,Last Name,E-mail,Phone,Organization,Shoe size\n"
        "Ada,Lovelace,ada@engines.test,123,Analytical Engines,38\n"
        "Bob,,not-an-address,,,\n"
        ",,nobody@x.test,,,\n"
        "Cy,Young,cy@engines.test,,analytical engines,44\n"
        "Dup,Licate,ADA@engines.test,,,\n")


def _count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def _upload(client, data: bytes, kind="contacts", name="people.csv"):
    token = factories.csrf_from(client.get("/records/import"))
    return client.post("/records/import", data={"csrf_token": token, "kind": kind,
                                                "file": (io.BytesIO(data), name)},
                       content_type="multipart/form-data")


def _post(client, url):
    page = client.get(url.rsplit("/", 1)[0])
    return client.post(url, data={"csrf_token": factories.csrf_from(page)})


@pytest.fixture
def admin_client(client, auth, admin):
    auth.login("admin")
    return client


def test_upload_shows_the_mapping_first_rows_and_line_errors_and_stores_nothing(admin_client):
    answer = _upload(admin_client, GOOD.encode())
    assert answer.status_code == 302
    page = admin_client.get(answer.headers["Location"]).get_data(as_text=True)
    assert "<strong>2</strong> rows will be imported" in page and "<strong>3</strong> skipped" in page
    assert "1 organization" in page  # "Analytical Engines", named twice in two cases
    assert "<td>Shoe size</td><td><span class=\"muted\">ignored</span>" in page
    assert "<td>E-mail</td><td>email</td>" in page
    assert "<td>2</td><td>Ada</td><td>Lovelace</td><td>ada@engines.test</td>" in page
    assert "<td>3</td><td>invalid e-mail &#39;not-an-address&#39;</td>" in page
    assert "<td>4</td><td>missing name" in page
    assert "<td>6</td><td>duplicate e-mail ada@engines.test (already on line 2)</td>" in page
    assert _count(Contact) == 0 and _count(Organization) == 0


def test_import_of_a_small_file_runs_at_once_and_reports_every_skipped_line(admin_client, admin):
    answer = _upload(admin_client, GOOD.encode())
    import_id = int(answer.headers["Location"].rsplit("/", 1)[1])
    done = _post(admin_client, f"/records/imports/{import_id}/start")
    assert done.status_code == 302
    page = admin_client.get(f"/records/imports/{import_id}").get_data(as_text=True)
    assert "Imported 2, skipped 3." in page and "Created 1 organization" in page
    assert "<td>6</td><td>duplicate e-mail" in page
    assert _count(Contact) == 2 and _count(Organization) == 1
    row = db.session.get(RecordImport, import_id)
    assert (row.status, row.imported, row.skipped, row.data) == ("done", 2, 3, None)
    (entry,) = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "record_import.start"))
    assert entry.user_id == admin.id and "people.csv" in entry.target
    assert record_imports.progress(row)["percent"] == 100
    # Started once only.
    _post(admin_client, f"/records/imports/{import_id}/start")
    assert _count(Contact) == 2


@pytest.mark.parametrize(("data", "said"), [
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "not UTF-8 text"),
    ("first_name,email\nZoë,z@x.test\n".encode("latin-1"), "not UTF-8 text (byte 0xeb on line 2)"),
    (b"first_name;email\nZoe;z@x.test\n", "separates its columns with “;”"),
    (b"A" * (1024 * 1024 + 10), "longer than 1 MiB"),
    (b"email,phone\na@b.test,1\n", "first_name or last_name is missing"),
    (b"", "The file is empty"),
])
def test_bad_files_are_refused_in_words_and_nothing_is_stored(admin_client, data, said):
    answer = _upload(admin_client, data)
    assert answer.status_code == 200
    assert said in answer.get_data(as_text=True)
    assert _count(RecordImport) == 0 and _count(Contact) == 0


def test_a_file_past_the_byte_limit_is_refused(app, admin_client):
    app.config["IMPORT_MAX_BYTES"] = 100
    answer = _upload(admin_client, GOOD.encode() * 3)
    assert "larger than 100 bytes" in answer.get_data(as_text=True)
    assert _count(RecordImport) == 0


def test_a_bad_line_past_the_preview_fails_the_import_as_a_whole(app, admin_client, monkeypatch):
    monkeypatch.setattr(record_imports, "FULL_CHECK_BYTES", 10)
    monkeypatch.setattr(record_imports, "CHECK_ROWS", 5)
    lines = ["name,email"] + [f"Lead {n},lead{n}@x.test" for n in range(50)]
    data = ("\n".join(lines) + "\n").encode() + b"Broken,\xff@x.test\n"
    answer = _upload(admin_client, data, kind="leads")
    import_id = int(answer.headers["Location"].rsplit("/", 1)[1])
    page = admin_client.get(f"/records/imports/{import_id}").get_data(as_text=True)
    assert "of the first 5 rows checked" in page
    _post(admin_client, f"/records/imports/{import_id}/start")
    page = admin_client.get(f"/records/imports/{import_id}").get_data(as_text=True)
    assert "The import failed; nothing was imported." in page and "not UTF-8 text" in page and "line 52" in page
    assert _count(Lead) == 0
    assert db.session.get(RecordImport, import_id).data is None


def test_cancel_drops_the_uploaded_file(admin_client):
    answer = _upload(admin_client, GOOD.encode())
    import_id = int(answer.headers["Location"].rsplit("/", 1)[1])
    assert _post(admin_client, f"/records/imports/{import_id}/cancel").status_code == 302
    assert _count(RecordImport) == 0 and _count(Contact) == 0


def test_the_upload_needs_its_csrf_token(admin_client):
    answer = admin_client.post("/records/import", data={"kind": "contacts", "file": (io.BytesIO(b"x"), "a.csv")},
                               content_type="multipart/form-data")
    assert factories.csrf_refused(answer)


def test_ordinary_users_get_403_on_every_import_route(client, auth, admin, user):
    row = RecordImport(kind="contacts", filename="a.csv", status="uploaded", size_bytes=3, data=b"a,b",
                       report="", message="")
    db.session.add(row)
    db.session.commit()
    auth.login("alice")
    token = factories.csrf_from(client.get("/"))
    for url in ("/records/import", f"/records/imports/{row.id}", f"/records/imports/{row.id}/progress"):
        assert client.get(url).status_code == 403
    for url in ("/records/import", f"/records/imports/{row.id}/start", f"/records/imports/{row.id}/cancel"):
        assert client.post(url, data={"csrf_token": token}).status_code == 403
    assert b"Import CSV" not in client.get("/records/contacts").data
    db.session.expire_all()
    assert db.session.get(RecordImport, row.id).status == "uploaded"


# --------------------------------------------------------------------------- the steps below the pages


def test_progress_is_committed_while_reading_and_nothing_is_written_before_the_end(app, admin, monkeypatch):
    data = ("name,email\n" + "".join(f"Org {n},org{n}@x.test\n" for n in range(2500))).encode()
    row = RecordImport(kind="organizations", filename="orgs.csv", status="queued", size_bytes=len(data), data=data,
                       report="", message="")
    db.session.add(row)
    db.session.commit()
    seen = []
    save = record_imports._save_progress

    def watch(import_id, phase, rows, nbytes):
        save(import_id, phase, rows, nbytes)
        seen.append((phase, rows, nbytes, _count(Organization), db.session.get(RecordImport, import_id).status))

    monkeypatch.setattr(record_imports, "_save_progress", watch)
    monkeypatch.setattr(record_imports, "PROGRESS_EVERY_SECONDS", 0)  # every chunk, for the test
    done = record_imports.run_import(row.id)
    assert done.status == "done" and done.imported == 2500
    assert [s[:2] for s in seen] == [("reading", 1000), ("reading", 2000), ("saving", 2500)]
    assert all(stored == 0 for *_, stored, _ in seen)  # stored whole at the end, in one transaction
    assert seen[0][2] < seen[1][2] < seen[2][2] == len(data)
    assert [s[4] for s in seen] == ["running", "running", "saving"]


def test_a_dry_run_stores_nothing_and_a_row_limit_stops_early(app):
    data = ("first_name,email,organization\n" + "".join(f"P{n},p{n}@x.test,Org{n % 3}\n" for n in range(50))).encode()
    report = import_records("contacts", data, options=RunOptions(dry_run=True))
    db.session.rollback()
    assert (report.imported, report.organizations_created) == (50, 3)
    assert _count(Contact) == 0 and _count(Organization) == 0
    report = import_records("contacts", data, options=RunOptions(dry_run=True, row_limit=7))
    assert report.imported == 7


def test_a_queue_that_does_not_answer_keeps_the_file(app, admin, monkeypatch):
    app.config.update(QUEUE_MODE="redis", REDIS_URL="redis://127.0.0.1:1/0", IMPORT_INLINE_MAX_BYTES=1)
    row = RecordImport(kind="leads", filename="l.csv", status="uploaded", size_bytes=20, data=b"name\nA\n",
                       report="", message="")
    db.session.add(row)
    db.session.commit()
    with app.test_request_context():
        with pytest.raises(ImportFailed, match="does not answer"):
            record_imports.start(row)
    assert db.session.get(RecordImport, row.id).status == "uploaded"
    assert db.session.get(RecordImport, row.id).data == b"name\nA\n"


def test_unimported_uploads_are_dropped_after_a_day_and_imports_of_a_dead_worker_fail(app):
    from datetime import timedelta

    from app.models.base import utcnow
    from app.services import retention

    now = utcnow()
    rows = {status: RecordImport(kind="leads", filename=f"{status}.csv", status=status, size_bytes=7,
                                 data=b"name\nA\n", report="", message="", created_at=now - timedelta(hours=25))
            for status in ("uploaded", "running", "done")}
    fresh = RecordImport(kind="leads", filename="fresh.csv", status="uploaded", size_bytes=7, data=b"name\nA\n",
                         report="", message="", created_at=now - timedelta(hours=1))
    db.session.add_all([*rows.values(), fresh])
    db.session.commit()
    ids = {status: row.id for status, row in rows.items()}
    assert retention.prune(now).imports == 2
    db.session.expire_all()
    assert db.session.get(RecordImport, ids["uploaded"]) is None
    dead = db.session.get(RecordImport, ids["running"])
    assert (dead.status, dead.data) == ("failed", None) and "worker running it stopped" in dead.message
    assert db.session.get(RecordImport, ids["done"]).status == "done"
    assert db.session.get(RecordImport, fresh.id).status == "uploaded"
