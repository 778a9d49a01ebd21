"""All models, imported here so that Alembic and ``db.create_all`` see every table."""

from app.models.alerts import Alert
from app.models.audit import AuditEntry
from app.models.emails import Email, EmailAttachment, EmailLink, EmailMailbox
from app.models.imports import RecordImport
from app.models.mail import (
    AutologinEvent,
    AutologinGrant,
    AutologinToken,
    MailAccount,
    MailServer,
    PendingMailAction,
    ScanFolder,
)
from app.models.records import Contact, Lead, Organization, OrganizationDomain, Ticket, ticket_number
from app.models.runs import IgnoreFilter, MailSettings, ScannerActivity, ScanRun
from app.models.users import LoginThrottle, User

__all__ = [
    "Alert", "AuditEntry", "AutologinEvent", "AutologinGrant", "AutologinToken", "Contact", "Email",
    "EmailAttachment", "EmailLink", "EmailMailbox", "IgnoreFilter", "Lead", "LoginThrottle", "MailAccount",
    "MailServer", "MailSettings", "Organization", "OrganizationDomain", "PendingMailAction", "RecordImport",
    "ScanFolder", "ScanRun", "ScannerActivity", "Ticket", "User",
    "ticket_number",
]
