"""The ingest Lambda function."""
