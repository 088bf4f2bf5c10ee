"""Example third-party policies, loaded by entry point and by "module:attr" in the tests."""
