"""The module 11b packet analyzer: in-kernel flow records, protocol and application
detection, anomaly detectors, a SQLite flow store and IPFIX export (`packetlab analyze`)."""
