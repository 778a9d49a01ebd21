"""Mail tools → Mail servers (filled in by the mail-servers work)."""
