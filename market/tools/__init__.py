"""Client tools: the ``market`` command line, and the client library behind it."""
