"""RQ glue: queue names, the scan job and the schedule, declared as data. The work is in app.scanning."""
