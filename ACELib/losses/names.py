"""The losses of ``ace train --loss`` by name, with what each computes; no torch, so that front ends
(the Slicer module) can list them before torch is installed. ACE and its variants come first,
then the baselines."""

LOSSES: dict[str, str] = {
    "ace": "adaptive cross entropy, background set = labels the dataset does not annotate",
    "ace-patch": "adaptive cross entropy as in the paper's Eq. 4 (labels absent from the patch)",
    "marginal": "marginal cross entropy over per-voxel candidate sets (supports widened labels)",
    "ace+dice": "adaptive cross entropy + marginal soft Dice, equal weights",
    "marginal+dice": "marginal cross entropy + marginal soft Dice, equal weights",
    "ce": "naive categorical cross entropy on the joint labels (paper baseline)",
    "dice": "naive soft multi-class Dice on the joint labels (paper baseline)",
    "ce+dice": "naive cross entropy + naive soft Dice, equal weights",
}
