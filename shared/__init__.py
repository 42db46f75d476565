"""Domain and adapters shared by the ingest, serve and refresh Lambda functions."""
