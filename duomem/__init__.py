"""duomem: a reproducible build of DuoMem (dual-space distillation of procedural memory) on ALFWorld."""

__version__ = "0.1.0"
