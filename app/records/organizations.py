"""Organizations: list, detail with contacts and related e-mails, create and edit."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, url_for
from flask_login import current_user
from sqlalchemy import func, or_, select

from app.extensions import db
from app.models import Contact, Organization, OrganizationDomain
from app.records.blueprint import bp
from app.records.common import like_any, paginate, related_emails, search_term
from app.records.forms import OrganizationForm
from app.services import organization_domains
from app.services import records as record_service
from app.services.autologin import write

CONTACTS_SHOWN = 20


@bp.route("/organizations")
def organizations():
    """List organizations, with a search over name, address, phone, website and mail domains."""
    q = search_term()
    query = select(Organization).order_by(Organization.name, Organization.id)
    if q:
        by_domain = select(OrganizationDomain.organization_id).where(like_any(q, OrganizationDomain.domain))
        query = query.where(or_(like_any(q, Organization.name, Organization.email, Organization.phone,
                                         Organization.website), Organization.id.in_(by_domain)))
    return render_template("records/organizations.html", page=paginate(query), q=q)


@bp.route("/organizations/<int:org_id>")
def organization_detail(org_id: int):
    """One organization, its first contacts and its related e-mails."""
    org = db.session.get(Organization, org_id) or abort(404)
    contacts = db.session.scalars(select(Contact).where(Contact.organization_id == org.id)
                                  .order_by(Contact.last_name, Contact.first_name).limit(CONTACTS_SHOWN)).all()
    contact_count = db.session.scalar(select(func.count()).select_from(Contact)
                                      .where(Contact.organization_id == org.id))
    return render_template("records/organization_detail.html", org=org, contacts=contacts,
                           idle_domains=organization_domains.idle_domains(org),
                           contact_count=contact_count, emails=related_emails("organization", org.id),
                           write=write.write_options(current_user, "organization", org))


def _save(form: OrganizationForm, org: Organization | None):
    try:
        return record_service.save_organization(org, name=form.name.data, email=form.email.data,
                                                phone=form.phone.data, website=form.website.data,
                                                domains=form.domains.data or "")
    except record_service.RecordError as exc:
        db.session.rollback()
        getattr(form, exc.field or "name").errors.append(str(exc))
        return None


@bp.route("/organizations/new", methods=["GET", "POST"])
def organization_new():
    """Create an organization."""
    form = OrganizationForm()
    if form.validate_on_submit():
        org = _save(form, None)
        if org is not None:
            flash(f"Organization {org.name} created.", "success")
            return redirect(url_for("records.organization_detail", org_id=org.id))
    return render_template("records/form.html", form=form, title="New organization",
                           cancel=url_for("records.organizations"))


@bp.route("/organizations/<int:org_id>/edit", methods=["GET", "POST"])
def organization_edit(org_id: int):
    """Edit an organization."""
    org = db.session.get(Organization, org_id) or abort(404)
    form = OrganizationForm(obj=org)
    if not form.is_submitted():
        form.domains.data = "\n".join(org.domain_names)
    if form.validate_on_submit():
        if _save(form, org) is not None:
            flash(f"Organization {org.name} saved.", "success")
            return redirect(url_for("records.organization_detail", org_id=org.id))
    return render_template("records/form.html", form=form, title=f"Edit organization {org.name}",
                           cancel=url_for("records.organization_detail", org_id=org.id))
