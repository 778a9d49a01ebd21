"""The demo behind ``flask --app wsgi demo seed``: users, records, a mailbox with sample mail.

- ``seed``: the users, records, mail server, mailbox and grants, and the run of it all;
- ``samples``: the sample messages of the demo mailbox;
- ``mailbox``: the demo mailbox on the private Dovecot, and appending the samples to it;
- ``report``: what a seed did, and how it fails.
"""
