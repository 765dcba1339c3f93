"""The ``fakedriver`` command: ``serve`` and its flags (the persona's generated from
`Persona`), ``state``, ``plugin``. The top layer: it may import every other one, and
none imports it."""
