"""Local mode: the whole product on one machine, no AWS account or Instagram token needed."""
