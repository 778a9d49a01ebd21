"""The scanner pipeline: fetch → parse → filter → store → bind → ticket actions → run log.

Plain functions over the dataclasses of ``app.scanner.types``. Nothing in this
package imports Flask, RQ, SQLAlchemy or an IMAP library: the scan
(``app.scanning``) does the I/O and hands each step plain data, so every step
is tested on its own.
"""
