"""The schema of a model file's metadata, checked before anything is built from it.

A model file is data from elsewhere: its JSON could ask for anything. :func:`metadata_problems`
lists every way a parsed ``"ace_model"`` document departs from what ``ace train`` writes (missing
keys, wrong types, label values outside 0..255, modality count vs ``in_channels``, network sizes
beyond :data:`LIMITS`), and :func:`weight_shape_problems` compares the tensors the networks would
have (built on PyTorch's ``meta`` device, which allocates nothing) with those the file holds, so a
small file can never make the loader allocate gigabytes. Only the latter needs torch (imported there).
"""

from __future__ import annotations

import re

LIMITS = {"in_channels": 16, "num_classes": 256, "base_channels": 512, "depth": 8}
MAX_MEMBERS = 32
NETWORK_KINDS = ("unet", "hetero")  # a member's "network": {"kind": ...}; absent means "unet"
_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")


PASSES = ("sources", "one")
"""How inference runs a model with label sources: one pass per source, combined, or a single pass."""
ALL_MODALITIES = "all"
"""``modality_subsets`` of a model that needs every one of its modalities (not written to the file)."""
ANY_SUBSET = "any"
"""``modality_subsets`` of a hetero-modal model that takes any non-empty subset of its modalities."""
ANY_CONTRAST = "any"
"""The one input of a model trained with ``--any-contrast``: an image of any contrast, whatever the
input is called (``ace predict`` gives it the case's one image)."""


def subset_rule_problems(rule, modalities) -> list[str]:
    """What is wrong with a ``modality_subsets`` value (empty when it is valid) for these modalities."""
    if isinstance(rule, str):
        return [] if rule in (ALL_MODALITIES, ANY_SUBSET) else [
            f"must be {ALL_MODALITIES!r}, {ANY_SUBSET!r} or a list of subsets, got {rule!r}"]
    if not isinstance(rule, (list, tuple)) or not rule:
        return [f"must be {ALL_MODALITIES!r}, {ANY_SUBSET!r} or a non-empty list of subsets, got {rule!r:.80}"]
    out = []
    for i, sub in enumerate(rule):
        if (not isinstance(sub, (list, tuple)) or not sub or len(set(sub)) != len(sub)
                or any(m not in modalities for m in sub)):
            out.append(f"subset {i} must be a non-empty list of distinct names of {list(modalities)}, got {sub!r:.80}")
    return out



def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _str_list(v) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) and x for x in v)


def metadata_problems(d) -> list[str]:
    """Every departure of a parsed model metadata document from the schema (empty when valid)."""
    if not isinstance(d, dict):
        return [f"metadata must be a JSON object, got {type(d).__name__}"]
    out = [f"missing key {k!r}" for k in ("format", "format_version", "labels", "members") if k not in d]
    if out:
        return out
    if not _is_int(d["format_version"]):
        out.append(f"'format_version' must be an integer, got {d['format_version']!r}")
    labels = d["labels"]
    if not isinstance(labels, list) or len(labels) < 2:
        return out + [f"'labels' must be a list of at least 2 labels, got {labels!r:.80}"]
    for i, e in enumerate(labels):
        if not isinstance(e, dict) or not isinstance(e.get("name"), str) or not _is_int(e.get("value")):
            out.append(f"labels[{i}] must be {{name: str, value: int, color: '#rrggbb'}}, got {e!r:.80}")
        elif not 0 <= e["value"] <= 255:
            out.append(f"labels[{i}] ({e['name']!r}): value must be in 0..255, got {e['value']}")
        elif not isinstance(e.get("color"), str) or not _HEX.match(e["color"]):
            out.append(f"labels[{i}] ({e['name']!r}): color must be '#rrggbb', got {e.get('color')!r}")
    if not out and len({e["value"] for e in labels}) != len(labels):
        out.append(f"label values repeat: {[e['value'] for e in labels]}")
    members = d["members"]
    if not isinstance(members, list) or not 1 <= len(members) <= MAX_MEMBERS:
        return out + [f"'members' must be a list of 1..{MAX_MEMBERS} networks, got {members!r:.80}"]
    for i, m in enumerate(members):
        out.extend(f"members[{i}]: {p}" for p in _member_problems(m, len(labels)))
    patch = d.get("patch_size", [32, 32, 32])
    if not (isinstance(patch, list) and len(patch) == 3 and all(_is_int(p) and 1 <= p <= 1024 for p in patch)):
        out.append(f"'patch_size' must be three integers in 1..1024, got {patch!r:.80}")
    if "modality_subsets" in d:

        names = [x for m in members if isinstance(m, dict) and _str_list(m.get("modalities")) for x in m["modalities"]]
        out.extend(f"'modality_subsets' {p}" for p in subset_rule_problems(d["modality_subsets"], names))
    if "label_sources" in d:
        out.extend(label_source_problems(d["label_sources"], labels, members))
    if d.get("passes", "sources") not in PASSES:
        out.append(f"'passes' must be one of {list(PASSES)}, got {d['passes']!r:.80}")
    for key in ("preprocessing", "training"):
        if not isinstance(d.get(key, {}), dict):
            out.append(f"{key!r} must be an object, got {d[key]!r:.80}")
    return out


