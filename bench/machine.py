"""The machine a bench ran on, named the same way in every bench's output."""

from __future__ import annotations

import subprocess


def cpu_name() -> str:
    """lscpu's model name with its family, model and CPU count (a cloud EPYC prints only "AMD EPYC")."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown CPU"
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)

    def get(key: str) -> str:
        return fields.get(key, "?").strip()

    return f"{get('Model name')}, family {get('CPU family')} model {get('Model')} ({get('CPU(s)')} CPUs)"
