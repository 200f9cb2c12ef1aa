"""Container logs, from the wire up: lines made of the engine's messages (`splitter`), the
lines that matter (`classify`), threads that follow one container or a replica set
(`follower`), writing lines to a file (`export`), and the plain data widgets may import
(`types`: lines, presets, the bounded buffer, searches, batches)."""
