"""Small servers the tests start as subprocesses on loopback ports."""
