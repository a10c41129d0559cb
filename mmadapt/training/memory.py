"""Peak memory of a stretch of training, on CUDA or CPU.

- CUDA: `torch.cuda.max_memory_allocated` (tensors only, not the caching allocator's reserve),
  its peak statistics reset when measuring starts. Source name `cuda_max_memory_allocated`.
- CPU (Linux): the process's peak resident set size (`VmHWM` in /proc/self/status), reset
  when measuring starts by writing 5 to /proc/self/clear_refs (Linux 4.0+), so it covers the
  measured stretch only, but includes whatever was resident before it (model, data, imports).
  Source name `cpu_peak_rss`.
- Elsewhere, or where the reset is refused: `resource.getrusage(RUSAGE_SELF).ru_maxrss`, the
  peak since the process started. Source name `cpu_peak_rss_since_start`.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import torch

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


class PeakMemory:
    """Call `start()` before the stretch to measure and `peak_bytes()` after it."""

    def __init__(self, device: torch.device):
        self.device = torch.device(device)
        self.source = "cuda_max_memory_allocated" if self.device.type == "cuda" else "cpu_peak_rss_since_start"

    def start(self) -> None:
        """Reset the peak (where the platform allows it)."""
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            return
        try:
            _CLEAR_REFS.write_text("5")
            if _vm_hwm_bytes() is not None:
                self.source = "cpu_peak_rss"
        except OSError:
            self.source = "cpu_peak_rss_since_start"

    def peak_bytes(self) -> int:
        """The peak since `start()` (see the module docstring for what each source measures)."""
        if self.device.type == "cuda":
            return int(torch.cuda.max_memory_allocated(self.device))
        if self.source == "cpu_peak_rss":
            value = _vm_hwm_bytes()
            if value is not None:
                return value
        import resource

        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(maxrss if sys.platform == "darwin" else maxrss * 1024)  # bytes on macOS, KiB on Linux


def _vm_hwm_bytes() -> int | None:
    try:
        match = re.search(r"^VmHWM:\s+(\d+) kB", _STATUS.read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) * 1024 if match else None
