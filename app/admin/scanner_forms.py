"""Forms of Mail tools → Mail scanner and Logs → Mails – download history.

The forms only carry the values; app.services.scanners validates them, so the
pages and the CLI give the same messages.
"""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    FieldList,
    Form,
    FormField,
    PasswordField,
    SelectField,
    SelectMultipleField,
    StringField,
)
from wtforms.fields import DateField
from wtforms.validators import Optional
from wtforms.widgets import CheckboxInput, ListWidget

from app.models.mail import ACTIONS, AFTER_STORE_ACTIONS, SEARCH_FIELDS
from app.models.runs import RUN_STATUSES
from app.services.scanner_fields import ACTION_LABELS, AFTER_STORE_LABELS, SEARCH_FIELD_LABELS

DIRECTION_CHOICES = [("", "Don't scan"), ("incoming", "Incoming"), ("outgoing", "Outgoing")]


class MultiCheckboxField(SelectMultipleField):
    """A set of checkboxes; unknown values reach the service, which names them."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()

    def pre_validate(self, form):
        pass


class FolderRowForm(Form):
    """One folder row: its name and whether it is read as incoming or outgoing mail."""

    name = StringField("Folder")
    direction = SelectField("Direction", choices=DIRECTION_CHOICES, validate_choice=False)


class ScannerForm(FlaskForm):
    """Add or edit a scanner: its mailbox, folders, actions, search fields and assignee."""

    name = StringField("Name", description="The label of the users' mailbox button in the top bar.")
    # Ids stay strings here: the service turns them into records and words its own errors.
    server_id = SelectField("Mail server", coerce=str, validate_choice=False)
    login = StringField("Login", description="Usually the mailbox's e-mail address.")
    # Never rendered back: the field is always empty on the page.
    password = PasswordField("Password", render_kw={"value": "", "autocomplete": "new-password"})
    folders = FieldList(FormField(FolderRowForm), min_entries=0)
    actions = MultiCheckboxField("Actions", choices=[(a, ACTION_LABELS[a]) for a in ACTIONS])
    search_fields = MultiCheckboxField("Search fields", choices=[(f, SEARCH_FIELD_LABELS[f]) for f in SEARCH_FIELDS],
                                       description="Which records' e-mail addresses binding looks in.")
    assignee_id = SelectField("Assignee", coerce=str, validate_choice=False,
                              description="Who the tickets created from this mailbox are assigned to.")
    after_store = SelectField(
        "After storing a message", choices=[(a, AFTER_STORE_LABELS[a]) for a in AFTER_STORE_ACTIONS],
        default="keep", validate_choice=False,
        description="What the scanner does in the mailbox once a message is stored. Leaving it as it is "
                    "changes nothing on the server. The action is done only after the message is saved, and "
                    "a run that was cut off finishes it on the next run. Messages ignored by a filter or that "
                    "could not be stored are always left as they are; Delete also spares messages over the "
                    "size limit, whose body was not stored.")
    after_store_folder = StringField(
        "Move to folder", description="For Move: a folder that exists on the server and that the scanner does "
                                      "not scan (Load folders from server lists them).")

    archive_existing = BooleanField(
        "Import the mail already in the mailbox as an archive",
        description="The messages in the folders at the scanner's next run are stored and bound to records, but "
                    "open no ticket, reopen nothing and count toward no mail loop. Mail arriving after that is "
                    "handled as usual. Use it when connecting a mailbox with years of mail.")
    since_date = StringField(
        "Only mail since", render_kw={"type": "date", "placeholder": "YYYY-MM-DD"},
        description="Leave empty to read all of the mailbox. With a day, older mail (by the day the server "
                    "received it) is passed over and never downloaded.")

    def folder_pairs(self) -> list[tuple[str, str]]:
        """The rows to scan: named, and not set to "Don't scan"."""
        return [(row.form.name.data or "", row.form.direction.data or "") for row in self.folders
                if (row.form.name.data or "").strip() and row.form.direction.data]


class RunFilterForm(FlaskForm):
    """The filters of the download history (a GET form, so no CSRF token)."""

    class Meta:
        csrf = False

    mailbox = SelectField("Mailbox", coerce=str, validate_choice=False, default="")
    status = SelectField("Status", choices=[("", "Any")] + [(s, s) for s in RUN_STATUSES], default="",
                         validate_choice=False)
    since = DateField("From", validators=[Optional()])
    until = DateField("To", validators=[Optional()])
