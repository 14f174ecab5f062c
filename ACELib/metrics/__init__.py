"""Metrics: Dice, HD95, absolute volume difference, evaluation tables, Wilcoxon signed-rank test.

Flat pipeline: voxel counts (``masks``) -> per-case metrics -> per-folder rows and CSV files
(``evaluation``) -> paired comparison of two tables (``wilcoxon``). The edge-case policy for empty
masks is stated once in :mod:`ACELib.metrics.masks`.
"""

from ACELib.metrics.evaluation import (
    COLUMNS,
    evaluate_case,
    evaluate_folders,
    format_summary,
    read_evaluation,
    summarize,
    summary_paths,
    write_evaluation,
)
from ACELib.metrics.masks import (
    MaskCounts,
    absolute_volume_difference,
    dice,
    hd95,
    mask_counts,
    surface,
    surface_distances,
)
from ACELib.metrics.wilcoxon import compare_results, wilcoxon_signed_rank

__all__ = [
    "COLUMNS",
    "MaskCounts",
    "absolute_volume_difference",
    "compare_results",
    "dice",
    "evaluate_case",
    "evaluate_folders",
    "format_summary",
    "hd95",
    "mask_counts",
    "read_evaluation",
    "summarize",
    "summary_paths",
    "surface",
    "surface_distances",
    "wilcoxon_signed_rank",
    "write_evaluation",
]
