"""`Prior`: what Stage 1 hands to Stage 2 — small, serialisable, tamper-evident.

A prior holds the state dicts of the DAM and of the warmed-up fusion network, the normalisation constant, the sensor,
ratio and band count it was fitted for, and the config. It is written as a safetensors file (weights only; the
metadata lives in the safetensors header), so loading never unpickles anything. A sha256 content hash over the
metadata and every tensor is stored in the header and checked on load: a modified file is refused.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from ..errors import InputError
from .config import TrapanConfig
from .networks import DAM, FusionNet

FORMAT = "trapan-prior"
VERSION = "1"


@dataclass(frozen=True)
class Prior:
    """Stage-1 result: DAM + warmed-up FusionNet weights and the facts needed to use them on a tile."""

    dam_state: dict[str, torch.Tensor] = field(repr=False)
    """DAM state dict (CPU float32 tensors)."""
    net_state: dict[str, torch.Tensor] = field(repr=False)
    """FusionNet state dict after the warm-up (CPU float32 tensors)."""
    norm: float
    """Normalisation constant: DN / norm is what the networks see (the input's full scale, `pairs.full_scale`)."""
    sensor: str
    """Sensor name the prior was fitted for."""
    ratio: int
    """PAN/MS ratio."""
    bands: int
    """Number of MS bands."""
    config: TrapanConfig
    """Config used to fit the prior (Stage 2 uses it unless given another)."""

    # -------------------------------------------------------------- networks
    def dam(self) -> DAM:
        """A frozen DAM with the prior's weights."""
        net = DAM(self.bands, self.config.dam_hidden)
        net.load_state_dict(self.dam_state)
        return net.requires_grad_(False).eval()

    def fusion_net(self) -> FusionNet:
        """A fresh trainable copy of the warmed-up fusion network."""
        net = FusionNet(self.bands, self.config.width, self.config.depth)
        net.load_state_dict(self.net_state)
        return net

    # -------------------------------------------------------------- content
    def _metadata(self) -> dict[str, str]:
        return {"format": FORMAT, "version": VERSION, "sensor": self.sensor, "ratio": str(self.ratio),
                "bands": str(self.bands), "norm": repr(float(self.norm)),
                "config": json.dumps(self.config.to_dict(), sort_keys=True)}

    def _tensors(self) -> dict[str, torch.Tensor]:
        t = {f"dam.{k}": v for k, v in self.dam_state.items()}
        t.update({f"net.{k}": v for k, v in self.net_state.items()})
        return {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in t.items()}

    @staticmethod
    def _hash(metadata: dict[str, str], tensors: dict[str, torch.Tensor]) -> str:
        h = hashlib.sha256(json.dumps({k: metadata[k] for k in sorted(metadata) if k != "hash"}).encode())
        for k in sorted(tensors):
            v = tensors[k]
            h.update(f"{k}|{tuple(v.shape)}|".encode())
            h.update(v.numpy().tobytes())
        return h.hexdigest()

    @property
    def hash(self) -> str:
        """sha256 over the metadata and every tensor: identifies the prior in manifests."""
        return self._hash(self._metadata(), self._tensors())

    # -------------------------------------------------------------- serialisation
    def to_bytes(self) -> bytes:
        """The safetensors file content (for shipping to Dask workers)."""
        tensors, meta = self._tensors(), self._metadata()
        meta["hash"] = self._hash(meta, tensors)
        return st_save(tensors, metadata=meta)

    @classmethod
    def from_bytes(cls, data: bytes, name: str = "prior") -> Prior:
        """Inverse of `to_bytes`; refuses anything that is not an untampered trapan prior."""
        try:
            (n,) = struct.unpack("<Q", data[:8])
            header = json.loads(data[8 : 8 + n])
            meta = header.get("__metadata__") or {}
            tensors = st_load(bytes(data))
        except Exception as exc:  # any parse failure means: not a safetensors weights file
            raise InputError(f"{name}: expected a trapan prior (safetensors weights file), "
                             f"found something else ({type(exc).__name__})") from exc
        if meta.get("format") != FORMAT:
            raise InputError(f"{name}: a safetensors file but not a trapan prior (format {meta.get('format')!r}, "
                             f"expected {FORMAT!r})")
        if meta.get("version") != VERSION:
            raise InputError(f"{name}: prior format version {meta.get('version')!r}, this code reads {VERSION!r}")
        if cls._hash(meta, tensors) != meta.get("hash"):
            raise InputError(f"{name}: content hash mismatch: the prior file was modified after it was written; "
                             "refit it with fit_prior")
        return cls(
            dam_state={k[4:]: v for k, v in tensors.items() if k.startswith("dam.")},
            net_state={k[4:]: v for k, v in tensors.items() if k.startswith("net.")},
            norm=float(meta["norm"]), sensor=meta["sensor"], ratio=int(meta["ratio"]), bands=int(meta["bands"]),
            config=TrapanConfig.from_dict(json.loads(meta["config"])),
        )

    def save(self, path: str | Path) -> Path:
        """Write the prior as a safetensors file; returns the path."""
        p = Path(path)
        p.write_bytes(self.to_bytes())
        return p

    @classmethod
    def load(cls, path: str | Path) -> Prior:
        """Read a prior written by `save`; refuses a tampered or non-prior file with `InputError`."""
        p = Path(path)
        if not p.is_file():
            raise InputError(f"prior: no such file {str(p)!r}")
        return cls.from_bytes(p.read_bytes(), name=f"prior {str(p)!r}")
