"""Contacts: list, detail with related e-mails, create and edit."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, url_for
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from app.extensions import db
from app.models import Contact
from app.records.blueprint import bp
from app.records.common import like_any, paginate, related_emails, search_term
from app.records.forms import ContactForm
from app.services import records as record_service
from app.services.autologin import write


@bp.route("/contacts")
def contacts():
    """List contacts, with a search over names, address and phone."""
    q = search_term()
    query = select(Contact).options(joinedload(Contact.organization)).order_by(
        Contact.last_name, Contact.first_name, Contact.id)
    if q:
        query = query.where(like_any(q, Contact.first_name, Contact.last_name, Contact.email, Contact.phone))
    return render_template("records/contacts.html", page=paginate(query), q=q)


@bp.route("/contacts/<int:contact_id>")
def contact_detail(contact_id: int):
    """One contact and its related e-mails."""
    contact = db.session.scalar(select(Contact).where(Contact.id == contact_id).options(
        joinedload(Contact.organization)))
    if contact is None:
        abort(404)
    return render_template("records/contact_detail.html", contact=contact,
                           emails=related_emails("contact", contact.id),
                           write=write.write_options(current_user, "contact", contact))


def _save(form: ContactForm, contact: Contact | None):
    try:
        return record_service.save_contact(
            contact, first_name=form.first_name.data, last_name=form.last_name.data,
            email=form.email.data, phone=form.phone.data,
            organization_name=form.organization.data)
    except record_service.RecordError as exc:
        db.session.rollback()
        target = getattr(form, exc.field or "", None)
        if target is not None:
            target.errors.append(str(exc))
        else:
            flash(str(exc), "error")
        return None


@bp.route("/contacts/new", methods=["GET", "POST"])
def contact_new():
    """Create a contact."""
    form = ContactForm()
    if form.validate_on_submit():
        contact = _save(form, None)
        if contact is not None:
            flash(f"Contact {contact.name} created.", "success")
            return redirect(url_for("records.contact_detail", contact_id=contact.id))
    return render_template("records/form.html", form=form, title="New contact",
                           cancel=url_for("records.contacts"))


@bp.route("/contacts/<int:contact_id>/edit", methods=["GET", "POST"])
def contact_edit(contact_id: int):
    """Edit a contact."""
    contact = db.session.get(Contact, contact_id) or abort(404)
    form = ContactForm(obj=contact)
    # The model's attribute is an Organization, the form's field its name. WTForms keeps the object when
    # the field is absent from the request (a crafted POST did that and got a 500), so map it either way.
    if not isinstance(form.organization.data, str | None):
        form.organization.data = contact.organization.name
    if form.validate_on_submit():
        if _save(form, contact) is not None:
            flash(f"Contact {contact.name} saved.", "success")
            return redirect(url_for("records.contact_detail", contact_id=contact.id))
    return render_template("records/form.html", form=form, title=f"Edit contact {contact.name}",
                           cancel=url_for("records.contact_detail", contact_id=contact.id))
