"""Hostile HTML is rendered harmless; remote images are blocked, cid: images kept."""

from app.scanner.sanitize import sanitize_html


def test_scripts_handlers_and_dangerous_links_removed():
    html = (
        '<body onload="steal()"><script>alert(1)</script><p onclick="x()">Hi</p>'
        '<a href="javascript:alert(1)">a</a><a href=" JaVaScRiPt:alert(2)">b</a>'
        '<a href="data:text/html;base64,PHNjcmlwdD4=">c</a><a href="/admin/delete">d</a>'
        '<a href="https://ok.example/?a=1&b=2" target="_self">e</a>'
        '<form action="https://evil.example"><input name="password"></form>'
        '<iframe src="https://evil.example"></iframe><object data="x.swf"></object>'
        '<svg><script>alert(3)</script></svg><meta http-equiv="refresh" content="0;url=https://evil.example">'
    )
    safe, remote = sanitize_html(html)
    low = safe.lower()
    for bad in ("<script", "onload", "onclick", "javascript:", "data:", "/admin/delete", "<form", "<input",
                "<iframe", "<object", "<meta", "alert(", "evil.example"):
        assert bad not in low, bad
    assert '<a href="https://ok.example/?a=1&amp;b=2" target="_blank" rel="noopener noreferrer">e</a>' in safe
    assert "<p>Hi</p>" in safe
    assert remote is False


def test_remote_images_blocked_and_reported():
    safe, remote = sanitize_html(
        '<img src="https://track.example/p.gif?u=1&amp;x=2" alt="a > b" width="1">'
        '<img data-remote-src="https://smuggled.example/x.png" src="cid:logo@corp">'
    )
    assert remote is True
    assert ' src="https://' not in safe and '<img src="https' not in safe
    assert 'data-remote-src="https://track.example/p.gif?u=1&amp;x=2"' in safe
    assert "smuggled.example" not in safe
    assert 'src="cid:logo@corp"' in safe


def test_data_and_relative_images_dropped_without_remote_flag():
    safe, remote = sanitize_html('<img src="data:image/png;base64,AAAA"><img src="/static/x.png">')
    assert "data:" not in safe and "/static" not in safe
    assert remote is False


def test_css_tricks():
    safe, _ = sanitize_html(
        "<style>body{background:url(https://evil.example/t.png)}</style>"
        '<div style="position:fixed;top:0;left:0;z-index:9999;color:red">overlay</div>'
        '<p style="background-image:url(https://evil.example/b.png);color:blue">bg</p>'
        '<p style="width:expression(alert(1))">ie</p><p style="color:\\72 ed">esc</p>'
    )
    assert "<style" not in safe and "evil.example" not in safe
    assert "position" not in safe and "z-index" not in safe and "expression" not in safe
    assert '<div style="color:red">overlay</div>' in safe
    assert "<p>bg</p>" in safe and "<p>esc</p>" in safe


def test_empty():
    assert sanitize_html("") == ("", False)
