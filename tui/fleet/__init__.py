"""The headless layer: engines, containers, samplers, GPUs, logs. No Textual or Rich here."""
