"""Transfer: does a mined activation help real models? Downstream benchmarks (``base``: the plug-in
protocol; ``vision``, ``algorithmic``, ``molecules``, ``realdata``: the built-in ones) and the runner that trains
every (activation × benchmark × seed) job in child processes, locally or on Dask, and reports
mean ± std and the log-ratio against ReLU (``runner``; ``actmine transfer`` on the command line;
docs/transfer.md)."""

from .base import (
    Benchmark,
    BenchmarkScore,
    DatasetMissing,
    UnknownBenchmarkError,
    get_benchmark,
    list_benchmarks,
    register_benchmark,
)
from .runner import (
    ActivationSpec,
    TransferInputError,
    TransferJob,
    TransferLimits,
    TransferResult,
    TransferRun,
    default_data_dir,
    execute_job,
    log_ratio,
    parse_options,
    plot_log_ratios,
    resolve_activation,
    results_table,
    run_transfer,
    summarise,
)

__all__ = [
    "ActivationSpec",
    "Benchmark",
    "BenchmarkScore",
    "DatasetMissing",
    "TransferInputError",
    "TransferJob",
    "TransferLimits",
    "TransferResult",
    "TransferRun",
    "UnknownBenchmarkError",
    "default_data_dir",
    "execute_job",
    "get_benchmark",
    "list_benchmarks",
    "log_ratio",
    "parse_options",
    "plot_log_ratios",
    "register_benchmark",
    "resolve_activation",
    "results_table",
    "run_transfer",
    "summarise",
]
