"""Forms of Mail tools → Mail servers.

The forms only carry the values; app.services.mail_servers validates them, so
the pages and the CLI give the same messages.
"""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, PasswordField, SelectChoice, SelectField, StringField

from app.models.mail import AUTH_METHODS, SECURITY_CHOICES
from app.services.mail_servers import AUTH_LABELS, OAUTH_PROVIDERS, SECURITY_LABELS

SECURITY_OPTIONS = [SelectChoice(s, SECURITY_LABELS[s]) for s in SECURITY_CHOICES]


class ServerForm(FlaskForm):
    """Add or edit a mail server: its IMAP and SMTP sides and how mailboxes log in (password or OAuth 2.0)."""

    name = StringField("Name", description="How administrators recognise the server, e.g. \"Corporate mail\".")
    imap_host = StringField("IMAP host", description="A host name or IP address, e.g. imap.example.com.")
    # Ports stay text here: the service words its own message for "abc" or 70000.
    imap_port = StringField("IMAP port", default="993", render_kw={"inputmode": "numeric"},
                            description="993 for SSL/TLS, 143 for STARTTLS or none.")
    imap_security = SelectField("IMAP security", choices=SECURITY_OPTIONS, default="ssl", validate_choice=False)
    smtp_host = StringField("SMTP host", description="Where mail from these mailboxes is sent through.")
    smtp_port = StringField("SMTP port", default="465", render_kw={"inputmode": "numeric"},
                            description="465 for SSL/TLS, 587 for STARTTLS, 25 for none.")
    smtp_security = SelectField("SMTP security", choices=SECURITY_OPTIONS, default="ssl", validate_choice=False)
    smtp_auth = BooleanField("SMTP needs authentication", default=True)
    validate_cert = BooleanField("Validate certificates", default=True,
                                 description="Leave on. Turn off only for a server with a self-signed "
                                             "certificate on a network you trust.")
    auth_method = SelectField("Authentication", choices=[SelectChoice(m, AUTH_LABELS[m]) for m in AUTH_METHODS],
                              default="password", validate_choice=False)
    oauth_provider = SelectField("OAuth provider", validate_choice=False,
                                 choices=[SelectChoice("", "—")]
                                 + [SelectChoice(k, v["label"]) for k, v in OAUTH_PROVIDERS.items()])
    oauth_client_id = StringField("OAuth client id")
    # Never rendered back: the field is always empty on the page; empty on edit keeps the stored one.
    oauth_client_secret = PasswordField("OAuth client secret", render_kw={"value": "", "autocomplete": "new-password"})
    oauth_authorize_url = StringField("Authorize URL", description="Filled from the provider when left empty.")
    oauth_token_url = StringField("Token URL", description="Filled from the provider when left empty.")
    oauth_scopes = StringField("Scopes", description="Space separated; filled from the provider when left empty.")
    oauth_redirect_uri = StringField("Redirect URI",
                                     description="The address registered with the provider; optional.")
    visible = BooleanField("Active (offered when configuring scanners)", default=True)
    max_connections = StringField("Connections per mailbox (at most)", default="10",
                                  render_kw={"inputmode": "numeric"},
                                  description="How many connections the watcher and a scan may hold to one mailbox "
                                              "at once; the provider's own limit or less (Gmail allows 15). "
                                              "Folders beyond them are checked by polling.")

    DATA_FIELDS = ("name", "imap_host", "imap_port", "imap_security", "smtp_host", "smtp_port", "smtp_security",
                   "smtp_auth", "validate_cert", "auth_method", "oauth_provider", "oauth_client_id",
                   "oauth_client_secret", "oauth_authorize_url", "oauth_token_url", "oauth_scopes",
                   "oauth_redirect_uri", "visible", "max_connections")

    def values(self) -> dict:
        """The submitted values, keyed like the service's fields."""
        return {name: self[name].data for name in self.DATA_FIELDS}


class TestConnectionForm(FlaskForm):
    """Test connection: typed credentials (never stored) or a scanner's stored ones."""

    account_id = SelectField("Credentials", coerce=str, validate_choice=False, default="")
    login = StringField("Login", description="A mailbox on this server, usually its e-mail address.")
    password = PasswordField("Password", render_kw={"value": "", "autocomplete": "off"},
                             description="Used for this test only; never stored.")
