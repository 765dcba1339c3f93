"""The in-process transports: a fake served to a client library without a socket
(``requests``, ``httpx``, ``aiohttp``, WSGI), their shared registry of active routes, and
`Route`. Imports only ``fakedriver.core`` (and the client libraries, each in its own
module, loaded when its client is routed)."""
