"""Mail autologin: who may open which mailbox (``grants``), the one-time hand-off to Roundcube (``handoff``),
and the unread counts on the mailbox buttons (``unread``)."""
