"""CSV import of contacts, organizations and leads: good rows, each bad row reported, BOM, the CLI."""

from __future__ import annotations

import pytest

from app.extensions import db
from app.models import Contact, Lead, Organization
from app.services.records_import import ImportFailed, import_records
from tests import factories


def _reasons(report) -> dict[int, str]:
    return {row.line: row.reason for row in report.skipped}


def test_contacts_good_and_bad_rows_are_reported_by_line(app):
    factories.contact(email="stored@acme.test")
    factories.organization(name="Acme", email=None)
    csv_text = (
        "first_name,last_name,email,phone,organization\n"
        "Jane,Doe,Jane.Doe@Example.COM,+1 555,acme\n"      # 2: good, joins the stored Acme (any case)
        ",,nobody@example.com,,\n"                          # 3: missing name
        "Bob,Roe,not-an-address,,\n"                       # 4: invalid e-mail
        "Ann,Lee,jane.doe@example.com,,\n"                  # 5: duplicate in the file
        "Sam,Poe,STORED@acme.test,,\n"                      # 6: already stored
        "\n"                                                # 7: blank line, ignored
        "Kim,,,,Globex\n"                                   # 8: good, no e-mail, new organization
        "Lee,Chu,lee@globex.test,,globex\n"                 # 9: good, same new organization
    )
    report = import_records("contacts", csv_text)
    assert report.imported == 3
    assert len(report.skipped) == 4
    reasons = _reasons(report)
    assert reasons[3].startswith("missing name")
    assert reasons[4] == "invalid e-mail 'not-an-address'"
    assert reasons[5] == "duplicate e-mail jane.doe@example.com (already on line 2)"
    assert reasons[6] == "duplicate e-mail stored@acme.test (a stored contact already has it)"
    assert report.summary == "Imported 3, skipped 4."
    jane = Contact.query.filter_by(email="jane.doe@example.com").one()
    assert (jane.first_name, jane.phone, jane.organization.name) == ("Jane", "+1 555", "Acme")
    globex = Organization.query.filter_by(name="Globex").one()
    assert {c.first_name for c in Contact.query.filter_by(organization_id=globex.id)} == {"Kim", "Lee"}
    assert report.organizations_created == 1
    assert Contact.query.filter_by(first_name="Kim").one().email is None


def test_organizations_and_leads(app):
    report = import_records("organizations", "name,email,phone,website\n"
                                             "Initech,INFO@initech.test,1,https://initech.test\n"
                                             ",x@y.test,,\n")
    assert report.imported == 1 and _reasons(report) == {3: "missing name"}
    assert Organization.query.one().email == "info@initech.test"
    report = import_records("leads", "email,name,status,company\n"       # any column order
                                     "Big@Prospect.test,Big one,,Prospect Inc\n"
                                     "x@y,No tld,new,\n")
    assert report.imported == 1 and _reasons(report) == {3: "invalid e-mail 'x@y'"}
    lead = Lead.query.one()
    assert (lead.name, lead.company, lead.email, lead.status) == ("Big one", "Prospect Inc", "big@prospect.test",
                                                                  "new")


def test_utf8_with_and_without_bom(app):
    body = "name,email\nSociété Générale,contact@sg.test\n".encode()
    assert import_records("organizations", b"\xef\xbb\xbf" + body).imported == 1
    assert import_records("organizations", body.replace(b"contact@", b"other@")).imported == 1
    names = [o.name for o in Organization.query.order_by(Organization.id)]
    assert names == ["Société Générale", "Société Générale"]


def test_not_utf8_and_bad_header_fail_as_a_whole(app):
    with pytest.raises(ImportFailed, match="not UTF-8 text .*line 2"):
        import_records("leads", b"name,email\nJos\xe9,j@x.test\n")
    with pytest.raises(ImportFailed, match="name is missing"):
        import_records("leads", "fullname,email\nJo,j@x.test\n")
    with pytest.raises(ImportFailed, match="empty"):
        import_records("leads", "")
    assert Lead.query.count() == 0


def test_over_long_values_are_skipped_not_truncated(app):
    report = import_records("leads", f"name,status\nok,new\nfine,{'x' * 31}\n")
    assert report.imported == 1
    assert _reasons(report) == {3: "status is longer than 30 characters"}


def test_quoted_multiline_cell_reports_the_line_where_its_row_starts(app):
    report = import_records("leads", 'name,email\n"Two\nlines",a@b.test\nbad,nope\n')
    assert report.imported == 1
    assert _reasons(report) == {4: "invalid e-mail 'nope'"}
    assert Lead.query.one().name == "Two lines"


