"""The admin menu entries are shown to administrators only.

The role of every route (admin routes: anonymous → login, ordinary user → 403)
is checked by the table-driven walk in tests/security/test_route_access.py,
which replaced the admin-only walk that lived here.
"""

from __future__ import annotations


def test_the_menu_offers_mail_servers_and_configuration_to_admins_only(client, auth, admin, user):
    auth.login("admin")
    page = client.get("/").data.decode()
    assert 'href="/admin/servers">Mail servers</a>' in page
    assert 'href="/admin/mail-config">Mail configuration</a>' in page
    auth.logout()
    auth.login("alice")
    page = client.get("/").data.decode()
    assert "/admin/servers" not in page and "/admin/mail-config" not in page
