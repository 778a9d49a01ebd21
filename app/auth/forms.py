from flask_wtf import FlaskForm
from wtforms import BooleanField, PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, Length, ValidationError


def _printable(form, field):
    """No control characters: no user name has them, and PostgreSQL refuses NUL (it was a 500 there)."""
    if field.data and not field.data.isprintable():
        raise ValidationError("A username has no control characters; check what you typed.")


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=80), _printable])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200)])
    remember = BooleanField("Keep me logged in")
    submit = SubmitField("Log in")
