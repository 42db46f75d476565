"""The benchmark harness behind ``make bench`` (``python -m bench``): see ``bench/__main__.py``."""
