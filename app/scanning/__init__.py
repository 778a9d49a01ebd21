"""One scan from start to end (written in full below, once the modules are in place)."""
