"""Scaling a compose service, a swarm service or a plain container by replicas: what scales
together (`groups`), what a count means (`plan`), where new replicas go (`placement`), their
configuration (`spec`) and carrying it out (`execute`).

- A compose service grows the way `docker compose up --scale` does: the next container
  numbers, the service's labels and configuration (taken from its lowest-numbered container),
  so `docker compose ps`, `logs` and `down` see the new replicas as members. It shrinks from
  the highest numbers. A service with a fixed `container_name` cannot be scaled.
- A swarm service is scaled through the swarm (`docker service scale`); the result says how
  many tasks run of how many are wanted.
- A plain container's replicas are clones of its configuration, named `<name>-clone-<n>`,
  labelled `aitop.clone-of=<origin id>`. Shrinking removes the newest clone first and the
  original only when that was confirmed explicitly.

A clone never copies a fixed host port: it publishes the same container ports on host ports
the engine picks free, and the result shows them. When the source holds specific GPUs and
their free memory is known, each new replica goes to the GPU with the most free memory that
can hold another copy (`place_replicas`, a pure function of plain numbers).

Nothing is left half-done: a replica that fails to start is removed again, and the result
names every failure (and anything a failed rollback left behind). Headless, no UI imports.
"""
