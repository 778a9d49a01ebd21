"""Forms of Settings → Users. They carry the values; app.services.user_admin checks them."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, PasswordField, StringField


class NewUserForm(FlaskForm):
    """Create a user: name, address, role, and a password typed or generated."""

    username = StringField("Username", description="What the user types to log in; 1 to 80 characters.")
    full_name = StringField("Full name", description="Shown in the top bar and on records.")
    email = StringField("E-mail", description="The user's own address: mail from or to it is related to the user.")
    is_admin = BooleanField("Administrator", description="Administrators manage mail tools, users and records.")
    password = PasswordField("Password", render_kw={"value": "", "autocomplete": "new-password"},
                             description="Leave empty to generate one; it is shown once, after saving.")


class ProfileForm(FlaskForm):
    """Edit a user's name and address."""

    full_name = StringField("Full name")
    email = StringField("E-mail", description="The user's own address: mail from or to it is related to the user.")


class PasswordForm(FlaskForm):
    """Reset a password: typed twice, or generated (the page's second button) and shown once."""

    password = PasswordField("New password", render_kw={"value": "", "autocomplete": "new-password"})
    confirm = PasswordField("New password again", render_kw={"value": "", "autocomplete": "new-password"})
