"""``clipguide batch``: generate and animate jobs from a TOML file, in-process or on Ray (clipguide.scale)."""
