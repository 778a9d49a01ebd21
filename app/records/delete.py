"""Deleting contacts, organizations and leads: a confirm page that says what happens to the links, then POST.

Administrators only: any user may create and edit records, but a deletion takes
a record's relations to e-mails with it.
"""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from app.records.blueprint import bp
from app.services import record_delete

LISTS = {"contact": "records.contacts", "organization": "records.organizations", "lead": "records.leads"}
DETAILS = {"contact": ("records.contact_detail", "contact_id"),
           "organization": ("records.organization_detail", "org_id"),
           "lead": ("records.lead_detail", "lead_id")}


def _confirm_or_delete(kind: str, record_id: int):
    if not current_user.is_admin:
        abort(403)
    try:
        effect = record_delete.impact(kind, record_id)
    except record_delete.RecordNotFound:
        abort(404)
    # CSRFProtect has already checked the token of a POST before we get here.
    if request.method == "POST":
        record_delete.delete_record(kind, record_id)
        flash(f"{kind.capitalize()} {effect.name} deleted. " + " ".join(effect.consequences()), "success")
        return redirect(url_for(LISTS[kind]))
    endpoint, arg = DETAILS[kind]
    return render_template("records/delete.html", effect=effect, cancel=url_for(endpoint, **{arg: record_id}))


@bp.route("/contacts/<int:contact_id>/delete", methods=["GET", "POST"])
def contact_delete(contact_id: int):
    """Confirm (GET) and delete (POST) a contact."""
    return _confirm_or_delete("contact", contact_id)


@bp.route("/organizations/<int:org_id>/delete", methods=["GET", "POST"])
def organization_delete(org_id: int):
    """Confirm (GET) and delete (POST) an organization; its contacts stay without it."""
    return _confirm_or_delete("organization", org_id)


@bp.route("/leads/<int:lead_id>/delete", methods=["GET", "POST"])
def lead_delete(lead_id: int):
    """Confirm (GET) and delete (POST) a lead."""
    return _confirm_or_delete("lead", lead_id)
