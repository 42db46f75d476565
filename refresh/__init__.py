"""The refresh Lambda function."""
