"""Repository-wide pytest set-up: every test session gets private loopback CA ports."""
pytest_plugins = ['devioc.testing']
