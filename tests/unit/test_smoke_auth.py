def test_login_page_renders(client):
    assert b"Log in" in client.get("/login").data
