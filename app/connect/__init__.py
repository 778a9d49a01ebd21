"""Logging in to mail servers: the login secret of a mailbox, IMAP and SMTP connections, and their failures.

This package sits below the scanning core and the services, which both connect to mail servers.
"""
