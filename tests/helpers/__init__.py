"""What the tests share: real parts to run against (a callback receiver, accounts, the CLI in a subprocess), and
readers of the docs. Fixtures stay in tests/conftest.py; everything they and the tests call is here."""