def test_chunks_insert_every_row(app):
    rows = "".join(f"Lead {i},lead{i}@x.test\n" for i in range(2500))
    report = import_records("leads", "name,email\n" + rows, chunk_size=1000)
    assert report.imported == 2500
    assert db.session.query(Lead).count() == 2500


def test_cli_reports_counts_and_skipped_lines(app, runner, tmp_path):
    path = tmp_path / "contacts.csv"
    path.write_bytes("\ufefffirst_name,last_name,email,organization,notes\n"
                     "Jane,Doe,jane@acme.test,Acme,vip\n"
                     "Bob,,bob@,Acme,\n".encode())
    result = runner.invoke(args=["records", "import", "contacts", str(path)])
    assert result.exit_code == 0, result.output
    assert "Imported 1, skipped 1 (contacts" in result.output
    assert "line 3: invalid e-mail 'bob@'" in result.output
    assert "Ignored unknown column(s): notes." in result.output
    assert "Created 1 organization(s)" in result.output
    assert Contact.query.one().organization.name == "Acme"


def test_cli_refuses_a_file_that_is_not_utf8(app, runner, tmp_path):
    path = tmp_path / "leads.csv"
    path.write_bytes(b"name\n\xff\xfe\n")
    result = runner.invoke(args=["records", "import", "leads", str(path)])
    assert result.exit_code != 0
    assert "not UTF-8" in result.output
    assert Lead.query.count() == 0


def test_control_characters_in_cells_become_spaces(app):
    report = import_records("leads", "name,company\nAcme\x00Lead,Big\x07Co\n")
    assert report.imported == 1
    lead = Lead.query.one()
    assert (lead.name, lead.company) == ("Acme Lead", "Big Co")


def test_an_endless_device_is_refused_quickly_in_bounded_memory(tmp_path):
    """`records import contacts /dev/zero` grew to 5 GB: it must stop at once and say why."""
    import resource
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {"PATH": "/usr/bin:/bin", "CM_ENV": "development", "CM_INSTANCE_PATH": str(tmp_path),
           "DATABASE_URL": f"sqlite:///{tmp_path / 'import.db'}", "PYTHONPATH": str(root)}
    subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"], cwd=root, env=env,
                   check=True, capture_output=True, timeout=120)
    limit = 1536 * 1024 * 1024  # address space of the import: far above the app's needs, far below 5 GB

    def capped():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    result = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "records", "import", "contacts",
                             "/dev/zero"], cwd=root, env=env, capture_output=True, text=True, timeout=60,
                            preexec_fn=capped)
    # Under the cap, reading the whole device would end in a MemoryError; the import stops at the first line.
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Line 1 is longer than 1 MiB" in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(app, runner, tmp_path):
    app.config["IMPORT_MAX_BYTES"] = 1000
    path = tmp_path / "leads.csv"
    path.write_text("name,email\n" + "".join(f"Lead {i},lead{i}@x.test\n" for i in range(100)))
    result = runner.invoke(args=["records", "import", "leads", str(path)])
    assert result.exit_code == 1 and "larger than 1,000 bytes" in result.output, result.output
    assert "IMPORT_MAX_BYTES" in result.output and Lead.query.count() == 0


def test_a_stream_over_the_size_limit_is_refused_while_read(app):
    body = ("name,email\n" + "".join(f"Lead {i},lead{i}@x.test\n" for i in range(100))).encode()
    with pytest.raises(ImportFailed, match="larger than 1,000 bytes.*Nothing was imported"):
        import_records("leads", body, max_bytes=1000, chunk_size=10)
    assert Lead.query.count() == 0


def test_too_many_rows_are_refused_as_a_whole(app, runner, tmp_path):
    app.config["IMPORT_MAX_ROWS"] = 50
    path = tmp_path / "leads.csv"
    path.write_text("name,email\n" + "".join(f"Lead {i},lead{i}@x.test\n" for i in range(51)))
    result = runner.invoke(args=["records", "import", "leads", str(path)])
    assert result.exit_code == 1 and "more than 50 rows" in result.output and "IMPORT_MAX_ROWS" in result.output
    assert Lead.query.count() == 0
    path.write_text("name,email\n" + "".join(f"Lead {i},lead{i}@x.test\n" for i in range(50)))
    assert runner.invoke(args=["records", "import", "leads", str(path)]).exit_code == 0
    assert Lead.query.count() == 50


def test_a_bad_byte_far_into_a_streamed_file_names_its_line(app, tmp_path):
    path = tmp_path / "leads.csv"
    lines = ["name,email\n"] + [f"Lead {i},lead{i}@x.test\n" for i in range(5000)]
    path.write_bytes("".join(lines).encode() + b"Jos\xe9,j@x.test\n")
    with pytest.raises(ImportFailed, match="byte 0xe9 on line 5002"):
        import_records("leads", path)
    assert Lead.query.count() == 0
