"""Module 11a (capstone): in-kernel traffic telemetry with a Count-Min Sketch."""
