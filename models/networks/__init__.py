"""Backbones: plain ``nn.Module``s mapping (N, C, T, H, W) float input to (N, F) features."""

from models.networks.registry import BACKBONES, Backbone, build_backbone

__all__ = ["BACKBONES", "Backbone", "build_backbone"]
