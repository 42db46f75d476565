"""The serve Lambda function."""
