"""Use cases shared by the views, the jobs and the CLI. Services own the commit."""
