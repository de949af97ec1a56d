"""packetlab tests; see tests/conftest.py for the layout."""
