"""Read packaged config presets, so that code never carries a second copy of a default."""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from omegaconf import OmegaConf


def augment_preset(name: str) -> dict[str, Any]:
    """Augmentation ranges of ``conf/data/augment/<name>.yaml`` (paper, heavy, none)."""
    resource = files("sigid.conf") / "data" / "augment" / f"{name}.yaml"
    if not resource.is_file():
        choices = sorted(p.name[:-5] for p in resource.parent.iterdir() if p.name.endswith(".yaml"))
        raise ValueError(f"unknown augmentation preset {name!r}; choose from {', '.join(choices)}")
    return dict(OmegaConf.to_container(OmegaConf.create(resource.read_text())))
