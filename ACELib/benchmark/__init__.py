"""Reproduce the paper on phantoms: train every method on identical data, evaluate, tabulate, plot."""

from ACELib.benchmark.methods import METHODS, PROFILES, Method, Profile, get_methods, method_config
from ACELib.benchmark.runner import BenchmarkRun, run_benchmark

__all__ = ["METHODS", "PROFILES", "BenchmarkRun", "Method", "Profile", "get_methods", "method_config",
           "run_benchmark"]
