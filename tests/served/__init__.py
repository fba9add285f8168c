"""Small flows that tests serve from a real runner process (importable by Prefect's engine)."""
