"""A cluster of fakes: node fakes routed at their own URLs, partitions, the merged
timeline, and the checks between nodes (the oracle). Imports ``fakedriver.fake``, the
transports and the core; never the server, the CLI or the plugin bundle."""
