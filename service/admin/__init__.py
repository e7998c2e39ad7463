"""The Admin API's logic: projects, their API keys and service accounts, admin keys, usage."""
