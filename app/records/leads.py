"""Leads: list, detail with related e-mails, create and edit."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, url_for
from flask_login import current_user
from sqlalchemy import select

from app.extensions import db
from app.models import Lead
from app.records.blueprint import bp
from app.records.common import like_any, paginate, related_emails, search_term
from app.records.forms import LeadForm
from app.services import records as record_service
from app.services.autologin import write


@bp.route("/leads")
def leads():
    """List leads, with a search over name, company and address."""
    q = search_term()
    query = select(Lead).order_by(Lead.created_at.desc(), Lead.id.desc())
    if q:
        query = query.where(like_any(q, Lead.name, Lead.company, Lead.email))
    return render_template("records/leads.html", page=paginate(query), q=q)


@bp.route("/leads/<int:lead_id>")
def lead_detail(lead_id: int):
    """One lead and its related e-mails."""
    lead = db.session.get(Lead, lead_id) or abort(404)
    return render_template("records/lead_detail.html", lead=lead, emails=related_emails("lead", lead.id),
                           write=write.write_options(current_user, "lead", lead))


def _form(lead: Lead | None = None) -> LeadForm:
    form = LeadForm(obj=lead)
    # A status set elsewhere (an import, the scanner) stays choosable on edit.
    if lead is not None and lead.status not in dict(form.status.choices):
        form.status.choices = [*form.status.choices, (lead.status, lead.status)]
    return form


def _save(form: LeadForm, lead: Lead | None):
    try:
        return record_service.save_lead(lead, name=form.name.data, company=form.company.data,
                                        email=form.email.data, status=form.status.data)
    except record_service.RecordError as exc:
        db.session.rollback()
        getattr(form, exc.field or "name").errors.append(str(exc))
        return None


@bp.route("/leads/new", methods=["GET", "POST"])
def lead_new():
    """Create a lead."""
    form = _form()
    if form.validate_on_submit():
        lead = _save(form, None)
        if lead is not None:
            flash(f"Lead {lead.name} created.", "success")
            return redirect(url_for("records.lead_detail", lead_id=lead.id))
    return render_template("records/form.html", form=form, title="New lead", cancel=url_for("records.leads"))


@bp.route("/leads/<int:lead_id>/edit", methods=["GET", "POST"])
def lead_edit(lead_id: int):
    """Edit a lead."""
    lead = db.session.get(Lead, lead_id) or abort(404)
    form = _form(lead)
    if form.validate_on_submit():
        if _save(form, lead) is not None:
            flash(f"Lead {lead.name} saved.", "success")
            return redirect(url_for("records.lead_detail", lead_id=lead.id))
    return render_template("records/form.html", form=form, title=f"Edit lead {lead.name}",
                           cancel=url_for("records.lead_detail", lead_id=lead.id))
