"""The Redis job queue of the scans: the connection, queue names, job ids, enqueueing and job state.

This package sits below the services and the scanning core, so both can queue a scan or ask about a
job without importing the RQ job functions themselves (``app.tasks``): jobs are enqueued by their
dotted path.
"""
