"""Model-server awareness, headless: which container serves a model, and how it is doing.

- `servers`: one table per server kind (vLLM, SGLang, TGI, llama.cpp, Triton, LMDeploy,
  Ollama): how it is recognised, its ports, flags and env, its health route and how to read
  the answer, its metrics route and the flag that turns metrics on, and its alias table
  (canonical reading -> metric names across versions, with units and scale).
- `parse`: a small filtered Prometheus text-format parser, bounded and linear.
- `types`: the plain data handed on: `ServingReading` (the canonical immutable reading per
  container, `to_json()` for `aitop snapshot --json`), `ServingState`, `LoadedModel`,
  `HistoryPoint`. Widgets may import it (as `gpu.types`, `logs.types`).
- `reading`: the tracker that turns successive scrapes into readings (rates, windowed
  percentiles, restarts, staleness, history).
- `scrape`: HTTP with hard limits, health probes, Ollama's `/api/ps`, network-namespace
  connections, and the bounded worker pool (`ServingPool`) that scrapes many containers.
- `discover`: from a container's inspect data (and its host PID), which server it runs and
  where its endpoint is.

Nothing here imports Textual, Rich, docker, requests, psutil or pynvml: HTTP is the standard
library's `http.client`, the namespace switch is `setns(2)` through ctypes. Everything a server
answers is untrusted: names and labels pass `tui.fleet.sanitize.safe_text` where they enter.
"""
