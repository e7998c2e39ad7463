"""Models hone ships or builds itself (the tiny test model lives in :mod:`service.catalog.tiny`)."""
