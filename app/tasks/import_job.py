"""The RQ job: import one uploaded CSV file of records. Glue only; the work is
``app.services.record_imports.run_import``, which writes its progress and outcome to the record_imports row."""

from __future__ import annotations


def import_records(import_id: int) -> dict:
    """Run the import in the worker's app; returns its status and counts (RQ keeps them briefly)."""
    from app.services.record_imports import run_import
    from app.tasks.scan_job import job_app

    with job_app().app_context():
        row = run_import(import_id)
        return {"status": row.status, "imported": row.imported, "skipped": row.skipped} if row else {}