def label_source_problems(sources, labels: list, members: list) -> list[str]:
    """What is wrong with a ``label_sources`` value: a list of ``{labels: [names], modalities: [names]}``
    naming the model's labels and its members' modalities."""
    if not isinstance(sources, list) or not sources:
        return [f"'label_sources' must be a non-empty list, got {sources!r:.80}"]
    names = {e["name"] for e in labels if isinstance(e, dict) and isinstance(e.get("name"), str)}
    inputs = {x for m in members if isinstance(m, dict) and _str_list(m.get("modalities")) for x in m["modalities"]}
    out = []
    for i, s in enumerate(sources):
        if not (isinstance(s, dict) and _str_list(s.get("labels")) and _str_list(s.get("modalities"))
                and s["modalities"]):
            out.append(f"label_sources[{i}] must be {{labels: [names], modalities: [names]}}, got {s!r:.80}")
            continue
        unknown = [x for x in s["labels"] if x not in names] + [x for x in s["modalities"] if x not in inputs]
        if unknown:
            out.append(f"label_sources[{i}] names {unknown}, not labels or modalities of the model")
    return out


def _member_problems(m, num_labels: int) -> list[str]:
    if not isinstance(m, dict):
        return [f"must be an object, got {m!r:.80}"]
    out = []
    if not isinstance(m.get("name"), str):
        out.append(f"'name' must be a string, got {m.get('name')!r}")
    if not _str_list(m.get("modalities")) or not m["modalities"]:
        out.append(f"'modalities' must be a non-empty list of names, got {m.get('modalities')!r:.80}")
    classes = m.get("classes")
    if not (isinstance(classes, list) and len(classes) >= 2 and all(_is_int(c) for c in classes)
            and classes[0] == 0 and all(0 <= c < num_labels for c in classes)):
        out.append(f"'classes' must list joint label indices 0..{num_labels - 1} starting with 0, got {classes!r:.80}")
    net = m.get("network")
    if not isinstance(net, dict):
        return out + [f"'network' must be an object, got {net!r:.80}"]
    unknown = sorted(set(net) - set(LIMITS) - {"kind"})
    if unknown:
        out.append(f"'network' has unknown keys {unknown}")
    if net.get("kind", "unet") not in NETWORK_KINDS:
        out.append(f"network kind must be one of {list(NETWORK_KINDS)}, got {net.get('kind')!r:.40}")
    for key, top in LIMITS.items():
        low = 2 if key == "num_classes" else 1
        if key not in net and key in ("in_channels", "num_classes"):
            out.append(f"'network' lacks {key!r}")
        elif key in net and not (_is_int(net[key]) and low <= net[key] <= top):
            out.append(f"network {key} must be an integer in {low}..{top}, got {net[key]!r:.40}")
    if out:
        return out
    if net["in_channels"] != len(m["modalities"]):
        out.append(f"network in_channels {net['in_channels']} != {len(m['modalities'])} modalities {m['modalities']}")
    if net["num_classes"] != len(classes):
        out.append(f"network num_classes {net['num_classes']} != {len(classes)} classes")
    return out


def weight_shape_problems(networks_config: list, header: dict) -> list[str]:
    """Tensors the networks need but the file lacks or holds with another shape (nothing allocated).

    Args:
        networks_config: one network description (a member's ``"network"`` dict, see
            :func:`ACELib.networks.build_network`) or :class:`ACELib.networks.UNetConfig` per member.
        header: tensor entries of the safetensors header, ``name -> {"shape": [...], ...}``.
    """
    import torch

    from ACELib.networks import UNet3D, build_network

    out = []
    for i, cfg in enumerate(networks_config):
        with torch.device("meta"):
            net = build_network(cfg) if isinstance(cfg, dict) else UNet3D(cfg)
            expected = {f"member{i}/{k}": tuple(v.shape) for k, v in net.state_dict().items()}
        for name, shape in expected.items():
            held = header.get(name)
            if held is None:
                out.append(f"tensor {name!r} is missing")
            elif tuple(held.get("shape", ())) != shape:
                out.append(f"tensor {name!r} has shape {held.get('shape')}, the network needs {list(shape)}")
            if len(out) >= 3:
                return out + ["..."]
    return out
