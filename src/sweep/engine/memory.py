"""Peak memory of the process during one run, for the run's record (`RunResult.peak_mem_bytes`)."""

from __future__ import annotations

import resource
import sys

import torch

from sweep.engine.allocator import release_freed_memory


class PeakMemory:
    """Peak memory of this process during a run: CUDA's allocator peak, or on Linux the resident-set
    high-water mark (VmHWM), reset at the start through /proc/self/clear_refs (Linux ≥ 4.0)."""

    def __init__(self, device: torch.device):
        self.device = device
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        else:
            release_freed_memory()
            try:
                with open("/proc/self/clear_refs", "w") as f:
                    f.write("5")
            except OSError:
                pass  # without the reset the peak covers the whole process; still an upper bound

    def read(self) -> int | None:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device)
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024
