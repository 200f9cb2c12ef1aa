"""Where an engine's disk went: `types` (plain data, plans), `survey` (asking the engine)."""
