"""Cost models chosen by `hardware=`: analytic MACs/params, latency measured on a device, and
per-part latency lookup tables with their validation against measured latency.

- `meter`: how a callable is timed (device, threads, clock, warm-up, trimmed mean);
- `costs`: the cost models a search calls (`AnalyticCost`, `MeasuredLatencyCost`) and the
  workloads they time;
- `lookup_table`: `LatencyTableCost`, a network's latency as the sum of its parts';
- `onnx_runtime`: `OnnxRuntimeCost`, the exported subnet as an ONNX graph in ONNX Runtime;
- `kit`: the kit of subnets timed on another device (`python -m search.device_kit` writes
  one; `device_runner.py`, copied into it, times it there);
- `device`: `DeviceLatencyCost`, latency timed on another device for a kit's subnets and
  predicted for the others;
- `table_validation`: how well a table predicts measured latency.
"""

from search.hardware.costs import (
    AnalyticCost,
    CostModel,
    ImageWorkload,
    MeasuredLatencyCost,
    Workload,
    count_macs,
    workload_settings,
)
from search.hardware.device import DeviceLatencyCost, read_latencies
from search.hardware.kit import write_kit
from search.hardware.lookup_table import LatencyTable, LatencyTableCost
from search.hardware.meter import (
    CUDA_MISSING,
    HardwareError,
    Latency,
    LatencyMeter,
    check_available,
)
from search.hardware.onnx_runtime import OnnxRuntimeCost
from search.hardware.table_validation import TableValidation, validate_table

__all__ = [
    "CUDA_MISSING",
    "AnalyticCost",
    "CostModel",
    "DeviceLatencyCost",
    "HardwareError",
    "ImageWorkload",
    "Latency",
    "LatencyMeter",
    "LatencyTable",
    "LatencyTableCost",
    "MeasuredLatencyCost",
    "OnnxRuntimeCost",
    "TableValidation",
    "Workload",
    "check_available",
    "count_macs",
    "read_latencies",
    "validate_table",
    "workload_settings",
    "write_kit",
]
