"""Forms of the record pages."""

from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import SelectField, StringField, SubmitField, TextAreaField
from wtforms.validators import Length, Optional, ValidationError

from app.models.records import TICKET_STATUSES
from app.services.records import is_valid_email

EMAIL_MESSAGE = "This is not a valid e-mail address (expected something like name@example.com)."
STATUS_LABELS = {"open": "Open", "in_progress": "In progress", "waiting": "Waiting",
                 "answered": "Answered", "closed": "Closed"}
LEAD_STATUSES = ("new", "contacted", "qualified", "won", "lost")


def _valid_email(form, field):
    if field.data and not is_valid_email(field.data):
        raise ValidationError(EMAIL_MESSAGE)


def _strip(value):
    return value.strip() if isinstance(value, str) else value


def _email_field():
    return StringField("E-mail", filters=[_strip], validators=[
        Optional(), Length(max=254, message="An e-mail address has at most 254 characters."),
        _valid_email])


def _no_control_characters(form, field):
    if field.data and any(ord(ch) < 32 for ch in field.data):
        raise ValidationError("Remove the control characters (tabs, line breaks) from this field.")


class ContactForm(FlaskForm):
    first_name = StringField("First name", validators=[Length(max=100), _no_control_characters])
    last_name = StringField("Last name", validators=[Length(max=100), _no_control_characters])
    email = _email_field()
    phone = StringField("Phone", validators=[Length(max=50), _no_control_characters])
    organization = StringField("Organization", validators=[Length(max=200), _no_control_characters])
    submit = SubmitField("Save")

    def validate_first_name(self, field):
        """A contact needs at least one of its names."""
        if not (field.data or "").strip() and not (self.last_name.data or "").strip():
            raise ValidationError("Give the contact a first or a last name.")


class OrganizationForm(FlaskForm):
    name = StringField("Name", validators=[Length(max=200), _no_control_characters])
    email = _email_field()
    phone = StringField("Phone", validators=[Length(max=50), _no_control_characters])
    website = StringField("Website", validators=[Length(max=255), _no_control_characters])
    domains = TextAreaField("Mail domains", render_kw={"rows": 2},
                            description="Mail from or to any address at these domains is related to the "
                                        "organization, e.g. acme.example (one per line or separated by commas; "
                                        "exact domains: list subdomains such as eu.acme.example too). Public "
                                        "domains such as gmail.com cannot be used.")
    submit = SubmitField("Save")

    def validate_name(self, field):
        """An organization is found by its name, so it needs one."""
        if not (field.data or "").strip():
            raise ValidationError("Give the organization a name.")


class LeadForm(FlaskForm):
    name = StringField("Name", validators=[Length(max=200), _no_control_characters])
    company = StringField("Company", validators=[Length(max=200), _no_control_characters])
    email = _email_field()
    status = SelectField("Status", choices=[(s, s.title()) for s in LEAD_STATUSES])
    submit = SubmitField("Save")

    def validate_name(self, field):
        """A lead is listed by its name, so it needs one."""
        if not (field.data or "").strip():
            raise ValidationError("Give the lead a name.")


class TicketStatusForm(FlaskForm):
    status = SelectField("Status", choices=[(s, STATUS_LABELS[s]) for s in TICKET_STATUSES])
    submit = SubmitField("Change status")


class ImportForm(FlaskForm):
    """Upload a CSV file of contacts, organizations or leads for a preview."""

    kind = SelectField("Records in the file", choices=[("contacts", "Contacts"), ("organizations", "Organizations"),
                                                       ("leads", "Leads")], default="contacts")
    file = FileField("CSV file", render_kw={"accept": ".csv,text/csv"})
