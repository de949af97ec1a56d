"""Lab topologies on the real kernel: Lab, Host, namespaces, records, cleanup, servers, traffic."""
