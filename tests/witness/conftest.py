from tests.e2e.conftest import server_env  # noqa: F401  (real server processes)
