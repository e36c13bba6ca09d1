"""End-to-end flows, one per CLI command; they own all I/O, seeding and progress."""

__all__: list[str] = []
