"""Pure protocol logic, no kernel: packet dissectors and decoders, a userspace connection tracker."""
