"""The Roundcube hand-off: open a mailbox, and the server-to-server redeem call."""

from flask import Blueprint

bp = Blueprint("bridge", __name__)
