"""Container and host figures: the kernel's cgroup files (`cgroups`, with a cache of open files
in `openfiles`), the engine's stats API for remote engines (`apistats`), psutil for the machine
(`host`, the only importer of `psutil`), and the rates and percentages made of two samples
(`stats`)."""
