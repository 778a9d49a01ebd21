"""The menus of the top bar, declared once as data.

An entry is shown only when its endpoint exists, so a page that is not
built yet never appears as an empty menu item.
"""

from __future__ import annotations

from flask import current_app
from flask_login import current_user

MENUS = [
    # (menu, label, endpoint, admin only)
    ("Mail tools", "Mail servers", "admin.servers", True),
    ("Mail tools", "Mail scanner", "admin.scanners", True),
    ("Mail tools", "Mail autologin", "admin.autologin", True),
    ("Mail tools", "Mail configuration", "admin.mail_config", True),
    ("Mail tools", "Queues", "admin.queues", True),
    ("Mail tools", "Watch", "admin.watch", True),
    ("Logs", "Mails – download history", "admin.history", True),
    ("Logs", "Mailbox hand-offs", "admin.handoffs", True),
    ("Logs", "Audit", "admin.audit", True),
    ("Settings", "Users", "admin.users", True),
    ("Virtual desk", "Mailbox", "desk.mailbox", False),
    ("Virtual desk", "Tickets", "records.tickets", False),
    ("Records", "Contacts", "records.contacts", False),
    ("Records", "Organizations", "records.organizations", False),
    ("Records", "Leads", "records.leads", False),
    ("Records", "E-mails", "records.emails", False),
    ("Records", "Users", "records.users", False),
]


def visible_menus() -> list[tuple[str, list[tuple[str, str]]]]:
    """The menus the current user may see, in declaration order."""
    if not current_user.is_authenticated:
        return []
    menus: dict[str, list[tuple[str, str]]] = {}
    for menu, label, endpoint, admin_only in MENUS:
        if endpoint not in current_app.view_functions:
            continue
        if admin_only and not current_user.is_admin:
            continue
        menus.setdefault(menu, []).append((label, endpoint))
    return list(menus.items())


def inject_navigation() -> dict:
    """Template context: the menus, and the mailbox buttons when the bridge provides them."""
    mailboxes = []
    if current_user.is_authenticated:
        provider = current_app.extensions.get("mailbox_buttons")
        if provider is not None:
            mailboxes = provider(current_user)
    return {"nav_menus": visible_menus(), "mailbox_buttons": mailboxes}
